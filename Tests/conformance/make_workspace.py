#!/usr/bin/env python3
"""Writes Tests/conformance/workspace.json, the `cdfsync-sim/1` workspace the SDK conformance
suite (run.py) runs against. Deterministic, standard library only; the output is committed.

  make_workspace.py            rewrite workspace.json
  make_workspace.py --check    exit 1 if workspace.json differs from what this script writes
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "workspace.json"

WH_RUNNING = "c0ffee0000000001"
WH_COLD = "c0ffee0000000002"      # STOPPED, start_seconds 3: polling through PENDING
WH_CANCEL = "c0ffee0000000003"    # STOPPED, start_seconds 30: stays PENDING long enough to cancel
WH_MANAGED = "c0ffee0000000004"   # RUNNING, CAN_MANAGE: stop/start
WH_FORBIDDEN = "c0ffee0000000009" # exists, the principal has no permission on it

PAT = "dapi-conformance-token"
PAT_LIMITED = "dapi-limited-token"
CLIENT_ID = "c0nf0rm4-0000-4000-8000-000000000001"
CLIENT_SECRET = "dose-conformance-secret"

COLUMNS = [
    {"name": "participant_id", "type": "STRING", "nullable": False},
    {"name": "email", "type": "STRING"},
    {"name": "first_name", "type": "STRING"},
    {"name": "country", "type": "STRING"},
    {"name": "score", "type": "BIGINT"},
    {"name": "updated_at", "type": "TIMESTAMP"},
]


def ts(day: int, hour: int, minute: int = 0) -> str:
    return f"2026-03-{day:02d}T{hour:02d}:{minute:02d}:00.000Z"


def participants():
    rng = random.Random(20260301)
    names = ["Ana", "Bo", "Chidi", "Dana", "Émile", "Fatima", "Jun", "Lena", "O'Brien", "Zoë", "Li \"Lucky\""]
    countries = ["US", "GB", "DE", "FR", "JP", None]
    rows = {}
    commits = [{"version": 0, "timestamp": ts(1, 8), "operation": "CREATE TABLE",
                "set_properties": {"delta.enableChangeDataFeed": "true"}}]
    ins = []
    for i in range(1, 46):
        pid = f"C{i:04d}"
        r = [pid, None if i % 9 == 0 else f"{pid.lower()}@example.com", rng.choice(names), rng.choice(countries),
             str(rng.randint(0, 1000)), ts(1, 9)]
        rows[pid] = r
        ins.append(r)
    commits.append({"version": 1, "timestamp": ts(1, 9), "operation": "WRITE", "insert": ins})
    upd = []
    for pid in ["C0003", "C0010", "C0021", "C0044"]:
        before = rows[pid]
        after = before[:4] + [str(int(before[4]) + 5), ts(2, 10, 30)]
        upd.append({"before": before, "after": after})
        rows[pid] = after
    new = [["C0046", "c0046@example.org", "Ana", "US", "77", ts(2, 10, 30)]]
    rows["C0046"] = new[0]
    commits.append({"version": 2, "timestamp": ts(2, 10, 30), "operation": "MERGE", "update": upd, "insert": new})
    dels = [rows.pop("C0007"), rows.pop("C0030")]
    commits.append({"version": 3, "timestamp": ts(3, 11), "operation": "DELETE", "delete": dels})
    b = rows["C0001"]
    a = b[:1] + ["c0001@example.net"] + b[2:5] + [ts(4, 12)]
    rows["C0001"] = a
    commits.append({"version": 4, "timestamp": ts(4, 12), "operation": "UPDATE", "update": [{"before": b, "after": a}]})
    return commits


def simple_table(name, commits, **extra):
    t = {"name": name, "table_type": "MANAGED",
         "columns": [{"name": "id", "type": "INT", "nullable": False}, {"name": "name", "type": "STRING"}],
         "commits": commits}
    t.update(extra)
    return t


def workspace() -> dict:
    return {
        "format": "cdfsync-sim/1",
        "warehouses": [
            {"id": WH_RUNNING, "name": "Conformance Warehouse", "state": "RUNNING", "start_seconds": 1},
            {"id": WH_COLD, "name": "Cold Warehouse", "state": "STOPPED", "start_seconds": 3},
            {"id": WH_CANCEL, "name": "Slow Start Warehouse", "state": "STOPPED", "start_seconds": 30},
            {"id": WH_MANAGED, "name": "Managed Warehouse", "state": "RUNNING", "start_seconds": 2},
            {"id": WH_FORBIDDEN, "name": "Someone Else's Warehouse", "state": "RUNNING", "start_seconds": 1},
        ],
        "principals": [
            {"name": "conformance-bot", "tokens": [PAT],
             "oauth": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
             "warehouses": {WH_RUNNING: "CAN_USE", WH_COLD: "CAN_USE", WH_CANCEL: "CAN_USE", WH_MANAGED: "CAN_MANAGE"},
             "grants": [
                 {"on": "main", "privileges": ["USE CATALOG"]},
                 {"on": "main.conf", "privileges": ["USE SCHEMA", "SELECT"]},
             ]},
            {"name": "limited-bot", "tokens": [PAT_LIMITED],
             "warehouses": {WH_RUNNING: "CAN_USE"},
             "grants": [
                 {"on": "main", "privileges": ["USE CATALOG"]},
                 {"on": "main.conf", "privileges": ["USE SCHEMA"]},
                 {"on": "main.conf.legacy", "privileges": ["SELECT"]},
             ]},
        ],
        "tables": [
            {"name": "main.conf.participants", "table_type": "MANAGED", "columns": COLUMNS, "commits": participants()},
            # CDF enabled at v2, disabled at v4, re-enabled at v6.
            simple_table("main.conf.legacy", [
                {"version": 0, "timestamp": ts(1, 8), "operation": "CREATE TABLE"},
                {"version": 1, "timestamp": ts(1, 9), "operation": "WRITE", "insert": [["1", "one"], ["2", "two"]]},
                {"version": 2, "timestamp": ts(2, 9), "operation": "SET TBLPROPERTIES",
                 "set_properties": {"delta.enableChangeDataFeed": "true"}},
                {"version": 3, "timestamp": ts(3, 9), "operation": "WRITE", "insert": [["3", "three"]]},
                {"version": 4, "timestamp": ts(4, 9), "operation": "SET TBLPROPERTIES",
                 "set_properties": {"delta.enableChangeDataFeed": "false"}},
                {"version": 5, "timestamp": ts(5, 9), "operation": "DELETE", "delete": [["1", "one"]]},
                {"version": 6, "timestamp": ts(6, 9), "operation": "SET TBLPROPERTIES",
                 "set_properties": {"delta.enableChangeDataFeed": "true"}},
                {"version": 7, "timestamp": ts(7, 9), "operation": "WRITE", "insert": [["4", "four"]]},
            ]),
            simple_table("main.conf.vacuumed", [
                {"version": 0, "timestamp": ts(1, 8), "operation": "CREATE TABLE",
                 "set_properties": {"delta.enableChangeDataFeed": "true"}},
                {"version": 1, "timestamp": ts(1, 9), "operation": "WRITE", "insert": [["1", "a"], ["2", "b"]]},
                {"version": 2, "timestamp": ts(2, 9), "operation": "WRITE", "insert": [["3", "c"]]},
                {"version": 3, "timestamp": ts(3, 9), "operation": "DELETE", "delete": [["2", "b"]]},
                {"version": 4, "timestamp": ts(4, 9), "operation": "WRITE", "insert": [["5", "e"]]},
            ], earliest_retained_version=3),
            {"name": "main.conf.opted_in", "table_type": "VIEW", "columns": COLUMNS[:2],
             "view": {"source": "main.conf.participants", "select": ["participant_id", "email"],
                      "where": "country = 'US'"}},
            simple_table("main.hidden.secrets", [
                {"version": 0, "timestamp": ts(1, 8), "operation": "CREATE TABLE"},
                {"version": 1, "timestamp": ts(1, 9), "operation": "WRITE", "insert": [["1", "classified"]]},
            ]),
        ],
    }


def render() -> str:
    return json.dumps(workspace(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        ok = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print("PASS workspace.json is current" if ok
              else "FAIL workspace.json differs from make_workspace.py's output (run make_workspace.py)")
        print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
        sys.exit(0 if ok else 1)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")

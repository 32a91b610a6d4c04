#!/usr/bin/env python3
"""Second official client: databricks-sql-connector 4.9.0 (SEA backend) against dbsql-sim.

The connector's default Thrift backend cannot talk plain HTTP to a simulator, so this uses
`use_sea=True, use_cloud_fetch=False, enable_telemetry=False` (delta-oracle.md §3). That path
creates a session (`POST /api/2.0/sql/sessions`), runs statements with `session_id`, polls, closes
each statement (`DELETE /api/2.0/sql/statements/{id}`) and deletes the session. Values come back
converted to Python types, so this also checks that the simulator's JSON_ARRAY text parses the way
a real client parses it. Expected values come from the workspace model in run.py's style (replayed
commits), never from the simulator.

Prints `PASS name` / `FAIL name: reason`, then `N passed, N failed`.
"""
from __future__ import annotations

import argparse
import datetime as dtm
import json
import logging
import sys
import time
from pathlib import Path

from databricks import sql
from databricks.sql.exc import Error as SQLError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_workspace as W  # noqa: E402
from simproc import Sim  # noqa: E402

HERE = Path(__file__).resolve().parent
P = "main.conf.participants"


def content(doc, table, version=None):
    t = next(x for x in doc["tables"] if x["name"] == table)
    rows = []
    for c in t["commits"]:
        if version is not None and c["version"] > version:
            break
        for r in c.get("delete", []):
            rows.remove(r)
        for u in c.get("update", []):
            rows.remove(u["before"])
            rows.append(u["after"])
        rows.extend(c.get("insert", []))
    return rows


def ts(text):
    return dtm.datetime.fromisoformat(text.replace("Z", "+00:00"))


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def connect(base: str):
    host, port = base.rsplit(":", 1)
    return sql.connect(server_hostname=host, port=int(port), http_path=f"/sql/1.0/warehouses/{W.WH_RUNNING}",
                       access_token=W.PAT, use_sea=True, use_cloud_fetch=False, enable_telemetry=False,
                       _retry_stop_after_attempts_count=2)


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


@case
def connector_named_parameters_typed_values(base, doc):
    with connect(base) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT participant_id, score, updated_at FROM {P} WHERE country = :c ORDER BY participant_id",
                    {"c": "US"})
        rows = [tuple(r) for r in cur.fetchall()]
        desc = [(d[0], d[1]) for d in cur.description]
    want = sorted((r[0], int(r[4]), ts(r[5])) for r in content(doc, P) if r[3] == "US")
    check(desc == [("participant_id", "string"), ("score", "bigint"), ("updated_at", "timestamp")], f"description {desc}")
    check(want, "fixture has no US rows (fixture bug)")
    check(rows == want, f"rows differ: {rows[:2]} vs {want[:2]}")


@case
def connector_all_rows(base, doc):
    with connect(base) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT participant_id, email FROM {P}")
        rows = sorted(tuple(r) for r in cur.fetchall())
    want = sorted((r[0], r[1]) for r in content(doc, P))
    check(rows == want, f"{len(rows)} rows, expected {len(want)}")


@case
def connector_table_changes(base, doc):
    t = next(x for x in doc["tables"] if x["name"] == P)
    latest = t["commits"][-1]["version"]
    with connect(base) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT participant_id, _change_type, _commit_version, _commit_timestamp "
                    f"FROM table_changes('{P}', 0, {latest})")
        got = sorted((r[0], r[1], r[2], r[3]) for r in cur.fetchall())
    want = []
    for c in t["commits"]:
        tail = lambda kind: (kind, c["version"], ts(c["timestamp"]))  # noqa: E731
        want += [(r[0],) + tail("insert") for r in c.get("insert", [])]
        for u in c.get("update", []):
            want += [(u["before"][0],) + tail("update_preimage"), (u["after"][0],) + tail("update_postimage")]
        want += [(r[0],) + tail("delete") for r in c.get("delete", [])]
    check(got == sorted(want), f"{len(got)} change rows differ from the model's {len(want)}")


@case
def connector_failed_statement_raises_with_class(base, doc):
    with connect(base) as conn, conn.cursor() as cur:
        try:
            cur.execute(f"SELECT * FROM table_changes('{P}', 3, 1)")
            cur.fetchall()
        except SQLError as e:
            check("DELTA_INVALID_CDC_RANGE" in str(e), f"{type(e).__name__}: {str(e)[:160]}")
            return
    raise Failure("an invalid CDC range did not raise")


@case
def connector_many_statements_one_session(base, doc):
    t0 = time.monotonic()
    with connect(base) as conn:
        for i in range(5):
            with conn.cursor() as cur:
                cur.execute(f"SELECT participant_id FROM {P} WHERE participant_id = :p", {"p": f"C{i + 1:04d}"})
                got = cur.fetchall()
                want = [r for r in content(doc, P) if r[0] == f"C{i + 1:04d}"]
                check(len(got) == len(want), f"statement {i}: {len(got)} rows, expected {len(want)}")
    check(time.monotonic() - t0 < 10, "five small statements took over 10 s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sim", default=".build/debug/dbsql-sim")
    a = ap.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    doc = json.loads((HERE / "workspace.json").read_text())
    try:
        # The simulator's default INLINE chunk size (10,000 rows): connector 4.9.0's SEA JsonQueue reads
        # only the first INLINE chunk (it never follows next_chunk_index), a client bug like JDBC PR #1074,
        # so multi-chunk INLINE results are exercised by run.py with the SDK instead.
        sim = Sim(a.sim, HERE / "workspace.json")
    except Exception as e:  # noqa: BLE001
        for fn in CASES:
            print(f"FAIL {fn.__name__}: simulator did not start: {e}")
        print(f"0 passed, {len(CASES)} failed")
        return 1
    passed = failed = 0
    try:
        for fn in CASES:
            try:
                fn(sim.base, doc)
                print(f"PASS {fn.__name__}", flush=True)
                passed += 1
            except Exception as e:  # noqa: BLE001
                print(f"FAIL {fn.__name__}: {type(e).__name__}: {str(e)[:300]}", flush=True)
                failed += 1
    finally:
        sim.stop()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

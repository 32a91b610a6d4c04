#!/usr/bin/env python3
"""SDK conformance suite: Databricks' own Python client (databricks-sdk, pinned in
tools/requirements-conformance.txt) against dbsql-sim.

Starts the simulator on Tests/conformance/workspace.json and runs each case with
`WorkspaceClient(host=..., token=...)` (PAT) or OAuth M2M (`client_id`/`client_secret`,
`auth_type="oauth-m2m"`). Expected values come from an independent Python model of the
workspace document (replaying its commits), never from the simulator.

Each case prints `PASS name` or `FAIL name: reason`; the last line is `N passed, N failed`;
the exit code is non-zero if any case failed. A feature the simulator lacks makes its case
FAIL (nothing is skipped).

  run.py [--sim .build/debug/dbsql-sim] [--only SUBSTRING] [-v]
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import sys
import time
import traceback
from pathlib import Path

# Hermetic client configuration: no ~/.databrickscfg, no DATABRICKS_* from the environment.
for k in list(os.environ):
    if k.startswith("DATABRICKS_"):
        del os.environ[k]
os.environ["DATABRICKS_CONFIG_FILE"] = "/nonexistent/databrickscfg"

import requests  # noqa: E402
from databricks.sdk import WorkspaceClient  # noqa: E402
from databricks.sdk.config import Config  # noqa: E402
from databricks.sdk.errors import (  # noqa: E402
    BadRequest, DatabricksError, InvalidParameterValue, NotFound, PermissionDenied, TemporarilyUnavailable,
    TooManyRequests)
from databricks.sdk.service.sql import (  # noqa: E402
    Disposition, ExecuteStatementRequestOnWaitTimeout, Format, State, StatementParameterListItem, StatementState)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_workspace as W  # noqa: E402
from simproc import Sim  # noqa: E402

HERE = Path(__file__).resolve().parent
ROWS_PER_CHUNK = 10
ROWS_PER_EXTERNAL_CHUNK = 12
HTTP_TIMEOUT = 4  # seconds per HTTP call; a hung response fails the case instead of stalling the suite
# A statement that needs a running warehouse but no particular SQL feature.
ONE = "SELECT participant_id FROM main.conf.participants WHERE participant_id = 'C0001'"


# ----------------------------------------------------------------------------- reference model

class Model:
    """Replays the workspace document's commits: table content and change data per version."""

    def __init__(self, doc: dict):
        self.doc = doc
        self.tables = {t["name"]: t for t in doc["tables"]}

    def columns(self, table: str) -> list[str]:
        return [c["name"] for c in self.tables[table]["columns"]]

    def content(self, table: str, version: int | None = None) -> list[list]:
        rows: list[list] = []
        for c in self.tables[table]["commits"]:
            if version is not None and c["version"] > version:
                break
            for r in c.get("delete", []):
                rows.remove(r)
            for u in c.get("update", []):
                rows.remove(u["before"])
                rows.append(u["after"])
            rows.extend(c.get("insert", []))
        return rows

    def changes(self, table: str, start: int, end: int) -> list[list]:
        out = []
        for c in self.tables[table]["commits"]:
            if not start <= c["version"] <= end:
                continue
            tail = lambda kind: [kind, str(c["version"]), c["timestamp"]]  # noqa: E731
            out += [r + tail("insert") for r in c.get("insert", [])]
            for u in c.get("update", []):
                out += [u["before"] + tail("update_preimage"), u["after"] + tail("update_postimage")]
            out += [r + tail("delete") for r in c.get("delete", [])]
        return out


def canon(rows) -> list[str]:
    return sorted(json.dumps(r, ensure_ascii=False) for r in rows)


# ----------------------------------------------------------------------------- harness

class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


CASES = []


def case(name, budget=5.0):
    """Register a case. `budget` is its wall-clock allowance in seconds: the SDK silently retries
    after read timeouts, so a stalled simulator would otherwise show up only as a slow PASS."""
    def deco(fn):
        CASES.append((name, fn, budget))
        return fn
    return deco


class Ctx:
    def __init__(self, sim: Sim, model: Model, sim_binary: str):
        self.sim = sim
        self.sim_binary = sim_binary
        self.model = model
        self.host = sim.base

    def pat(self, token=W.PAT, **kw) -> WorkspaceClient:
        cfg = Config(host=self.host, token=token, auth_type="pat", retry_timeout_seconds=kw.pop("retry", 15),
                     http_timeout_seconds=kw.pop("http_timeout", HTTP_TIMEOUT), **kw)
        return WorkspaceClient(config=cfg)

    def m2m(self, client_id=W.CLIENT_ID, client_secret=W.CLIENT_SECRET) -> WorkspaceClient:
        cfg = Config(host=self.host, client_id=client_id, client_secret=client_secret, auth_type="oauth-m2m",
                     retry_timeout_seconds=15, http_timeout_seconds=HTTP_TIMEOUT)
        return WorkspaceClient(config=cfg)

    def wait(self, w: WorkspaceClient, resp, timeout=30.0):
        """Poll get_statement until terminal; returns (final response, list of states seen)."""
        seen = [resp.status.state]
        deadline = time.monotonic() + timeout
        while resp.status.state in (StatementState.PENDING, StatementState.RUNNING):
            check(time.monotonic() < deadline, f"statement {resp.statement_id} still {resp.status.state} after {timeout}s")
            time.sleep(0.25)
            resp = w.statement_execution.get_statement(resp.statement_id)
            seen.append(resp.status.state)
        return resp, seen

    def all_rows(self, w: WorkspaceClient, resp) -> list[list]:
        """Every INLINE row, following next_chunk_index through get_statement_result_chunk_n."""
        check(resp.status.state == StatementState.SUCCEEDED,
              f"state {resp.status.state}: {resp.status.error and resp.status.error.message}")
        rows = list(resp.result.data_array or []) if resp.result else []
        chunk = resp.result
        n = 1
        while chunk is not None and chunk.next_chunk_index is not None:
            check(chunk.next_chunk_index == n, f"next_chunk_index {chunk.next_chunk_index}, expected {n}")
            chunk = w.statement_execution.get_statement_result_chunk_n(resp.statement_id, chunk.next_chunk_index)
            check(chunk.chunk_index == n, f"chunk {n} came back as chunk_index {chunk.chunk_index}")
            check(chunk.row_offset == len(rows), f"chunk {n} row_offset {chunk.row_offset}, expected {len(rows)}")
            rows += chunk.data_array or []
            n += 1
        check(resp.manifest.total_row_count == len(rows),
              f"manifest.total_row_count {resp.manifest.total_row_count}, rows read {len(rows)}")
        check((resp.manifest.total_chunk_count or 0) == (n if rows else 0),
              f"manifest.total_chunk_count {resp.manifest.total_chunk_count}, chunks read {n}")
        return rows

    def sql(self, w, statement, wh=W.WH_RUNNING, **kw):
        resp = w.statement_execution.execute_statement(statement=statement, warehouse_id=wh,
                                                       wait_timeout=kw.pop("wait_timeout", "30s"), **kw)
        resp, _ = self.wait(w, resp)
        return resp

    def failed_class(self, w, statement) -> tuple[str | None, object]:
        resp = self.sql(w, statement)
        check(resp.status.state == StatementState.FAILED, f"state {resp.status.state}, expected FAILED")
        err = resp.status.error
        check(err is not None and err.message, "FAILED without status.error.message")
        m = re.match(r"^\s*\[([A-Z0-9_.]+)\]", err.message)
        check(m, f"message does not start with [ERROR_CLASS]: {err.message[:120]!r}")
        check(re.search(r"SQLSTATE: [0-9A-Z]{5}", err.message), f"message lacks 'SQLSTATE: xxxxx': {err.message[:160]!r}")
        code = err.error_code.value if hasattr(err.error_code, "value") else err.error_code
        check(code == "BAD_REQUEST", f"status.error.error_code {code!r}, expected BAD_REQUEST")
        return m.group(1), resp


def expect_raises(exc_type, fn, what):
    try:
        fn()
    except exc_type as e:
        return e
    except Exception as e:  # noqa: BLE001
        raise Failure(f"{what}: raised {type(e).__name__} ({str(e)[:160]}), expected {exc_type.__name__}")
    raise Failure(f"{what}: no exception, expected {exc_type.__name__}")


P = "main.conf.participants"


# ----------------------------------------------------------------------------- cases: transport

@case("http_keepalive_sequential_requests")
def _(c: Ctx):
    """The SDK (requests/urllib3) reuses one connection; every request on it must be answered."""
    s = requests.Session()
    h = {"Authorization": f"Bearer {W.PAT}"}
    r = s.post(c.host + "/api/2.0/sql/statements", json={"statement": ONE, "warehouse_id": W.WH_RUNNING},
               headers=h, timeout=5)
    check(r.status_code == 200, f"POST: HTTP {r.status_code}")
    sid = r.json()["statement_id"]
    paths = [f"/api/2.0/sql/statements/{sid}", "/api/2.0/sql/warehouses", f"/api/2.0/sql/statements/{sid}",
             "/api/2.0/sql/statements/nope", f"/api/2.0/sql/statements/{sid}"]
    for i, p in enumerate(paths):
        try:
            r = s.get(c.host + p, headers=h, timeout=3)
        except requests.exceptions.ReadTimeout:
            raise Failure(f"request {i + 2} on a kept-alive connection (GET {p}) got no response within 3 s")
        check(r.status_code in (200, 404), f"GET {p}: HTTP {r.status_code}")


# ----------------------------------------------------------------------------- cases: PAT basics

@case("pat_execute_named_parameters")
def _(c: Ctx):
    w = c.pat()
    params = [StatementParameterListItem(name="country", value="US"),
              StatementParameterListItem(name="min_score", value="100", type="BIGINT")]
    resp = c.sql(w, f"SELECT participant_id, email, score FROM {P} WHERE country = :country AND score >= :min_score "
                    "ORDER BY participant_id", parameters=params, disposition=Disposition.INLINE,
                 format=Format.JSON_ARRAY)
    got = c.all_rows(w, resp)
    cols = c.model.columns(P)
    want = sorted(([r[0], r[1], r[4]] for r in c.model.content(P)
                   if r[cols.index("country")] == "US" and int(r[4]) >= 100), key=lambda r: r[0])
    check(len(want) > 0, "fixture has no matching rows (fixture bug)")
    check(got == want, f"rows differ: got {got[:3]}..., expected {want[:3]}...")
    names = [col.name for col in resp.manifest.schema.columns]
    check(names == ["participant_id", "email", "score"], f"columns {names}")
    types = [(col.type_text, col.type_name.value if col.type_name else None) for col in resp.manifest.schema.columns]
    check(types[2] == ("BIGINT", "LONG"), f"score column type {types[2]}, expected BIGINT/LONG")


@case("pat_null_parameter_and_string_escapes")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, f"SELECT participant_id, first_name FROM {P} WHERE first_name = :n ORDER BY participant_id",
                 parameters=[StatementParameterListItem(name="n", value='Li "Lucky"')])
    got = c.all_rows(w, resp)
    want = sorted([r[0], r[2]] for r in c.model.content(P) if r[2] == 'Li "Lucky"')
    check(want, "fixture has no Li \"Lucky\" row (fixture bug)")
    check(got == want, f"got {got}, expected {want}")
    resp = c.sql(w, f"SELECT participant_id FROM {P} WHERE email = :e",
                 parameters=[StatementParameterListItem(name="e")])  # value omitted: SQL NULL
    got = c.all_rows(w, resp)
    check(got == [], f"'email = NULL' matched {len(got)} rows; SQL NULL comparison must match none")


@case("pat_inline_multichunk_all_rows")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, f"SELECT * FROM {P}")
    check((resp.manifest.total_chunk_count or 0) > 1,
          f"expected several INLINE chunks at {ROWS_PER_CHUNK} rows/chunk, got {resp.manifest.total_chunk_count}")
    check(resp.result.next_chunk_index == 1, f"first result next_chunk_index {resp.result.next_chunk_index}")
    check(resp.result.next_chunk_internal_link == f"/api/2.0/sql/statements/{resp.statement_id}/result/chunks/1",
          f"next_chunk_internal_link {resp.result.next_chunk_internal_link!r}")
    got = c.all_rows(w, resp)
    check(canon(got) == canon(c.model.content(P)), f"{len(got)} rows differ from the model's {len(c.model.content(P))}")
    # Chunks may be fetched again and out of order.
    last = resp.manifest.total_chunk_count - 1
    again = w.statement_execution.get_statement_result_chunk_n(resp.statement_id, last)
    check(again.chunk_index == last and again.next_chunk_index is None,
          f"refetched last chunk: chunk_index {again.chunk_index}, next {again.next_chunk_index}")
    mchunks = resp.manifest.chunks or []
    check(len(mchunks) == resp.manifest.total_chunk_count and sum(x.row_count for x in mchunks) == len(got),
          "manifest.chunks does not list every chunk with its row_count")


@case("pat_row_limit_truncates")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, f"SELECT participant_id FROM {P} ORDER BY participant_id", row_limit=5)
    got = c.all_rows(w, resp)
    want = sorted([r[0]] for r in c.model.content(P))[:5]
    check(got == want, f"got {got}, expected {want}")
    check(resp.manifest.truncated is True, f"manifest.truncated {resp.manifest.truncated}, expected True")


@case("pat_empty_result")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, f"SELECT participant_id FROM {P} WHERE participant_id = 'nobody'")
    check(resp.status.state == StatementState.SUCCEEDED, f"state {resp.status.state}")
    check(resp.manifest.total_row_count == 0 and (resp.manifest.total_chunk_count or 0) == 0,
          f"totals {resp.manifest.total_row_count}/{resp.manifest.total_chunk_count}")
    check(not (resp.result and resp.result.data_array), "empty result carries data_array rows")


@case("pat_table_changes_matches_model")
def _(c: Ctx):
    w = c.pat()
    latest = c.model.tables[P]["commits"][-1]["version"]
    resp = c.sql(w, f"SELECT * FROM table_changes('{P}', 0, {latest}) ORDER BY _commit_version")
    got = c.all_rows(w, resp)
    names = [col.name for col in resp.manifest.schema.columns]
    want_names = c.model.columns(P) + ["_change_type", "_commit_version", "_commit_timestamp"]
    check(names == want_names, f"columns {names}")
    types = {col.name: (col.type_text, col.type_name.value if col.type_name else None) for col in resp.manifest.schema.columns}
    check(types["_commit_version"] == ("BIGINT", "LONG") and types["_commit_timestamp"][0] == "TIMESTAMP",
          f"CDF column types {types['_commit_version']}, {types['_commit_timestamp']}")
    check(canon(got) == canon(c.model.changes(P, 0, latest)), f"{len(got)} change rows differ from the model")
    versions = [int(r[-2]) for r in got]
    check(versions == sorted(versions), "ORDER BY _commit_version not honoured")


@case("pat_describe_history_latest")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, f"DESCRIBE HISTORY {P} LIMIT 1")
    rows = c.all_rows(w, resp)
    names = [col.name for col in resp.manifest.schema.columns]
    check("version" in names and "operation" in names, f"columns {names}")
    last = c.model.tables[P]["commits"][-1]
    check(len(rows) == 1 and rows[0][names.index("version")] == str(last["version"])
          and rows[0][names.index("operation")] == last["operation"], f"got {rows}")


@case("select_literals_without_from")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, "SELECT 1 AS one, 'x' AS s, NULL AS n")
    check(resp.status.state == StatementState.SUCCEEDED,
          f"state {resp.status.state}: {resp.status.error and resp.status.error.message.strip()[:120]!r}")
    check(c.all_rows(w, resp) == [["1", "x", None]], "values")
    types = [(x.name, x.type_text, x.type_name.value if x.type_name else None) for x in resp.manifest.schema.columns]
    check(types == [("one", "INT", "INT"), ("s", "STRING", "STRING"), ("n", "VOID", "NULL")], f"columns {types}")


@case("select_count_star")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, f"SELECT count(*) AS n FROM {P}")
    check(resp.status.state == StatementState.SUCCEEDED,
          f"state {resp.status.state}: {resp.status.error and resp.status.error.message.strip()[:120]!r}")
    check(c.all_rows(w, resp) == [[str(len(c.model.content(P)))]], "count")
    col = resp.manifest.schema.columns[0]
    check((col.name, col.type_text) == ("n", "BIGINT"), f"column {col.name} {col.type_text}")


# ----------------------------------------------------------------------------- async, cancel

@case("pat_cold_warehouse_pending_then_polling", budget=12)
def _(c: Ctx):
    w = c.pat()
    wh = w.warehouses.get(W.WH_COLD)
    check(wh.state == State.STOPPED, f"cold warehouse state {wh.state}, expected STOPPED before the test")
    resp = w.statement_execution.execute_statement(statement=f"SELECT participant_id FROM {P}", warehouse_id=W.WH_COLD,
                                                   wait_timeout="0s")
    check(resp.status.state == StatementState.PENDING, f"wait_timeout=0s on a stopped warehouse gave {resp.status.state}")
    check(resp.manifest is None and resp.result is None, "a PENDING response carries manifest/result")
    wh = w.warehouses.get(W.WH_COLD)
    check(wh.state in (State.STARTING, State.RUNNING), f"warehouse did not auto-start: {wh.state}")
    final, seen = c.wait(w, resp, timeout=30)
    check(final.status.state == StatementState.SUCCEEDED, f"final state {final.status.state}")
    check(seen.count(StatementState.PENDING) >= 2, f"expected several PENDING polls during a 3 s start, saw {seen}")
    rows = c.all_rows(w, final)
    check(canon(rows) == canon([[r[0]] for r in c.model.content(P)]), f"{len(rows)} rows differ from the model")
    check(w.warehouses.get(W.WH_COLD).state == State.RUNNING, "warehouse not RUNNING after the statement ran")


@case("pat_cancel_pending_statement", budget=8)
def _(c: Ctx):
    w = c.pat()
    resp = w.statement_execution.execute_statement(statement=f"SELECT * FROM {P}", warehouse_id=W.WH_CANCEL,
                                                   wait_timeout="0s")
    check(resp.status.state in (StatementState.PENDING, StatementState.RUNNING), f"state {resp.status.state}")
    w.statement_execution.cancel_execution(resp.statement_id)
    deadline = time.monotonic() + 10
    st = None
    while time.monotonic() < deadline:
        st = w.statement_execution.get_statement(resp.statement_id).status.state
        if st not in (StatementState.PENDING, StatementState.RUNNING):
            break
        time.sleep(0.2)
    check(st == StatementState.CANCELED, f"state after cancel {st}, expected CANCELED")
    e = expect_raises(DatabricksError, lambda: w.statement_execution.get_statement_result_chunk_n(resp.statement_id, 0),
                      "chunk of a canceled statement")
    check(isinstance(e, (BadRequest, NotFound)), f"chunk of a canceled statement raised {type(e).__name__}")


@case("pat_on_wait_timeout_cancel", budget=12)
def _(c: Ctx):
    w = c.pat(http_timeout=15)  # the POST itself blocks for the 5 s wait_timeout
    t0 = time.monotonic()
    resp = w.statement_execution.execute_statement(statement=ONE, warehouse_id=W.WH_CANCEL, wait_timeout="5s",
                                                   on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CANCEL)
    took = time.monotonic() - t0
    check(resp.status.state == StatementState.CANCELED, f"state {resp.status.state}, expected CANCELED")
    check(4.0 <= took <= 15.0, f"POST returned after {took:.1f}s, expected about the 5 s wait_timeout")


@case("wait_timeout_zero_ignores_cancel", budget=6)
def _(c: Ctx):
    w = c.pat()
    resp = w.statement_execution.execute_statement(statement=ONE, warehouse_id=W.WH_CANCEL, wait_timeout="0s",
                                                   on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CANCEL)
    check(resp.status.state == StatementState.PENDING, f"state {resp.status.state}, expected PENDING "
                                                       "(on_wait_timeout is ignored when wait_timeout is 0s)")
    time.sleep(0.5)
    st = w.statement_execution.get_statement(resp.statement_id).status.state
    check(st == StatementState.PENDING, f"state after 0.5 s {st}, expected still PENDING")
    w.statement_execution.cancel_execution(resp.statement_id)


@case("chunk_endpoint_row_offset_parameter")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, f"SELECT * FROM {P}")
    h = {"Authorization": f"Bearer {W.PAT}"}
    base = f"{c.host}/api/2.0/sql/statements/{resp.statement_id}/result/chunks/1"
    plain = requests.get(base, headers=h, timeout=5)
    with_offset = requests.get(base + f"?row_offset={ROWS_PER_CHUNK}", headers=h, timeout=5)
    check(plain.status_code == 200 and with_offset.status_code == 200,
          f"HTTP {plain.status_code} / {with_offset.status_code} with ?row_offset={ROWS_PER_CHUNK}")
    check(plain.json().get("data_array") == with_offset.json().get("data_array"), "row_offset changed the chunk's rows")


# ----------------------------------------------------------------------------- EXTERNAL_LINKS

def external(c: Ctx, w, fmt=Format.JSON_ARRAY):
    resp = c.sql(w, f"SELECT * FROM {P}", disposition=Disposition.EXTERNAL_LINKS, format=fmt)
    check(resp.status.state == StatementState.SUCCEEDED, f"state {resp.status.state}: {resp.status.error}")
    check(resp.result and resp.result.external_links, "no result.external_links")
    check(not resp.result.data_array, "EXTERNAL_LINKS result carries data_array")
    links = list(resp.result.external_links)
    while links[-1].next_chunk_index is not None:
        chunk = w.statement_execution.get_statement_result_chunk_n(resp.statement_id, links[-1].next_chunk_index)
        check(chunk.external_links, f"chunk {links[-1].next_chunk_index} has no external_links")
        links += chunk.external_links
    return resp, links


@case("pat_external_links_download_without_auth")
def _(c: Ctx):
    w = c.pat()
    resp, links = external(c, w)
    check(len(links) > 1, f"expected several links at {ROWS_PER_EXTERNAL_CHUNK} rows/chunk, got {len(links)}")
    check(len(links) == resp.manifest.total_chunk_count, f"{len(links)} links, total_chunk_count {resp.manifest.total_chunk_count}")
    rows = []
    for i, l in enumerate(links):
        check(l.chunk_index == i and l.row_offset == len(rows), f"link {i}: chunk_index {l.chunk_index} row_offset {l.row_offset}")
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", l.expiration or ""), f"expiration {l.expiration!r}")
        check(l.external_link.startswith("http"), f"external_link {l.external_link!r}")
        r = requests.get(l.external_link, headers=dict(l.http_headers or {}), timeout=10)
        check(r.status_code == 200, f"download {i}: HTTP {r.status_code} {r.text[:120]!r}")
        data = json.loads(r.content)
        check(isinstance(data, list) and len(data) == l.row_count, f"link {i}: {len(data)} rows, row_count {l.row_count}")
        rows += data
    check(canon(rows) == canon(c.model.content(P)), f"{len(rows)} downloaded rows differ from the model")


@case("pat_external_link_with_authorization_rejected")
def _(c: Ctx):
    w = c.pat()
    _, links = external(c, w)
    r = requests.get(links[0].external_link, headers={"Authorization": f"Bearer {W.PAT}"}, timeout=10)
    check(r.status_code == 400, f"download with Authorization: HTTP {r.status_code}, expected 400")
    check("InvalidArgument" in r.text, f"body lacks InvalidArgument: {r.text[:160]!r}")


@case("pat_external_link_expired_then_refreshed")
def _(c: Ctx):
    w = c.pat()
    resp, links = external(c, w)
    st, body = c.sim.admin("POST", "faults", {"kind": "expire_links", "count": 1, "match": {"path_prefix": "/"}})
    check(st == 200, f"admin fault injection: HTTP {st} {body}")
    r = requests.get(links[0].external_link, timeout=10)
    check(r.status_code == 403 and "expired" in r.text, f"expired link: HTTP {r.status_code} {r.text[:120]!r}")
    fresh = w.statement_execution.get_statement_result_chunk_n(resp.statement_id, 0).external_links[0]
    r = requests.get(fresh.external_link, timeout=10)
    check(r.status_code == 200 and len(json.loads(r.content)) == fresh.row_count,
          f"refreshed link: HTTP {r.status_code}")


@case("pat_external_links_csv")
def _(c: Ctx):
    w = c.pat()
    resp, links = external(c, w, Format.CSV)
    check(resp.manifest.format == Format.CSV, f"manifest.format {resp.manifest.format}")
    import csv
    import io
    rows = []
    for i, l in enumerate(links):
        r = requests.get(l.external_link, timeout=10)
        check(r.status_code == 200, f"CSV download {i}: HTTP {r.status_code}")
        recs = list(csv.reader(io.StringIO(r.content.decode("utf-8"))))
        if i == 0:
            check(recs[0] == c.model.columns(P), f"CSV header {recs[0]}")
            recs = recs[1:]
        rows += recs
    check(len(rows) == len(c.model.content(P)), f"{len(rows)} CSV rows, expected {len(c.model.content(P))}")


# ----------------------------------------------------------------------------- typed exceptions

@case("error_400_invalid_wait_timeout")
def _(c: Ctx):
    w = c.pat()
    e = expect_raises(BadRequest, lambda: w.statement_execution.execute_statement(
        statement=ONE, warehouse_id=W.WH_RUNNING, wait_timeout="60s"), "wait_timeout=60s")
    check(isinstance(e, InvalidParameterValue), f"{type(e).__name__}, expected InvalidParameterValue (error_code INVALID_PARAMETER_VALUE)")


@case("error_400_inline_arrow_combination")
def _(c: Ctx):
    w = c.pat()
    expect_raises(BadRequest, lambda: w.statement_execution.execute_statement(
        statement=ONE, warehouse_id=W.WH_RUNNING, disposition=Disposition.INLINE, format=Format.ARROW_STREAM),
        "INLINE + ARROW_STREAM")


@case("error_403_invalid_token")
def _(c: Ctx):
    w = c.pat(token="dapi-not-a-real-token")
    e = expect_raises(PermissionDenied, lambda: w.statement_execution.execute_statement(
        statement=ONE, warehouse_id=W.WH_RUNNING), "bad PAT")
    check("Invalid access token" in str(e), f"message {str(e)!r}")


@case("error_403_no_warehouse_permission")
def _(c: Ctx):
    w = c.pat()
    expect_raises(PermissionDenied, lambda: w.statement_execution.execute_statement(
        statement=ONE, warehouse_id=W.WH_FORBIDDEN), "warehouse without CAN_USE")


@case("error_404_unknown_statement")
def _(c: Ctx):
    w = c.pat()
    expect_raises(NotFound, lambda: w.statement_execution.get_statement("01f00000-0000-1000-8000-000000000000"),
                  "unknown statement id")


@case("error_404_unknown_warehouse")
def _(c: Ctx):
    w = c.pat()
    expect_raises(NotFound, lambda: w.warehouses.get("ffffffffffffffff"), "unknown warehouse id")


def retried_out(exc_type, fn, what):
    """The SDK retries 429/503 until retry_timeout_seconds, then raises TimeoutError whose
    __cause__ is the typed error of the last attempt (databricks/sdk/retries.py)."""
    e = expect_raises(TimeoutError, fn, what)
    cause = e.__cause__
    check(isinstance(cause, exc_type), f"{what}: TimeoutError caused by {type(cause).__name__}, expected {exc_type.__name__}")
    check(getattr(cause, "retry_after_secs", None) == 1, f"{what}: retry_after_secs {getattr(cause, 'retry_after_secs', None)}, "
                                                         "expected 1 from the Retry-After header")


def fault(c: Ctx, status, count, retry_after=None, path="/api/2.0/sql/statements", method="POST"):
    body = {"kind": "status", "status": status, "count": count, "match": {"method": method, "path_prefix": path}}
    if retry_after is not None:
        body["retry_after"] = retry_after
    st, resp = c.sim.admin("POST", "faults", body)
    check(st == 200, f"admin fault injection: HTTP {st} {resp}")


@case("error_429_retried_then_succeeds", budget=6)
def _(c: Ctx):
    w = c.pat()
    fault(c, 429, 1, retry_after=1)
    t0 = time.monotonic()
    resp = c.sql(w, ONE)
    took = time.monotonic() - t0
    check(c.all_rows(w, resp) == [["C0001"]], "retried statement result")
    check(took >= 0.9, f"the SDK did not wait for Retry-After: 1 (took {took:.2f}s); was the 429 served?")
    st, faults = c.sim.admin("GET", "faults")
    check(st == 200 and faults == [], f"the injected fault was not consumed: {faults}")


@case("error_429_typed_exception", budget=10)
def _(c: Ctx):
    w = c.pat(retry=3)
    fault(c, 429, 50, retry_after=1)
    try:
        retried_out(TooManyRequests, lambda: w.statement_execution.execute_statement(
            statement=ONE, warehouse_id=W.WH_RUNNING), "persistent 429")
    finally:
        c.sim.admin("DELETE", "faults")


@case("error_503_retried_then_succeeds", budget=10)
def _(c: Ctx):
    w = c.pat()
    fault(c, 503, 2)
    resp = c.sql(w, ONE)
    check(c.all_rows(w, resp) == [["C0001"]], "retried statement result")
    st, faults = c.sim.admin("GET", "faults")
    check(st == 200 and faults == [], f"the injected fault was not consumed: {faults}")


@case("error_503_typed_exception", budget=10)
def _(c: Ctx):
    w = c.pat(retry=3)
    fault(c, 503, 50, retry_after=1)
    try:
        retried_out(TemporarilyUnavailable, lambda: w.statement_execution.execute_statement(
            statement=ONE, warehouse_id=W.WH_RUNNING), "persistent 503")
    finally:
        c.sim.admin("DELETE", "faults")


# ----------------------------------------------------------------------------- FAILED with DELTA_* classes

def failed_case(name, sql, classes):
    @case(name)
    def _(c: Ctx):
        cls, _ = c.failed_class(c.pat(), sql)
        check(cls in classes, f"error class {cls}, expected one of {classes}")


failed_case("failed_vacuumed_range", "SELECT * FROM table_changes('main.conf.vacuumed', 1, 4)",
            ["DELTA_VERSION_NOT_FOUND", "DELTA_CHANGE_DATA_FILE_NOT_FOUND", "FAILED_READ_FILE.FILE_NOT_EXIST"])
failed_case("failed_cdf_not_enabled_at_start", "SELECT * FROM table_changes('main.conf.legacy', 0, 3)",
            ["DELTA_MISSING_CHANGE_DATA"])
failed_case("failed_cdf_disabled_inside_range", "SELECT * FROM table_changes('main.conf.legacy', 2, 7)",
            ["DELTA_MISSING_CHANGE_DATA"])
failed_case("failed_start_after_latest", "SELECT * FROM table_changes('main.conf.participants', 9, 12)",
            ["DELTA_CDC_START_VERSION_AFTER_LATEST"])
failed_case("failed_end_before_start", "SELECT * FROM table_changes('main.conf.participants', 3, 1)",
            ["DELTA_INVALID_CDC_RANGE"])
failed_case("failed_table_changes_on_view", "SELECT * FROM table_changes('main.conf.opted_in', 0, 1)",
            ["DELTA_TABLE_ONLY_OPERATION"])
failed_case("failed_table_not_found", "SELECT * FROM main.conf.nope", ["TABLE_OR_VIEW_NOT_FOUND"])
failed_case("failed_parse_syntax", "SELEC * FROM main.conf.participants", ["PARSE_SYNTAX_ERROR"])


@case("failed_no_select_privilege")
def _(c: Ctx):
    cls, _ = c.failed_class(c.pat(token=W.PAT_LIMITED), f"SELECT * FROM {P}")
    check(cls in ("INSUFFICIENT_PERMISSIONS", "TABLE_OR_VIEW_NOT_FOUND"), f"class {cls}")


@case("failed_carries_sql_state")
def _(c: Ctx):
    _, resp = c.failed_class(c.pat(), "SELECT * FROM table_changes('main.conf.participants', 3, 1)")
    raw = resp.as_dict()
    check(raw["status"].get("sql_state") == "22003", f"status.sql_state {raw['status'].get('sql_state')!r}, expected 22003")


@case("table_changes_after_reenable_succeeds")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, "SELECT * FROM table_changes('main.conf.legacy', 6, 7)")
    got = c.all_rows(w, resp)
    check(canon(got) == canon(c.model.changes("main.conf.legacy", 6, 7)), f"got {got}")


@case("table_changes_named_parameters")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, f"SELECT * FROM table_changes('{P}', :s, :e)",
                 parameters=[StatementParameterListItem(name="s", value="2", type="BIGINT"),
                             StatementParameterListItem(name="e", value="3", type="BIGINT")])
    got = c.all_rows(w, resp)
    check(canon(got) == canon(c.model.changes(P, 2, 3)), f"{len(got)} rows differ from the model's versions 2..3")


@case("table_changes_timestamp_bounds")
def _(c: Ctx):
    w = c.pat()
    commits = c.model.tables[P]["commits"]
    # Start between v1 and v2 resolves to v2; end equal to v3's timestamp includes v3.
    resp = c.sql(w, f"SELECT * FROM table_changes('{P}', '2026-03-02 00:00:00', '{commits[3]['timestamp']}')")
    got = c.all_rows(w, resp)
    check(canon(got) == canon(c.model.changes(P, 2, 3)), f"{len(got)} rows differ from the model's versions 2..3")


@case("show_tblproperties")
def _(c: Ctx):
    w = c.pat()
    rows = c.all_rows(w, c.sql(w, "SHOW TBLPROPERTIES main.conf.legacy ('delta.enableChangeDataFeed')"))
    check(rows == [["delta.enableChangeDataFeed", "true"]], f"got {rows}")
    rows = c.all_rows(w, c.sql(w, "SHOW TBLPROPERTIES main.conf.legacy ('delta.nope')"))
    check(len(rows) == 1 and rows[0][0] == "delta.nope" and "does not have property" in (rows[0][1] or ""),
          f"missing key: got {rows}")


@case("describe_history_columns")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, "DESCRIBE HISTORY main.conf.legacy")
    rows = c.all_rows(w, resp)
    cols = [(x.name, x.type_text) for x in resp.manifest.schema.columns]
    want = [("version", "BIGINT"), ("timestamp", "TIMESTAMP"), ("userId", "STRING"), ("userName", "STRING"),
            ("operation", "STRING"), ("operationParameters", "MAP<STRING, STRING>")]
    check(cols[:6] == want, f"first columns {cols[:6]}")
    names = [x[0] for x in cols]
    for n in ("readVersion", "isolationLevel", "isBlindAppend", "operationMetrics", "userMetadata", "engineInfo"):
        check(n in names, f"column {n} missing from {names}")
    commits = c.model.tables["main.conf.legacy"]["commits"]
    got = [(r[0], r[1], r[4]) for r in rows]
    exp = [(str(x["version"]), x["timestamp"], x["operation"]) for x in reversed(commits)]
    check(got == exp, f"history {got[:3]}..., expected {exp[:3]}...")


@case("close_statement_then_closed")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, f"SELECT * FROM {P}")
    r = requests.delete(f"{c.host}/api/2.0/sql/statements/{resp.statement_id}",
                        headers={"Authorization": f"Bearer {W.PAT}"}, timeout=5)
    check(r.status_code == 200 and r.json() == {}, f"DELETE: HTTP {r.status_code} {r.text[:80]}")
    st = w.statement_execution.get_statement(resp.statement_id).status.state
    check(st == StatementState.CLOSED, f"state after DELETE {st}, expected CLOSED")
    expect_raises(DatabricksError, lambda: w.statement_execution.get_statement_result_chunk_n(resp.statement_id, 1),
                  "chunk of a closed statement")


@case("error_404_execute_unknown_warehouse")
def _(c: Ctx):
    w = c.pat()
    expect_raises(NotFound, lambda: w.statement_execution.execute_statement(statement=ONE, warehouse_id="ffffffffffffffff"),
                  "execute on an unknown warehouse")


# ----------------------------------------------------------------------------- warehouses

@case("warehouses_list_and_get")
def _(c: Ctx):
    w = c.pat()
    ids = sorted(x.id for x in w.warehouses.list())
    want = sorted([W.WH_RUNNING, W.WH_COLD, W.WH_CANCEL, W.WH_MANAGED])
    check(ids == want, f"list gave {ids}, expected the principal's warehouses {want}")
    wh = w.warehouses.get(W.WH_RUNNING)
    check(wh.id == W.WH_RUNNING and wh.name == "Conformance Warehouse" and wh.state == State.RUNNING,
          f"get gave id={wh.id} name={wh.name!r} state={wh.state}")
    check(wh.odbc_params and wh.odbc_params.path == f"/sql/1.0/warehouses/{W.WH_RUNNING}",
          f"odbc_params.path {wh.odbc_params and wh.odbc_params.path}")


@case("warehouses_stop_then_start", budget=15)
def _(c: Ctx):
    w = c.pat()
    stopped = w.warehouses.stop(W.WH_MANAGED).result(timeout=__import__("datetime").timedelta(seconds=30))
    check(stopped.state == State.STOPPED, f"after stop: {stopped.state}")
    t0 = time.monotonic()
    w.warehouses.start(W.WH_MANAGED)
    first = w.warehouses.get(W.WH_MANAGED).state
    check(first == State.STARTING, f"right after start: {first}, expected STARTING")
    running = w.warehouses.start(W.WH_MANAGED).result(timeout=__import__("datetime").timedelta(seconds=30))
    check(running.state == State.RUNNING, f"after start: {running.state}")
    check(time.monotonic() - t0 >= 1.5, "warehouse reached RUNNING before its start_seconds (2 s)")


@case("warehouses_stop_needs_can_manage")
def _(c: Ctx):
    w = c.pat()
    expect_raises(PermissionDenied, lambda: w.warehouses.stop(W.WH_RUNNING), "stop with only CAN_USE")


# ----------------------------------------------------------------------------- information_schema

@case("information_schema_tables_filtered")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, "SELECT table_catalog, table_schema, table_name, table_type FROM system.information_schema.tables "
                    "WHERE table_schema <> 'information_schema' ORDER BY table_schema, table_name")
    got = c.all_rows(w, resp)
    want = [["main", "conf", "legacy", "MANAGED"], ["main", "conf", "opted_in", "VIEW"],
            ["main", "conf", "participants", "MANAGED"], ["main", "conf", "vacuumed", "MANAGED"]]
    check(got == want, f"got {got}, expected {want} (main.hidden.secrets must be invisible)")


@case("information_schema_columns")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, "SELECT column_name, ordinal_position, full_data_type, is_nullable FROM main.information_schema.columns "
                    "WHERE table_schema = :s AND table_name = :t ORDER BY ordinal_position",
                 parameters=[StatementParameterListItem(name="s", value="conf"),
                             StatementParameterListItem(name="t", value="participants")])
    got = c.all_rows(w, resp)
    cols = c.model.tables[P]["columns"]
    check([r[0] for r in got] == [x["name"] for x in cols], f"column names {[r[0] for r in got]}")
    check([r[1] for r in got] == [str(i + 1) for i in range(len(cols))], f"ordinal_position {[r[1] for r in got]} (1-based)")
    check([r[2].lower() for r in got] == [x["type"].lower() for x in cols], f"full_data_type {[r[2] for r in got]}")
    check(got[0][3] == "NO" and got[1][3] == "YES", f"is_nullable {[r[3] for r in got]}")


@case("information_schema_catalogs_and_schemata")
def _(c: Ctx):
    w = c.pat()
    cats = c.all_rows(w, c.sql(w, "SELECT catalog_name FROM system.information_schema.catalogs ORDER BY catalog_name"))
    check(["main"] in cats and ["hidden"] not in cats, f"catalogs {cats}")
    sch = c.all_rows(w, c.sql(w, "SELECT schema_name FROM main.information_schema.schemata ORDER BY schema_name"))
    check(["conf"] in sch and ["hidden"] not in sch, f"schemata {sch} (main.hidden is not granted)")


@case("show_tables")
def _(c: Ctx):
    w = c.pat()
    resp = c.sql(w, "SHOW TABLES IN main.conf")
    rows = c.all_rows(w, resp)
    names = [col.name for col in resp.manifest.schema.columns]
    check(names[:3] == ["database", "tableName", "isTemporary"], f"SHOW TABLES columns {names}")
    check(sorted(r[1] for r in rows) == ["legacy", "opted_in", "participants", "vacuumed"], f"tables {rows}")


# ----------------------------------------------------------------------------- OAuth M2M

@case("m2m_execute_statement")
def _(c: Ctx):
    w = c.m2m()
    check(w.config.auth_type == "oauth-m2m", f"auth_type resolved to {w.config.auth_type}")
    hdr = w.config.authenticate().get("Authorization", "")
    check(hdr.startswith("Bearer ") and hdr != f"Bearer {W.PAT}", f"Authorization {hdr[:20]!r}")
    rows = c.all_rows(w, c.sql(w, f"SELECT participant_id FROM {P} WHERE participant_id = :p",
                               parameters=[StatementParameterListItem(name="p", value="C0001")]))
    check(rows == [["C0001"]], f"got {rows}")
    rows = c.all_rows(w, c.sql(w, ONE))
    check(rows == [["C0001"]], f"second statement: {rows}")
    check(w.config.authenticate().get("Authorization") == hdr, "the access token was not reused for the second call")


@case("m2m_token_endpoint_contract")
def _(c: Ctx):
    disc = requests.get(c.host + "/oidc/.well-known/oauth-authorization-server", timeout=10)
    check(disc.status_code == 200, f"discovery HTTP {disc.status_code}")
    tep = disc.json().get("token_endpoint")
    check(tep == c.host + "/oidc/v1/token", f"token_endpoint {tep!r}")
    basic = base64.b64encode(f"{W.CLIENT_ID}:{W.CLIENT_SECRET}".encode()).decode()
    r = requests.post(tep, data={"grant_type": "client_credentials", "scope": "all-apis"},
                      headers={"Authorization": f"Basic {basic}"}, timeout=10)
    check(r.status_code == 200, f"token HTTP {r.status_code} {r.text[:120]}")
    body = r.json()
    check(body.get("token_type") == "Bearer" and isinstance(body.get("expires_in"), int) and body.get("access_token"),
          f"token body {body}")
    bad = requests.post(tep, data={"grant_type": "client_credentials", "scope": "all-apis"},
                        headers={"Authorization": "Basic " + base64.b64encode(b"x:y").decode()}, timeout=10)
    check(bad.status_code in (400, 401) and bad.json().get("error") == "invalid_client",
          f"bad client: HTTP {bad.status_code} {bad.text[:120]}")


@case("m2m_bad_secret_fails")
def _(c: Ctx):
    def go():
        w = c.m2m(client_secret="wrong-secret")
        w.statement_execution.execute_statement(statement=ONE, warehouse_id=W.WH_RUNNING)
    try:
        go()
    except Exception as e:  # noqa: BLE001
        check("invalid_client" in str(e) or "Client authentication failed" in str(e) or isinstance(e, ValueError),
              f"{type(e).__name__}: {str(e)[:160]}")
        return
    raise Failure("a wrong client secret was accepted")


# ----------------------------------------------------------------------------- cases with their own simulator

@case("inline_byte_limit_fails_statement", budget=8)
def _(c: Ctx):
    extra = Sim(c.sim_binary, HERE / "workspace.json", "--inline-byte-limit", "2000")
    try:
        w = WorkspaceClient(config=Config(host=extra.base, token=W.PAT, auth_type="pat", retry_timeout_seconds=10,
                                          http_timeout_seconds=HTTP_TIMEOUT))
        resp = w.statement_execution.execute_statement(statement=f"SELECT * FROM {P}", warehouse_id=W.WH_RUNNING,
                                                       wait_timeout="30s")
        check(resp.status.state == StatementState.FAILED, f"state {resp.status.state}, expected FAILED over the INLINE cap")
        msg = resp.status.error.message if resp.status.error else ""
        check("Inline byte limit exceeded" in msg and "disposition=EXTERNAL_LINKS" in msg, f"message {msg[:160]!r}")
        ok = w.statement_execution.execute_statement(statement=f"SELECT * FROM {P}", warehouse_id=W.WH_RUNNING,
                                                     wait_timeout="30s", disposition=Disposition.EXTERNAL_LINKS)
        check(ok.status.state == StatementState.SUCCEEDED, f"EXTERNAL_LINKS over the INLINE cap: {ok.status.state}")
    finally:
        extra.stop()


@case("m2m_token_refreshed_before_expiry", budget=12)
def _(c: Ctx):
    extra = Sim(c.sim_binary, HERE / "workspace.json", "--oauth-token-ttl", "4")
    try:
        w = WorkspaceClient(config=Config(host=extra.base, client_id=W.CLIENT_ID, client_secret=W.CLIENT_SECRET,
                                          auth_type="oauth-m2m", retry_timeout_seconds=10, http_timeout_seconds=HTTP_TIMEOUT))
        first = w.config.authenticate()["Authorization"]
        r = w.statement_execution.execute_statement(statement=ONE, warehouse_id=W.WH_RUNNING, wait_timeout="30s")
        check(r.status.state == StatementState.SUCCEEDED, f"first statement {r.status.state}")
        time.sleep(4.5)
        stale = requests.post(extra.base + "/api/2.0/sql/statements", headers={"Authorization": first},
                              json={"statement": ONE, "warehouse_id": W.WH_RUNNING}, timeout=5)
        check(stale.status_code == 403 and stale.json().get("error_code") == 403,
              f"expired OAuth token: HTTP {stale.status_code} {stale.text[:100]}, expected 403 with numeric error_code")
        r = w.statement_execution.execute_statement(statement=ONE, warehouse_id=W.WH_RUNNING, wait_timeout="30s")
        check(r.status.state == StatementState.SUCCEEDED, f"after expiry {r.status.state}")
        check(w.config.authenticate()["Authorization"] != first, "the SDK kept using the expired token")
    finally:
        extra.stop()


# ----------------------------------------------------------------------------- runs last: changes the table

@case("admin_commit_then_incremental_read")
def _(c: Ctx):
    """The replicator's loop: a new commit arrives, DESCRIBE HISTORY shows it, table_changes reads it."""
    w = c.pat()
    commits = c.model.tables[P]["commits"]
    last = commits[-1]["version"]
    before = next(r for r in c.model.content(P) if r[0] == "C0002")
    after = before[:4] + [str(int(before[4]) + 1), "2026-03-05T08:00:00.000Z"]
    commit = {"version": last + 1, "timestamp": "2026-03-05T08:00:00.000Z", "operation": "MERGE",
              "update": [{"before": before, "after": after}],
              "insert": [["C0100", "c0100@example.com", "Zoë", "JP", "1", "2026-03-05T08:00:00.000Z"]]}
    st, body = c.sim.admin("POST", f"tables/{P}/commits", commit)
    check(st == 200, f"admin append: HTTP {st} {body}")
    commits.append(commit)  # the model follows
    rows = c.all_rows(w, c.sql(w, f"DESCRIBE HISTORY {P} LIMIT 1"))
    check(rows and rows[0][0] == str(last + 1), f"latest version {rows and rows[0][0]}, expected {last + 1}")
    got = c.all_rows(w, c.sql(w, f"SELECT * FROM table_changes('{P}', {last + 1}, {last + 1})"))
    check(canon(got) == canon(c.model.changes(P, last + 1, last + 1)), f"new version's changes: {got}")
    got = c.all_rows(w, c.sql(w, f"SELECT * FROM {P}"))
    check(canon(got) == canon(c.model.content(P)), "snapshot after the new commit differs from the model")
    st, body = c.sim.admin("POST", f"tables/{P}/commits", dict(commit, version=last + 5))
    check(st == 409, f"a commit with a gap in versions: HTTP {st}, expected 409")


@case("results_and_links_expire_on_the_clock")
def _(c: Ctx):
    """Links last 15 min, results 1 h after success, statements 12 h after a terminal state (spec §3, §10).
    Uses the admin clock, so it runs last."""
    w = c.pat()
    resp = c.sql(w, f"SELECT * FROM {P}")
    ext, links = external(c, w)
    st, body = c.sim.admin("POST", "clock/advance", {"seconds": 901})
    check(st == 200, f"admin clock advance: HTTP {st} {body}")
    r = requests.get(links[0].external_link, timeout=10)
    check(r.status_code == 403 and "expired" in r.text, f"link after 15 min: HTTP {r.status_code} {r.text[:100]!r}")
    fresh = w.statement_execution.get_statement_result_chunk_n(ext.statement_id, 0).external_links[0]
    check(requests.get(fresh.external_link, timeout=10).status_code == 200, "a re-fetched link does not work")
    c.sim.admin("POST", "clock/advance", {"seconds": 2700})
    st1 = w.statement_execution.get_statement(resp.statement_id).status.state
    check(st1 == StatementState.CLOSED, f"state 1 h after success {st1}, expected CLOSED")
    expect_raises(DatabricksError, lambda: w.statement_execution.get_statement_result_chunk_n(resp.statement_id, 1),
                  "chunk of an expired result")
    c.sim.admin("POST", "clock/advance", {"seconds": 12 * 3600})
    expect_raises(NotFound, lambda: w.statement_execution.get_statement(resp.statement_id),
                  "statement 13 h after it finished")


# ----------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sim", default=".build/debug/dbsql-sim")
    ap.add_argument("--only", help="run only cases whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true", help="print tracebacks and SDK debug logs")
    a = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.ERROR)
    ws = HERE / "workspace.json"
    model = Model(json.loads(ws.read_text()))
    cases = [(n, f, b) for n, f, b in CASES if not a.only or a.only in n]
    passed = failed = 0
    try:
        sim = Sim(a.sim, ws, "--rows-per-chunk", str(ROWS_PER_CHUNK),
                  "--rows-per-external-chunk", str(ROWS_PER_EXTERNAL_CHUNK))
    except Exception as e:  # noqa: BLE001
        for n, _, _ in cases:
            print(f"FAIL {n}: simulator did not start: {e}")
        print(f"0 passed, {len(cases)} failed")
        return 1
    try:
        ctx = Ctx(sim, model, a.sim)
        for name, fn, budget in cases:
            t0 = time.monotonic()
            try:
                fn(ctx)
                took = time.monotonic() - t0
                check(took <= budget, f"took {took:.1f}s, over its {budget:.0f}s budget: responses stalled "
                                      f"(the SDK retries after {HTTP_TIMEOUT}s read timeouts)")
                print(f"PASS {name} ({took:.1f}s)", flush=True)
                passed += 1
            except Failure as e:
                print(f"FAIL {name}: {e}", flush=True)
                failed += 1
            except Exception as e:  # noqa: BLE001
                print(f"FAIL {name}: {type(e).__name__}: {str(e)[:300]}", flush=True)
                if a.verbose:
                    traceback.print_exc()
                failed += 1
            finally:
                sim.admin("DELETE", "faults")
    finally:
        sim.stop()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

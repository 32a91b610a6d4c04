#!/usr/bin/env python3
"""Shape test: dbsql-sim's responses against real recorded Databricks responses.

For each recorded exchange in Tests/CDFSyncCoreTests/Fixtures/recorded-sea (override with --recorded)
of a kind the simulator produces, send the simulator the same kind of request and compare the
response: HTTP status, media type, the headers the recording shows for that kind, and the body's
key sets, value types and nesting, recursively (not values).

Body comparison rules (`conforms`):
  - objects: the key sets must be equal, except keys listed as allowed differences for that
    case (each with its reason, e.g. Arrow-only manifest fields when the recording used
    ARROW_STREAM and the simulator answers JSON_ARRAY);
  - arrays: every element of the simulator's array must conform to at least one recorded
    element (an empty simulator array conforms; a non-empty one against an empty recording
    does not);
  - scalars: same JSON type (string, number, boolean, null).
Where the simulator gets exactly the recorded SQL (SELECT NULL, SELECT CAST(NULL AS DOUBLE)), the
manifest and result values must match the recording as well.

Standard library only. Prints `PASS name` / `FAIL name: reason`, then `N passed, N failed`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_workspace as W  # noqa: E402
from simproc import Sim  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_RECORDED = HERE.parent / "CDFSyncCoreTests" / "Fixtures" / "recorded-sea"

# Manifest fields that exist only for ARROW_STREAM results (recorded-sea README, note 5).
ARROW_ONLY = {"manifest.total_byte_count", "manifest.result_compression"}


def jtype(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def conforms(actual, recorded, path: str, allowed: set[str]) -> list[str]:
    """Differences between the simulator's value and the recorded one (shape only)."""
    ta, tr = jtype(actual), jtype(recorded)
    if ta != tr:
        return [f"{path or '<body>'}: {ta}, recorded {tr}"]
    if ta == "object":
        out = []
        for k in sorted(set(actual) | set(recorded)):
            p = f"{path}.{k}" if path else k
            if k not in actual:
                if p not in allowed:
                    out.append(f"{p}: missing (recorded has it)")
            elif k not in recorded:
                if p not in allowed:
                    out.append(f"{p}: extra key (not in the recording)")
            else:
                out += conforms(actual[k], recorded[k], p, allowed)
        return out
    if ta == "array":
        if not actual:
            return []
        if not recorded:
            return [f"{path}: {len(actual)} element(s), recorded array is empty"]
        out = []
        for i, el in enumerate(actual):
            best = None
            for rec in recorded:
                d = conforms(el, rec, f"{path}[]", allowed)
                if not d:
                    best = []
                    break
                if best is None or len(d) < len(best):
                    best = d
            if best:
                out += [f"(element {i}) {x}" for x in best]
                break
        return out
    return []


def http(base, method, path, token=None, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    h = {"Accept": "application/json"}
    if body is not None:
        h["Content-Type"] = "application/json"
    if token:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def media(ct: str | None) -> str:
    return (ct or "").split(";")[0].strip().lower()


class ShapeCase:
    def __init__(self, name, fixture, produce, allowed=(), headers=(), same_values=()):
        self.name, self.fixture, self.produce = name, fixture, produce
        # Paths whose values must equal the recording too (the request is the recorded one).
        self.same_values = same_values
        self.allowed = set(allowed)
        self.headers = headers  # header names that must be present (the recording has them)


def execute(base, sql, wh=W.WH_RUNNING, **extra):
    body = {"statement": sql, "warehouse_id": wh, "disposition": "INLINE", "format": "JSON_ARRAY",
            "wait_timeout": "10s"}
    body.update(extra)
    return http(base, "POST", "/api/2.0/sql/statements/", W.PAT, body)


def poll_until(base, sid, states, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        st, h, raw = http(base, "GET", f"/api/2.0/sql/statements/{sid}", W.PAT)
        if st != 200 or json.loads(raw)["status"]["state"] in states or time.monotonic() > deadline:
            return st, h, raw
        time.sleep(0.2)


def running_statement(base):
    """A statement observed RUNNING (the simulator runs with --execution-delay)."""
    st, h, raw = execute(base, "SELECT * FROM main.conf.legacy", wait_timeout="0s")
    sid = json.loads(raw)["statement_id"]
    return sid, http(base, "GET", f"/api/2.0/sql/statements/{sid}", W.PAT)


def pending_after_wait(base):
    return execute(base, "SELECT * FROM main.conf.legacy", wh=W.WH_CANCEL, wait_timeout="5s", on_wait_timeout="CONTINUE")


def succeeded_after_polling(base):
    st, h, raw = execute(base, "SELECT * FROM main.conf.legacy WHERE id < 0", wait_timeout="0s")
    sid = json.loads(raw)["statement_id"]
    return poll_until(base, sid, {"SUCCEEDED", "FAILED", "CANCELED", "CLOSED"})


def chunk_external(base):
    st, h, raw = execute(base, "SELECT * FROM main.conf.participants", disposition="EXTERNAL_LINKS")
    if st != 200:
        return st, h, raw
    body = json.loads(raw)
    if body["status"]["state"] != "SUCCEEDED":
        _, _, raw = poll_until(base, body["statement_id"], {"SUCCEEDED", "FAILED"})
        body = json.loads(raw)
    last = body["manifest"]["total_chunk_count"] - 1
    return http(base, "GET", f"/api/2.0/sql/statements/{body['statement_id']}/result/chunks/{last}", W.PAT)


def close_statement(base):
    st, h, raw = execute(base, "SELECT * FROM main.conf.legacy")
    sid = json.loads(raw)["statement_id"]
    return http(base, "DELETE", f"/api/2.0/sql/statements/{sid}", W.PAT)


def session_create(base):
    return http(base, "POST", "/api/2.0/sql/sessions/", W.PAT,
                {"warehouse_id": W.WH_RUNNING, "schema": "conf", "catalog": "main"})


def session_delete(base):
    st, h, raw = session_create(base)
    sid = json.loads(raw).get("session_id", "missing") if st == 200 else "missing"
    return http(base, "DELETE", f"/api/2.0/sql/sessions/{sid}?warehouse_id={W.WH_RUNNING}", W.PAT)


CASES = [
    ShapeCase("execute_inline_json", "execute-inline-json-null-and-int.json",
              lambda b: execute(b, "SELECT id FROM main.conf.legacy ORDER BY id")),
    ShapeCase("execute_inline_json_select_null_void", "execute-inline-json-select-null-void.json",
              lambda b: execute(b, "SELECT NULL"), same_values=("manifest", "result")),
    ShapeCase("execute_inline_json_null_double", "execute-inline-json-null-double.json",
              lambda b: execute(b, "SELECT CAST(NULL AS DOUBLE)"), same_values=("manifest", "result")),
    ShapeCase("execute_inline_json_string_edge_cases", "execute-inline-json-string-edge-cases.json",
              lambda b: execute(b, "SELECT first_name FROM main.conf.participants ORDER BY participant_id")),
    ShapeCase("execute_inline_json_timestamp", "execute-inline-json-timestamp.json",
              lambda b: execute(b, "SELECT updated_at FROM main.conf.participants ORDER BY participant_id")),
    ShapeCase("execute_empty_result", "execute-empty-result-select.json",
              lambda b: execute(b, "SELECT id, name, name AS n2 FROM main.conf.legacy WHERE id < 0"),
              allowed=ARROW_ONLY),
    ShapeCase("failed_parse_syntax", "failed-parse-syntax.json",
              lambda b: execute(b, "INSER INTO main.conf.legacy (id, name) VALUES (1, 'x')"),
              # Documented (SDK StatementStatus.sql_state) but absent from the Nov 2024 recording.
              allowed={"status.sql_state"}),
    ShapeCase("pending_after_wait_timeout", "execute-pending-after-wait-timeout.json", pending_after_wait),
    ShapeCase("status_running", "status-running.json", lambda b: running_statement(b)[1]),
    ShapeCase("status_succeeded_after_polling", "status-succeeded-after-polling.json", succeeded_after_polling,
              # The recording is a DDL statement in ARROW_STREAM; a zero-row SELECT has columns.
              allowed=ARROW_ONLY | {"manifest.schema.columns"}),
    ShapeCase("chunk_external_links", "chunk-external-links-arrow-1.json", chunk_external),
    ShapeCase("close_statement", "close-statement-delete.json", close_statement),
    ShapeCase("session_create", "session-create.json", session_create),
    ShapeCase("session_delete", "session-delete.json", session_delete),
    ShapeCase("error_invalid_token_403", "error-invalid-token-403.json",
              lambda b: http(b, "POST", "/api/2.0/sql/statements/", "dapi-invalid",
                             {"statement": "SELECT 1", "warehouse_id": W.WH_RUNNING}),
              headers=("x-request-id", "x-databricks-reason-phrase")),
    ShapeCase("error_missing_credential_401", "error-missing-credential-401.json",
              lambda b: http(b, "POST", "/api/2.0/sql/statements/", None,
                             {"statement": "SELECT 1", "warehouse_id": W.WH_RUNNING}),
              headers=("x-request-id", "x-databricks-reason-phrase", "www-authenticate")),
    ShapeCase("oidc_discovery", "oidc-discovery.json",
              lambda b: http(b, "GET", "/oidc/.well-known/oauth-authorization-server")),
]


def self_test() -> str:
    """The comparison itself must tell shapes apart (otherwise every case would pass)."""
    rec = {"a": "x", "b": [{"c": 1}], "d": None}
    bad = [({"a": "x", "b": [{"c": 1}]}, "missing key"), ({"a": 1, "b": [{"c": 1}], "d": None}, "type change"),
           ({"a": "x", "b": [{"c": "1"}], "d": None}, "element type"), ({"a": "x", "b": [], "d": None, "e": 1}, "extra key")]
    for val, what in bad:
        if not conforms(val, rec, "", set()):
            return f"conforms() accepted a {what}"
    if conforms({"a": "y", "b": [{"c": 2}, {"c": 3}], "d": None}, rec, "", set()):
        return "conforms() rejected a value-only difference"
    return ""


def run_case(c: ShapeCase, base: str, recorded_dir: Path) -> str:
    rec = json.loads((recorded_dir / c.fixture).read_text())
    rresp = rec["response"]
    st, headers, raw = c.produce(base)
    problems = []
    if st != rresp["status"]:
        problems.append(f"HTTP {st}, recorded {rresp['status']}")
    rct = {k.lower(): v for k, v in rresp.get("headers", {}).items()}.get("content-type")
    if media(headers.get("content-type")) != media(rct):
        problems.append(f"content-type {headers.get('content-type')!r}, recorded {rct!r}")
    for h in c.headers:
        if h not in headers:
            problems.append(f"header {h} missing")
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        problems.append(f"body is not JSON: {raw[:80]!r}")
        body = None
    if body is not None or rresp.get("body") is not None:
        problems += conforms(body, rresp.get("body"), "", c.allowed)
        for key in c.same_values:
            if isinstance(body, dict) and body.get(key) != rresp["body"].get(key):
                problems.append(f"{key}: {json.dumps(body.get(key))[:160]} != recorded {json.dumps(rresp['body'].get(key))[:160]}")
    return "; ".join(problems[:6]) + (f" (+{len(problems) - 6} more)" if len(problems) > 6 else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sim", default=".build/debug/dbsql-sim")
    ap.add_argument("--recorded", type=Path, default=DEFAULT_RECORDED)
    ap.add_argument("--only")
    a = ap.parse_args()
    cases = [c for c in CASES if not a.only or a.only in c.name]
    missing = [c.fixture for c in cases if not (a.recorded / c.fixture).exists()]
    try:
        sim = Sim(a.sim, HERE / "workspace.json", "--rows-per-external-chunk", "12", "--execution-delay", "1.5")
    except Exception as e:  # noqa: BLE001
        for c in cases:
            print(f"FAIL {c.name}: simulator did not start: {e}")
        print(f"0 passed, {len(cases)} failed")
        return 1
    passed = failed = 0
    why = self_test()
    print(f"FAIL shape_checker_self_test: {why}" if why else "PASS shape_checker_self_test")
    passed, failed = (0, 1) if why else (1, 0)
    try:
        for c in cases:
            if c.fixture in missing:
                print(f"FAIL {c.name}: recorded fixture {a.recorded / c.fixture} not found")
                failed += 1
                continue
            try:
                why = run_case(c, sim.base, a.recorded)
            except Exception as e:  # noqa: BLE001
                why = f"{type(e).__name__}: {e}"
            if why:
                print(f"FAIL {c.name}: {why}", flush=True)
                failed += 1
            else:
                print(f"PASS {c.name}", flush=True)
                passed += 1
    finally:
        sim.stop()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

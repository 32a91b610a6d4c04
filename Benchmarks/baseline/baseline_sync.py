#!/usr/bin/env python3
"""The cdfsync job written the way a Python user would write it: the baseline cdfsync must beat.

Reads a Delta change data feed with the official databricks-sdk (Statement Execution API, JSON_ARRAY,
EXTERNAL_LINKS chunks downloaded with requests), builds each record with orjson, upserts it into LMDB (py-lmdb)
by key with a per-key version check, writes every insert/update as one NDJSON line into a zstd stream
(zstandard), and, once the output file is complete, records a checkpoint (the last table version applied) so
that the next run reads only newer versions.

Same arguments as `cdfsync sync`:

    DATABRICKS_TOKEN=dapi-bench-token Benchmarks/baseline/.venv/bin/python Benchmarks/baseline/baseline_sync.py \\
        --host http://127.0.0.1:PORT --warehouse-id b3c4d5e6f7a8b9c0 --table main.bench.participants \\
        --state-dir /tmp/base/state --output-dir /tmp/base/out

Prints one JSON object on stdout: rows, seconds, rows_per_second and the counts.

Deliberately plain: no multiprocessing, no pipelining of downloads, no hand-written parsing. That is the
point of a baseline (design.md §6: "the same job in Python ... the baseline users would write").
"""
import argparse
import json
import os
import sys
import time

T_START = time.monotonic()  # before the imports: `import databricks.sdk` alone takes ~1.7 s

import lmdb
import orjson
import requests
import zstandard
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.sql import Disposition, Format, StatementState

T_IMPORTED = time.monotonic()

CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


def execute(w, warehouse_id, statement, disposition=Disposition.INLINE):
    """Runs a statement and waits for it (the SDK has no waiter: poll get_statement)."""
    resp = w.statement_execution.execute_statement(
        statement=statement, warehouse_id=warehouse_id, disposition=disposition,
        format=Format.JSON_ARRAY, wait_timeout="30s")
    while resp.status.state in (StatementState.PENDING, StatementState.RUNNING):
        time.sleep(0.2)
        resp = w.statement_execution.get_statement(resp.statement_id)
    if resp.status.state != StatementState.SUCCEEDED:
        err = resp.status.error
        sys.exit(f"statement {resp.statement_id} {resp.status.state.value}: {err.message if err else ''}")
    return resp


def iter_chunks(w, resp, http):
    """Yields the rows of every chunk (a list of lists of str|None), following next_chunk_index."""
    result = resp.result
    while result is not None:
        if result.external_links:
            for link in result.external_links:
                r = http.get(link.external_link, timeout=300)  # presigned URL: no Authorization header
                r.raise_for_status()
                yield orjson.loads(r.content), len(r.content)
            nxt = result.external_links[-1].next_chunk_index
        else:
            yield (result.data_array or []), 0
            nxt = result.next_chunk_index
        if nxt is None:
            return
        result = w.statement_execution.get_statement_result_chunk_n(resp.statement_id, nxt)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default=os.environ.get("DATABRICKS_HOST"))
    ap.add_argument("--warehouse-id", default=os.environ.get("DATABRICKS_WAREHOUSE_ID"))
    ap.add_argument("--token-env", default="DATABRICKS_TOKEN",
                    help="environment variable holding the personal access token")
    ap.add_argument("--token", help="the token itself (prefer --token-env)")
    ap.add_argument("--table", required=True)
    ap.add_argument("--key", default="participant_id")
    ap.add_argument("--state-dir", default=".baseline/state")
    ap.add_argument("--output-dir", default=".baseline/out")
    ap.add_argument("--summary-json", help="also write the summary to this file")
    a = ap.parse_args()
    token = a.token or os.environ.get(a.token_env)
    if not (a.host and a.warehouse_id and token):
        sys.exit("need --host, --warehouse-id and a token")

    w = WorkspaceClient(host=a.host, token=token)
    http = requests.Session()
    os.makedirs(a.state_dir, exist_ok=True)
    os.makedirs(a.output_dir, exist_ok=True)
    env = lmdb.open(a.state_dir, max_dbs=4, map_size=1 << 36)
    panel = env.open_db(b"panel")   # key -> 8-byte big-endian commit version + record JSON
    meta = env.open_db(b"meta")     # checkpoint:<table> -> last applied table version
    ck_key = b"checkpoint:" + a.table.encode()

    with env.begin() as txn:
        ck = txn.get(ck_key, db=meta)
    start = int(ck) + 1 if ck is not None else 0

    hist = execute(w, a.warehouse_id, f"DESCRIBE HISTORY {a.table} LIMIT 1")
    hist_cols = [c.name for c in hist.manifest.schema.columns]
    latest = int(hist.result.data_array[0][hist_cols.index("version")])

    counts = dict(read=0, inserted=0, updated=0, unchanged=0, skipped_older=0, deletes_ignored=0,
                  preimages_ignored=0)
    downloaded = 0
    chunks = 0
    out_path = None
    if start <= latest:
        resp = execute(w, a.warehouse_id,
                       f"SELECT * FROM table_changes('{a.table}', {start}, {latest})",
                       disposition=Disposition.EXTERNAL_LINKS)
        cols = [c.name for c in resp.manifest.schema.columns]
        i_type, i_ver, i_key = cols.index("_change_type"), cols.index("_commit_version"), cols.index(a.key)
        data_cols = [(c, i) for i, c in enumerate(cols) if c not in CDF_COLUMNS]

        out_path = os.path.join(a.output_dir, f"changes-v{start:012d}-v{latest:012d}.ndjson.zst")
        tmp_path = out_path + ".tmp"
        with open(tmp_path, "wb") as fh:
            out = zstandard.ZstdCompressor(level=3).stream_writer(fh)
            for rows, nbytes in iter_chunks(w, resp, http):
                downloaded += nbytes
                chunks += 1
                with env.begin(write=True) as txn:  # one transaction per chunk
                    for row in rows:
                        counts["read"] += 1
                        ct = row[i_type]
                        if ct == "delete":
                            counts["deletes_ignored"] += 1
                            continue
                        if ct == "update_preimage":
                            counts["preimages_ignored"] += 1
                            continue
                        key = row[i_key]
                        version = int(row[i_ver])
                        record = {c: row[i] for c, i in data_cols}
                        rec_bytes = orjson.dumps(record)
                        k = key.encode()
                        old = txn.get(k, db=panel)
                        if old is not None:
                            old_version = int.from_bytes(old[:8], "big")
                            if version < old_version:
                                counts["skipped_older"] += 1
                                continue
                            if old[8:] == rec_bytes:
                                counts["unchanged"] += 1
                                if version > old_version:
                                    txn.put(k, version.to_bytes(8, "big") + rec_bytes, db=panel)
                                continue
                            op = "update"
                        else:
                            op = "insert"
                        txn.put(k, version.to_bytes(8, "big") + rec_bytes, db=panel)
                        out.write(orjson.dumps({"op": op, "external_id": key, "commit_version": version,
                                                "record": record}) + b"\n")
                        counts["inserted" if op == "insert" else "updated"] += 1
            out.flush(zstandard.FLUSH_FRAME)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_path, out_path)
    with env.begin(write=True) as txn:
        txn.put(ck_key, str(latest).encode(), db=meta)
    env.close()

    end = time.monotonic()
    seconds = end - T_START
    work = end - T_IMPORTED
    summary = {
        "tool": "baseline_sync.py",
        "table": a.table, "start_version": start, "end_version": latest,
        # seconds: the whole run, imports included (what a user waits for); work_seconds: after the imports.
        "rows": counts["read"], "seconds": round(seconds, 3),
        "rows_per_second": round(counts["read"] / seconds, 1) if seconds > 0 else None,
        "import_seconds": round(T_IMPORTED - T_START, 3), "work_seconds": round(work, 3),
        "work_rows_per_second": round(counts["read"] / work, 1) if work > 0 else None,
        "counts": counts, "chunks": chunks, "bytes_downloaded": downloaded, "output": out_path,
        "versions": {"databricks-sdk": __import__("databricks.sdk.version", fromlist=["x"]).__version__,
                     "orjson": orjson.__version__, "lmdb": lmdb.__version__, "zstandard": zstandard.__version__},
    }
    if a.summary_json:
        with open(a.summary_json, "w") as f:
            json.dump(summary, f, indent=2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

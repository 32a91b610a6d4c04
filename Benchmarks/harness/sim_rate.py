#!/usr/bin/env python3
"""How fast `dbsql-sim` serves a change-feed result, next to cdfsync's sync rate of the same table.

Starts the simulator with the harness's synthetic table, submits `SELECT * FROM table_changes(...)` with
EXTERNAL_LINKS + JSON_ARRAY over the Statement Execution API, then downloads every chunk's presigned link with
`--fetchers` threads (the body is read and discarded: no parsing), and prints rows/s and MB/s. Then runs one
`cdfsync sync` of the same table against the same simulator and prints the ratio (issue 6: >= 3x).

    python3 Benchmarks/harness/sim_rate.py --bin .build/release --rows 1000000 [--fetchers 2]

Only the standard library is used.
"""
import argparse, json, os, shutil, sys, tempfile, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from throughput import start_sim, run_sync  # noqa: E402

def api(url, path, token, body=None):
    req = urllib.request.Request(url + path, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req).read())

def serve_rate(url, warehouse, table, fetchers, token="dapi-bench-token"):
    t0 = time.monotonic()
    r = api(url, "/api/2.0/sql/statements", token, {
        "warehouse_id": warehouse, "statement": f"SELECT * FROM table_changes('{table}', 1, 1)",
        "disposition": "EXTERNAL_LINKS", "format": "JSON_ARRAY", "wait_timeout": "30s"})
    while r["status"]["state"] in ("PENDING", "RUNNING"):
        time.sleep(0.05)
        r = api(url, f"/api/2.0/sql/statements/{r['statement_id']}", token)
    if r["status"]["state"] != "SUCCEEDED":
        sys.exit(f"statement failed: {r['status']}")
    sid, chunks = r["statement_id"], r["manifest"]["total_chunk_count"]
    totals = {"bytes": 0, "rows": 0}
    lock = threading.Lock()
    todo = list(range(chunks))

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            link = api(url, f"/api/2.0/sql/statements/{sid}/result/chunks/{i}", token)["external_links"][0]
            n = 0
            with urllib.request.urlopen(link["external_link"]) as body:  # presigned: no Authorization header
                while True:
                    b = body.read(1 << 20)
                    if not b:
                        break
                    n += len(b)
            with lock:
                totals["bytes"] += n
                totals["rows"] += link["row_count"]

    threads = [threading.Thread(target=worker) for _ in range(fetchers)]
    for t in threads: t.start()
    for t in threads: t.join()
    wall = time.monotonic() - t0
    return {"rows": totals["rows"], "bytes": totals["bytes"], "wall": wall, "chunks": chunks}

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=".build/release")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--fetchers", type=int, default=2)
    a = ap.parse_args()
    table = "main.bench.participants"
    sim, url = start_sim(a.bin, table, a.rows, 42, f"bench-{os.getpid()}", [])
    work = tempfile.mkdtemp(prefix="cdfsync-simrate-")
    try:
        warehouse = json.load(open(os.path.join(os.path.dirname(__file__), "bench-workspace.json")))["warehouses"][0]["id"]
        serve = serve_rate(url, warehouse, table, a.fetchers)
        sync = run_sync(a.bin, url, warehouse, table, os.path.join(work, "state"), os.path.join(work, "out"))
        s_rate, c_rate = serve["rows"] / serve["wall"], sync["rows"] / sync["wall"]
        print(f"simulator serving  {serve['rows']:>10,} rows  {serve['chunks']} chunks  {serve['wall']:6.2f} s  "
              f"{s_rate:>11,.0f} rows/s  {serve['bytes'] / serve['wall'] / 1e6:7.1f} MB/s  ({a.fetchers} fetchers)")
        print(f"cdfsync full sync  {sync['rows']:>10,} rows  {sync['wall']:6.2f} s  {c_rate:>11,.0f} rows/s")
        print(f"ratio simulator / sync: {s_rate / c_rate:.1f}x")
    finally:
        sim.terminate()
        sim.wait()
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()

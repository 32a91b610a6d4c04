#!/usr/bin/env python3
"""End-to-end throughput harness for cdfsync.

Starts `dbsql-sim` with a seeded synthetic CDF-enabled participants table, runs a full sync with the
release `cdfsync` binary, appends a commit updating a fraction of the rows, runs an incremental sync, and
prints rows/s, MB/s of JSON consumed and peak RSS for each. It also replays the range the full sync applied
(every row already in the panel). Peak RSS is the engine's own `VmHWM`, from the run record (`peak_rss_bytes`).

The simulator keeps results the way a Databricks SQL warehouse's result cache does (a query re-submitted while
its tables are unchanged is answered from the cache). The first full sync is cold: the simulator renders the
result while the engine reads it, on the same cores. A second full sync, into a fresh state directory, runs the
same query against the cached result ("full sync, result cached"): the engine does exactly the same work, and the
simulator's rendering — work a real warehouse does on its own machines — no longer shares the engine's cores.
The replay's statement (versions 1..1) is not the full sync's (0..1), so the first replay is computed afresh; the
same replay again is answered from the cache ("replay, result cached"). `--no-result-cache` turns the cache off
(every statement computed and rendered afresh).

These machines' speed swings by up to 2x between minutes: `--repeat N` runs the result-cached full sync N times
(each into a fresh state directory) and reports the median, with every run listed in the JSON.

    python3 Benchmarks/harness/throughput.py --bin .build/release --rows 1000000

Only the standard library is used.
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time, urllib.request

from cpu_time import cpu_now, cpu_since

def start_sim(bin_dir, table, rows, seed, admin, extra):
    env = dict(os.environ, DBSQL_SIM_ADMIN_TOKEN=admin)
    workspace = os.path.join(os.path.dirname(__file__), "bench-workspace.json")
    p = subprocess.Popen([os.path.join(bin_dir, "dbsql-sim"), "--workspace", workspace, "--port", "0",
                          "--synthetic", f"{table}:{rows}:{seed}"] + extra,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = p.stdout.readline().strip()
    m = re.match(r"listening on (http://\S+)$", line)
    if not m:
        p.kill()
        sys.exit(f"simulator did not start: {line!r}")
    return p, m.group(1)

def admin_post(url, path, token, body):
    req = urllib.request.Request(url + path, method="POST", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req).read() or b"{}")

def run_sync(bin_dir, url, warehouse, table, state, out, extra_env=None, extra_args=(), command=("sync",), sim_pid=None):
    os.makedirs(os.path.dirname(os.path.abspath(state)), exist_ok=True)
    summary = os.path.join(state, "..", "summary.json")
    env = dict(os.environ, DATABRICKS_HOST=url, DATABRICKS_TOKEN="dapi-bench-token", **(extra_env or {}))
    cmd = [os.path.join(bin_dir, "cdfsync")] + list(command) + ["--warehouse-id", warehouse,
           "--table", table, "--key", "participant_id", "--state-dir", state, "--output-dir", out,
           "--summary-json", summary] + list(extra_args)
    # Start from a clean page cache: dirty data an earlier run left (the baseline writes ~0.5 GB) would otherwise be
    # written back during this run and compete with its durable commits.
    os.sync()
    c0 = cpu_now(sim_pid)
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    cpu = cpu_since(c0, sim_pid)
    if r.returncode != 0:
        sys.exit(f"{command[0]} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    s = json.load(open(summary))
    rows = s["counts"]["read"]
    # Peak RSS is the engine's own VmHWM at the end of the run (the run record's peak_rss_bytes).
    return {"rows": rows, "wall": wall, **cpu, "engine_seconds": s["seconds"], "bytes": s["bytes_received"],
            "rss_mb": s["peak_rss_bytes"] / 1048576, "inserted": s["counts"]["inserted"],
            "updated": s["counts"]["updated"], "unchanged": s["counts"]["unchanged"],
            "skipped_older": s["counts"]["skipped_older"]}

def run_pipeline(bin_dir, url, warehouse, table, work, sim_pid=None):
    """A full sync through the example pipeline (fixtures/pipeline-example.yaml: field mapping, email / phone /
    country normalisation, consent, email and phone identity), pointed at the benchmark table."""
    example = open(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "pipeline-example.yaml")).read()
    out = os.path.join(work, "pipeline-out")
    text = (example.replace("warehouse_id: 8a1c2f3d4e5b6a70", f"warehouse_id: {warehouse}")
            .replace("source: main.research.participants", f"source: {table}")
            .replace("name: research-panel", "name: bench-pipeline")
            .replace("directory: .cdfsync/out/research-panel", f"directory: {out}"))
    # Without the example's filter: the simulator answers WHERE over a generated table of at most 200,000 rows.
    text = re.sub(r"\nfilters:.*?\n(?=\S)", "\n", text, flags=re.S)
    assert f"source: {table}" in text and out in text and "filters:" not in text, \
        "fixtures/pipeline-example.yaml changed: update run_pipeline"
    path = os.path.join(work, "bench-pipeline.yaml")
    open(path, "w").write(text)
    state = os.path.join(work, "pipeline-state")
    summary = os.path.join(work, "pipeline-summary.json")
    env = dict(os.environ, DATABRICKS_HOST=url, DATABRICKS_TOKEN="dapi-bench-token")
    # Start from a clean page cache: dirty data an earlier run left (the baseline writes ~0.5 GB) would otherwise be
    # written back during this run and compete with its durable commits.
    os.sync()
    c0 = cpu_now(sim_pid)
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(bin_dir, "cdfsync"), "sync", path, "--state-dir", state, "--summary-json", summary],
                       env=env, capture_output=True, text=True, cwd=work)
    wall = time.monotonic() - t0
    cpu = cpu_since(c0, sim_pid)
    if r.returncode != 0:
        sys.exit(f"pipeline sync failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    s = json.load(open(summary))
    return {"rows": s["counts"]["read"], "wall": wall, **cpu, "engine_seconds": s["seconds"], "bytes": s["bytes_received"],
            "rss_mb": s["peak_rss_bytes"] / 1048576, "inserted": s["counts"]["inserted"],
            "updated": s["counts"]["updated"], "unchanged": s["counts"]["unchanged"],
            "skipped_older": s["counts"]["skipped_older"]}

def fmt(name, r):
    return (f"{name:<22} {r['rows']:>10,} rows  {r['wall']:7.2f} s  {r['rows']/r['wall']:>11,.0f} rows/s  "
            f"{r['bytes']/r['wall']/1e6:7.1f} MB/s JSON  peak RSS {r['rss_mb']:6.1f} MB  "
            f"CPU {r['cpu']:5.2f} s + simulator {r['sim_cpu']:4.2f} s")

def floor_seconds(r, cores):
    """The shortest wall time the run's CPU (its own and the simulator's, on the same cores) allows."""
    return (r["cpu"] + r["sim_cpu"]) / cores

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=".build/release")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--update-fraction", type=float, default=0.01)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--baseline", action="store_true",
                    help="also run the Python baseline (databricks-sdk, orjson, py-lmdb, zstandard) on the same table")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the result-cached full sync this many times (fresh state each) and report the median")
    ap.add_argument("--no-result-cache", action="store_true",
                    help="run the simulator without its result cache (every statement rendered afresh)")
    ap.add_argument("--pipeline", action="store_true",
                    help="also run a full sync through the example pipeline (mapping, normalisation, consent, "
                         "email/phone identity) on the same table, into its own state")
    a = ap.parse_args()

    table = "main.bench.participants"
    admin = f"bench-{os.getpid()}"
    work = tempfile.mkdtemp(prefix="cdfsync-bench-")
    # Room for the whole rendered result (~470 bytes per row) in the simulator's result cache.
    cache_mb = 0 if a.no_result_cache else max(1024, a.rows * 600 // 1_000_000)
    sim, url = start_sim(a.bin, table, a.rows, a.seed, admin, ["--result-cache-mb", str(cache_mb)])
    try:
        warehouse = json.load(open(os.path.join(os.path.dirname(__file__), "bench-workspace.json")))["warehouses"][0]["id"]
        state, out = os.path.join(work, "state"), os.path.join(work, "out")
        full = run_sync(a.bin, url, warehouse, table, state, out, sim_pid=sim.pid)
        # The same query again, into a fresh state: the simulator answers it from its result cache.
        cached, cached_runs = None, []
        if not a.no_result_cache:
            for k in range(max(1, a.repeat)):
                d = os.path.join(work, f"cached-{k}")
                cached_runs.append(run_sync(a.bin, url, warehouse, table, os.path.join(d, "state"), os.path.join(d, "out"),
                                            sim_pid=sim.pid))
                shutil.rmtree(d, ignore_errors=True)
            cached = sorted(cached_runs, key=lambda r: r["wall"])[len(cached_runs) // 2]
        # Replay of the range just applied (v1, every row): each row is probed and found already applied.
        replay = run_sync(a.bin, url, warehouse, table, state, out, command=("replay",),
                          extra_args=("--from-version", "1", "--to-version", "1"), sim_pid=sim.pid)
        replay_cached = None
        if not a.no_result_cache:
            replay_cached = run_sync(a.bin, url, warehouse, table, state, out, command=("replay",),
                                     extra_args=("--from-version", "1", "--to-version", "1"), sim_pid=sim.pid)
        # The baseline after cdfsync (its ~0.5 GB of memory and writes, freed and flushed, slowed the run after it)
        # and before the commit below (it reads the same range).
        base = base_cached = None
        if a.baseline:
            sys.path.insert(0, os.path.dirname(__file__))
            from baseline_runner import run_baseline
            base = run_baseline(a.bin, url, warehouse, table, os.path.join(work, "base-state"), os.path.join(work, "base-out"),
                                sim_pid=sim.pid)
            if not a.no_result_cache:
                base_cached = run_baseline(a.bin, url, warehouse, table, os.path.join(work, "base-state-2"),
                                           os.path.join(work, "base-out-2"), sim_pid=sim.pid)
        admin_post(url, f"/_sim/tables/{table}/synthetic-commit", admin, {"update_fraction": a.update_fraction})
        incr = run_sync(a.bin, url, warehouse, table, state, out, sim_pid=sim.pid)
        pipe = run_pipeline(a.bin, url, warehouse, table, work, sim_pid=sim.pid) if a.pipeline else None
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(__file__)).stdout.strip()
        print(f"machine: {os.cpu_count()} cores, {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}; "
              f"commit {commit}; load average {os.getloadavg()[0]:.1f}")
        print(fmt("full sync", full))
        if cached:
            print(fmt("full sync, result cached" + (f" (median of {len(cached_runs)})" if len(cached_runs) > 1 else ""), cached))
            if len(cached_runs) > 1:
                print("  runs: " + ", ".join(f"{r['wall']:.2f} s" for r in cached_runs))
        print(fmt("replay (applied range)", replay))
        if replay_cached:
            print(fmt("replay, result cached", replay_cached))
        print(fmt(f"incremental ({a.update_fraction:.0%})", incr))
        if pipe:
            print(fmt("pipeline full sync", pipe))
        if base:
            print(fmt("python baseline (full)", base))
            print(f"ratio cdfsync / baseline (full sync rows/s): {(full['rows']/full['wall']) / (base['rows']/base['wall']):.1f}x")
        if base_cached and cached:
            print(fmt("python baseline, cached", base_cached))
            print(f"ratio cdfsync / baseline (full sync rows/s, result cached): "
                  f"{(cached['rows']/cached['wall']) / (base_cached['rows']/base_cached['wall']):.1f}x")
        # What the cores allow: the run's CPU and the simulator's, spread perfectly over every core, is the
        # shortest wall time possible on this machine without doing less work.
        cores = os.cpu_count()
        print(f"CPU floor on {cores} cores (engine + simulator CPU / {cores}): full sync {floor_seconds(full, cores):.2f} s "
              f"({full['wall'] / floor_seconds(full, cores):.2f}x above it)"
              + (f", result cached {floor_seconds(cached, cores):.2f} s ({cached['wall'] / floor_seconds(cached, cores):.2f}x)" if cached else ""))
        if base:
            print(f"best ratio the full sync's CPU allows against this baseline: "
                  f"{base['wall'] / floor_seconds(full, cores):.1f}x cold"
                  + (f", {base_cached['wall'] / floor_seconds(cached, cores):.1f}x result cached" if base_cached and cached else ""))
        if a.json:
            json.dump({"rows": a.rows, "commit": commit, "result_cache": not a.no_result_cache, "full": full,
                       "full_cached": cached, "full_cached_runs": cached_runs, "replay": replay, "replay_cached": replay_cached, "incremental": incr, "baseline": base,
                       "baseline_cached": base_cached, "pipeline": pipe, "cores": os.cpu_count()}, open(a.json, "w"), indent=2)
    finally:
        sim.terminate()
        sim.wait()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()

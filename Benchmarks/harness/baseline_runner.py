#!/usr/bin/env python3
"""Runs the Python baseline (Benchmarks/baseline/baseline_sync.py) the way throughput.py runs cdfsync.

As a library, for throughput.py:

    from baseline_runner import run_baseline, ensure_venv
    base = run_baseline(a.bin, url, warehouse, table, os.path.join(work, "base-state"), os.path.join(work, "base-out"))
    print(fmt("baseline full sync", base))       # same keys as run_sync's result

On its own (starts dbsql-sim with a synthetic table, runs a full and an incremental baseline sync):

    python3 Benchmarks/harness/baseline_runner.py --bin .build/release --rows 1000000

The baseline needs a virtual environment with the pinned packages (Benchmarks/baseline/requirements.txt);
ensure_venv() creates Benchmarks/baseline/.venv with pip the first time (about 10 s). Only the standard library
is used here.
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time, urllib.request

from cpu_time import cpu_now, cpu_since

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINE_DIR = os.path.join(HERE, "..", "baseline")
VENV = os.path.join(BASELINE_DIR, ".venv")
SCRIPT = os.path.join(BASELINE_DIR, "baseline_sync.py")
REQUIREMENTS = os.path.join(BASELINE_DIR, "requirements.txt")
TOKEN = "dapi-bench-token"


def ensure_venv(quiet=True):
    """Returns the baseline's Python, creating the venv and installing the pinned requirements if needed."""
    python = os.path.join(VENV, "bin", "python")
    stamp = os.path.join(VENV, ".requirements-installed")
    want = open(REQUIREMENTS).read()
    if os.path.exists(python) and os.path.exists(stamp) and open(stamp).read() == want:
        return python
    out = subprocess.DEVNULL if quiet else None
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True, stdout=out)
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", REQUIREMENTS],
                   check=True, stdout=out)
    with open(stamp, "w") as f:
        f.write(want)
    return python


def run_baseline(bin_dir, url, warehouse, table, state, out, key="participant_id", python=None, sim_pid=None):
    """Runs one baseline sync against `url` and returns a dict with the same keys as throughput.run_sync.

    `bin_dir` is unused (the baseline needs no cdfsync binary); it is there so that the call mirrors
    run_sync(bin_dir, url, warehouse, table, state, out). `wall` is the whole process, imports included, timed
    here like cdfsync's; `engine_seconds` is the script's own total, `work_seconds` the part after its imports.
    """
    python = python or ensure_venv()
    os.makedirs(state, exist_ok=True)
    summary = os.path.join(state, "..", "baseline-summary.json")
    env = dict(os.environ, DATABRICKS_TOKEN=TOKEN)
    cmd = ["/usr/bin/time", "-f", "%M %e", python, SCRIPT, "--host", url, "--warehouse-id", warehouse,
           "--table", table, "--key", key, "--state-dir", state, "--output-dir", out, "--summary-json", summary]
    # Start from a clean page cache: dirty data an earlier run left (the baseline writes ~0.5 GB) would otherwise be
    # written back during this run and compete with its durable commits.
    os.sync()
    c0 = cpu_now(sim_pid)
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    cpu = cpu_since(c0, sim_pid)
    if r.returncode != 0:
        raise RuntimeError(f"baseline sync failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    rss_kb, _ = r.stderr.strip().splitlines()[-1].split()
    s = json.load(open(summary))
    c = s["counts"]
    return {"rows": s["rows"], "wall": wall, **cpu, "engine_seconds": s["seconds"], "work_seconds": s["work_seconds"],
            "import_seconds": s["import_seconds"], "bytes": s["bytes_downloaded"], "rss_mb": int(rss_kb) / 1024,
            "inserted": c["inserted"], "updated": c["updated"], "unchanged": c["unchanged"],
            "versions": s["versions"]}


# --- standalone use -------------------------------------------------------------------------------------

def start_sim(bin_dir, table, rows, seed, admin):
    env = dict(os.environ, DBSQL_SIM_ADMIN_TOKEN=admin)
    workspace = os.path.join(HERE, "bench-workspace.json")
    p = subprocess.Popen([os.path.join(bin_dir, "dbsql-sim"), "--workspace", workspace, "--port", "0",
                          "--synthetic", f"{table}:{rows}:{seed}"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = p.stdout.readline().strip()
    m = re.match(r"listening on (http://\S+)$", line)
    if not m:
        p.kill()
        sys.exit(f"simulator did not start: {line!r}")
    return p, m.group(1)


def fmt(name, r):
    return (f"{name:<28} {r['rows']:>10,} rows  {r['wall']:7.2f} s  {r['rows']/r['wall']:>11,.0f} rows/s  "
            f"({r['rows']/r['work_seconds'] if r['work_seconds'] else 0:>9,.0f} rows/s after imports)  "
            f"peak RSS {r['rss_mb']:6.1f} MB  CPU {r['cpu']:5.2f} s + simulator {r['sim_cpu']:4.2f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=".build/release", help="directory holding dbsql-sim")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--update-fraction", type=float, default=0.01)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    a = ap.parse_args()

    python = ensure_venv(quiet=False)
    table = "main.bench.participants"
    admin = f"bench-{os.getpid()}"
    warehouse = json.load(open(os.path.join(HERE, "bench-workspace.json")))["warehouses"][0]["id"]
    work = tempfile.mkdtemp(prefix="cdfsync-baseline-")
    sim, url = start_sim(a.bin, table, a.rows, a.seed, admin)
    try:
        state, out = os.path.join(work, "state"), os.path.join(work, "out")
        full = run_baseline(a.bin, url, warehouse, table, state, out, python=python, sim_pid=sim.pid)
        req = urllib.request.Request(url + f"/_sim/tables/{table}/synthetic-commit", method="POST",
                                     data=json.dumps({"update_fraction": a.update_fraction}).encode(),
                                     headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
        urllib.request.urlopen(req).read()
        incr = run_baseline(a.bin, url, warehouse, table, state, out, python=python, sim_pid=sim.pid)
        cpu = open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].splitlines()[0].strip()
        print(f"machine: {os.cpu_count()} cores, {cpu}; baseline packages: {full['versions']}")
        print(fmt("baseline full sync", full))
        print(fmt(f"baseline incremental ({a.update_fraction:.0%})", incr))
        if a.json:
            json.dump({"rows": a.rows, "full": full, "incremental": incr}, open(a.json, "w"), indent=2)
    finally:
        sim.terminate()
        sim.wait()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

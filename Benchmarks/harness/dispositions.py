#!/usr/bin/env python3
"""INLINE vs EXTERNAL_LINKS with K = 1, 2, 4, 8 chunks in flight, on the same 1,000,000-row result.

Each case is a full cdfsync sync of the simulator's synthetic table into a fresh state directory (so the LMDB
work is the same in every case and the differences come from moving the result). The simulator's INLINE cap is
disabled (--inline-byte-limit 0) so that INLINE can carry the whole result, as it could not on Databricks.

    python3 Benchmarks/harness/dispositions.py --bin .build/release [--rows 1000000] [--repeat 2]
"""
import argparse, os, shutil, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=".build/release")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    table = "main.bench.participants"
    sim, url = throughput.start_sim(a.bin, table, a.rows, 42, "adm", ["--inline-byte-limit", "0"])
    work = tempfile.mkdtemp(prefix="cdfsync-disp-")
    try:
        print(f"{'case':<26} {'best s':>8} {'rows/s':>12} {'MB/s JSON':>10} {'peak RSS':>9}")
        for name, extra in [("INLINE", ["--disposition", "inline"])] + [
                (f"EXTERNAL_LINKS K={k}", ["--disposition", "external-links", "--in-flight", str(k)]) for k in (1, 2, 4, 8)]:
            best = None
            for i in range(a.repeat):
                d = os.path.join(work, f"{len(name)}-{i}-{extra[-1]}")
                r = throughput.run_sync(a.bin, url, "b3c4d5e6f7a8b9c0", table, os.path.join(d, "s"), os.path.join(d, "o"), extra_args=extra)
                shutil.rmtree(d, ignore_errors=True)
                if best is None or r["wall"] < best["wall"]:
                    best = r
            print(f"{name:<26} {best['wall']:>8.2f} {best['rows']/best['wall']:>12,.0f} {best['bytes']/best['wall']/1e6:>10.1f} {best['rss_mb']:>7.0f} MB")
    finally:
        sim.terminate()
        sim.wait()
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()

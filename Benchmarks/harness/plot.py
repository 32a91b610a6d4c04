#!/usr/bin/env python3
"""Plots full-sync throughput and peak RSS against table size from throughput.py --json outputs.

    python3 Benchmarks/harness/plot.py out.png series-1000000.json series-3000000.json series-10000000.json
Needs matplotlib (Benchmarks/harness/requirements-plot.txt).
"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

out, files = sys.argv[1], sys.argv[2:]
runs = sorted((json.load(open(f)) for f in files), key=lambda r: r["rows"])
rows = [r["rows"] / 1e6 for r in runs]
fig, ax1 = plt.subplots(figsize=(7, 4.8))
ax1.plot(rows, [r["full"]["rows"] / r["full"]["wall"] / 1e3 for r in runs], "o-", color="tab:blue", label="full sync rows/s")
if all(r.get("full_cached") for r in runs):
    ax1.plot(rows, [r["full_cached"]["rows"] / r["full_cached"]["wall"] / 1e3 for r in runs], "o:", color="tab:cyan",
             label="full sync, result cached, rows/s")
if all(r.get("replay") for r in runs):
    ax1.plot(rows, [r["replay"]["rows"] / r["replay"]["wall"] / 1e3 for r in runs], "D-", color="tab:green",
             label="replay of the applied range rows/s")
if all(r.get("replay_cached") for r in runs):
    ax1.plot(rows, [r["replay_cached"]["rows"] / r["replay_cached"]["wall"] / 1e3 for r in runs], "D:",
             color="tab:olive", label="replay, result cached, rows/s")
ax1.set_xlabel("table size (million rows)")
ax1.set_ylabel("thousand rows/s", color="tab:blue")
ax1.set_ylim(bottom=0)
ax2 = ax1.twinx()
ax2.plot(rows, [r["full"]["rss_mb"] for r in runs], "s--", color="tab:red", label="full sync peak RSS")
ax2.plot(rows, [r["incremental"]["rss_mb"] for r in runs], "^:", color="tab:orange", label="1 % incremental peak RSS")
ax2.set_ylabel("peak RSS (MB)", color="tab:red")
ax2.set_ylim(bottom=0)
fig.legend(loc="lower center", ncol=2, fontsize=7.5, frameon=False)
ax1.set_title("cdfsync through dbsql-sim over loopback (2 shared cores), commit " + runs[0].get("commit", "?"), fontsize=9)
fig.tight_layout(rect=(0, 0.17, 1, 1))
fig.savefig(out, dpi=110)
print("wrote", out)

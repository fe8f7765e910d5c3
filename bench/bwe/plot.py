#!/usr/bin/env python3
"""Plots bench/bwe/results/<profile>.csv (written by the bwe-bench binary) to <profile>.png:
capacity, estimate and sent rate over time, queue delay on a second axis.

    python3 bench/bwe/plot.py [results-dir]
"""

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = {k: [float(r[k]) for r in rows] for k in rows[0]} if rows else {}
    return cols


def plot(csv_path):
    c = read(csv_path)
    if not c:
        return None
    t = c["time_s"]
    fig, ax = plt.subplots(figsize=(8, 4), dpi=80)
    mbit = lambda xs: [x / 1e6 for x in xs]  # noqa: E731
    ax.step(t, mbit(c["capacity_bps"]), where="post", color="black", lw=1.5, label="capacity")
    ax.plot(t, mbit(c["sent_bps"]), color="tab:green", lw=0.8, alpha=0.6, label="sent")
    ax.plot(t, mbit(c["estimate_bps"]), color="tab:blue", lw=1.5, label="estimate")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("Mbit/s")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    q = ax.twinx()
    q.plot(t, c["queue_delay_ms"], color="tab:red", lw=0.8, alpha=0.7, label="queue delay")
    q.set_ylabel("queue delay (ms)", color="tab:red")
    q.set_ylim(bottom=0, top=max(50.0, max(c["queue_delay_ms"]) * 1.1))
    lines = ax.get_legend_handles_labels()
    qlines = q.get_legend_handles_labels()
    ax.legend(lines[0] + qlines[0], lines[1] + qlines[1], loc="upper right", fontsize=8)
    ax.set_title(f"BWE on simulated link: {csv_path.stem}")
    fig.tight_layout()
    out = csv_path.with_suffix(".png")
    fig.savefig(out)
    plt.close(fig)
    return out


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"
    for path in sorted(root.glob("*.csv")):
        out = plot(path)
        if out:
            print(f"{out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Summarises a bench_block CSV (--csv FILE): for each device, dtype and pass, the least, median and
largest of the fused kernels' % of copy and speed-up over unfused, of the single pass over the multi-pass
kernels (rows where bench_block timed both), and of cuDNN's time over ours. Standard library only, so it
runs on a bare GPU machine: tools/gpu_check.sh prints it into summary.txt.

usage: tools/bench_block_summary.py bench_block.csv
"""
import csv
import statistics
import sys
from collections import defaultdict

COLUMNS = "device,dtype,block,shape,batch,pass,variant,ms,MB,GBps,pct_copy,speedup".split(",")


def spread(values):
    if not values:
        return "-"
    v = sorted(values)
    return f"{v[0]:.2f} / {statistics.median(v):.2f} / {v[-1]:.2f} ({len(v)})"


def main(path):
    ms = {}  # (device, dtype, block, shape, batch, pass) -> {variant: row}
    try:
        with open(path, newline="") as f:
            first = f.readline()
            f.seek(0)
            # CSVs written before bench_block wrote a header line have none.
            names = None if first.startswith("device,") else COLUMNS
            for row in csv.DictReader(f, fieldnames=names):
                key = tuple(row[k] for k in ("device", "dtype", "block", "shape", "batch", "pass"))
                ms.setdefault(key, {})[row["variant"]] = row
    except (OSError, KeyError, csv.Error) as e:
        print(f"bench_block_summary: cannot read {path}: {e}", file=sys.stderr)
        return 1
    groups = defaultdict(lambda: defaultdict(list))
    for key, variants in ms.items():
        fused = variants.get("fused")
        if not fused or not float(fused["ms"]):
            continue
        g = groups[(key[0], key[1], key[5])]
        g["% of copy"].append(float(fused["pct_copy"]))
        g["speed-up over unfused"].append(float(fused["speedup"]))
        two = variants.get("fused-2pass")
        if two and float(two["ms"]):
            g["single pass over multi-pass"].append(float(two["ms"]) / float(fused["ms"]))
        cl = variants.get("fused-cluster")
        if cl and float(cl["ms"]):
            g["cluster over multi-pass"].append(float(fused["ms"]) / float(cl["ms"]))
        cudnn = variants.get("cudnn")
        if cudnn and float(cudnn["ms"]):
            g["cuDNN time / ours"].append(float(cudnn["ms"]) / float(fused["ms"]))
    if not groups:
        print("bench_block_summary: no fused rows in", path)
        return 1
    print("bench_block summary, least / median / largest (rows); ratios above 1 favour our fused kernels")
    for (device, dtype, pas), g in sorted(groups.items()):
        parts = [f"{name} {spread(vals)}" for name, vals in g.items() if vals]
        print(f"  {device} {dtype} {pas}: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))

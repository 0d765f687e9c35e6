#!/usr/bin/env python3
"""Merges runs of bench/brine_bench (their JSON) into one, as if they were repeats of one run.

    tools/bench_merge.py run1.json run2.json ... > merged.json

Each cell's median, min and max are taken over the medians of the runs. For A/B comparisons on
a noisy machine: run the two builds alternately (A B A B ...), one repeat each, merge the A runs
and the B runs, and give both to tools/bench_compare.py, so that drift hits both alike.
"""
import json
import statistics
import sys


def main():
    runs = [json.load(open(path)) for path in sys.argv[1:]]
    if not runs:
        sys.exit("usage: bench_merge.py run.json ...")
    values = {}
    order = []
    for run in runs:
        for r in run["results"]:
            key = (r["section"], r["transport"], r["variant"], r["codec"], r["metric"])
            if key not in values:
                values[key] = (r, [])
                order.append(key)
            values[key][1].append(r["median"])
    results = []
    for key in order:
        first, medians = values[key]
        cell = dict(first)
        cell.update(median=statistics.median(medians), min=min(medians), max=max(medians))
        results.append(cell)
    dates = sorted(run["date"] for run in runs)
    json.dump({"date": f"{dates[0]} to {dates[-1]}", "repeats": len(runs), "results": results},
              sys.stdout, indent=1)


if __name__ == "__main__":
    main()

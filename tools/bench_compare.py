#!/usr/bin/env python3
"""Compares two runs of bench/brine_bench (their JSON), cell by cell.

    tools/bench_compare.py before.json after.json [--all] > comparison.md

For every brine cell present in both runs: the median and [min – max] of each, after / before,
and a verdict. A cell is a regression only when the runs' spreads do not overlap in the bad
direction (after's best is worse than before's worst); "better" likewise; anything else is within
the spread of the repeats. Each run's own raw baseline is shown as the ratio brine / raw of that
run, which cancels drift of the machine between the runs. Without --all only the cells that
matter for latency, throughput and allocations are listed (p50, CPU per call, calls/s, MB/s,
allocations, RSS); p99 and p99.9 are left out (their spread on this machine is larger than any
effect).
"""
import json
import sys

HIGHER_IS_BETTER = {"throughput", "pipelined", "bulk"}
KEY_METRICS = {"p50", "client cpu", "server cpu", "4x1", "1x64", "1 MiB", "16 MiB", "client",
               "server", "RSS/conn"}


def load(path):
    data = json.load(open(path))
    cells = {}
    for r in data["results"]:
        cells[(r["section"], r["transport"], r["variant"], r["codec"], r["metric"])] = r
    return data, cells


def raw_of(cells, section, transport, metric):
    for (s, t, v, c, m), r in cells.items():
        if s == section and t == transport and m == metric and v.startswith("raw"):
            if section == "lowlat" and "busy" not in v:
                continue
            return r["median"]
    return None


def fmt(v):
    if v is None:
        return "-"
    if v >= 10000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    show_all = "--all" in sys.argv
    (bdata, before), (adata, after) = load(args[0]), load(args[1])
    print(f"Before: {bdata['date']}; after: {adata['date']}; medians of "
          f"{adata['repeats']} repeats, [min – max].\n")
    print("| section | transport | variant | codec | metric | before | after | after/before "
          "| brine/raw before | brine/raw after | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    counts = {"regression": 0, "better": 0, "within spread": 0}
    for key, b in before.items():
        section, transport, variant, codec, metric = key
        if variant.startswith("raw") or key not in after:
            continue
        if not show_all and metric not in KEY_METRICS:
            continue
        a = after[key]
        higher = section in HIGHER_IS_BETTER
        if higher:
            verdict = ("regression" if a["max"] < b["min"] else
                       "better" if a["min"] > b["max"] else "within spread")
        else:
            verdict = ("regression" if a["min"] > b["max"] else
                       "better" if a["max"] < b["min"] else "within spread")
        if section in ("allocs", "memory"):  # counts, not timings: no spread to speak of
            worse = a["median"] > b["median"] * 1.05 if not higher else False
            verdict = ("regression" if worse else
                       "better" if a["median"] < b["median"] * 0.95 else "within spread")
        counts[verdict] += 1
        rb = raw_of(before, section, transport, metric)
        ra = raw_of(after, section, transport, metric)
        ratio_b = b["median"] / rb if rb else None
        ratio_a = a["median"] / ra if ra else None
        change = a["median"] / b["median"] if b["median"] else None
        print(f"| {section} | {transport} | {variant} | {codec} | {metric} | "
              f"{fmt(b['median'])} [{fmt(b['min'])} – {fmt(b['max'])}] | "
              f"{fmt(a['median'])} [{fmt(a['min'])} – {fmt(a['max'])}] | "
              f"{fmt(change)}× | {fmt(ratio_b)} | {fmt(ratio_a)} | {verdict} |")
    print(f"\n{counts['better']} better, {counts['within spread']} within the spread, "
          f"{counts['regression']} regressions.")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Renders brine_bench's JSON (build/brine-bench.json) as the Markdown tables of
docs/performance.md.   tools/bench_table.py build/brine-bench.json > table.md"""
import json
import sys

TITLES = {
    "latency": "Latency: 64-byte echo, one caller, one call in flight (µs)",
    "lowlat": "Low-latency mode: busy_poll 100 µs on client and server (server workers=0), "
              "against raw sockets busy-polling (µs)",
    "pinned": "Pinned: client and servers on one CPU (taskset), the library's own cost (µs)",
    "throughput": "Throughput: 4 connections × 1 call in flight, 64-byte echo (calls/s)",
    "pipelined": "Pipelined: 1 connection × 64 calls in flight, 64-byte echo (calls/s)",
    "bulk": "Bulk: one payload echoed, MB/s each way (size / half the round trip)",
    "memory": "Memory: server RSS growth per idle connection (KiB)",
    "allocs": "Allocations per small call (add: two doubles in, one out; operator new, all threads)",
    "stream": "Streams: a server stream's items, 64 B items/s and 1 MiB items MB/s, 1 and 16 streams",
    "compression": "Compression: 16 MiB echoed on tcp4 (workers=4), MB/s each way of the payload",
    "peers": "Peers: brine (workers=4) over raw sockets, gRPC and Cap'n Proto, tcp4 "
             "(the last column is brine / the variant's baseline: latency below 1 and "
             "throughput or bulk above 1 mean brine is faster)",
}


def fmt(v):
    if v >= 10000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    data = json.load(open(sys.argv[1]))
    rows = data["results"]
    print(f"Run of {data['date']}, median of {data['repeats']} repeats, [min – max] of the repeats.\n")
    for section, title in TITLES.items():
        mine = [r for r in rows if r["section"] == section]
        if not mine:
            continue
        print(f"### {title}\n")
        metrics = []
        for r in mine:
            if r["metric"] not in metrics:
                metrics.append(r["metric"])
        cells = []
        for r in mine:
            key = (r["transport"], r["variant"], r["codec"])
            if key not in cells:
                cells.append(key)
        head = "| transport | variant | codec | " + " | ".join(metrics) + " | vs raw |"
        print(head)
        print("|" + "---|" * (4 + len(metrics)))
        for key in cells:
            by = {r["metric"]: r for r in mine if (r["transport"], r["variant"], r["codec"]) == key}
            vals = []
            ratio = ""
            for m in metrics:
                r = by.get(m)
                if r is None:
                    vals.append("")
                    continue
                vals.append(f"{fmt(r['median'])} [{fmt(r['min'])} – {fmt(r['max'])}]")
                if "ratio" in r and not ratio:
                    ratio = f"{r['ratio']:.2f}× ({m})" if len(metrics) > 1 else f"{r['ratio']:.2f}×"
            print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(vals) + f" | {ratio} |")
        print()


if __name__ == "__main__":
    main()

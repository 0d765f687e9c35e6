#!/usr/bin/env bash
# tools/bench.sh [brine_bench options]
#   Installs what is missing, builds, and runs bench/brine_bench: brine beside raw sockets, raw
#   ZeroMQ, gRPC and Cap'n Proto, every transport x codec, in one run (docs/performance.md).
#   Prints the tables and the targets and writes every figure to build/brine-bench.json. Takes
#   about 21 minutes with the defaults (3 repeats);
#   run it on an otherwise idle machine. Options are passed on (brine_bench --help-like usage:
#   --repeats N, --only latency,..., --codecs ..., --transports ..., --smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
build=${BRINE_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRINE_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target brine_bench
exec "$build/bench/brine_bench" --json "$build/brine-bench.json" "$@"

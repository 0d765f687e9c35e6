#!/usr/bin/env bash
# tools/quickstart.sh demo|test
#   demo: install what is missing, build, run the remote-objects example (C++ and Python
#         clients), the calculator server and client over every transport and codec, a file
#         transfer, and the brine command and the HTTP front door.
#   test: install what is missing, build (warnings are errors), run the whole test suite.
# BRINE_BUILD_DIR chooses the build directory (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-}
case "$what" in demo | test) ;; *)
  echo "usage: tools/quickstart.sh demo|test" >&2
  exit 2
  ;;
esac

tools/install-deps.sh
build=${BRINE_BUILD_DIR:-build}
# -g1 (line tables, function names: enough for perf, sanitizers and backtraces) compiles the
# template-heavy tests in two thirds of the time -g takes.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" -DBRINE_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)"

if [ "$what" = demo ]; then
  exec tools/demo.sh "$build"
fi
# The address twins (tcp6, abstract, tls6, zmq_ipc, udp6) run the channel code of tcp4, unix,
# tls4, zmq_tcp and udp4 with another address: each runs every test body in one codec, a
# different one per twin; the transports themselves run every body in every codec.
ctest --test-dir "$build" -j 2 --output-on-failure --timeout 300 \
  -E '/"?tcp6_(protobuf|json)|/"?abstract_(cereal|json)|/"?tls6_(cereal|protobuf)|/"?zmq_ipc_(protobuf|json)|/"?udp6_(cereal|json)' 

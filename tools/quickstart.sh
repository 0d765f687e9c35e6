#!/usr/bin/env bash
# tools/quickstart.sh demo|test
#   demo: install what is missing, build, run the remote-objects example (C++ and Python
#         clients), then the calculator server and client over every transport and codec.
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
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRINE_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)"

if [ "$what" = demo ]; then
  exec tools/demo.sh "$build"
fi
ctest --test-dir "$build" -j 2 --output-on-failure --timeout 300

#!/usr/bin/env bash
# Builds the tests with AddressSanitizer+UndefinedBehaviorSanitizer and with ThreadSanitizer, and
# runs them, through the CMake presets "asan-ubsan" and "tsan" (CMakePresets.json). Any
# sanitizer report fails the run.
#
# asan-ubsan builds everything with AddressSanitizer at -O1, and the library's own code (brine,
# its codecs and transports, brine::testing) with UndefinedBehaviorSanitizer too
# (BRINE_SANITIZE_LIBRARY): UBSan more than doubled the compile time of every test file for
# checks of test code, and tools/fuzz.sh runs the decoders under UBSan as well.
# The presets skip the install and compile-fail tests (they check the build, not run time). Of
# the transport x codec grids they run each test body over every codec on tcp4 and over every
# other transport implementation once (unix, tls4, zmq_tcp, mem, zmq_inproc, udp4, unixgram, one
# codec each, in turn): codecs and channels are separate layers, and tcp6, abstract, tls6, zmq_ipc
# and udp6 run the same channel code as tcp4, unix, tls4, zmq_tcp and udp4 with another address.
# The plain build runs the whole grid.
# Under TSan the grids run tcp4 with one codec too (threads do not depend on the codec; ASan
# covers each codec's memory), and they also skip the single-threaded codec tests (DecodedSize too) (protobuf's map code
# in its headers changes under TSan and no longer matches the uninstrumented libprotobuf, which
# crashes in maps) and the zmq+inproc runs (inproc passes message buffers between threads through
# libzmq's lock-free pipes, which TSan cannot see). TSan ignores what uninstrumented libraries
# (libzmq, OpenSSL) do inside their own calls (ignore_noninstrumented_modules): matching each
# such report against tools/tsan.supp stalled libzmq's I/O thread for up to a second.
# (The presets' exclude filters spell the transport_codec names out flat: CMake's regular
# expressions take at most 9 parenthesised groups, and a longer one silently matches nothing.)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
for preset in asan-ubsan tsan; do
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$(nproc)"
  ctest --preset "$preset"
done

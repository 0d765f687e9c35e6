#!/usr/bin/env bash
# tools/fuzz.sh [SECONDS]: builds the libFuzzer targets with clang (ASan+UBSan) and runs each on
# its seed corpus for SECONDS (default 20). New inputs go to a scratch copy of the corpus; a crash
# fails the run and leaves its input in build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
tools/install-deps.sh
command -v clang++ >/dev/null || { apt-get update -qq && apt-get install -y -qq clang libclang-rt-14-dev; }
dir=build-fuzz
CXX=clang++ cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBRINE_FUZZ=ON \
  -DBRINE_BUILD_BENCH=OFF -DBRINE_BUILD_EXAMPLES=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fsanitize-recover=pointer-overflow" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
# Every UB report stops the run, except those tools/ubsan.supp suppresses (third-party, with
# reasons): pointer-overflow is made recoverable only so that its suppression can apply.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$PWD/tools/ubsan.supp"
targets=(frame_parser cereal_decode protobuf_decode json_decode server_stream client_reply)
cmake --build "$dir" -j "$(nproc)" --target "${targets[@]/%/_fuzz}"
for t in "${targets[@]}"; do
  work="$dir/corpus-$t"
  rm -rf "$work" && mkdir -p "$work"
  echo "fuzz: $t for ${seconds}s"
  # pipefail: a crash (non-zero exit of the fuzzer) fails the script.
  (cd "$dir" && "./fuzz/${t}_fuzz" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=4096 \
    "corpus-$t" "../fuzz/corpus/$t" 2>&1 | tail -3)
done

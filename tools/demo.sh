#!/usr/bin/env bash
# tools/demo.sh BUILD_DIR
#   1. Remote objects: the bank server; C++ clients (cereal, json) and the stdlib-only Python
#      client each open an account (an object the server makes for them), use it, and leave: the
#      server prints the account closing.
#   2. Typed calls: one calculator server on every transport, one client process per endpoint
#      and codec (each also reads the server stream "primes").
#   3. Streams: a 16 MiB file put to a files server in chunks and got back, with progress.
#   4. Tools: the brine command (describe, call, a stream, ping, bench) and the HTTP front door
#      (curl on /healthz, a JSON call, /metrics; the status page's address for a browser).
# Servers bind port 0; their real endpoints are read from their output.
set -euo pipefail
build=${1:-build}
examples=$build/examples
sock=$(mktemp -u /tmp/brine-demo-XXXXXX.sock)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done' EXIT

# Reads "listening <uri>" lines from fd $1 until $2 URIs are known; echoes them, one per line.
read_endpoints() {
  local fd=$1 want=$2 line n=0
  while [ "$n" -lt "$want" ]; do
    if ! IFS= read -r -t 10 line <&"$fd"; then
      echo "demo: the server did not report its endpoints" >&2
      exit 1
    fi
    echo "server: $line" >&2
    echo "${line#listening }"
    n=$((n + 1))
  done
}

echo "== remote objects: examples/remote_objects =="
coproc BANK { exec "$examples/bank_server" --listen tcp://127.0.0.1:0; }
pids+=("$BANK_PID")
bank_fd=${BANK[0]}
bank_uri=$(read_endpoints "$bank_fd" 1)
for codec in cereal json; do
  echo "-- bank_client --codec $codec"
  "$examples/bank_client" --connect "$bank_uri" --codec "$codec" --owner "$codec-user"
  for _ in 1 2; do IFS= read -r -t 10 line <&"$bank_fd" && echo "bank server: $line"; done
done
echo "-- examples/python/brine_json.py (standard library only, json codec)"
python3 examples/python/brine_json.py bank "$bank_uri"
for _ in 1 2; do IFS= read -r -t 10 line <&"$bank_fd" && echo "bank server: $line"; done

echo
echo "== typed calls: examples/calculator, every transport and codec =="
coproc SERVER { exec "$examples/calculator_server" --listen tcp://127.0.0.1:0 \
  --listen "tcp://[::1]:0" --listen "unix://$sock" --listen "unix://@brine-demo-$$" \
  --listen zmq+tcp://127.0.0.1:0 --listen "zmq+ipc://$sock.zmq" \
  --listen udp://127.0.0.1:0 --listen "unixgram://$sock.dgram"; }
pids+=("$SERVER_PID")
mapfile -t uris < <(read_endpoints "${SERVER[0]}" 8)
for uri in "${uris[@]}"; do
  for codec in cereal protobuf json; do
    "$examples/calculator_client" --connect "$uri" --codec "$codec" --calls 2000
  done
done

echo
echo "== streams: examples/files, a chunked file transfer with progress =="
coproc FILES { exec "$examples/files_server" --listen tcp://127.0.0.1:0; }
pids+=("$FILES_PID")
files_uri=$(read_endpoints "${FILES[0]}" 1)
data=$(mktemp /tmp/brine-demo-file-XXXXXX)
back=$(mktemp /tmp/brine-demo-back-XXXXXX)
trap 'rm -f "$data" "$back"; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done' EXIT
head -c $((16 << 20)) /dev/urandom >"$data"
"$examples/files_client" --connect "$files_uri" put "$data" demo.bin
"$examples/files_client" --connect "$files_uri" get demo.bin "$back"
cmp "$data" "$back" && echo "the file came back byte for byte"

echo
echo "== tools: the brine command and the HTTP front door =="
coproc TOOLS { exec "$examples/calculator_server" --listen tcp://127.0.0.1:0 \
  --listen http://127.0.0.1:0; }
pids+=("$TOOLS_PID")
mapfile -t tool_uris < <(read_endpoints "${TOOLS[0]}" 2)
brine=$build/tools/brine/brine
tcp=${tool_uris[0]}
http=${tool_uris[1]}
run() { echo "\$ $*"; "$@"; }
echo "\$ $brine describe $tcp   (the first lines)"
described=$("$brine" describe "$tcp")
sed -n 1,12p <<<"$described"
run "$brine" call "$tcp" add '{"a":2,"b":3}'
run "$brine" call "$tcp" primes '{"value":20}'
echo "\$ $brine call $tcp divide '{\"numerator\":1,\"denominator\":0}'"
"$brine" call "$tcp" divide '{"numerator":1,"denominator":0}' || echo "(exit status $?)"
run "$brine" ping "$tcp" -c 3
run "$brine" bench "$tcp" add '{"a":1,"b":2}' --calls 2000 --concurrency 2
run curl -s "$http/healthz"
run curl -s -X POST "$http/v1/add" -d '{"a":20,"b":22}'
echo "\$ curl -s $http/metrics | grep -m 3 'method=\"add\"'"
metrics=$(curl -s "$http/metrics")
grep -m 3 'method="add"' <<<"$metrics"
echo "the status page: $http/ (open it in a browser while the server runs)"

#!/usr/bin/env bash
# tools/demo.sh BUILD_DIR: one calculator server process, one client process per endpoint and
# codec. The server binds port 0; its real endpoints are read from its output.
set -euo pipefail
build=${1:-build}
server=$build/examples/calculator_server
client=$build/examples/calculator_client
sock=$(mktemp -u /tmp/brine-demo-XXXXXX.sock)

coproc SERVER { exec "$server" --listen tcp://127.0.0.1:0 --listen "tcp://[::1]:0" \
  --listen "unix://$sock" --listen "unix://@brine-demo-$$" \
  --listen zmq+tcp://127.0.0.1:0 --listen "zmq+ipc://$sock.zmq"; }
server_pid=$SERVER_PID
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT

uris=()
while [ ${#uris[@]} -lt 6 ]; do
  if ! IFS= read -r -t 10 line <&"${SERVER[0]}"; then
    echo "demo: the server did not report its endpoints" >&2
    exit 1
  fi
  echo "server: $line"
  uris+=("${line#listening }")
done

for uri in "${uris[@]}"; do
  for codec in cereal protobuf; do
    "$client" --connect "$uri" --codec "$codec" --calls 2000
  done
done

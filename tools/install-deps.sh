#!/usr/bin/env bash
# Installs, with apt-get, whatever brine needs that is missing. Idempotent: when everything is
# there it changes nothing and touches no network.
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libasio-dev libcereal-dev rapidjson-dev libprotobuf-dev protobuf-compiler libtomlplusplus-dev
  libzmq3-dev cppzmq-dev libssl-dev openssl
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format python3
  libcli11-dev libhttp-parser-dev libzstd-dev liblz4-dev
  curl prometheus python3-prometheus-client chromium
  libgrpc++-dev protobuf-compiler-grpc capnproto libcapnp-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

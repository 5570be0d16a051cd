#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages only), then configures and
# builds Keel in ./build (Release). Safe to run again: it only installs and
# rebuilds what is needed.
#   scripts/setup.sh            build
#   KEEL_SANITIZE=ON scripts/setup.sh   build with ASan+UBSan into ./build-asan
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ ninja-build pkg-config libboost-dev libfmt-dev doctest-dev libxxhash-dev liblmdb-dev libabsl-dev libcli11-dev redis-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

build=build
extra=()
if [ "${KEEL_SANITIZE:-OFF}" = "ON" ]; then
  build=build-asan
  extra+=(-DKEEL_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
[ -f "$build/build.ninja" ] || cmake -S . -B "$build" -G Ninja "${extra[@]}" >/dev/null
cmake --build "$build" -- -j"$(nproc)"

#!/usr/bin/env bash
# Installs what kaharness needs on Debian 12 (as root, or with sudo available):
# the compiler and CMake, and the libraries of the chosen stack.
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  libnl-3-dev libnl-route-3-dev libnl-nf-3-dev libnl-idiag-3-dev
  libnftables-dev libpcap-dev zlib1g-dev
  libfmt-dev libspdlog-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev catch2
  python3-yaml   # tests: scripts/check-ci.py reads the CI examples in ci/
)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"

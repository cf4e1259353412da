#!/usr/bin/env bash
# Installs what a built kaharness needs to run on Debian 12, and nothing to build it
# with: the shared libraries it links (`ldd build/harness/kaharness`) and netbase
# (/etc/protocols and /etc/services: libnftables resolves "tcp" through them).
# For CI jobs and images that run a binary built elsewhere (ci/).
set -euo pipefail
packages=(
  libnl-3-200 libnl-route-3-200 libnl-nf-3-200 libnl-idiag-3-200
  libnftables1 libpcap0.8 zlib1g libfmt9 libspdlog1.10 libtomlplusplus3
  netbase
)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"

#!/usr/bin/env bash
# Installs what kaharness needs on Debian 12 (as root, or with sudo available):
# the compiler and CMake, the libraries of the chosen stack, and the real programs
# that cases/programs/ runs inside test namespaces.
#
# The programs' packages would start their services in the root namespace (a
# Redis, an sshd, an nginx listening on the machine). They must never run there:
# kaharness starts them itself, inside a case's namespaces. So the install runs
# behind a policy-rc.d that forbids every service start (exit 101, as Debian's
# invoke-rc.d reads it; an existing one is left as it is), and afterwards every
# service they enabled is disabled, for systemd and for sysvinit alike.
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  libnl-3-dev libnl-route-3-dev libnl-nf-3-dev libnl-idiag-3-dev
  libnftables-dev libpcap-dev zlib1g-dev
  libfmt-dev libspdlog-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev catch2
  python3-yaml   # tests: scripts/check-ci.py reads the CI examples in ci/
)
# The programs under test (harness/case/program.cc names the package of each).
programs=(
  redis-server haproxy postgresql postgresql-client openssh-server openssh-client
  socat nginx-light curl
  python3      # cases/programs/scanner-stale-connection.toml: http.server and http.client
)
# Their services, disabled after the install.
services=(redis-server haproxy postgresql ssh nginx)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# kaharness install-deps.sh: no service starts during the install\nexit 101\n' |
    $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  trap '$sudo rm -f "$policy"' EXIT
fi

$sudo apt-get update -qq
$sudo apt-get install -o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends "${packages[@]}" "${programs[@]}"

for s in "${services[@]}"; do
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now "$s" >/dev/null 2>&1 || true
  elif command -v systemctl >/dev/null; then
    $sudo systemctl disable "$s" >/dev/null 2>&1 || true  # no systemd running: the links only
  fi
  if [ -x "/etc/init.d/$s" ]; then
    $sudo update-rc.d "$s" disable >/dev/null 2>&1 || true
  fi
done
# sshd refuses to start without its privilege-separation directory; a case's sshd
# runs as root inside its namespace and needs it too.
$sudo mkdir -p /run/sshd

#!/usr/bin/env bash
# Set-up on a fresh Debian 12 machine: installs the packages, then builds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh

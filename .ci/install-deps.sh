#!/usr/bin/env bash
# Installs the Debian packages gemma3n builds and tests with (idempotent).
# Runs apt-get only for what is missing; uses sudo when not root.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-dev liblua5.4-dev lua5.4
      python3 python3-dev python3-numpy python3-setuptools python3-pip python3-pytest python3-venv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"

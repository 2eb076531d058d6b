#!/usr/bin/env bash
# Installs the Debian packages buildfs needs to build, test and run, when any is missing.
# Safe to run again: it does nothing when everything is present. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libfuse3-dev fuse3
  libostree-dev ostree
  libgit2-dev libglib2.0-dev
  nlohmann-json3-dev libcli11-dev libgtest-dev
  attr git strace patch
  e2fsprogs  # mke2fs -d for `buildfs disk create`; e2fsck and debugfs in the tests
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

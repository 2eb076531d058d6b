#!/usr/bin/env bash
# Installs what is missing and builds buildfs into build/ (all targets, or the
# ones named as arguments). Prints the binary's path.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/install-deps.sh" >&2
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$top/build" -j"$(nproc)" "${targets[@]}" >&2
echo "$top/build/tools/buildfs"

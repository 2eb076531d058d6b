#!/usr/bin/env bash
# Sets everything up and runs every test (unit and integration, real mounts).
# Needs root and /dev/fuse. Extra arguments go to ctest (e.g. -R Differential).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/build.sh" >/dev/null
cd "$top/build"
status=0
ctest --output-on-failure --timeout 900 "$@" || status=$?
# No run leaves a mount behind, even a failed one.
awk '$3 ~ /^fuse/ && $2 ~ /buildfs/ {print $2}' /proc/mounts | while read -r m; do
  echo "test.sh: removing a stale mount: $m" >&2
  umount -l "$m" || true
done
exit $status

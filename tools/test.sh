#!/usr/bin/env bash
# Sets everything up and runs every test (unit and integration, real mounts).
# Needs root and /dev/fuse. Extra arguments go to ctest (e.g. -R Differential).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/build.sh" >/dev/null
# Every test of this run works below one directory of its own; the cleanup
# at the end touches only mounts below it, never anyone else's.
run_dir=$(mktemp -d /var/tmp/buildfs-run.XXXXXX)
chmod 755 "$run_dir"  # permission tests run as another user
export BUILDFS_TEST_TMPDIR=$run_dir
cleanup() {
  awk -v dir="$run_dir/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do
      echo "test.sh: removing a mount a test left behind: $m" >&2
      umount -l "$m" || true
    done
  rm -rf --one-file-system "$run_dir"
}
trap cleanup EXIT
cd "$top/build"
ctest --output-on-failure --timeout 900 "$@"

#!/usr/bin/env bash
# The demo: sets everything up, then runs the real job on the embedded
# example (examples/builder: four tiny components, made into local git
# repositories): init, new from the manifest, build, build again (nothing to
# do), branch, change one component on the branch, rebuild the branch (only
# that component and what depends on it), both results side by side, an
# earlier result mounted read-only, and a builddisk of a result that a
# branch writes privately.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
buildfs=$("$top/tools/build.sh" buildfs)
ws=${BUILDFS_DEMO_WS:-/var/tmp/buildfs-demo}
src=$ws-src

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; }
cleanup() {
  cd /
  for m in $(awk -v ws="$ws/" 'index($2, ws) == 1 && $3 ~ /^fuse/ {print $2}' /proc/mounts); do
    umount -l "$m" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
git_() { git -c user.name=demo -c user.email=demo@localhost -C "$src/hello" "$@"; }

cleanup
rm -rf "$ws" "$src"
run "$top/examples/builder/make-repos.sh" "$src"
run "$buildfs" init "$ws"
cd "$ws"
run "$buildfs" new main --manifest "$src/manifest.json"
cd main
run "$buildfs" build
run ./result/usr/bin/greet-all
run "$buildfs" build    # nothing changed: every component is reused
run "$buildfs" log --builds

step "a fix of hello on a git branch of its own, and the branch build uses it"
cd "$ws"
run "$buildfs" branch main fix
run "$buildfs" mount fix
git_ checkout -q -b fix
sed -i 's/hello program/hello program, fixed/' "$src/hello/hello.c"
git_ commit -q -am "hello: the fix"
git_ checkout -q main
step "sed -i 's/\"local:hello\", \"branch\": \"main\"/\"local:hello\", \"branch\": \"fix\"/' fix/manifest.json"
sed -i 's/"local:hello", "branch": "main"/"local:hello", "branch": "fix"/' fix/manifest.json
cd fix
run "$buildfs" build    # only hello and greeter-tools build
cd "$ws"
step "side by side: main/result and fix/result"
paste <(main/result/usr/bin/greet-all) <(fix/result/usr/bin/greet-all) | column -t -s $'\t'
run "$buildfs" status fix result
run "$buildfs" list

number=$("$buildfs" log main --builds --json | sed -n 's/.*"number": "\(.*\)".*/\1/p' | head -n 1)
run "$buildfs" mount "main@$number"    # that result, read-only, no checkout
run ls "main@$number/usr/bin"
run "$buildfs" umount "main@$number"

run "$buildfs" disk create hello --size 128M --from-result -b fix
step "e2fsck -fy main/cache/disks/hello.img    # main writes its own copy of the shared image"
e2fsck -fy main/cache/disks/hello.img
run "$buildfs" disk list -b main
run "$buildfs" umount main
run "$buildfs" umount fix
printf "\nThe demo workspace is %s (sources in %s): try %s -C %s list\n" "$ws" "$src" "$buildfs" "$ws"
printf "(cmake --install %s/build puts buildfs on your PATH)\n" "$top"

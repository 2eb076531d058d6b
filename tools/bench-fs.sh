#!/usr/bin/env bash
# Benchmarks a build directory on buildfs against native ext4, kernel overlayfs
# and fuse-overlayfs over the same tree (by default the Linux 6.1 source from
# Debian's linux-source-6.1, ~84,000 entries), side by side in one invocation:
#   mount, stat walk, read walk, git status (cold, warm), create 20,000 small
#   files, a bounded kernel compile, read of a big file (cold, warm), the
#   copy-up of a 4 KiB write into it, a scattered rewrite of 1 % of it and a
#   read after that, and the first write into a dirty 1 GiB file after a branch.
# Every system is mounted fresh for every run; runs are interleaved (run 1 of
# every system, then run 2, ...). Prints one Markdown table of medians and
# ratios to native. Needs root, /dev/fuse and kernel overlayfs. See --help.
set -euo pipefail
export LC_ALL=C

usage() {
  cat <<'EOF'
Usage: tools/bench-fs.sh [OPTIONS]

Times the same workloads on a build directory of four systems, side by side:
  native          the tree itself on its own filesystem (ext4 here)
  overlayfs       kernel overlayfs: lowerdir=TREE, fresh upperdir/workdir per run
  fuse-overlayfs  fuse-overlayfs (Debian package fuse-overlayfs), same layers
  buildfs         a build branched from the prepared build `base` per run:
                  buildfs branch base runN; buildfs mount runN (then umount, rm)
and prints one Markdown table on stdout: for each workload the median seconds
of each system and, for every system but native, its ratio to native.
Progress lines ("run 2/3 overlayfs: stat ... 1.234 s") go to stderr.

How it runs: runs are interleaved (run 1 of every system, then run 2 of every
system, ...). In each run every system is mounted fresh twice: once over the
tree for mount, stat, read, git status, create and compile (in that order, in
the same mount), once over the big file for big-read and copy-up (and once
more for copy-up-beside); after each the mount is removed with its private
layer (buildfs: umount, rm). native
runs the read-only workloads in the tree itself and writes into fresh
directories in DIR/run/ (the same filesystem as DIR/data).

Options:
  --runs N             runs per system (default 3); the figure is the median
  --dir DIR            work directory (default /var/tmp/buildfs-benchfs); its
                       data/ is prepared once and reused by later invocations
  --tree DIR           use this tree instead of the Linux source (e.g. a small
                       one for a quick trial); a git repository is made in it
                       if it has none (git init; git add -A; git commit)
  --buildfs BIN        buildfs binary (default: build/tools/buildfs of the
                       checkout holding this script)
  --json FILE          also write every figure (each run's sample, medians,
                       ratios, peak RSS, versions) as JSON to FILE
  --only LIST          comma-separated workloads to run (names below; also
                       git-status = both git rows, big-read = both big rows)
  --systems LIST       comma-separated systems (default
                       native,overlayfs,fuse-overlayfs,buildfs); without
                       native no ratios are shown
  --skip-compile       skip the compile workload (its row says skipped)
  --compile-target T   make target(s) of the compile, space- or
                       comma-separated (default "kernel/ mm/ lib/", see below)
  --big-mib N          size of the big file in MiB (default 2048)
  --dirty-mib N        size of the dirty file of branch-write (default 1024)
  -h, --help           this help
Options taking a value also take the form --option=value.

Workloads (rows of the table, in the order they run; --only takes these names):
  mount              time of the mount command (overlayfs: mount -t overlay;
                     fuse-overlayfs: fuse-overlayfs -o ...; buildfs: buildfs
                     mount, which returns once the mount answers); native: "-"
  stat               find . -path ./cache -prune -o -printf '%i %s %m %T@\n'
                     over the whole tree, page cache dropped first
  read               tar -cf - --exclude=./cache . | cat >/dev/null over the
                     whole tree (not -f /dev/null: GNU tar then skips reading
                     the data), page cache dropped first
  git-status-first   git status --porcelain in the tree's root, page cache
                     dropped first
  git-status-second  the same again at once, in the same mount
  create             tar -xf DIR/data/small.tar (20,000 files of 100-4000 bytes
                     in 200 directories) into a fresh directory in the mount
                     (native: a fresh directory in DIR/run/); no sync; the
                     archive is read into the page cache first
  compile            make O=OUT defconfig (not timed), page cache dropped, then
                     make -jNPROC O=OUT TARGET, timed; OUT is inside the mount
                     (native: a fresh directory in DIR/run/, source = the
                     tree). Needs a Linux tree and build-essential flex bison
                     bc libelf-dev libssl-dev (installed with apt-get when
                     missing); when it cannot run the row says why
  big-read-cold      dd if=big.img of=/dev/null bs=1M, page cache dropped first;
                     big.img is DIR/data/big/big.img (--big-mib MiB, random)
                     seen through a second mount made for it per run
                     (overlayfs/fuse-overlayfs: lowerdir=DIR/data/big;
                     buildfs: the build bigbase branched as bigN)
  big-read-warm      the same again at once
  copy-up            dd if=/dev/zero of=big.img bs=4k count=1 seek=1000
                     conv=notrunc in that mount, page cache dropped first (the
                     whole copy-up, not its write-back: no sync). native has no
                     copy-up: the same dd into the native file itself (its
                     content does not matter to the benchmark)
  copy-up bytes      (comes with copy-up) what that write added to the private
                     layer: disk space (du -sB1 --exclude=.buildfs-bases) of
                     the upper directory after minus before, in MiB (buildfs:
                     WS/.buildfs/builds/bigN/upper; its .buildfs-bases holds
                     hard links to the files chunked copies read from, which
                     take no new space); no ratio
  rewrite-1pct       then, in the same mount: 1 % of big.img rewritten in
                     64 KiB writes at scattered offsets (one perl process,
                     fixed sequence; no sync)
  rewrite-1pct bytes (comes with it) what the rewrite added, as copy-up bytes
  big-read-after     dd if=big.img of=/dev/null bs=1M after the rewrite, page
                     cache dropped first
  branch-write       then, in the same mount: dirty.img (--dirty-mib MiB,
                     written and synced in the mount, so in the private layer)
                     is "branched" and written: buildfs branch bigN bigNb, then
                     a 4 KiB write into dirty.img in bigN (its private layer is
                     frozen by the branch); overlayfs and fuse-overlayfs: the
                     mount is remade with its upper as the top lower layer and
                     a new upper (what a branch is there), then the same write;
                     page cache dropped first. native: the write alone
  branch-write bytes (comes with it) what that write added, as copy-up bytes
  copy-up-beside     mkdir, create and stat of a new file beside big.img,
                     started 0.3 s into the same dd (page cache dropped first)
                     on a fresh mount: how long other requests wait while a
                     big file is copied up (native: in a fresh directory
                     beside the native file)
  ls-wide-cold       ls -l of one directory of 100,000 empty files
                     (DIR/data/wide) through a third mount made for it per run
                     (buildfs: the build widebase branched as wideN), page
                     cache dropped first
  ls-wide-warm       the same again at once

The ratio to native is the MEDIAN OVER RUNS OF THE PER-RUN RATIO (run k of a
system divided by run k of native; runs are interleaved, so each ratio compares
measurements made close together in time), not the ratio of the medians. A
cell whose workload failed in any run says "failed" and names the log of the
failure (in DIR/log/; the JSON has every error). Below the table: the peak RSS (VmHWM in /proc/PID/status) of the
buildfs daemon (the process whose command line holds buildfs and --daemon)
and of fuse-overlayfs after the walk workloads (stat, read, git status), the
date, kernel, CPU count and versions.

Data, prepared once under DIR/data and reused (delete a part to redo it):
  linux/        the tree: /usr/src/linux-source-6.1.tar.xz extracted (the
                package linux-source-6.1 is installed with apt-get if missing),
                with a git repository made in it (git init, add -A, commit,
                gc) and /cache/ in .git/info/exclude (buildfs shows the
                workspace's shared cache at cache/ in every mount)
  big/big.img   the big file (from /dev/urandom)
  wide/         100,000 empty files f000000..f099999 in one directory
  small.tar     the archive of the create workload
  ws/           the buildfs workspace: build `base` (buildfs new --from-dir
                TREE, mounted once to run git status in it so that git's index
                matches what the mount shows, then committed and unmounted) and
                build `bigbase` (from data/big) and `widebase` (from
                data/wide); remade when the tree's path or
                git HEAD or the big file's size changes (or when data/base.src
                or data/bigbase.src is deleted)
Only what the selected workloads need is prepared (e.g. --only big-read does
not touch the tree).
Per run: DIR/run/ holds the upper and work directories and mount points of the
overlay systems and the native write directories, all removed after each run;
DIR/log/ the output of every command (kept).

Compile target: make builds the prepare stage (syscall headers, objtool,
asm-offsets) and then every object of the named directories. With x86_64
defconfig on the 2-core machine it was chosen on, "kernel/sched/ mm/" (the
prepare stage, the 4 large scheduler units, mm/'s ~75 objects) took 27 s
natively with make -j2; the default "kernel/ mm/ lib/" is about 450 objects
(kernel/ ~210, mm/ ~75, lib/ ~170, counted with make -n), i.e. about 1.5-2
minutes there. Pick a longer or shorter list with --compile-target (fs/ adds
~290 objects, block/ ~45). Each run also pays a few seconds of untimed make
defconfig per system.

A full run (Linux tree, 3 runs, 4 systems) takes roughly 30-60 minutes plus
10-20 minutes of preparation the first time, and needs about 12 GB free in
DIR.
Page cache drops (sync; echo 3 >/proc/sys/vm/drop_caches) affect the whole
machine: run it on an otherwise idle machine.

DIR must be new, empty, or a work directory this script made (it holds
DIR/.bench-fs.lock). Every mount below DIR/run and DIR/data/ws (where the
script mounts) is unmounted on exit and on Ctrl-C; no other mount is
touched. Builds runN/bigN/bigNb/wideN left by an interrupted invocation are removed by the
next one. Needs root, /dev/fuse, kernel overlayfs, python3 and git.
EOF
}

top=$(cd "$(dirname "$0")/.." && pwd)
runs=3
dir=/var/tmp/buildfs-benchfs
tree=
buildfs="$top/build/tools/buildfs"
json=
only=
systems=native,overlayfs,fuse-overlayfs,buildfs
skip_compile=0
compile_target="kernel/ mm/ lib/"
big_mib=2048
dirty_mib=1024

all_systems=(native overlayfs fuse-overlayfs buildfs)
all_workloads=(mount stat read git-status-first git-status-second create compile
  big-read-cold big-read-warm copy-up rewrite-1pct big-read-after branch-write copy-up-beside
  ls-wide-cold ls-wide-warm)

bench_name=bench-fs
source "$(dirname "$0")/bench-lib.sh"
while [[ $# -gt 0 ]]; do
  if [[ $1 == --*=* ]]; then
    set -- "${1%%=*}" "${1#*=}" "${@:2}"
  fi
  case $1 in
    -h|--help) usage; exit 0 ;;
    --runs) need_arg "$@"; runs=$2; shift 2 ;;
    --dir) need_arg "$@"; dir=$2; shift 2 ;;
    --tree) need_arg "$@"; tree=$2; shift 2 ;;
    --buildfs) need_arg "$@"; buildfs=$2; shift 2 ;;
    --json) need_arg "$@"; json=$2; shift 2 ;;
    --only) need_arg "$@"; only=$2; shift 2 ;;
    --systems) need_arg "$@"; systems=$2; shift 2 ;;
    --skip-compile) skip_compile=1; shift ;;
    --compile-target) need_arg "$@"; compile_target=$2; shift 2 ;;
    --big-mib) need_arg "$@"; big_mib=$2; shift 2 ;;
    --dirty-mib) need_arg "$@"; dirty_mib=$2; shift 2 ;;
    *) fail_usage "unknown option '$1' (see --help)" ;;
  esac
done
for v in runs big_mib dirty_mib; do
  [[ ${!v} =~ ^[1-9][0-9]{0,6}$ ]] || fail_usage "--${v//_/-} must be a positive integer, not '${!v}'"
done

# --systems: known names, no repeats, in the canonical column order.
declare -A want_sys=()
IFS=, read -r -a list <<<"$systems"
for s in "${list[@]}"; do
  s=${s// /}
  [[ -n $s ]] || continue
  [[ " ${all_systems[*]} " == *" $s "* ]] || fail_usage "--systems: unknown system '$s' (known: ${all_systems[*]})"
  want_sys[$s]=1
done
sys_list=()
for s in "${all_systems[@]}"; do [[ -n ${want_sys[$s]:-} ]] && sys_list+=("$s"); done
[[ ${#sys_list[@]} -gt 0 ]] || fail_usage "--systems: no system given"

# --only: known names (and the aliases git-status, big-read, copy-up-bytes).
declare -A sel=()
if [[ -z $only ]]; then
  for w in "${all_workloads[@]}"; do sel[$w]=1; done
else
  IFS=, read -r -a list <<<"$only"
  for w in "${list[@]}"; do
    w=${w// /}
    case $w in
      '') ;;
      git-status) sel[git-status-first]=1; sel[git-status-second]=1 ;;
      big-read) sel[big-read-cold]=1; sel[big-read-warm]=1 ;;
      ls-wide) sel[ls-wide-cold]=1; sel[ls-wide-warm]=1 ;;
      copy-up-bytes) sel[copy-up]=1 ;;
      rewrite-1pct-bytes) sel[rewrite-1pct]=1 ;;
      branch-write-bytes) sel[branch-write]=1 ;;
      *)
        [[ " ${all_workloads[*]} " == *" $w "* ]] ||
          fail_usage "--only: unknown workload '$w' (known: ${all_workloads[*]}, git-status, big-read, ls-wide)"
        sel[$w]=1 ;;
    esac
  done
  [[ ${#sel[@]} -gt 0 ]] || fail_usage "--only: no workload given"
fi
selected() { [[ -n ${sel[$1]:-} ]]; }
# What has to be mounted: the tree (its workloads; the compile unless skipped)
# and the big file.
tree_work=0 big_work=0 wide_work=0
for w in mount stat read git-status-first git-status-second create; do selected "$w" && tree_work=1; done
selected compile && [[ $skip_compile -eq 0 ]] && tree_work=1
for w in big-read-cold big-read-warm copy-up rewrite-1pct big-read-after branch-write copy-up-beside; do
  selected "$w" && big_work=1
done
for w in ls-wide-cold ls-wide-warm; do selected "$w" && wide_work=1; done
compile_target=${compile_target//,/ }
read -r -a compile_args <<<"$compile_target"
[[ ${#compile_args[@]} -gt 0 ]] || fail_usage "--compile-target: no target given"
for t in "${compile_args[@]}"; do
  [[ $t != -* ]] || fail_usage "--compile-target: '$t' is an option, not a make target"
done
# Paths go into mount options (lowerdir=...,upperdir=...) and are matched
# against /proc/mounts: no whitespace, commas, colons or backslashes.
for v in dir tree; do
  [[ ${!v} != *[[:space:],:\\]* ]] || fail_usage "--$v: the path may not hold whitespace, ',', ':' or '\\': '${!v}'"
done
if [[ -n $json ]]; then
  [[ -d $(dirname "$json") ]] || fail_usage "--json: no directory $(dirname "$json")"
  json=$(cd "$(dirname "$json")" && pwd -P)/$(basename "$json")
fi

has() { [[ -n ${want_sys[$1]:-} ]]; }
note() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

[[ $EUID -eq 0 ]] || die "needs root (mounts, dropping the page cache)"
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash 5 or newer (EPOCHREALTIME)"
command -v python3 >/dev/null || die "python3 is missing (apt-get install python3)"
command -v git >/dev/null || die "git is missing (apt-get install git)"
[[ -w /proc/sys/vm/drop_caches ]] || die "cannot write /proc/sys/vm/drop_caches (needed to drop the page cache)"
if has buildfs; then
  [[ -x $buildfs ]] || die "no buildfs binary at $buildfs (see --buildfs)"
  buildfs=$(cd "$(dirname "$buildfs")" && pwd -P)/$(basename "$buildfs")
fi
if has buildfs || has fuse-overlayfs; then
  [[ -c /dev/fuse ]] || die "no /dev/fuse (FUSE is needed for buildfs and fuse-overlayfs)"
fi
if has overlayfs && ! grep -qw overlay /proc/filesystems; then
  modprobe overlay 2>/dev/null || true
  grep -qw overlay /proc/filesystems || die "the kernel has no overlayfs (modprobe overlay failed)"
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
data=$dir/data
run_dir=$dir/run
log_dir=$dir/log
ws=$data/ws
samples=$log_dir/samples.tsv
jobs=$(nproc)

claim_work_dir "$dir" bench-fs

# --- cleanup: unmount what is mounted where it mounts (and nothing else) -----
unmount_all() {  # the overlay mounts below DIR/run, the builds' below DIR/data/ws
  local m
  for m in $(mounts_below "$run_dir") $(mounts_below "$ws"); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || true
  done
}
fresh_dir() { remove_tree "$1"; mkdir -p "$1"; }
cleaning=0
# The script's own stdout and stderr: a trap may run while a command's output
# is redirected to a log.
exec 7>&1 8>&2
on_exit() {
  local rc=$? b
  trap - INT TERM
  exec 1>&7 2>&8
  cd /
  [[ $cleaning -eq 0 ]] || exit $rc
  cleaning=1
  if [[ $rc -eq 130 || $rc -eq 143 ]]; then
    printf '\nbench-fs: interrupted; unmounting what it mounted below %s\n' "$dir" >&2
  fi
  unmount_all
  if has buildfs && [[ -d $ws/.buildfs ]]; then
    for b in $(run_builds 2>/dev/null); do
      timeout 120 "$buildfs" -C "$ws" rm --force "$b" >/dev/null 2>&1 || true
    done
  fi
  [[ -n $(mounts_below "$run_dir") ]] || rm -rf --one-file-system "$run_dir" 2>/dev/null || true
  if [[ -n $(mounts_below "$run_dir")$(mounts_below "$ws") ]]; then
    echo "bench-fs: warning: mounts left below $run_dir or $ws:" >&2
    mounts_below "$run_dir" >&2
    mounts_below "$ws" >&2
  fi
  exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bfs() { "$buildfs" -C "$ws" "$@"; }
# build names in the workspace, one a line
builds() {
  timeout 120 "$buildfs" -C "$ws" list --json | python3 -c 'import json, sys; [print(b["name"]) for b in json.load(sys.stdin)]'
}
run_builds() { builds | grep -E '^(run|big|wide)[0-9]+b?$' || true; }
build_exists() { builds | grep -x "$1" >/dev/null; }  # not -q: no SIGPIPE

# quiet CMD...: an untimed step that must work; a failure shows its output and stops.
quiet() {
  local rc=0
  "$@" >"$log_dir/last.out" 2>&1 || rc=$?
  { echo "### $* (exit $rc)"; cat "$log_dir/last.out"; } >>"$log_dir/all.out"
  if [[ $rc -ne 0 ]]; then
    echo "bench-fs: FAILED (exit $rc): $*" >&2
    tail -n 20 "$log_dir/last.out" | sed 's/^/  | /' >&2
    exit 1
  fi
}
apt_install() {  # PKG...: apt-get install; 1 when that fails
  note "installing $* (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$log_dir/apt.out" 2>&1 ||
    { apt-get update >>"$log_dir/apt.out" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$log_dir/apt.out" 2>&1; }
}
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
git_() { git -c safe.directory='*' "$@"; }

# --- start clean -------------------------------------------------------------
unmount_all
remove_tree "$run_dir"
remove_tree "$log_dir"
mkdir -p "$data" "$run_dir" "$log_dir"
: >"$samples"
started=$(date '+%Y-%m-%d %H:%M:%S %z')

if has fuse-overlayfs && ! command -v fuse-overlayfs >/dev/null; then
  apt_install fuse-overlayfs || die "cannot install fuse-overlayfs (apt-get failed, see $log_dir/apt.out)"
fi

# --- data: the tree ------------------------------------------------------------
tree_entries=0 tree_bytes=0 tree_head=
if [[ $tree_work -eq 0 ]]; then
  tree=  # not used: only the big file's workloads run
elif [[ -z $tree ]]; then
  tree=$data/linux
  if [[ ! -d $tree ]]; then
    tarball=/usr/src/linux-source-6.1.tar.xz
    if [[ ! -f $tarball ]]; then
      apt_install linux-source-6.1 || die "cannot install linux-source-6.1 (apt-get failed, see $log_dir/apt.out)"
      [[ -f $tarball ]] || die "linux-source-6.1 is installed but $tarball is missing"
    fi
    note "extracting $tarball into $tree (once)"
    fresh_dir "$data/linux.tmp"
    tar -xf "$tarball" -C "$data/linux.tmp"
    [[ -d $data/linux.tmp/linux-source-6.1 ]] || die "$tarball did not extract to linux-source-6.1/"
    mv "$data/linux.tmp/linux-source-6.1" "$tree"
    rmdir "$data/linux.tmp"
  fi
fi
if [[ -n $tree ]]; then
  [[ -d $tree ]] || die "no tree at $tree"
  tree=$(cd "$tree" && pwd -P)
  [[ -n $(ls -A "$tree") ]] || die "the tree $tree is empty"
  case "$tree/" in
    "$run_dir/"*|"$ws/"*|"$log_dir/"*|"$data/big/"*) die "--tree may not be inside $run_dir, $ws, $log_dir or $data/big" ;;
  esac
  case "$dir/" in "$tree/"*) die "--dir may not be inside the tree $tree" ;; esac
  [[ -z $(mounts_below "$tree") ]] || die "something is mounted inside the tree $tree"

  # The tree's git repository: made once (git init, add -A, commit, gc) unless
  # the tree is already the top of one.
  if [[ -e $tree/.git ]]; then
    [[ $(git_ -C "$tree" rev-parse --show-toplevel 2>/dev/null) == "$tree" ]] ||
      die "$tree/.git exists but git does not see $tree as a repository's top"
  else
    note "git init in $tree (once)"
    quiet git_ -C "$tree" init -q
  fi
  if ! git_ -C "$tree" rev-parse -q --verify HEAD >/dev/null; then
    note "git add -A; git commit; git gc in $tree (once)"
    rm -f "$tree/.git/index.lock"
    # --force: Debian's linux-source ships a .gitignore that ignores every
    # top-level entry (/*): the whole tree is what git status must check.
    quiet git_ -C "$tree" add --force -A
    quiet git_ -C "$tree" -c user.name=bench-fs -c user.email=bench-fs@localhost -c commit.gpgsign=false \
      commit -q --no-verify -m "bench-fs: the tree"
    quiet git_ -C "$tree" gc --quiet --prune=now
  fi
  exclude=$(cd "$tree" && git_ rev-parse --path-format=absolute --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")"
  grep -qx '/cache/' "$exclude" 2>/dev/null || echo '/cache/' >>"$exclude"
  tree_head=$(git_ -C "$tree" rev-parse HEAD)
  # Refreshes the index once, so that native starts from a fresh one too.
  quiet git_ -C "$tree" status --porcelain
  native_dirty=$(wc -l <"$log_dir/last.out")
  [[ $native_dirty -eq 0 ]] ||
    echo "bench-fs: warning: git status in $tree shows $native_dirty changed or untracked entries" >&2
  tree_entries=$(find "$tree" | wc -l)
  tree_bytes=$(du -sb "$tree" | cut -f1)
  note "tree $tree: $tree_entries entries, $((tree_bytes / 1048576)) MiB, git HEAD ${tree_head:0:12}"
fi

# --- data: the big file, the small-files archive ---------------------------------
big_dir=$data/big
big=$big_dir/big.img
big_bytes=$((big_mib * 1048576))
if [[ $big_work -eq 1 ]] && [[ ! -f $big || $(stat -c %s "$big") -ne $big_bytes ||
  -n $(find "$big_dir" -mindepth 1 -maxdepth 1 ! -name big.img) ]]; then
  note "writing $big ($big_mib MiB from /dev/urandom)"
  fresh_dir "$big_dir"
  rm -f "$data/bigbase.src"
  dd if=/dev/urandom of="$data/big.img.tmp" bs=1M count="$big_mib" iflag=fullblock status=none
  mv "$data/big.img.tmp" "$big"
fi
wide_dir=$data/wide
if [[ $wide_work -eq 1 ]] && [[ ! -f $data/wide.done ]]; then
  note "writing $wide_dir (100,000 empty files in one directory)"
  rm -f "$data/widebase.src"
  fresh_dir "$data/wide.tmp"
  (cd "$data/wide.tmp" && seq -f 'f%06g' 0 99999 | xargs touch)
  [[ ! -e $wide_dir ]] || remove_tree "$wide_dir"
  mv "$data/wide.tmp" "$wide_dir"
  touch "$data/wide.done"
fi
small_tar=$data/small.tar
if selected create && [[ ! -f $small_tar ]]; then
  note "writing $small_tar (20,000 files of 100-4000 bytes in 200 directories)"
  fresh_dir "$data/small.tmp"
  python3 - "$data/small.tmp/small" <<'EOF'
import os, random, sys
rng = random.Random(1)
root = sys.argv[1]
for d in range(200):
    p = os.path.join(root, "d%03d" % d)
    os.makedirs(p)
    for f in range(100):
        with open(os.path.join(p, "f%03d.txt" % f), "wb") as fh:
            fh.write(rng.randbytes(rng.randint(100, 4000)))
EOF
  tar -cf "$data/small.tar.tmp" -C "$data/small.tmp" small
  mv "$data/small.tar.tmp" "$small_tar"
  remove_tree "$data/small.tmp"
fi

# --- data: the buildfs workspace -------------------------------------------------
# import_once NAME DIR WANT: buildfs new NAME --from-dir DIR, unless NAME
# exists and data/NAME.src records WANT (what it was made from).
import_once() {
  local name=$1 dir=$2 want=$3
  if build_exists "$name" && [[ $(cat "$data/$name.src" 2>/dev/null) == "$want" ]]; then return 0; fi
  rm -f "$data/$name.src"
  if build_exists "$name"; then quiet bfs rm --force "$name"; fi
  note "buildfs new $name --from-dir $dir (once)"
  quiet bfs new "$name" --from-dir "$dir"
  echo "$want" >"$data/$name.src"
}

if has buildfs; then
  [[ -d $ws/.buildfs ]] || quiet "$buildfs" init "$ws"
  for b in $(run_builds); do
    note "removing build $b left by an earlier invocation"
    quiet bfs rm --force "$b"
  done
  want_base="$tree $tree_head"
  if [[ $tree_work -eq 1 ]] && { ! build_exists base || [[ $(cat "$data/base.src" 2>/dev/null) != "$want_base" ]]; }; then
    rm -f "$data/base.src"
    if build_exists base; then quiet bfs rm --force base; fi
    note "buildfs new base --from-dir $tree (once)"
    quiet bfs new base --from-dir "$tree"
    note "git status in the mounted base, then buildfs commit base (once)"
    quiet bfs mount base
    quiet git_ -C "$ws/base" status --porcelain
    n=$(grep -cvx '?? cache/' "$log_dir/last.out" || true)
    [[ $n -eq 0 ]] || echo "bench-fs: warning: git status in the buildfs build base shows $n changed or untracked entries" >&2
    quiet bfs commit base -m prepared
    quiet bfs umount base
    echo "$want_base" >"$data/base.src"
  fi
  [[ $big_work -eq 0 ]] || import_once bigbase "$big_dir" "$big_bytes"
  [[ $wide_work -eq 0 ]] || import_once widebase "$wide_dir" wide
fi

# --- can the compile run? ------------------------------------------------------
compile_why=
if selected compile; then
  if [[ $skip_compile -eq 1 ]]; then
    compile_why="skipped (--skip-compile)"
  elif [[ ! -f $tree/Kconfig || ! -f $tree/Kbuild || ! -d $tree/arch ]]; then
    compile_why="cannot run: the tree is not a Linux source tree"
  else
    missing=()
    for p in build-essential flex bison bc libelf-dev libssl-dev; do installed "$p" || missing+=("$p"); done
    if [[ ${#missing[@]} -gt 0 ]] && ! apt_install "${missing[@]}"; then
      compile_why="cannot run: apt-get install ${missing[*]} failed"
    fi
  fi
  [[ -z $compile_why ]] || note "compile: $compile_why"
fi

# --- measuring -------------------------------------------------------------------
i=0 sys='' sys_root='' sys_upper='' sys_build='' sys_pid=
record() {  # METRIC KIND VALUE [ERROR]: one sample of run $i, system $sys
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$sys" "$1" "$2" "$3" "${4:-}" >>"$samples"
}
# run_timed CWD FAIL_ROW FAIL_TEXT CMD...: runs CMD in CWD (output to the
# log) and sets $elapsed; a failure is recorded in row FAIL_ROW, with
# FAIL_TEXT and its log, and returns 1.
run_timed() {
  local cwd=$1 fail_row=$2 fail_text=$3 t0 t1 rc=0 f
  shift 3
  cd "$cwd" || die "run $i $sys: cannot cd to $cwd"
  t0=$EPOCHREALTIME
  "$@" >"$log_dir/last.out" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  cd /
  { echo "### run $i $sys $fail_row: $* (exit $rc)"; cat "$log_dir/last.out"; } >>"$log_dir/all.out"
  if [[ $rc -ne 0 ]]; then
    f=$log_dir/failed-run$i-$sys-$fail_row.log
    cp "$log_dir/last.out" "$f"
    record "$fail_row" s "" "${fail_text}exit $rc, output in $f"
    echo "FAILED (exit $rc), output in $f" >&2
    return 1
  fi
  elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
}
# measure NAME CWD CMD...: times CMD (run in CWD, output to the log) as sample
# NAME; a failure is recorded with its log and returns 1.
measure() {
  local name=$1 cwd=$2
  shift 2
  printf 'run %d/%d %s: %s ... ' "$i" "$runs" "$sys" "$name" >&2
  run_timed "$cwd" "$name" "" "$@" || return 1
  record "$name" s "$elapsed"
  echo "$elapsed s" >&2
}
w_stat() { find . -path ./cache -prune -o -printf '%i %s %m %T@\n' >/dev/null; }
w_read() { tar -cf - --exclude=./cache . | cat >/dev/null; }
w_git() { git_ status --porcelain >/dev/null; }
w_create() { tar -xf "$small_tar" -C "$1"; }
w_defconfig() { make O="$1" defconfig; }
w_compile() { make -j"$jobs" O="$1" "${compile_args[@]}"; }
w_big_read() { dd if="$1" of=/dev/null bs=1M status=none; }
w_ls() { ls -l >/dev/null; }
w_copy_up() { dd if=/dev/zero of="$1" bs=4k count=1 seek=1000 conv=notrunc status=none; }
w_rewrite() {  # FILE: 1 % of it in 64 KiB writes at scattered offsets
  perl -e '
    my ($path) = @ARGV;
    open(my $f, "+<", $path) or die "$path: $!\n";
    my $blocks = int((-s $path) / 65536);
    my $n = int($blocks / 100) || 1;
    my $buf = "x" x 65536;
    my $x = 12345;
    for (1 .. $n) {
      $x = ($x * 1103515245 + 12345) % 2147483648;
      sysseek($f, ($x % $blocks) * 65536, 0) or die "seek: $!\n";
      syswrite($f, $buf) == 65536 or die "write: $!\n";
    }' "$1"
}
private_bytes() { du -sB1 --exclude=.buildfs-bases "$1" | cut -f1; }
w_beside() { mkdir "$1/beside" && touch "$1/beside/x" && stat "$1/beside/x" >/dev/null; }

# find_pid PROG ARG...: the process whose argv[0] ends in PROG and whose other
# arguments include every ARG.
find_pid() {
  local prog=$1 p a x found
  shift
  local -a argv
  for p in /proc/[0-9]*; do
    mapfile -d '' -t argv 2>/dev/null <"$p/cmdline" || continue
    [[ ${#argv[@]} -gt 0 && ${argv[0]##*/} == "$prog" ]] || continue
    for a in "$@"; do
      found=0
      for x in "${argv[@]:1}"; do [[ $x == "$a" ]] && { found=1; break; }; done
      [[ $found -eq 1 ]] || continue 2
    done
    echo "${p#/proc/}"
    return 0
  done
  return 1
}
record_rss() {  # METRIC: VmHWM of the daemon serving the current mount
  local kib
  [[ -n $sys_pid ]] || return 0
  kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$sys_pid/status" 2>/dev/null || true)
  if [[ -n $kib ]]; then
    record "$1" kib "$kib"
  else
    record "$1" kib "" "daemon $sys_pid is gone"
  fi
}
umount_retry() {  # MOUNTPOINT
  local k
  for k in 1 2 3 4 5; do
    umount "$1" 2>>"$log_dir/all.out" && return 0
    sleep 1
  done
  die "cannot unmount $1 (busy?)"
}

# setup KIND (tree|big): mounts the current system fresh over the tree or over
# the big file's directory; sets sys_root (the directory to work in), sys_upper
# (its private layer), sys_pid (the FUSE daemon). The tree's mount is timed.
setup() {
  local kind=$1 lower=$tree name from base rc=0 t0 t1
  local -a cmd
  case $kind in big) lower=$big_dir ;; wide) lower=$wide_dir ;; esac
  sys_upper='' sys_build='' sys_pid=
  case $sys in
    native)
      sys_root=$lower
      fresh_dir "$run_dir/native-$kind"
      return 0 ;;
    overlayfs|fuse-overlayfs)
      base=$run_dir/$sys-$kind
      fresh_dir "$base"
      mkdir "$base/upper" "$base/work" "$base/mnt"
      sys_root=$base/mnt sys_upper=$base/upper
      if [[ $sys == overlayfs ]]; then
        cmd=(mount -t overlay overlay -o "lowerdir=$lower,upperdir=$base/upper,workdir=$base/work" "$base/mnt")
      else
        cmd=(fuse-overlayfs -o "lowerdir=$lower,upperdir=$base/upper,workdir=$base/work" "$base/mnt")
      fi ;;
    buildfs)
      case $kind in
        tree) from=base name=run$i ;;
        big) from=bigbase name=big$i ;;
        wide) from=widebase name=wide$i ;;
      esac
      t0=$EPOCHREALTIME
      quiet bfs branch "$from" "$name"
      t1=$EPOCHREALTIME
      record "branch-$kind" s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')"
      sys_build=$name sys_root=$ws/$name sys_upper=$ws/.buildfs/builds/$name/upper
      cmd=(bfs mount "$name") ;;
  esac
  if [[ $kind == tree ]]; then
    measure mount / "${cmd[@]}" || rc=$?
  else
    t0=$EPOCHREALTIME
    "${cmd[@]}" >"$log_dir/last.out" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    cat "$log_dir/last.out" >>"$log_dir/all.out"
    [[ $rc -ne 0 ]] || record "$kind-mount" s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')"
  fi
  if [[ $rc -ne 0 ]]; then
    tail -n 20 "$log_dir/last.out" | sed 's/^/  | /' >&2
    die "run $i $sys: mounting $sys_root failed (exit $rc; log in $log_dir)"
  fi
  mountpoint -q "$sys_root" || die "run $i $sys: $sys_root is not a mount point after mounting"
  case $sys in
    buildfs) sys_pid=$(find_pid buildfs -C "$ws" mount --daemon "$sys_build") || sys_pid= ;;
    fuse-overlayfs) sys_pid=$(find_pid fuse-overlayfs "$sys_root") || sys_pid= ;;
  esac
  if [[ $sys == buildfs || $sys == fuse-overlayfs ]] && [[ -z $sys_pid ]]; then
    echo "bench-fs: warning: run $i $sys: no daemon process found for $sys_root (no peak RSS)" >&2
  fi
}
teardown() {  # KIND: unmounts and removes what setup made
  local kind=$1 k
  cd /
  case $sys in
    native) remove_tree "$run_dir/native-$kind" ;;
    overlayfs|fuse-overlayfs)
      umount_retry "$sys_root"
      if [[ -n $sys_pid ]]; then  # let fuse-overlayfs finish before its upper goes
        for ((k = 0; k < 100; k++)); do
          kill -0 "$sys_pid" 2>/dev/null || break
          sleep 0.1
        done
      fi
      remove_tree "$run_dir/$sys-$kind" ;;
    buildfs)
      quiet bfs umount "$sys_build"
      quiet bfs rm "$sys_build" ;;
  esac
}

tree_phase() {
  local out dest
  setup tree
  if selected stat; then drop_caches; measure stat "$sys_root" w_stat || true; fi
  if selected read; then drop_caches; measure read "$sys_root" w_read || true; fi
  if selected git-status-first || selected git-status-second; then
    drop_caches
    measure git-status-first "$sys_root" w_git || true
    measure git-status-second "$sys_root" w_git || true
    # What git sees (untimed): a changed-looking tree would make git slow.
    if (cd "$sys_root" && git_ status --porcelain) >"$log_dir/last.out" 2>&1; then
      record git-status-entries count "$(wc -l <"$log_dir/last.out")"
    fi
  fi
  if selected stat || selected read || selected git-status-first || selected git-status-second; then
    record_rss rss-after-walks
  fi
  if selected create; then
    if [[ $sys == native ]]; then dest=$run_dir/native-tree/create; else dest=$sys_root/bench-create; fi
    mkdir "$dest"
    cat "$small_tar" >/dev/null
    measure create / w_create "$dest" || true
  fi
  if selected compile && [[ -z $compile_why ]]; then
    if [[ $sys == native ]]; then out=$run_dir/native-tree/out; else out=$sys_root/bench-out; fi
    printf 'run %d/%d %s: compile: make defconfig (not timed) ... ' "$i" "$runs" "$sys" >&2
    if measure_quiet compile-defconfig "$sys_root" w_defconfig "$out"; then
      drop_caches
      measure compile "$sys_root" w_compile "$out" || true
    fi
  fi
  record_rss rss-after-tree
  teardown tree
}
# measure_quiet NAME CWD CMD...: like measure, but says only "done" and
# records a failure as the failure of the compile (the defconfig before it).
measure_quiet() {
  local name=$1 cwd=$2
  shift 2
  run_timed "$cwd" compile "make defconfig: " "$@" || return 1
  record "$name" s "$elapsed"
  echo "done" >&2
}

big_phase() {
  local file before after abefore aafter
  setup big
  file=$sys_root/big.img
  [[ $(stat -c %s "$file") -eq $big_bytes ]] || die "run $i $sys: $file is not $big_bytes bytes"
  if selected big-read-cold || selected big-read-warm; then
    drop_caches
    measure big-read-cold / w_big_read "$file" || true
    measure big-read-warm / w_big_read "$file" || true
  fi
  if selected copy-up; then
    [[ -z $sys_upper ]] || before=$(private_bytes "$sys_upper")
    drop_caches
    if measure copy-up / w_copy_up "$file" && [[ -n $sys_upper ]]; then
      sync
      record copy-up-bytes bytes "$(($(private_bytes "$sys_upper") - before))"
    fi
  fi
  if selected rewrite-1pct; then
    [[ -z $sys_upper ]] || before=$(private_bytes "$sys_upper")
    drop_caches
    if measure rewrite-1pct / w_rewrite "$file" && [[ -n $sys_upper ]]; then
      sync
      record rewrite-1pct-bytes bytes "$(($(private_bytes "$sys_upper") - before))"
    fi
  fi
  if selected big-read-after; then
    drop_caches
    measure big-read-after / w_big_read "$file" || true
  fi
  record_rss rss-after-big
  if selected branch-write; then branch_write; fi
  teardown big
  if selected copy-up-beside; then
    local writer beside
    setup big
    file=$sys_root/big.img beside=$sys_root
    [[ $sys != native ]] || beside=$run_dir/native-big
    drop_caches
    w_copy_up "$file" & writer=$!
    sleep 0.3
    measure copy-up-beside / w_beside "$beside" || true
    wait "$writer" || true
    teardown big
  fi
}

# The first write into a dirty file after a branch (see --help, branch-write).
branch_write() {
  local dirty=$sys_root before base lower
  [[ $sys != native ]] || dirty=$run_dir/native-big
  dd if=/dev/urandom of="$dirty/dirty.img" bs=1M count="$dirty_mib" conv=fsync status=none
  case $sys in
    buildfs) quiet bfs branch "$sys_build" "${sys_build}b" ;;
    overlayfs|fuse-overlayfs)
      base=$run_dir/$sys-big
      umount_retry "$sys_root"
      mkdir "$base/upper2" "$base/work2"
      lower=$base/upper:$big_dir
      if [[ $sys == overlayfs ]]; then
        mount -t overlay overlay -o "lowerdir=$lower,upperdir=$base/upper2,workdir=$base/work2" "$sys_root"
      else
        fuse-overlayfs -o "lowerdir=$lower,upperdir=$base/upper2,workdir=$base/work2" "$sys_root"
        sys_pid=$(find_pid fuse-overlayfs "$sys_root") || sys_pid=
      fi
      sys_upper=$base/upper2 ;;
  esac
  [[ -z $sys_upper ]] || before=$(private_bytes "$sys_upper")
  drop_caches
  if measure branch-write / w_copy_up "$dirty/dirty.img" && [[ -n $sys_upper ]]; then
    sync
    record branch-write-bytes bytes "$(($(private_bytes "$sys_upper") - before))"
  fi
  [[ $sys != buildfs ]] || quiet bfs rm "${sys_build}b"
}

wide_phase() {
  setup wide
  drop_caches
  measure ls-wide-cold "$sys_root" w_ls || true
  measure ls-wide-warm "$sys_root" w_ls || true
  record_rss rss-after-wide
  teardown wide
}

# compile only, and it cannot run: nothing to mount for the tree
if [[ $tree_work -eq 1 && -n $compile_why ]]; then
  tree_work=0
  for w in mount stat read git-status-first git-status-second create; do selected "$w" && tree_work=1; done
fi

note "runs $runs; systems ${sys_list[*]}; log in $log_dir"
for ((i = 1; i <= runs; i++)); do
  for sys in "${sys_list[@]}"; do
    [[ $tree_work -eq 0 ]] || tree_phase
    [[ $big_work -eq 0 ]] || big_phase
    [[ $wide_work -eq 0 ]] || wide_phase
  done
done
i=0 sys=

# --- report ----------------------------------------------------------------------
ver_buildfs=-
has buildfs && ver_buildfs=$("$buildfs" --version 2>&1 | head -n 1)
ver_fuse_overlayfs=$(dpkg-query -W -f='${Version}' fuse-overlayfs 2>/dev/null || echo "not installed")
ver_ostree=$(ostree --version 2>/dev/null | awk -F"'" '/Version:/ { print $2; exit }')
ver_git=$(git --version | awk '{ print $3 }')
workload_rows=()
for w in "${all_workloads[@]}"; do
  if selected "$w"; then
    workload_rows+=("$w")
    case $w in copy-up|rewrite-1pct|branch-write) workload_rows+=("$w-bytes") ;; esac
  fi
done
export B_SAMPLES=$samples B_JSON=$json B_SYSTEMS="${sys_list[*]}" B_ROWS="${workload_rows[*]}"
export B_RUNS=$runs B_COMPILE_WHY=$compile_why B_COMPILE_TARGET="${compile_args[*]}" B_JOBS=$jobs
export B_BIG_MIB=$big_mib B_TREE=$tree B_TREE_ENTRIES=$tree_entries B_TREE_BYTES=$tree_bytes
export B_TREE_HEAD=$tree_head B_DIR=$dir B_BUILDFS=$buildfs B_STARTED=$started
B_KERNEL=$(uname -r) B_CPUS=$(nproc) B_MEM_KIB=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
B_FS=$(findmnt -n -o FSTYPE -T "$dir" 2>/dev/null || stat -f -c %T "$dir")
export B_KERNEL B_CPUS B_MEM_KIB B_FS
export B_VER_BUILDFS=$ver_buildfs B_VER_FUSE_OVERLAYFS=$ver_fuse_overlayfs B_VER_OSTREE=${ver_ostree:-?} B_VER_GIT=$ver_git
python3 - <<'EOF'
import json, os, statistics

env = os.environ
systems = env["B_SYSTEMS"].split()
rows = env["B_ROWS"].split()
runs = int(env["B_RUNS"])
compile_why = env["B_COMPILE_WHY"]

# samples[(metric, system)][run] = (value or None, error)
samples = {}
flat = []
with open(env["B_SAMPLES"]) as f:
    for line in f:
        run, system, metric, kind, value, error = line.rstrip("\n").split("\t")
        v = (int(value) if kind in ("bytes", "kib", "count") else float(value)) if value else None
        samples.setdefault((metric, system), {})[int(run)] = (v, error)
        flat.append({"run": int(run), "system": system, "metric": metric, "unit": kind,
                     "value": v, **({"error": error} if error else {})})

def values(metric, system):
    """The run -> value map, or None when a run failed or is missing."""
    got = samples.get((metric, system), {})
    if len(got) < runs or any(v is None for v, _ in got.values()):
        return None
    return {r: v for r, (v, _) in got.items()}

def errors(metric, system):
    return [e for v, e in samples.get((metric, system), {}).values() if v is None]

def secs(x):
    return "%.3f" % x if x >= 0.1 else "%.4f" % x

no_ratio = {"mount"} | {w for w in rows if w.endswith("-bytes")}
medians, ratios = {}, {}
for w in rows:
    for s in systems:
        vs = values(w, s)
        if vs:
            medians.setdefault(w, {})[s] = statistics.median(vs.values())
        if s != "native" and "native" in systems and w not in no_ratio:
            nat = values(w, "native")
            if vs and nat:
                per = [vs[r] / nat[r] for r in sorted(vs) if nat.get(r)]
                if per:
                    ratios.setdefault(w, {})[s] = {"per_run": per, "median": statistics.median(per)}

def cell(w, s):
    if w == "compile" and compile_why:
        return compile_why if s == systems[0] else "-"
    if s == "native" and (w == "mount" or w.endswith("-bytes")):
        return "-"
    errs = errors(w, s)
    if errs:
        return "failed in %d of %d runs (%s)" % (len(errs), runs, errs[0].replace(env["B_DIR"] + "/", ""))
    if w not in medians or s not in medians[w]:
        return "-"
    m = medians[w][s]
    if w.endswith("-bytes"):
        return "%.1f MiB" % (m / 1048576)
    text = secs(m)
    if w in ratios and s in ratios[w]:
        text += " (%.2fx)" % ratios[w][s]["median"]
    return text

def header(s):
    if s == "native":
        return "native (s)"
    return "%s (s, ratio)" % s if "native" in systems else "%s (s)" % s

print("| workload | " + " | ".join(header(s) for s in systems) + " |")
print("| --- | " + " | ".join("---:" for _ in systems) + " |")
for w in rows:
    print("| %s | %s |" % (w, " | ".join(cell(w, s) for s in systems)))
print()

def mib(kib):
    return "%.1f MiB" % (kib / 1024)

rss = {}
for metric in ("rss-after-walks", "rss-after-tree", "rss-after-big", "rss-after-wide"):
    for s in ("buildfs", "fuse-overlayfs"):
        got = [v for v, _ in samples.get((metric, s), {}).values() if v is not None]
        if got:
            rss.setdefault(metric, {})[s] = {"per_run_kib": got, "median_kib": statistics.median(got),
                                             "max_kib": max(got)}
walks = rss.get("rss-after-walks", {})
if walks:
    parts = ["%s %s (max %s)" % ("buildfs daemon" if s == "buildfs" else s, mib(d["median_kib"]), mib(d["max_kib"]))
             for s, d in walks.items()]
    print("peak RSS (VmHWM) after the walk workloads, median of %d runs: %s" % (runs, ", ".join(parts)))
print("ratio: median over runs of (run k of the system / run k of native); times are medians of %d runs, in seconds" % runs)
tree = ("%s (%s entries, %.1f MiB)" % (env["B_TREE"], env["B_TREE_ENTRIES"], int(env["B_TREE_BYTES"]) / 1048576)
        if env["B_TREE"] else "not used")
big = "%s MiB" % env["B_BIG_MIB"] if set(rows) & {"big-read-cold", "big-read-warm", "copy-up", "rewrite-1pct", "big-read-after", "branch-write", "copy-up-beside"} else "not used"
if "compile" not in rows:
    comp = "not run"
elif compile_why:
    comp = compile_why
else:
    comp = "make -j%s O=OUT %s after make defconfig" % (env["B_JOBS"], env["B_COMPILE_TARGET"])
print("tree: %s; work dir: %s (%s); big file: %s; compile: %s" % (tree, env["B_DIR"], env["B_FS"], big, comp))
print("date: %s; kernel: %s; CPUs: %s; memory: %.1f GiB"
      % (env["B_STARTED"], env["B_KERNEL"], env["B_CPUS"], int(env["B_MEM_KIB"]) / 1048576))
print("versions: %s; fuse-overlayfs %s; ostree %s; git %s"
      % (env["B_VER_BUILDFS"], env["B_VER_FUSE_OVERLAYFS"], env["B_VER_OSTREE"], env["B_VER_GIT"]))

extra = {}
for (metric, s), got in samples.items():
    if metric not in rows and not metric.startswith("rss-"):
        vs = [v for v, _ in got.values() if v is not None]
        extra.setdefault(metric, {})[s] = {"per_run": [got[r][0] for r in sorted(got)],
                                           "median": statistics.median(vs) if vs else None}
doc = {
    "date": env["B_STARTED"], "kernel": env["B_KERNEL"], "cpus": int(env["B_CPUS"]),
    "memory_kib": int(env["B_MEM_KIB"]),
    "versions": {"buildfs": env["B_VER_BUILDFS"], "fuse-overlayfs": env["B_VER_FUSE_OVERLAYFS"],
                 "ostree": env["B_VER_OSTREE"], "git": env["B_VER_GIT"]},
    "buildfs_binary": env["B_BUILDFS"], "work_dir": env["B_DIR"],
    "tree": {"path": env["B_TREE"], "entries": int(env["B_TREE_ENTRIES"]),
             "bytes": int(env["B_TREE_BYTES"]), "git_head": env["B_TREE_HEAD"]},
    "work_dir_filesystem": env["B_FS"],
    "runs": runs, "systems": systems, "workloads": rows, "big_mib": int(env["B_BIG_MIB"]),
    "compile": {"target": env["B_COMPILE_TARGET"], "jobs": int(env["B_JOBS"]),
                **({"not_run": compile_why} if compile_why else {})},
    "ratio_method": "median over runs of the per-run ratio (system run k / native run k)",
    "medians": medians,
    "ratios": ratios,
    "errors": {w: {s: errors(w, s) for s in systems if errors(w, s)} for w in rows
               if any(errors(w, s) for s in systems)},
    "peak_rss": rss,
    "extra": extra,
    "samples": flat,
}
if env["B_JSON"]:
    with open(env["B_JSON"], "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print("JSON: %s" % env["B_JSON"])
EOF

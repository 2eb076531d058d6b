#!/usr/bin/env bash
# Benchmarks the lifecycle of a build on a real tree (by default the Linux 6.1
# source from Debian's linux-source-6.1, ~75,000 files):
#   1. buildfs new --from-dir (once; an OSTree commit of the whole tree), mount
#   2. buildfs branch with a clean source (source mounted)
#   3. buildfs branch with a 1 GiB dirty file in the source
#   4. buildfs commit after changing one file, and the objects it wrote
#   5. for comparison: ostree commit of the whole tree into a fresh repo, cp -a
#   6. step 2 again on a 10-file tree (branch must not depend on tree size)
# Each figure is the median of --runs runs. Needs root and /dev/fuse.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: tools/bench-lifecycle.sh [OPTIONS]

Times buildfs new/mount/branch/commit on a real tree against ostree commit and
cp -a of the same tree; prints a table of medians (seconds) at the end.

Options:
  --runs N         runs per measurement (median reported; default 5)
  --full-runs N    runs for the whole-tree comparisons (ostree commit, cp -a;
                   default: --runs)
  --dir DIR        work directory (default /var/tmp/buildfs-bench); the Linux
                   tree is extracted once into DIR/tree and reused
  --tree DIR       use this tree instead of the Linux source (e.g. a small one)
  --buildfs BIN    buildfs binary (default: build/tools/buildfs of this checkout)
  --json FILE      also write every figure as JSON to FILE
  --dirty-mib N    size of the dirty file of step 3 in MiB (default 1024)
  -h, --help       this help

Every FUSE mount under DIR is lazily unmounted on exit and on Ctrl-C.
EOF
}

top=$(cd "$(dirname "$0")/.." && pwd)
runs=5
full_runs=
dir=/var/tmp/buildfs-bench
tree=
buildfs="$top/build/tools/buildfs"
json=
dirty_mib=1024

need_arg() { [[ $# -ge 2 && -n $2 ]] || { echo "bench-lifecycle: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --runs) need_arg "$@"; runs=$2; shift 2 ;;
    --full-runs) need_arg "$@"; full_runs=$2; shift 2 ;;
    --dir) need_arg "$@"; dir=$2; shift 2 ;;
    --tree) need_arg "$@"; tree=$2; shift 2 ;;
    --buildfs) need_arg "$@"; buildfs=$2; shift 2 ;;
    --json) need_arg "$@"; json=$2; shift 2 ;;
    --dirty-mib) need_arg "$@"; dirty_mib=$2; shift 2 ;;
    *) echo "bench-lifecycle: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
full_runs=${full_runs:-$runs}
for v in runs full_runs dirty_mib; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench-lifecycle: --${v//_/-} must be a positive integer" >&2; exit 2; }
done
[[ $EUID -eq 0 ]] || { echo "bench-lifecycle: needs root (FUSE mounts with allow_other)" >&2; exit 2; }
[[ -x $buildfs ]] || { echo "bench-lifecycle: no buildfs binary at $buildfs (see --buildfs)" >&2; exit 2; }
command -v ostree >/dev/null || { echo "bench-lifecycle: ostree is missing (apt-get install ostree)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "bench-lifecycle: python3 is missing" >&2; exit 2; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
buildfs=$(cd "$(dirname "$buildfs")" && pwd)/$(basename "$buildfs")
run_dir=$dir/run
ws=$run_dir/ws
log=$run_dir/log

# --- cleanup: lazily unmount every FUSE mount under the work dir -------------
unmount_all() {
  local m
  for m in $(awk -v d="$dir/" 'index($2, d) == 1 && $3 ~ /^fuse/ {print $2}' /proc/mounts); do
    umount -l "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || true
  done
}
on_exit() {
  local rc=$?
  cd /
  unmount_all
  exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

note() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { echo "bench-lifecycle: $*" >&2; exit 1; }
now() { date +%s.%N; }

# timed VAR CMD...: runs CMD (stdout+stderr to $log/last.out), appends its
# wall time in seconds to the array VAR. A failure prints the output and stops.
timed() {
  local var=$1 t0 t1 rc=0
  shift
  sync
  t0=$(now)
  "$@" >"$log/last.out" 2>&1 || rc=$?
  t1=$(now)
  cat "$log/last.out" >>"$log/all.out"
  if [[ $rc -ne 0 ]]; then
    echo "bench-lifecycle: FAILED (exit $rc): $*" >&2
    sed 's/^/  | /' "$log/last.out" >&2
    exit 1
  fi
  eval "$var+=(\"\$(python3 -c 'import sys; print(\"%.6f\" % (float(sys.argv[2]) - float(sys.argv[1])))' \"\$t0\" \"\$t1\")\")"
}
# quiet CMD...: runs an untimed step; a failure prints its output and stops.
quiet() {
  local rc=0
  "$@" >"$log/last.out" 2>&1 || rc=$?
  cat "$log/last.out" >>"$log/all.out"
  if [[ $rc -ne 0 ]]; then
    echo "bench-lifecycle: FAILED (exit $rc): $*" >&2
    sed 's/^/  | /' "$log/last.out" >&2
    exit 1
  fi
}
bfs() { "$buildfs" -C "$ws" "$@"; }
count_objects() { find "$ws/repo/objects" -type f | wc -l; }
upper_entries() { find "$ws/.buildfs/builds/$1/upper" -mindepth 1 | wc -l; }

# --- the tree ------------------------------------------------------------------
if [[ -z $tree ]]; then
  tarball=/usr/src/linux-source-6.1.tar.xz
  if [[ ! -f $tarball ]]; then
    note "installing linux-source-6.1 (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends linux-source-6.1 >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends linux-source-6.1 >&2; }
  fi
  tree=$dir/tree/linux-source-6.1
  if [[ ! -f $dir/tree/.extracted ]]; then
    note "extracting $tarball into $dir/tree (once)"
    rm -rf "$dir/tree"
    mkdir -p "$dir/tree"
    tar -xf "$tarball" -C "$dir/tree"
    [[ -d $tree ]] || die "$tarball did not extract to $tree"
    touch "$dir/tree/.extracted"
  fi
fi
[[ -d $tree ]] || die "no tree at $tree"
tree=$(cd "$tree" && pwd)
case "$tree/" in "$run_dir/"*) die "--tree may not be inside $run_dir (it is wiped)" ;; esac

unmount_all
rm -rf "$run_dir"
mkdir -p "$run_dir" "$log"
tree_files=$(find "$tree" | wc -l)
tree_bytes=$(du -sb "$tree" | cut -f1)
note "tree $tree: $tree_files entries, $tree_bytes bytes; runs $runs, whole-tree runs $full_runs"

t_new=() t_mount=() t_branch_clean=() t_dd=() t_branch_dirty=() t_commit1=() t_commit=()
t_ostree=() t_cp=() t_new_small=() t_branch_small=()
commit_objects=() commit_entries=() commit_dirs=()

# --- 1. new --from-dir, mount ----------------------------------------------------
note "1. buildfs new linux --from-dir TREE; buildfs mount linux"
quiet "$buildfs" init "$ws"
objects_before_new=$(count_objects)
timed t_new bfs new linux --from-dir "$tree"
objects_after_new=$(count_objects)
timed t_mount bfs mount linux
[[ -f $ws/linux/Makefile ]] || die "$ws/linux/Makefile is not visible after mount"
note "   new ${t_new[0]} s ($((objects_after_new - objects_before_new)) objects), mount ${t_mount[0]} s"

# --- 2. branch, clean source -----------------------------------------------------
note "2. buildfs branch linux bN, clean source (x$runs)"
for ((i = 1; i <= runs; i++)); do
  n=$(upper_entries linux)
  [[ $n -eq 0 ]] || echo "bench-lifecycle: warning: linux's upper is not empty before clean branch $i ($n entries)" >&2
  timed t_branch_clean bfs branch linux "b$i"
  quiet bfs rm "b$i"
  note "   run $i: ${t_branch_clean[-1]} s"
done

# --- 3. branch, 1 GiB dirty file in the source --------------------------------------
note "3. buildfs branch linux dN with a ${dirty_mib} MiB dirty file (x$runs)"
for ((i = 1; i <= runs; i++)); do
  # After a branch the source's upper is frozen: write the file again each run.
  timed t_dd dd if=/dev/zero of="$ws/linux/big.bin" bs=1M count="$dirty_mib" status=none
  size=$(stat -c %s "$ws/.buildfs/builds/linux/upper/big.bin" 2>/dev/null || echo 0)
  [[ $size -eq $((dirty_mib * 1048576)) ]] ||
    die "big.bin in linux's upper is $size bytes, not $((dirty_mib * 1048576)), before dirty branch $i"
  timed t_branch_dirty bfs branch linux "d$i"
  [[ ! -e $ws/.buildfs/builds/linux/upper/big.bin ]] ||
    echo "bench-lifecycle: warning: big.bin still in linux's upper after branch d$i" >&2
  quiet bfs rm "d$i"
  note "   run $i: dd ${t_dd[-1]} s, branch ${t_branch_dirty[-1]} s"
done

# --- 4. commit after changing one file ------------------------------------------
note "4. buildfs commit linux after changing one file (x$runs)"
# Fold step 3's layers (and the removal of big.bin) into the base first, so the
# timed commits see one changed file only. Timed apart, not in the median.
rm -f "$ws/linux/big.bin"
timed t_commit1 bfs commit linux -m "bench: drop big.bin"
note "   first commit (drops big.bin, folds $runs frozen layers): ${t_commit1[0]} s"
for ((i = 1; i <= runs; i++)); do
  echo "# bench-lifecycle run $i" >>"$ws/linux/Makefile"
  before=$(count_objects)
  timed t_commit bfs commit linux -m "bench: Makefile run $i" --json
  out=$(cat "$log/last.out")
  after=$(count_objects)
  commit_objects+=($((after - before)))
  commit_entries+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["entries_written"])' "$out")")
  commit_dirs+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["dirs_walked"])' "$out")")
  changed=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["changed"])' "$out")
  [[ $changed == True ]] || echo "bench-lifecycle: warning: commit run $i says nothing changed: $out" >&2
  note "   run $i: ${t_commit[-1]} s, ${commit_objects[-1]} new objects, entries_written ${commit_entries[-1]}, dirs_walked ${commit_dirs[-1]}"
done
tail -c 200 "$ws/linux/Makefile" | grep -q "bench-lifecycle run $runs" || die "Makefile lost the appended lines after the commits"

# --- 5. ostree commit of the whole tree, cp -a ------------------------------------
note "5. ostree commit of the whole tree into a fresh bare-user repo (x$full_runs)"
for ((i = 1; i <= full_runs; i++)); do
  rm -rf "$run_dir/ostree"
  quiet ostree init --mode=bare-user --repo="$run_dir/ostree"
  timed t_ostree ostree commit --repo="$run_dir/ostree" -b x --tree=dir="$tree"
  rm -rf "$run_dir/ostree"
  note "   run $i: ${t_ostree[-1]} s"
done
note "5. cp -a TREE COPY (x$full_runs)"
for ((i = 1; i <= full_runs; i++)); do
  rm -rf "$run_dir/copy"
  timed t_cp cp -a "$tree" "$run_dir/copy"
  rm -rf "$run_dir/copy"
  note "   run $i: ${t_cp[-1]} s"
done

# --- 6. branch on a 10-file tree ----------------------------------------------------
note "6. buildfs branch on a 10-file tree (x$runs)"
small=$run_dir/small-tree
mkdir -p "$small/sub"
for ((f = 0; f < 5; f++)); do echo "file $f" >"$small/f$f.txt"; echo "sub $f" >"$small/sub/s$f.txt"; done
timed t_new_small bfs new small --from-dir "$small"
quiet bfs mount small
for ((i = 1; i <= runs; i++)); do
  timed t_branch_small bfs branch small "s$i"
  quiet bfs rm "s$i"
  note "   run $i: ${t_branch_small[-1]} s"
done

quiet bfs umount small
quiet bfs umount linux
if awk -v d="$dir/" 'index($2, d) == 1 && $3 ~ /^fuse/' /proc/mounts | grep -q .; then
  echo "bench-lifecycle: warning: FUSE mounts left under $dir after buildfs umount:" >&2
  awk -v d="$dir/" 'index($2, d) == 1 && $3 ~ /^fuse/' /proc/mounts >&2
fi

# --- report --------------------------------------------------------------------
join() { local IFS=,; echo "$*"; }
python3 - "$json" <<EOF
import json, statistics, sys
def s(xs): return [float(x) for x in xs]
rows = [
    ("new_from_dir", "buildfs new linux --from-dir TREE (once)", s("$(join "${t_new[@]}")".split(","))),
    ("mount", "buildfs mount linux (once)", s("$(join "${t_mount[@]}")".split(","))),
    ("branch_clean", "buildfs branch, clean source", s("$(join "${t_branch_clean[@]}")".split(","))),
    ("dd_dirty", "dd ${dirty_mib} MiB into WS/linux/big.bin (setup)", s("$(join "${t_dd[@]}")".split(","))),
    ("branch_dirty", "buildfs branch, ${dirty_mib} MiB dirty file", s("$(join "${t_branch_dirty[@]}")".split(","))),
    ("commit_first", "buildfs commit, first (drops big.bin; setup)", s("$(join "${t_commit1[@]}")".split(","))),
    ("commit_one_file", "buildfs commit, one file changed", s("$(join "${t_commit[@]}")".split(","))),
    ("ostree_commit_tree", "ostree commit of whole tree (fresh repo)", s("$(join "${t_ostree[@]}")".split(","))),
    ("cp_a_tree", "cp -a TREE COPY", s("$(join "${t_cp[@]}")".split(","))),
    ("new_small", "buildfs new small --from-dir (10 files, once)", s("$(join "${t_new_small[@]}")".split(","))),
    ("branch_clean_small", "buildfs branch, clean source, 10-file tree", s("$(join "${t_branch_small[@]}")".split(","))),
]
med = {k: statistics.median(v) for k, _, v in rows}
objs = [int(x) for x in "$(join "${commit_objects[@]}")".split(",")]
ratios = {
    "commit_over_ostree_commit": med["commit_one_file"] / med["ostree_commit_tree"],
    "branch_clean_over_cp_a": med["branch_clean"] / med["cp_a_tree"],
    "branch_dirty_over_cp_a": med["branch_dirty"] / med["cp_a_tree"],
    "new_from_dir_over_ostree_commit": med["new_from_dir"] / med["ostree_commit_tree"],
    "branch_clean_large_over_small": med["branch_clean"] / med["branch_clean_small"],
}
print()
print("tree: $tree ($tree_files entries, %.1f MiB)" % ($tree_bytes / 1048576))
print("runs: $runs (whole-tree comparisons: $full_runs); medians in seconds")
print()
w = max(len(d) for _, d, _ in rows)
print("%-*s  %9s  %4s  %s" % (w, "measurement", "median s", "runs", "samples"))
print("-" * (w + 2 + 9 + 2 + 4 + 2 + 40))
for k, d, v in rows:
    print("%-*s  %9.3f  %4d  %s" % (w, d, med[k], len(v), " ".join("%.3f" % x for x in v)))
print()
print("objects written by each one-file commit: %s (median %d)" % (" ".join(map(str, objs)), statistics.median(objs)))
print("commit entries_written: $(join "${commit_entries[@]}"); dirs_walked: $(join "${commit_dirs[@]}")")
print("objects written by buildfs new --from-dir: $((objects_after_new - objects_before_new))")
print()
print("ratio  commit(one file) / ostree commit(whole tree): %.5f  (inverse %.1f)" % (ratios["commit_over_ostree_commit"], 1 / ratios["commit_over_ostree_commit"]))
print("ratio  branch(clean) / cp -a:                        %.5f  (inverse %.1f)" % (ratios["branch_clean_over_cp_a"], 1 / ratios["branch_clean_over_cp_a"]))
print("ratio  branch(dirty) / cp -a:                        %.5f  (inverse %.1f)" % (ratios["branch_dirty_over_cp_a"], 1 / ratios["branch_dirty_over_cp_a"]))
print("ratio  buildfs new --from-dir / ostree commit:       %.3f" % ratios["new_from_dir_over_ostree_commit"])
print("ratio  branch(clean) this tree / 10-file tree:      %.3f" % ratios["branch_clean_large_over_small"])
doc = {
    "tree": {"path": "$tree", "entries": $tree_files, "bytes": $tree_bytes},
    "runs": $runs, "full_runs": $full_runs, "dirty_mib": $dirty_mib,
    "buildfs": "$buildfs",
    "results": {k: {"what": d, "median_s": round(med[k], 6), "samples_s": v} for k, d, v in rows},
    "commit_objects_written": objs,
    "commit_entries_written": [int(x) for x in "$(join "${commit_entries[@]}")".split(",")],
    "commit_dirs_walked": [int(x) for x in "$(join "${commit_dirs[@]}")".split(",")],
    "new_from_dir_objects_written": $((objects_after_new - objects_before_new)),
    "ratios": {k: round(v, 6) for k, v in ratios.items()},
}
if sys.argv[1]:
    with open(sys.argv[1], "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print()
    print("JSON written to", sys.argv[1])
EOF

#!/usr/bin/env bash
# Benchmarks the builder (buildfs build) against the same build commands run
# by a plain script in a plain directory, for two projects: the embedded
# example (examples/builder) and a small real project made of Debian source
# packages (zlib, libjpeg-turbo, libpng, freetype, libgd). Times a full build, a
# no-change rebuild and a one-component change, and measures the repo space
# of two builds that share most components. Prints one Markdown table per
# project. Needs root and /dev/fuse. See --help.
set -euo pipefail
export LC_ALL=C

usage() {
  cat <<'EOF'
Usage: tools/bench-builder.sh [OPTIONS]

Times the builder against a plain script doing the same work, for each project:
  example   examples/builder (4 tiny components; make-repos.sh into a fresh
            directory per run)
  debian    zlib, libjpeg-turbo, libpng1.6, freetype and libgd2 from Debian's
            source packages, each made a local git repository (components
            zlib, libjpeg, libpng, freetype, libgd: libpng needs zlib,
            freetype needs zlib and libpng, libgd needs all four; libjpeg
            needs nothing, so the builder builds it beside zlib and libpng)
and prints on stdout one Markdown table per project: full build, no-change
rebuild and one-component change, each in seconds for the plain script and
for buildfs, and the ratio buildfs/plain; then which components buildfs
built, the repo space of two builds sharing most components, the size of
the composed result, and the date, kernel, CPU count and buildfs version.
Progress lines go to stderr.

Each run uses a fresh workspace, plain directory and copy of the source
repositories (under DIR/run, removed after the run) and does, in this order:
  plain    full build: for each component in dependency order, git clone of
           its source and checkout of the pinned revision into
           plain/work/NAME/src, cp -a of its dependencies' install trees into
           plain/work/NAME/sysroot, then the builder's commands for it (same
           commands, -j = CPU count, same environment: DESTDIR, PREFIX,
           SYSROOT, PATH, CPATH, LIBRARY_PATH, LD_LIBRARY_PATH,
           PKG_CONFIG_PATH, PKG_CONFIG_SYSROOT_DIR and the component's env);
           no-change rebuild: the same again in the existing trees (git fetch
           and checkout of the pinned revision, sysroot copied anew, every
           component's commands run again), as a script without a builder does
  buildfs  buildfs new main --manifest M (not timed), then buildfs build
           --json in WS/main, timed: full build, then no-change rebuild
  change   a commit appending a comment line to one C source of a component
           that others depend on (example: libgreet/greet.c; debian:
           libpng/png.c), then the plain script's rebuild (as above: every
           component again) and buildfs build, both timed
  space    du -sb WS/repo after main's full build, after main's change, and
           after buildfs branch main other; buildfs mount other; a second
           commit to the same component; buildfs build in WS/other (timed
           too: a change built in a branched build)
A figure is the median of the runs; the ratio is the median over runs of the
per-run ratio buildfs/plain. The builder builds independent components at
once (one make job server for the build: CPU-count jobs in all); the plain script builds one at a time
with make -jCPUS. Two checks follow each table: the union of the plain
install trees and buildfs's composed result hold the same paths, and no
CMake component of buildfs found a library of the host (/usr/lib) instead
of its sysroot's (a warning line says otherwise).

Options:
  --runs N        runs per project (default 3)
  --dir DIR       work directory (default /var/tmp/buildfs-benchbuilder); its
                  data/ keeps the Debian sources (downloaded once, reused);
                  DIR/log/ has every command's output
  --buildfs BIN   buildfs binary (default /work/main/build/tools/buildfs)
  --only P        example or debian (default both)
  -h, --help      this help

The Debian sources come from apt, with a private configuration under
DIR/data/debian/apt: a deb-src sources file with the URIs, suites and
components of /etc/apt/sources.list.d/debian.sources, its own lists and
cache; /etc/apt is not changed. apt-get source --download-only takes the
newest version whose files can all be fetched; dpkg-source -x unpacks it
(Debian's patches applied); the tree (less .pc/) becomes a git repository
(branch main, one commit) in DIR/data/debian/repos/NAME. Delete that
directory to fetch again. Needs dpkg-dev, gcc, make, cmake and pkg-config
(installed with apt-get when missing).

DIR must be new, empty or a work directory of this script (it holds
DIR/.bench-builder.lock). On exit and on Ctrl-C every mount below DIR is
unmounted (umount -l) and DIR/run is removed; no other mount is touched.
On 2 CPUs a run of the example takes a few seconds, a run of the Debian
project about 2.5 minutes (its first invocation also fetches the sources).
EOF
}

runs=3
dir=/var/tmp/buildfs-benchbuilder
buildfs=/work/main/build/tools/buildfs
only=
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
# Debian's multiarch directory, as the builder adds it (usr/lib/x86_64-linux-gnu).
multiarch=$(uname -m | sed 's/^i[56]86$/i386/')-linux-gnu

bench_name=bench-builder
source "$(dirname "$0")/bench-lib.sh"
while [[ $# -gt 0 ]]; do
  if [[ $1 == --*=* ]]; then
    set -- "${1%%=*}" "${1#*=}" "${@:2}"
  fi
  case $1 in
    -h|--help) usage; exit 0 ;;
    --runs) need_arg "$@"; runs=$2; shift 2 ;;
    --dir) need_arg "$@"; dir=$2; shift 2 ;;
    --buildfs) need_arg "$@"; buildfs=$2; shift 2 ;;
    --only) need_arg "$@"; only=$2; shift 2 ;;
    *) fail_usage "unknown option '$1' (see --help)" ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]{0,3}$ ]] || fail_usage "--runs must be a positive integer, not '$runs'"
case $only in
  '') projects=(example debian) ;;
  example|debian) projects=("$only") ;;
  *) fail_usage "--only: 'example' or 'debian', not '$only'" ;;
esac
[[ $dir != *[[:space:]\\]* ]] || fail_usage "--dir: the path may not hold whitespace or '\\'"

note() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

[[ $EUID -eq 0 ]] || die "needs root (FUSE mounts, apt-get)"
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash 5 or newer (EPOCHREALTIME)"
[[ -c /dev/fuse ]] || die "no /dev/fuse"
[[ -x $buildfs ]] || die "no buildfs binary at $buildfs (see --buildfs)"
buildfs=$(cd "$(dirname "$buildfs")" && pwd -P)/$(basename "$buildfs")
for t in python3 git; do command -v "$t" >/dev/null || die "$t is missing (apt-get install $t)"; done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
data=$dir/data
run_dir=$dir/run
log_dir=$dir/log
samples=$log_dir/samples.tsv
jobs=$(nproc)

claim_work_dir "$dir" bench-builder

# --- cleanup: unmount what is mounted below DIR, and nothing else -------------
unmount_below() {
  local m
  for m in $(mounts_below "$1"); do umount -l "$m" 2>/dev/null || true; done
}
exec 7>&1 8>&2  # the script's own stdout and stderr, for the trap
cleaning=0
on_exit() {
  local rc=$?
  trap - INT TERM
  exec 1>&7 2>&8
  cd /
  [[ $cleaning -eq 0 ]] || exit $rc
  cleaning=1
  [[ $rc -ne 130 && $rc -ne 143 ]] || printf '\nbench-builder: interrupted; cleaning up below %s\n' "$dir" >&2
  unmount_below "$dir"
  [[ -n $(mounts_below "$dir") ]] || rm -rf --one-file-system "$run_dir" 2>/dev/null || true
  if [[ -n $(mounts_below "$dir") ]]; then
    echo "bench-builder: warning: mounts left below $dir:" >&2
    mounts_below "$dir" >&2
  fi
  exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# quiet CMD...: an untimed step that must work; its output goes to the log.
quiet() {
  local rc=0
  "$@" >"$log_dir/last.out" 2>&1 </dev/null || rc=$?
  { echo "### $* (exit $rc)"; cat "$log_dir/last.out"; } >>"$log_dir/all.out"
  if [[ $rc -ne 0 ]]; then
    echo "bench-builder: FAILED (exit $rc): $*" >&2
    tail -n 20 "$log_dir/last.out" | sed 's/^/  | /' >&2
    exit 1
  fi
}
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git_() { git -c user.name=bench-builder -c user.email=bench-builder@localhost -c advice.detachedHead=false "$@"; }
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }
bfs() { "$buildfs" -C "$ws" "$@"; }

unmount_below "$dir"
remove_tree "$run_dir"
rm -rf "$log_dir"
mkdir -p "$data" "$run_dir" "$log_dir"
: >"$samples"
started=$(date '+%Y-%m-%d %H:%M:%S %z')

# --- the Debian project's sources --------------------------------------------
# component name, Debian source package, in the manifest's order
deb_components=(zlib:zlib libjpeg:libjpeg-turbo libpng:libpng1.6 freetype:freetype libgd:libgd2)
deb=$data/debian
apt_dir=$deb/apt
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/deb-src.sources" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root)

# The deb-src twin of each enabled "deb" stanza of debian.sources (deb822).
write_src_sources() {
  local from=/etc/apt/sources.list.d/debian.sources
  [[ -r $from ]] || die "no $from to take the source URIs from"
  python3 - "$from" "$apt_dir/deb-src.sources" <<'EOF'
import re, sys
out = []
for stanza in re.split(r"\n[ \t]*\n", open(sys.argv[1]).read().strip()):
    lines = [l for l in stanza.splitlines() if not l.startswith("#")]
    fields = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
              for l in lines if ":" in l and not l[:1].isspace()}
    if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
        continue
    out.append("\n".join("Types: deb-src" if l.lower().startswith("types:") else l for l in lines))
if not out:
    sys.exit("no enabled 'Types: deb' stanza in " + sys.argv[1])
open(sys.argv[2], "w").write("\n\n".join(out) + "\n")
EOF
}

apt_updated=0
apt_update() {
  [[ $apt_updated -eq 0 ]] || return 0
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  write_src_sources
  note "apt-get update (private deb-src lists in $apt_dir)"
  quiet apt-get "${apt_opts[@]}" update
  apt_updated=1
}

# fetch_source PKG DEST: the newest version of source package PKG whose files
# can all be downloaded, unpacked into DEST.
fetch_source() {
  local pkg=$1 dest=$2 ver dl=$deb/dl/$1 dsc
  if [[ -z $(find "$dl" -maxdepth 1 -name '*.dsc' 2>/dev/null) ]]; then
    apt_update
    local -a versions
    mapfile -t versions < <(apt-cache "${apt_opts[@]}" showsrc "$pkg" | awk '/^Version:/ {print $2}' |
      sort -u | python3 -c '
import functools, subprocess, sys
vs = sys.stdin.read().split()
cmp = lambda a, b: 0 if a == b else (1 if subprocess.run(["dpkg", "--compare-versions", a, "gt", b]).returncode == 0 else -1)
print("\n".join(sorted(vs, key=functools.cmp_to_key(cmp), reverse=True)))')
    [[ ${#versions[@]} -gt 0 && -n ${versions[0]} ]] || die "apt knows no source package $pkg"
    for ver in "${versions[@]}"; do
      remove_tree "$dl.tmp"
      mkdir -p "$dl.tmp"
      note "apt-get source --download-only $pkg=$ver"
      if (cd "$dl.tmp" && apt-get "${apt_opts[@]}" source --download-only "$pkg=$ver") \
        >>"$log_dir/apt.out" 2>&1 </dev/null; then
        remove_tree "$dl"
        mv "$dl.tmp" "$dl"
        break
      fi
      echo "bench-builder: $pkg $ver: some files cannot be fetched (see $log_dir/apt.out)" >&2
    done
    [[ -d $dl ]] || die "no version of $pkg could be downloaded (see $log_dir/apt.out)"
  fi
  dsc=$(find "$dl" -maxdepth 1 -name '*.dsc' | head -n 1)
  remove_tree "$dest.unpack"
  mkdir -p "$dest.unpack"
  quiet dpkg-source -x "$dsc" "$dest.unpack/tree"
  rm -rf "$dest.unpack/tree/.pc"
  mv "$dest.unpack/tree" "$dest"
  remove_tree "$dest.unpack"
  basename "$dsc" .dsc >"$dest.version"
}

prepare_debian() {
  local missing=() p c name pkg repo
  for p in dpkg-dev gcc make cmake pkg-config; do installed "$p" || missing+=("$p"); done
  if [[ ${#missing[@]} -gt 0 ]]; then
    note "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive quiet apt-get install -y --no-install-recommends "${missing[@]}"
  fi
  mkdir -p "$deb/repos"
  for c in "${deb_components[@]}"; do
    name=${c%%:*} pkg=${c#*:} repo=$deb/repos/$name
    git_ -C "$repo" rev-parse -q --verify HEAD >/dev/null 2>&1 && continue
    note "preparing $repo from source package $pkg (once)"
    remove_tree "$repo"
    remove_tree "$repo.tmp"
    fetch_source "$pkg" "$repo.tmp"
    quiet git_ -C "$repo.tmp" init -q -b main
    quiet git_ -C "$repo.tmp" add -A -f .  # -f: also what a shipped .gitignore names
    quiet git_ -C "$repo.tmp" commit -q -m "$(cat "$repo.tmp.version")"
    mv "$repo.tmp.version" "$repo.version"
    mv "$repo.tmp" "$repo"
  done
}

# The Debian project's manifest; @SRC@ is the directory of the repositories.
debian_manifest() {
  cat <<'EOF'
{
  "name": "gd-stack",
  "vcsconfig": { "local": "git:file://@SRC@/" },
  "components": [
    { "name": "zlib", "src": "local:zlib", "branch": "main", "build-system": "autotools" },
    { "name": "libjpeg", "src": "local:libjpeg", "branch": "main", "build-system": "cmake",
      "config-opts": ["-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_INSTALL_DEFAULT_LIBDIR=lib", "-DENABLE_STATIC=OFF", "-DWITH_SIMD=OFF"] },
    { "name": "libpng", "src": "local:libpng", "branch": "main", "depends": ["zlib"],
      "build-system": "autotools",
      "config-opts": ["--disable-static", "--disable-maintainer-mode", "--disable-hardware-optimizations"] },
    { "name": "freetype", "src": "local:freetype", "branch": "main", "depends": ["zlib", "libpng"],
      "build-system": "cmake",
      "config-opts": ["-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_INSTALL_LIBDIR=lib", "-DBUILD_SHARED_LIBS=ON",
                      "-DFT_REQUIRE_ZLIB=ON", "-DFT_REQUIRE_PNG=ON", "-DFT_DISABLE_BZIP2=ON",
                      "-DFT_DISABLE_HARFBUZZ=ON", "-DFT_DISABLE_BROTLI=ON"] },
    { "name": "libgd", "src": "local:libgd", "branch": "main",
      "depends": ["zlib", "libjpeg", "libpng", "freetype"], "build-system": "cmake",
      "config-opts": ["-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_INSTALL_LIBDIR=lib", "-DENABLE_PNG=ON", "-DENABLE_JPEG=ON",
                      "-DENABLE_FREETYPE=ON", "-DENABLE_CPP=OFF"] }
  ]
}
EOF
}

# make_sources PROJECT DEST: DEST/NAME git repositories (a fresh copy per run)
# and DEST/manifest.json; sets change_comp and change_file (what the change
# commits touch).
make_sources() {
  local project=$1 dest=$2 c name esc
  case $project in
    example)
      quiet "$top/examples/builder/make-repos.sh" "$dest"
      change_comp=libgreet change_file=greet.c ;;
    debian)
      mkdir -p "$dest"
      for c in "${deb_components[@]}"; do
        name=${c%%:*}
        quiet git_ clone -q "$deb/repos/$name" "$dest/$name"
      done
      esc=$(printf '%s' "$dest" | sed 's/[\\&|]/\\&/g')
      debian_manifest | sed "s|@SRC@|$esc|g" >"$dest/manifest.json"
      change_comp=libpng change_file=png.c ;;
  esac
}

commit_change() {  # SRCDIR TEXT: appends a comment line to the change file, commits
  local repo=$1/$change_comp
  echo "/* bench-builder: $2 */" >>"$repo/$change_file"
  quiet git_ -C "$repo" commit -q -a -m "bench-builder: $2"
}

# --- the plain reference: the builder's work as a plain script ----------------
# load_manifest FILE: the components in dependency order (comps) and, per
# component, its clone URL, pin, transitive dependencies, commands and env,
# computed as the builder does (builder/manifest.cc, builder/build.cc).
declare -A c_url c_pin c_ref c_deps c_ncmd c_cmd c_nenv c_env
comps=()
load_manifest() {
  local code
  code=$(python3 - "$1" "$jobs" <<'EOF'
import json, shlex, sys
m = json.load(open(sys.argv[1]))
jobs = sys.argv[2]
vcs = m.get("vcsconfig", {})
def strip_git(s):
    return s[4:] if s.startswith("git:") else s
def expand(src):
    src = strip_git(src)
    colon = src.find(":")
    if colon >= 0 and src[colon:colon + 3] != "://":
        src = strip_git(vcs[src[:colon]]) + src[colon + 1:]
    return src
def name_of(c):
    if "name" in c:
        return c["name"]
    last = expand(c["src"]).rstrip("/")
    last = last[max(last.rfind("/"), last.rfind(":")) + 1:]
    return last[:-4] if len(last) > 4 and last.endswith(".git") else last
given = m["components"]
by_name = {name_of(c): c for c in given}
order, done = [], set()
def visit(n):
    if n in done:
        return
    done.add(n)
    for d in by_name[n].get("depends", []):
        visit(d)
    order.append(n)
for c in given:
    visit(name_of(c))
def q(s):
    return "'" + s.replace("'", "'\\''") + "'"
def commands(c):
    if "build-commands" in c:
        return c["build-commands"]
    opts = "".join(" " + q(o) for o in m.get("config-opts", []) + c.get("config-opts", []))
    bs = c["build-system"]
    if bs == "cmake":
        return ["cmake -S . -B _build -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_PREFIX_PATH=\"$SYSROOT/usr\"" + opts,
                "cmake --build _build -j " + jobs, "DESTDIR=\"$DESTDIR\" cmake --install _build"]
    if bs == "autotools":
        return ["test -x ./configure || autoreconf -fi", "./configure --prefix=/usr" + opts,
                "make -j" + jobs, "make install DESTDIR=\"$DESTDIR\""]
    return ["make -j" + jobs + " PREFIX=/usr" + opts, "make install DESTDIR=\"$DESTDIR\" PREFIX=/usr"]
deps = {}
out = ["comps=(" + " ".join(shlex.quote(n) for n in order) + ")"]
for n in order:
    c = by_name[n]
    if c.get("patches"):
        sys.exit("component %s: patches are not supported by the plain reference" % n)
    pin = next(k for k in ("branch", "tag", "revision") if k in c)
    closure = set()
    for d in c.get("depends", []):
        closure |= {d} | deps[d]
    deps[n] = closure
    out.append("c_url[%s]=%s" % (n, shlex.quote(expand(c["src"]))))
    out.append("c_pin[%s]=%s c_ref[%s]=%s" % (n, pin, n, shlex.quote(c[pin])))
    out.append("c_deps[%s]=%s" % (n, shlex.quote(" ".join(d for d in order if d in closure))))
    cmds = commands(c)
    out.append("c_ncmd[%s]=%d" % (n, len(cmds)))
    out += ["c_cmd[%s]=%s" % (shlex.quote("%s/%d" % (n, i)), shlex.quote(x)) for i, x in enumerate(cmds)]
    env = sorted(c.get("env", {}).items())
    out.append("c_nenv[%s]=%d" % (n, len(env)))
    out += ["c_env[%s]=%s" % (shlex.quote("%s/%d" % (n, i)), shlex.quote(k + "=" + v)) for i, (k, v) in enumerate(env)]
print("\n".join(out))
EOF
  ) || die "cannot read the manifest $1"
  c_url=() c_pin=() c_ref=() c_deps=() c_ncmd=() c_cmd=() c_nenv=() c_env=()
  eval "$code"
}

# pinned NAME: the commit the component's pin names now (as resolve pins it).
pinned() {
  local n=$1 ref
  case ${c_pin[$n]} in
    revision) echo "${c_ref[$n]}"; return ;;
    branch) ref=refs/heads/${c_ref[$n]} ;;
    tag) ref=refs/tags/${c_ref[$n]} ;;
  esac
  git ls-remote "${c_url[$n]}" "$ref" "$ref^{}" | awk '{ c = $1 } END { if (c == "") exit 1; print c }'
}

# plain_build ROOT full|again: every component, in dependency order, in
# ROOT/work/NAME; full clones afresh, again works in the existing trees.
# (Called where errexit does not apply: every step checks its own status.)
plain_build() {
  local root=$1 mode=$2 n d i k rev w log
  local -a envs deps
  mkdir -p "$root/work" "$root/logs" || return 1
  for n in "${comps[@]}"; do
    w=$root/work/$n log=$root/logs/$n.log
    rev=$(pinned "$n") || { echo "plain: cannot resolve ${c_pin[$n]} ${c_ref[$n]} of ${c_url[$n]}"; return 1; }
    if [[ $mode == full ]]; then
      rm -rf "$w" && mkdir -p "$w/install" && git clone -q --no-checkout "${c_url[$n]}" "$w/src" || return 1
    else
      git -C "$w/src" fetch -q origin || return 1
    fi
    git -c advice.detachedHead=false -C "$w/src" checkout -q --detach "$rev" || return 1
    rm -rf "$w/sysroot" && mkdir -p "$w/sysroot" || return 1
    read -r -a deps <<<"${c_deps[$n]}"
    for d in "${deps[@]}"; do cp -a "$root/work/$d/install/." "$w/sysroot/" || return 1; done
    envs=(DESTDIR="$w/install" PREFIX=/usr SYSROOT="$w/sysroot"
      PATH="$w/sysroot/usr/bin:$w/sysroot/bin:$PATH"
      CPATH="$w/sysroot/usr/include"
      LIBRARY_PATH="$w/sysroot/usr/lib:$w/sysroot/usr/lib/$multiarch"
      LD_LIBRARY_PATH="$w/sysroot/usr/lib:$w/sysroot/usr/lib/$multiarch"
      PKG_CONFIG_PATH="$w/sysroot/usr/lib/pkgconfig:$w/sysroot/usr/lib/$multiarch/pkgconfig:$w/sysroot/usr/share/pkgconfig"
      PKG_CONFIG_SYSROOT_DIR="$w/sysroot")
    for ((i = 0; i < ${c_nenv[$n]}; i++)); do k=$n/$i; envs+=("${c_env[$k]}"); done
    for ((i = 0; i < ${c_ncmd[$n]}; i++)); do
      k=$n/$i
      echo "+ ${c_cmd[$k]}" >>"$log"
      if ! (cd "$w/src" && env "${envs[@]}" sh -ec "${c_cmd[$k]}") >>"$log" 2>&1 </dev/null; then
        echo "plain: component $n failed: ${c_cmd[$k]} (log: $log)"
        tail -n 20 "$log"
        return 1
      fi
    done
  done
}

# --- measuring -----------------------------------------------------------------
project='' i=0
record() {  # METRIC VALUE: one sample of run $i of $project
  printf '%s\t%s\t%s\t%s\n' "$project" "$i" "$1" "$2" >>"$samples"
}
# timed METRIC CWD CMD...: runs CMD in CWD (stdout to $log_dir/last.json,
# stderr and all to the log), records its seconds; a failure stops the
# benchmark after saving the logs.
timed() {
  local metric=$1 cwd=$2 t0 t1 rc=0 el
  shift 2
  printf '%s run %d/%d: %s ... ' "$project" "$i" "$runs" "$metric" >&2
  cd "$cwd"
  t0=$EPOCHREALTIME
  "$@" >"$log_dir/last.json" 2>"$log_dir/last.err" </dev/null || rc=$?
  t1=$EPOCHREALTIME
  cd /
  { echo "### $project run $i $metric: $* (exit $rc)"; cat "$log_dir/last.json" "$log_dir/last.err"; } >>"$log_dir/all.out"
  if [[ $rc -ne 0 ]]; then
    echo "FAILED (exit $rc)" >&2
    cat "$log_dir/last.json" "$log_dir/last.err" | tail -n 30 | sed 's/^/  | /' >&2
    save_logs "$metric"
    exit 1
  fi
  el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  record "$metric" "$el"
  echo "$el s" >&2
}
save_logs() {  # WHY: keeps the component logs of the failed run in DIR/log
  local to=$log_dir/failed-$project-run$i-$1 b
  mkdir -p "$to"
  [[ ! -d $plain/logs ]] || cp -a "$plain/logs" "$to/plain" 2>/dev/null || true
  for b in main other; do [[ ! -d $ws/$b/logs ]] || cp -a "$ws/$b/logs" "$to/buildfs-$b" 2>/dev/null || true; done
  echo "bench-builder: component logs kept in $to" >&2
}
# record_built METRIC: the components the last buildfs build --json built
record_built() {
  record "$1-built" "$(python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["built"]) or "-")' "$log_dir/last.json")"
}
du_b() { du -sb "$1" | cut -f1; }
# compare_results PLAIN RESULT: how many paths the union of the plain install
# trees and the composed result do not share (a check that both did the same).
compare_results() {
  local n
  for n in "${comps[@]}"; do (cd "$1/work/$n/install" && find . -mindepth 1); done | sort -u >"$log_dir/plain.paths"
  (cd "$2" && find . -mindepth 1) | sort >"$log_dir/buildfs.paths"
  record result-paths "$(wc -l <"$log_dir/buildfs.paths")"
  record result-diff "$(comm -3 "$log_dir/plain.paths" "$log_dir/buildfs.paths" | tee -a "$log_dir/result-diff.out" | wc -l)"
}

run_project() {
  local src ws plain
  for ((i = 1; i <= runs; i++)); do
    src=$run_dir/src ws=$run_dir/ws plain=$run_dir/plain
    unmount_below "$run_dir"
    remove_tree "$run_dir"
    mkdir -p "$run_dir"
    make_sources "$project" "$src"
    load_manifest "$src/manifest.json"
    record components "${comps[*]}"
    record change "$change_comp/$change_file"

    # plain: full build, no-change rebuild
    timed plain-full / plain_build "$plain" full
    timed plain-nochange / plain_build "$plain" again

    # buildfs: full build, no-change rebuild
    quiet "$buildfs" init "$ws"
    quiet bfs new main --manifest "$src/manifest.json"
    timed buildfs-full "$ws/main" "$buildfs" build --json
    record_built buildfs-full
    record repo-after-full "$(du_b "$ws/repo")"
    record result-size "$(du_b "$ws/main/result")"
    compare_results "$plain" "$ws/main/result"
    # libraries CMake took from the host instead of the sysroot
    record host-libs "$(cat "$ws/main/logs/"*.log | grep -E '^-- Found [^:]+: /usr/lib' | sort -u | paste -sd ';' || true)"
    timed buildfs-nochange "$ws/main" "$buildfs" build --json
    record_built buildfs-nochange

    # one-component change, then both rebuild
    commit_change "$src" "change 1"
    timed plain-change / plain_build "$plain" again
    timed buildfs-change "$ws/main" "$buildfs" build --json
    record_built buildfs-change
    record repo-after-change "$(du_b "$ws/repo")"
    record plain-size "$(du_b "$plain")"

    # a second build sharing most components: branch, its own change
    quiet bfs branch main other
    quiet bfs mount other
    commit_change "$src" "change 2"
    timed buildfs-other "$ws/other" "$buildfs" build --json
    record_built buildfs-other
    record repo-after-other "$(du_b "$ws/repo")"

    quiet bfs umount other
    quiet bfs umount main
    unmount_below "$run_dir"
    remove_tree "$run_dir"
  done
}

for project in "${projects[@]}"; do
  [[ $project != debian ]] || prepare_debian
  note "$project: $runs run(s); logs in $log_dir"
  run_project
done
i=0 project=

# --- report ----------------------------------------------------------------------
versions=
for c in "${deb_components[@]}"; do
  [[ ! -f $deb/repos/${c%%:*}.version ]] || versions+="${versions:+, }$(cat "$deb/repos/${c%%:*}.version")"
done
B_SAMPLES=$samples B_RUNS=$runs B_DIR=$dir B_STARTED=$started B_KERNEL=$(uname -r) B_CPUS=$jobs \
B_VERSION=$("$buildfs" --version 2>&1 | head -n 1) B_DEBIAN_VERSIONS=$versions B_BUILDFS=$buildfs \
python3 - <<'EOF'
import os, statistics

env = os.environ
runs = int(env["B_RUNS"])
data = {}  # project -> metric -> [value per run]
order = []
with open(env["B_SAMPLES"]) as f:
    for line in f:
        project, run, metric, value = line.rstrip("\n").split("\t")
        if project not in data:
            order.append(project)
        data.setdefault(project, {}).setdefault(metric, []).append(value)

def med(xs):
    return statistics.median(float(x) for x in xs)

def mib(b):
    return "%.1f MiB" % (b / 1048576) if abs(b) >= 1048576 else "%.0f KiB" % (b / 1024)

def sets(xs):
    """The distinct values, with how many runs had each when they differ."""
    xs = ["none" if x == "-" else x for x in xs]
    distinct = sorted(set(xs), key=xs.index)
    if len(distinct) == 1:
        return distinct[0]
    return "; ".join("%s (%d runs)" % (v, xs.count(v)) for v in distinct)

titles = {"example": "example project (examples/builder)",
          "debian": "Debian project (zlib, libjpeg-turbo, libpng1.6, freetype, libgd2)"}
for project in order:
    d = data[project]
    comps = d["components"][0].split()
    print("### %s: %d components, %d run(s)" % (titles.get(project, project), len(comps), runs))
    print()
    print("| | plain (s) | buildfs (s) | ratio buildfs/plain |")
    print("| --- | ---: | ---: | ---: |")
    rows = [("full build", "full"), ("no-change rebuild", "nochange"),
            ("one-component change (%s)" % d["change"][0], "change")]
    for label, key in rows:
        p, b = d["plain-" + key], d["buildfs-" + key]
        ratio = statistics.median(float(y) / float(x) for x, y in zip(p, b))
        print("| %s | %.2f | %.2f | %.2f |" % (label, med(p), med(b), ratio))
    print()
    print("components, in dependency order: %s" % " ".join(comps))
    print("built by buildfs: full build: %s; no-change rebuild: %s; one-component change: %s"
          % (sets(d["buildfs-full-built"]), sets(d["buildfs-nochange-built"]), sets(d["buildfs-change-built"])))
    print("built by the plain script: every component's commands in every step (%d of %d)" % (len(comps), len(comps)))
    print("branched build \"other\" (buildfs branch main other, a second change to %s): %.2f s; built: %s"
          % (d["change"][0].split("/")[0], med(d["buildfs-other"]), sets(d["buildfs-other-built"])))
    full, change, other = (med(d[k]) for k in ("repo-after-full", "repo-after-change", "repo-after-other"))
    print("repo space (du -sb WS/repo): after main's full build %s; after main's one-component change %s (+%s); "
          "after other's build %s (+%s; +%s over the full build)"
          % (mib(full), mib(change), mib(change - full), mib(other), mib(other - change), mib(other - full)))
    print("composed result tree (du -sb WS/main/result): %s; plain directory after its builds (du -sb): %s"
          % (mib(med(d["result-size"])), mib(med(d["plain-size"]))))
    diff = [int(x) for x in d["result-diff"]]
    if any(diff):
        print("WARNING: the plain install trees and the result differ in %s paths (runs); see %s/log/result-diff.out"
              % (" ".join(map(str, diff)), env["B_DIR"]))
    else:
        print("check: the plain install trees and buildfs's result hold the same %s paths" % d["result-paths"][0])
    host = sorted({x for x in d.get("host-libs", []) if x})
    if host:
        print("WARNING: CMake found host libraries, not the sysroot's: %s" % "; ".join(host))
    if project == "debian" and env["B_DEBIAN_VERSIONS"]:
        print("Debian source packages: %s" % env["B_DEBIAN_VERSIONS"])
    print()
print("times: medians of %d run(s), in seconds; ratio: median over runs of (buildfs / plain); sizes: medians" % runs)
print("date: %s; kernel: %s; CPUs: %s; %s (%s); work dir: %s"
      % (env["B_STARTED"], env["B_KERNEL"], env["B_CPUS"], env["B_VERSION"], env["B_BUILDFS"], env["B_DIR"]))
EOF

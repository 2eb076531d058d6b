# Shared by the benchmark scripts (sourced, not run): their errors, the work
# directory they claim and the mounts below it. The script sets `bench_name`
# first.

fail_usage() { echo "$bench_name: $*" >&2; exit 2; }  # a usage error
need_arg() { [[ $# -ge 2 && -n $2 ]] || fail_usage "$1 needs a value (see --help)"; }  # OPTION VALUE
die() { echo "$bench_name: $*" >&2; exit 1; }

# claim_work_dir DIR NAME: DIR must be new, empty or made by script NAME (it
# removes and unmounts things below it); one invocation per DIR at a time.
claim_work_dir() {
  local dir=$1 name=$2 marker=$1/.$2.lock
  if [[ ! -e $marker && -n $(ls -A "$dir") ]]; then
    fail_usage "--dir: $dir is neither empty nor a $name work directory (no $marker): give a new or empty --dir"
  fi
  exec 9>"$marker"
  flock -n 9 || die "another $name.sh is using $dir (lock $marker)"
}

mounts_below() {  # PATH: mount points below PATH (or PATH itself), deepest first
  awk -v d="$1" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r
}

remove_tree() {  # PATH: rm -rf that never crosses into a mount
  [[ -z $(mounts_below "$1") ]] || die "will not remove $1: something is mounted below it"
  rm -rf --one-file-system "$1"
}

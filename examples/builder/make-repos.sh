#!/usr/bin/env bash
# Turns each directory in components/ into a git repository DEST/NAME (branch
# main, one commit) and writes DEST/manifest.json with @SRC@ replaced by DEST.
set -euo pipefail

usage() {
  echo "usage: $(basename "$0") DEST"
  echo "Creates DEST/NAME, a git repository, for each example component,"
  echo "and DEST/manifest.json pointing at them."
}

case ${1-} in
  -h | --help) usage; exit 0 ;;
esac
if [ $# -ne 1 ]; then usage >&2; exit 2; fi

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
dest=$(cd "$1" && pwd)

# Independent of the user's git configuration.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git_() { git -c user.name=buildfs -c user.email=buildfs@localhost "$@"; }

# Check every target first, so a refusal leaves nothing half done.
for dir in "$here"/components/*/; do
  name=$(basename "$dir")
  if [ -e "$dest/$name" ]; then
    echo "$(basename "$0"): $dest/$name exists already" >&2
    exit 1
  fi
done

for dir in "$here"/components/*/; do
  name=$(basename "$dir")
  mkdir "$dest/$name"
  cp -R "$dir." "$dest/$name/"
  git_ -C "$dest/$name" init -q -b main
  git_ -C "$dest/$name" add -A
  git_ -C "$dest/$name" commit -q -m "$name 1.0"
done

# Escape the characters sed treats specially in a replacement.
esc=$(printf '%s' "$dest" | sed 's/[\\&|]/\\&/g')
sed "s|@SRC@|$esc|g" "$here/manifest.json" > "$dest/manifest.json"
echo "repositories and manifest.json in $dest"

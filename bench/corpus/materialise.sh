#!/usr/bin/env bash
# Materialise the GitHub part of the real-code corpus (repos.txt) from local snapshots: the
# Python sources, notebooks and pyproject.toml files of each repository at its pinned commit, in DEST/<owner>+<name>/.
# Snapshots are git directories brought in with the search tool's `fetch`
# (MIRROR/<owner>+<name>/repo, bare or a work tree with .git; MIRROR defaults to /work/.mirror). Nothing here is committed.
# Usage: materialise.sh DEST [MIRROR]      (idempotent: repositories already there are skipped)
set -euo pipefail
dest=${1:?usage: materialise.sh DEST [MIRROR]}
mirror=${2:-/work/.mirror}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dest"
grep -v '^\s*#' "$here/repos.txt" | grep -v '^\s*$' | while read -r repo commit _; do
  out="$dest/${repo/\//+}"
  [ -d "$out" ] && continue
  git_dir="$mirror/${repo/\//+}/repo"
  [ -d "$git_dir/.git" ] && git_dir="$git_dir/.git"  # some snapshots come as a work tree
  if ! git --git-dir="$git_dir" cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "materialise.sh: no snapshot of $repo at $commit in $mirror (fetch it first)" >&2; continue
  fi
  mkdir -p "$out.tmp"
  # sources and the project files that say how to read them (pyproject.toml: requires-python),
  # file by file: a snapshot may lack its largest files (those are skipped)
  git --git-dir="$git_dir" ls-tree -r "$commit" | { grep -E $'\t(.*\\.(py|ipynb)|(.*/)?pyproject\\.toml)$' || true; } \
    | while IFS=$'\t' read -r meta path; do
        object=${meta##* }
        git --git-dir="$git_dir" cat-file -e "$object" 2>/dev/null || continue
        mkdir -p "$out.tmp/$(dirname "$path")"
        if [ "${meta%% *}" = 120000 ]; then  # a symbolic link, as a checkout makes it
          ln -s "$(git --git-dir="$git_dir" cat-file blob "$object")" "$out.tmp/$path"
          continue
        fi
        git --git-dir="$git_dir" cat-file blob "$object" > "$out.tmp/$path"
      done
  find "$out.tmp" -type d -empty -delete
  mv "$out.tmp" "$out"
  echo "$repo: $(find "$out" -name '*.py' | wc -l) .py files"
done

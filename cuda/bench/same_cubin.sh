#!/usr/bin/env bash
# Checks that an uncommitted refactor left the machine code alone, without a GPU: compiles each given .cu file with
# the change stashed (HEAD) and applied, in place, for sm_75 and sm_90, and compares the cubins byte for byte
# (nvcc's output is deterministic; in place because symbols of anonymous namespaces carry a hash of the source
# path). Identical cubins mean the GPU-verified code is unchanged; any difference means the change needs a GPU run
# like any other CUDA change.
#   bash cuda/bench/same_cubin.sh cuda/conv1d.cu cuda/selective_scan_bwd_bf16.cu ...
set -u
# The whole script is one function, parsed before it runs: the stash below may rewrite this very file.
main() {
  cd "$(git rev-parse --show-toplevel)"
  [ -n "$(git status --porcelain --untracked-files=no)" ] || { echo "same_cubin: no uncommitted change to compare" >&2; exit 2; }
  tmp=$(mktemp -d)
  compile() {  # $1: tag
    for f in "${files[@]}"; do
      for a in 75 90; do
        nvcc -std=c++17 -O3 -arch=sm_$a --expt-relaxed-constexpr -cubin -o "$tmp/$1_$(basename "$f")_$a.cubin" "$f" || return 1
      done
    done
  }
  files=("$@")
  git stash push --quiet
  trap 'git stash pop --quiet' EXIT
  compile head || exit 1
  git stash pop --quiet
  trap - EXIT
  compile work || exit 1
  ok=1
  for f in "${files[@]}"; do
    for a in 75 90; do
      if cmp -s "$tmp/head_$(basename "$f")_$a.cubin" "$tmp/work_$(basename "$f")_$a.cubin"; then
        echo "$f sm_$a: identical"
      else
        echo "$f sm_$a: DIFFERENT"; ok=0
      fi
    done
  done
  rm -rf "$tmp"
  [ $ok = 1 ]
}
main "$@"

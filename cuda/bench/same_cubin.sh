#!/usr/bin/env bash
# Checks that a refactor left the machine code alone, without a GPU: compiles each given .cu file at HEAD (in a
# temporary worktree) and in the working tree for sm_75 and sm_90 and compares the cubins byte for byte (nvcc's
# output is deterministic). Identical cubins mean the GPU-verified code is unchanged; any difference means the
# change needs a GPU run like any other CUDA change.
#   bash cuda/bench/same_cubin.sh cuda/conv1d.cu cuda/selective_scan_bwd_bf16.cu ...
set -u
root=$(git rev-parse --show-toplevel)
wt=$(mktemp -d)
git -C "$root" worktree add -q --detach "$wt/head" HEAD
ok=1
for f in "$@"; do
  for a in 75 90; do
    (cd "$wt/head" && nvcc -std=c++17 -O3 -arch=sm_$a --expt-relaxed-constexpr -cubin -o "$wt/h.cubin" "$f") || ok=0
    (cd "$root" && nvcc -std=c++17 -O3 -arch=sm_$a --expt-relaxed-constexpr -cubin -o "$wt/w.cubin" "$f") || ok=0
    if cmp -s "$wt/h.cubin" "$wt/w.cubin"; then echo "$f sm_$a: identical"; else echo "$f sm_$a: DIFFERENT"; ok=0; fi
  done
done
git -C "$root" worktree remove --force "$wt/head"
rm -rf "$wt"
[ $ok = 1 ]

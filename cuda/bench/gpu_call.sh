#!/usr/bin/env bash
# One device call that measures and verifies scan builds on the GPU host (device tool's `run`, from the repository
# root of the travelling tree). Carry the lab binaries and, for the suite, .gpu/bundle.tar.xz (scripts/gpu-bundle.js).
#   bash cuda/bench/gpu_call.sh [--suite] LAB [LAB...]
# Every LAB runs `--bench` first, one after another, while the GPU is quiet; then the first LAB runs the full grid
# and the four sanitizers on `--small` (one after another) beside the jest + native suite from the bundle (with
# --suite) and beside nothing else. Logs go to $OUT/logs and come back as $OUT/logs.tgz (a call returns at most 8
# files). Timing seen on the H200 (2026-11-29): a lab bench ~20 s, library bench ~30 s, grid ~30 s, the four
# sanitizers ~90 s in a row, the suite ~345 s alone; four sanitizers at once beside it pushed it past 420 s.
set -u
suite=0
if [ "${1:-}" = "--suite" ]; then suite=1; shift; fi
[ $# -ge 1 ] || { echo "usage: $0 [--suite] LAB [LAB...]" >&2; exit 2; }
L=${OUT:-/tmp/out}/logs
mkdir -p "$L"
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader; date -u; } > "$L/gpu.txt" 2>&1
for lab in "$@"; do
  timeout 60 stdbuf -oL "$lab" --bench > "$L/bench_$(basename "$lab").txt" 2>&1
done
if [ $suite = 1 ]; then
  mkdir -p /tmp/b && tar -xJf .gpu/bundle.tar.xz -C /tmp/b
  (cd /tmp/b && PATH=/tmp/b:$PATH MAMBA_BUNDLE=1 timeout 60 ./node scripts/bench-scan.js > "$L/bench_scan.txt" 2>&1)
  (cd /tmp/b && PATH=/tmp/b:$PATH MAMBA_BUNDLE=1 timeout 480 ./node scripts/test.js > "$L/suite.txt" 2>&1
   echo "rc $? at $SECONDS s" >> "$L/suite.txt") &
fi
(timeout 90 stdbuf -oL "$1" > "$L/grid.txt" 2>&1; echo "rc $? at $SECONDS s" >> "$L/grid.txt"
 for t in memcheck racecheck initcheck synccheck; do
   timeout 150 compute-sanitizer --tool $t --error-exitcode 99 "$1" --small > "$L/lab_$t.txt" 2>&1
   echo "rc $? at $SECONDS s" >> "$L/lab_$t.txt"
 done) &
wait
echo "end at $SECONDS s" >> "$L/gpu.txt"
(cd "$L" && tar -czf ../logs.tgz .)

#!/usr/bin/env node
// Packs everything needed to run the whole test suite, CUDA tests included, on a GPU host that has no
// Node toolchain: this Node binary, the built addon (with CUDA), the native test programs, the tests
// compiled to JavaScript, and the runtime packages jest needs. Output: .gpu/bundle.tar.xz (< 60 MB).
// On the GPU host:  mkdir b && tar -xJf bundle.tar.xz -C b && b/run-gpu-tests.sh [outdir]
// (b/run-gpu-sanitize.sh runs compute-sanitizer over chosen CUDA test files and the scan lab; see its header)
// run-gpu-tests.sh runs scripts/test.js (jest + native tests) and compute-sanitizer over the native
// CUDA tests, writing logs to outdir. The benchmarks run from the bundle too: ./node scripts/bench-train.js
// (and bench-scan.js, bench-ops.js).
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const out = path.join(root, '.gpu');
const stage = path.join(out, 'bundle');

function fail(msg) {
  console.error(`gpu-bundle: ${msg}`);
  process.exit(1);
}

const addon = path.join(root, 'build', 'Release', 'mamba_node.node');
if (!fs.existsSync(addon)) fail('build the addon first (npm run build:addon)');
if (!require(addon).compiledWithCuda()) fail('the addon was built without CUDA; rebuild with nvcc on PATH');

// The tests (and the library they import) compiled to JavaScript: dist-test/{lib,test}.
fs.rmSync(path.join(root, 'dist-test'), { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc', { paths: [root] }), '-p', 'test/tsconfig.json'], {
  cwd: root,
  stdio: 'inherit',
});

// Package directories that `start` needs at run time: dependencies resolved as Node does, walking up
// node_modules folders from the requiring package.
function closure(start) {
  const seen = new Set();
  const visit = (name, fromDir) => {
    let dir = fromDir;
    for (;;) {
      const candidate = path.join(dir, 'node_modules', name);
      if (fs.existsSync(path.join(candidate, 'package.json'))) {
        if (seen.has(candidate)) return;
        seen.add(candidate);
        const pkg = JSON.parse(fs.readFileSync(path.join(candidate, 'package.json'), 'utf8'));
        for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) visit(dep, candidate);
        return;
      }
      if (dir === root || dir === path.dirname(dir)) return; // not installed (an optional dependency)
      dir = path.dirname(dir);
    }
  };
  for (const name of start) visit(name, root);
  return [...seen];
}

fs.rmSync(stage, { recursive: true, force: true });
fs.mkdirSync(path.join(stage, 'build', 'Release'), { recursive: true });
const copy = (rel, dest = rel) => fs.cpSync(path.join(root, rel), path.join(stage, dest), { recursive: true, dereference: true });
fs.copyFileSync(process.execPath, path.join(stage, 'node'));
fs.chmodSync(path.join(stage, 'node'), 0o755);
copy('package.json');
copy('jest.config.js');
copy('scripts/test.js');
copy('scripts/bench-scan.js');
copy('scripts/bench-ops.js');
copy('scripts/bench-train.js');
copy('build/Release/mamba_node.node');
for (const t of ['native_cpu_test', 'native_cuda_test', 'selective_scan_cpu_test', 'selective_scan_cuda_test'])
  if (fs.existsSync(path.join(root, 'build', t))) copy(`build/${t}`);
copy('dist-test');
// Data files the compiled tests read relative to their own directory (the Hugging Face fixtures).
copy('test/fixtures', 'dist-test/test/fixtures');
for (const dir of closure(['jest', '@petamoriken/float16'])) copy(path.relative(root, dir));
fs.writeFileSync(
  path.join(stage, 'run-gpu-tests.sh'),
  `#!/usr/bin/env bash
# Runs the full suite on a GPU host: jest (CUDA tests included) + native tests, then compute-sanitizer.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
outdir="\${1:-$here/out}"
mkdir -p "$outdir"
cd "$here"
export PATH="$here:$PATH" MAMBA_BUNDLE=1
./node scripts/test.js 2>&1 | tee "$outdir/test.log"
status=\${PIPESTATUS[0]}
if command -v compute-sanitizer >/dev/null 2>&1; then
  # API errors are not reported: the out-of-memory test provokes a failing cudaMalloc on purpose.
  for tool in memcheck racecheck initcheck synccheck; do
    compute-sanitizer --tool $tool --report-api-errors no --error-exitcode 99 build/native_cuda_test > "$outdir/sanitizer-$tool.log" 2>&1
    echo "compute-sanitizer $tool: exit $? ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$outdir/sanitizer-$tool.log" | tail -1))"
  done
fi
exit $status
`,
  { mode: 0o755 },
);
fs.writeFileSync(
  path.join(stage, 'run-gpu-sanitize.sh'),
  `#!/usr/bin/env bash
# compute-sanitizer over the CUDA parts of compiled jest files and over the scan lab's small grid, one log per
# (tool, target), each under a time limit so one call fits the device tool's 10 minutes.
#   run-gpu-sanitize.sh OUTDIR SECONDS TOOLS TARGETS...
#   TOOLS: comma list of memcheck,racecheck,initcheck,synccheck; TARGET: a path under dist-test/test (file or
#   folder, only its describe blocks named "... CUDA ..." run) or "lab" (build/selective_scan_cuda_test --small).
# e.g. ./run-gpu-sanitize.sh out 120 memcheck,racecheck dist-test/test/ops/conv1d dist-test/test/ops/reduce_sum lab
set -u
here="$(cd "$(dirname "$0")" && pwd)"
outdir="$1"; limit="$2"; tools="$3"; shift 3
mkdir -p "$outdir"
cd "$here"
export PATH="$here:$PATH" MAMBA_BUNDLE=1 MAMBA_TEST_JS=1
for tool in \${tools//,/ }; do
  for target in "$@"; do
    name="$tool-$(basename "$target")"
    if [ "$target" = lab ]; then
      cmd=(build/selective_scan_cuda_test --small)
    else
      cmd=(./node node_modules/jest/bin/jest.js --ci --runInBand -t CUDA "$target")
    fi
    # API errors are not reported: out-of-memory tests provoke failing cudaMallocs on purpose.
    timeout "$limit" compute-sanitizer --tool "$tool" --report-api-errors no --error-exitcode 99 "\${cmd[@]}" > "$outdir/$name.log" 2>&1
    rc=$?
    echo "$name: exit $rc ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$outdir/$name.log" | tail -1))$([ $rc = 124 ] && echo ' TIMED OUT')"
  done
done
`,
  { mode: 0o755 },
);
const tarball = path.join(out, 'bundle.tar.xz');
execFileSync('tar', ['-cJf', tarball, '-C', stage, '.'], { stdio: 'inherit', env: { ...process.env, XZ_OPT: '-6 -T0' } });
const mb = fs.statSync(tarball).size / 2 ** 20;
console.log(`gpu-bundle: ${path.relative(root, tarball)} ${mb.toFixed(1)} MB`);
if (mb >= 60) fail('the bundle is over 60 MB');

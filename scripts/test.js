#!/usr/bin/env node
// `npm test`: jest over the TypeScript API, then the native kernel tests (ctest; in a GPU bundle,
// where there is no CMake, the test executables directly), then — in CI (CI=true) or with
// MAMBA_TEST_GYP=1 — the node-gyp CPU-only build check. Ends with one line `N passed, N failed,
// N skipped` over all of them and a non-zero exit code if anything failed.
// Extra arguments go to jest (e.g. `npm test -- test/tensor.test.ts`).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const build = path.join(root, 'build');
const bundle = process.env.MAMBA_BUNDLE === '1';
const totals = { passed: 0, failed: 0, skipped: 0 };
const log = (s) => console.log(`[test] ${s}`);

function runJest() {
  const out = path.join(build, 'jest-results.json');
  fs.mkdirSync(build, { recursive: true });
  fs.rmSync(out, { force: true });
  const jest = require.resolve('jest/bin/jest', { paths: [root] });
  // One GPU: the bundle runs the test files in band, so one process owns the CUDA context.
  const args = [jest, '--ci', '--json', `--outputFile=${out}`, ...(bundle ? ['--runInBand'] : []), ...process.argv.slice(2)];
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: { ...process.env, MAMBA_TEST_JS: bundle ? '1' : process.env.MAMBA_TEST_JS } });
  if (!fs.existsSync(out)) {
    log(`jest produced no results (exit ${r.status})`);
    totals.failed += 1;
    return;
  }
  const j = JSON.parse(fs.readFileSync(out, 'utf8'));
  totals.passed += j.numPassedTests;
  totals.failed += j.numFailedTests + j.numRuntimeErrorTestSuites;
  totals.skipped += j.numPendingTests + j.numTodoTests;
  log(`jest: ${j.numPassedTests} passed, ${j.numFailedTests} failed, ${j.numPendingTests} skipped, ${j.numRuntimeErrorTestSuites} suites failed to run`);
  if (r.status !== 0 && j.numFailedTests + j.numRuntimeErrorTestSuites === 0) totals.failed += 1;
}

// Each native test program prints its own `N passed, N failed` line and exits 77 when it has nothing
// to run here (the CUDA tests without a GPU).
function countNative(name, status, stdout) {
  const m = /^(?:\d+: )?(\d+) passed, (\d+) failed\s*$/m.exec(stdout);
  if (status === 77) {
    totals.skipped += 1;
    log(`${name}: skipped (no GPU)`);
  } else if (m) {
    totals.passed += Number(m[1]);
    totals.failed += Number(m[2]) + (status !== 0 && Number(m[2]) === 0 ? 1 : 0);
    log(`${name}: ${m[1]} passed, ${m[2]} failed`);
  } else {
    totals.failed += 1;
    log(`${name}: exited ${status} without a result line`);
  }
}

function runNative() {
  const names = ['native_cpu_test', 'native_cuda_test', 'selective_scan_cpu_test', 'selective_scan_cuda_test'].filter((n) => fs.existsSync(path.join(build, n)));
  if (names.length === 0) {
    log('no native test programs found in build/ (run npm run build:addon)');
    totals.failed += 1;
    return;
  }
  if (!bundle) {
    // ctest runs them (with their registered properties); -V so each program's own summary is visible.
    const r = spawnSync('ctest', ['--test-dir', build, '-V'], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.error) {
      log(`ctest could not run: ${r.error.message}`);
      totals.failed += 1;
      return;
    }
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    // ctest -V prefixes each program's output with its test number; map numbers to names.
    const numbers = new Map([...r.stdout.matchAll(/Start\s+(\d+): (\S+)/g)].map((m) => [m[2], m[1]]));
    for (const [name, num] of numbers) {
      const own = r.stdout.split('\n').filter((l) => l.startsWith(`${num}: `)).map((l) => l.slice(`${num}: `.length)).join('\n');
      const skipped = new RegExp(`${name} \\.+\\*+Skipped`).test(r.stdout);
      const failedRun = new RegExp(`${name} \\.+\\*+(Failed|Exception|Timeout)`).test(r.stdout);
      countNative(name, skipped ? 77 : failedRun ? 1 : 0, own);
    }
    return;
  }
  for (const name of names) {
    const r = spawnSync(path.join(build, name), [], { cwd: build, encoding: 'utf8', maxBuffer: 1 << 28 });
    process.stdout.write(r.stdout || '');
    process.stderr.write(r.stderr || '');
    countNative(name, r.status, r.stdout || '');
  }
}

function runGyp() {
  const r = spawnSync(process.execPath, [path.join(__dirname, 'check-gyp.js')], { cwd: root, stdio: 'inherit' });
  if (r.status === 0) totals.passed += 1;
  else totals.failed += 1;
  log(`node-gyp CPU-only build: ${r.status === 0 ? 'passed' : 'failed'}`);
}

runJest();
runNative();
if (!bundle && (process.env.CI === 'true' || process.env.MAMBA_TEST_GYP === '1')) runGyp();
const summary = `${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`;
fs.writeFileSync(path.join(build, 'test-summary.txt'), `${summary}\n`);
console.log(summary);
process.exit(totals.failed === 0 ? 0 : 1);

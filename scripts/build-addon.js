#!/usr/bin/env node
// Builds the native addon with cmake-js (run by `npm install` and `npm run build:addon`).
// Environment: MAMBA_NO_CUDA=1 builds CPU-only; MAMBA_CUDA_ARCHS="90" (CMake CUDA_ARCHITECTURES
// syntax) overrides the default sm_75..sm_90 + PTX list; MAMBA_BUILD_JOBS sets the parallelism.
// Without --force, an existing build whose configuration matches is only brought up to date.
'use strict';
const { spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const jobs = process.env.MAMBA_BUILD_JOBS || String(Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length));
const args = [cmakeJs, process.argv.includes('--force') ? 'rebuild' : 'compile', '--directory', root, '--parallel', jobs];
args.push(`--CDMAMBA_NO_CUDA=${process.env.MAMBA_NO_CUDA === '1' ? 'ON' : 'OFF'}`);
if (process.env.MAMBA_CUDA_ARCHS) args.push(`--CDMAMBA_CUDA_ARCHS=${process.env.MAMBA_CUDA_ARCHS}`);
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (r.error) throw r.error;
process.exit(r.status === null ? 1 : r.status);

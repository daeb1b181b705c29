#!/usr/bin/env node
// Builds the CPU-only addon from binding.gyp with node-gyp in a scratch copy of the sources (so the
// cmake-js build in build/ is untouched), then loads it in a child process and checks that it works
// and reports no CUDA. Exit code 0 on success. Run by scripts/test.js when CI=true or MAMBA_TEST_GYP=1.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-gyp-'));
try {
  fs.copyFileSync(path.join(root, 'binding.gyp'), path.join(work, 'binding.gyp'));
  for (const dir of ['native', 'cuda']) fs.cpSync(path.join(root, dir), path.join(work, dir), { recursive: true });
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(work, 'node_modules'));
  const gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
  const jobs = String(Math.max(1, os.cpus().length));
  // Build against the headers that ship with this Node (<prefix>/include/node), never downloading them.
  const nodedir = process.env.npm_config_nodedir || path.resolve(process.execPath, '..', '..');
  if (!fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) {
    console.error(`check-gyp: no Node headers under ${nodedir}/include/node (set npm_config_nodedir)`);
    process.exit(1);
  }
  const b = spawnSync(process.execPath, [gyp, 'rebuild', `--jobs=${jobs}`, `--nodedir=${nodedir}`], { cwd: work, stdio: 'inherit' });
  if (b.status !== 0) {
    console.error('check-gyp: node-gyp build failed');
    process.exit(1);
  }
  const addon = path.join(work, 'build', 'Release', 'mamba_node.node');
  const probe = `
    const b = require(${JSON.stringify(addon)});
    if (b.compiledWithCuda() || b.cudaAvailable()) throw new Error('the node-gyp build must be CPU-only');
    const h = b.arange(10, 0, 1, 'bfloat16', 'cpu');
    const v = b.dataSync(b.cast(h, 'float32'));
    if (v[9] !== 9) throw new Error('wrong values from the node-gyp build');
    let refused = false;
    try { b.full([1], 'float32', 'cuda', 0); } catch (e) { refused = /no CUDA support/.test(e.message); }
    if (!refused) throw new Error('CUDA was not refused');
    console.log('check-gyp: the node-gyp CPU-only addon loads and works');`;
  const r = spawnSync(process.execPath, ['-e', probe], { stdio: 'inherit' });
  process.exit(r.status === 0 ? 0 : 1);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}

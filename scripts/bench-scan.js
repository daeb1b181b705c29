#!/usr/bin/env node
// `npm run bench:scan`: the selective scan through the public API, timed with CUDA events (median of
// many runs after warm-up), for the shapes of shared/guide/perf-anchors.md: S1 (8, 1536, 2048),
// S2 (4, 4096, 2048), S3 (1, 1536, 16384); dstate 16; variable B/C, z, D, deltaBias, softplus; bf16 and
// fp32. Prints forward (with checkpoints, as training runs it) and forward+backward times, achieved
// bytes/s of the minimal traffic and exp/s, against the floors and the official kernel.
// `--cpu` times the CPU kernel on S1/8 = (1, 1536, 2048) instead (wall clock, median of 5).
'use strict';
const path = require('node:path');
const fs = require('node:fs');

const libDir = ['dist', path.join('dist-test', 'lib')].map((d) => path.join(__dirname, '..', d)).find((d) => fs.existsSync(path.join(d, 'index.js')));
if (!libDir) throw new Error('bench-scan: build the TypeScript first (npm run build:ts)');
const m = require(libDir);
const { ops, randn, rand, tensor, cudaTime, cudaAvailable, devices, memory } = m;

const HBM = 4.27e12; // measured device-to-device copy, bytes/s (perf-anchors.md)
const MUFU = 4.2e12; // exp2 results/s
const OFFICIAL = {
  'S1 bfloat16': [0.447, 2.19], 'S1 float32': [0.878, 2.91],
  'S2 bfloat16': [0.591, 2.89], 'S2 float32': [1.162, 3.85],
  'S3 bfloat16': [0.548, 2.56], 'S3 float32': [0.976, 3.14],
};
const SHAPES = { S1: [8, 1536, 2048], S2: [4, 4096, 2048], S3: [1, 1536, 16384] };
const N = 16;

function inputs([b, d, L], dtype, device) {
  const o = { dtype, device };
  return {
    u: randn([b, d, L], { ...o, seed: 1 }),
    delta: rand([b, d, L], { ...o, seed: 2, high: 0.5 }),
    A: rand([d, N], { device, seed: 3, low: -1, high: -0.1 }),
    B: randn([b, 1, N, L], { ...o, seed: 4 }),
    C: randn([b, 1, N, L], { ...o, seed: 5 }),
    z: randn([b, d, L], { ...o, seed: 6 }),
    D: randn([d], { device, seed: 7 }),
    deltaBias: rand([d], { device, seed: 8, high: 0.5 }),
    dout: randn([b, d, L], { ...o, seed: 9 }),
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function disposeAll(obj) {
  for (const v of Object.values(obj)) if (v && typeof v.dispose === 'function') v.dispose();
}

function benchCuda() {
  console.log(`device: ${devices()[0].name}, ${new Date().toISOString().slice(0, 10)}`);
  const rows = [];
  for (const [name, shape] of Object.entries(SHAPES)) {
    for (const dtype of ['bfloat16', 'float32']) {
      const x = inputs(shape, dtype, 'cuda');
      const opts = { D: x.D, z: x.z, deltaBias: x.deltaBias, deltaSoftplus: true };
      const fwd = () => {
        const r = ops.selectiveScanForward(x.u, x.delta, x.A, x.B, x.C, opts);
        r.out.dispose();
        r.saved.dispose();
      };
      const fwdBwd = () => {
        const r = ops.selectiveScanForward(x.u, x.delta, x.A, x.B, x.C, opts);
        const g = ops.selectiveScanBackward(r.saved, x.dout);
        r.out.dispose();
        r.saved.dispose();
        disposeAll(g);
      };
      cudaTime(fwdBwd, 5);
      const tf = median(cudaTime(fwd, 30));
      const tfb = median(cudaTime(fwdBwd, 30));
      const [b, d, L] = shape;
      const es = b * d * L * N;
      const size = dtype === 'bfloat16' ? 2 : 4;
      const fwdBytes = (4 * b * d * L + 2 * b * N * L) * size; // read u, delta, z, B, C; write out
      const fbBytes = fwdBytes + (7 * b * d * L + 4 * b * N * L) * size; // + read u, delta, z, dout, B, C; write du, ddelta, dz, dB, dC
      const [of, ofb] = OFFICIAL[`${name} ${dtype}`];
      rows.push({
        shape: `${name} (${shape.join(', ')})`,
        dtype,
        'fwd ms': tf.toFixed(3),
        'fwd vs official': `${(of / tf).toFixed(2)}x`,
        'fwd GB/s': ((fwdBytes / (tf * 1e-3)) / 1e9).toFixed(0),
        'fwd % HBM': ((100 * fwdBytes) / (tf * 1e-3) / HBM).toFixed(0),
        'fwd Gexp/s': ((es / (tf * 1e-3)) / 1e9).toFixed(0),
        'fwd % MUFU': ((100 * es) / (tf * 1e-3) / MUFU).toFixed(0),
        'fwd+bwd ms': tfb.toFixed(3),
        'fwd+bwd vs official': `${(ofb / tfb).toFixed(2)}x`,
        'fwd+bwd GB/s': ((fbBytes / (tfb * 1e-3)) / 1e9).toFixed(0),
      });
      disposeAll(x);
    }
  }
  console.table(rows);
  console.log(`live tensors after the benchmark: ${memory().numTensors}`);
}

function benchCpu() {
  const shape = [1, 1536, 2048];
  const rows = [];
  for (const dtype of ['float32', 'bfloat16']) {
    const x = inputs(shape, dtype, 'cpu');
    const opts = { D: x.D, z: x.z, deltaBias: x.deltaBias, deltaSoftplus: true };
    const time = (f) => {
      const ts = [];
      for (let i = 0; i < 5; i++) {
        const t0 = process.hrtime.bigint();
        f();
        ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      return median(ts);
    };
    const tf = time(() => {
      const r = ops.selectiveScanForward(x.u, x.delta, x.A, x.B, x.C, opts);
      r.out.dispose();
      r.saved.dispose();
    });
    const tfb = time(() => {
      const r = ops.selectiveScanForward(x.u, x.delta, x.A, x.B, x.C, opts);
      const g = ops.selectiveScanBackward(r.saved, x.dout);
      r.out.dispose();
      r.saved.dispose();
      disposeAll(g);
    });
    const es = shape.reduce((a, b) => a * b, 1) * N;
    rows.push({ shape: `(${shape.join(', ')})`, dtype, 'fwd ms': tf.toFixed(1), 'fwd GES/s': (es / tf / 1e6).toFixed(2), 'fwd+bwd ms': tfb.toFixed(1), 'fwd+bwd GES/s': (es / tfb / 1e6).toFixed(2) });
    disposeAll(x);
  }
  console.log(`CPU: ${require('node:os').cpus().length} cores, ${new Date().toISOString().slice(0, 10)}`);
  console.table(rows);
}

if (process.argv.includes('--cpu')) benchCpu();
else if (!cudaAvailable()) {
  console.log('bench-scan: no CUDA device; timing the CPU kernel instead (--cpu)');
  benchCpu();
} else benchCuda();

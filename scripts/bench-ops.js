#!/usr/bin/env node
// `npm run bench:ops`: op benchmarks through the public API, one table per device. Each entry of BENCHES
// has a name and a `cuda` and/or `cpu` function returning rows (plain objects, printed with console.table);
// add an op by appending an entry (rmsnorm, conv1d, cross-entropy, ...). CUDA times are device times from
// CUDA events (`cudaTime`, median after warm-up); per-call overheads and CPU times are wall clock. The fused ops
// (kernels of tens of µs, comparable to the host-side cost of one op call) are timed as loops of k calls behind
// a queue of filler work (`deviceMsPerCall`), so that the GPU never waits for the host inside a timed span.
// Without a CUDA device (or with --cpu) only the CPU entries run. `--only=matmul,overhead` picks entries
// by name prefix.
// Anchor: bf16 dense matmul through cuBLAS via PyTorch, 8192^3, ~790 TFLOP/s on the H200
// (shared/guide/perf-anchors.md); the target is within 10% of cuBLAS's own rate at 4096^3.
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');

const libDir = ['dist', path.join('dist-test', 'lib')].map((d) => path.join(__dirname, '..', d)).find((d) => fs.existsSync(path.join(d, 'index.js')));
if (!libDir) throw new Error('bench-ops: build the TypeScript first (npm run build:ts)');
const m = require(libDir);
const { ops, randn, cudaTime, cudaAvailable, cublasAvailable, cublasInfo, devices, memory, synchronize } = m;

const CUBLAS_ANCHOR_TFLOPS = 790;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const disposeAll = (...ts) => ts.forEach((t) => t && t.dispose());

/** Median device milliseconds of `fn` (which enqueues CUDA work) over `iters` calls after `warmup` calls. */
function deviceMs(fn, iters = 30, warmup = 5) {
  cudaTime(fn, warmup);
  return median(cudaTime(fn, iters));
}

// Filler work: elementwise multiplies on a 256 MB float32 tensor (~0.2 ms of device time each on an H200).
let filler = null;
function fillQueue(calls = 100) {
  filler = filler || randn([64 << 20], { device: 'cuda', seed: 99 });
  for (let i = 0; i < calls; i++) ops.mul(filler, filler).dispose();
}

/**
 * Median device milliseconds per call of `fn`: each sample times `k` back-to-back calls between one pair of
 * CUDA events and divides by k. The samples are enqueued behind ~20 ms of filler work, so all of them are
 * queued before the GPU reaches the first event and the host-side cost of a call (argument checks, output
 * allocation, the launch itself) is not counted; with one call per event pair (`deviceMs`) the GPU idles
 * while the next call is being prepared, which counted e.g. 129 µs for a 39.5 µs kernel.
 */
function deviceMsPerCall(fn, k = 20, iters = 10) {
  const loop = () => {
    for (let i = 0; i < k; i++) fn();
  };
  cudaTime(loop, 1);
  fillQueue();
  return median(cudaTime(loop, iters)) / k;
}

/** Median wall milliseconds of `fn` over `iters` calls after one warm-up call. */
function wallMs(fn, iters = 5) {
  fn();
  const ts = [];
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(ts);
}

/** Wall microseconds per call of `fn` over `n` calls; CUDA work is queued, synchronized once at the end. */
function usPerCall(fn, n = 1000) {
  for (let i = 0; i < 100; i++) fn();
  synchronize();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  const t1 = process.hrtime.bigint();
  synchronize();
  return Number(t1 - t0) / 1e3 / n;
}

// ---- matmul ----

function matmulRow(label, [M, N, K], dtype, device, opts, ms, backend) {
  const tflops = (2 * M * N * K) / (ms * 1e-3) / 1e12;
  const row = { op: label, shape: `${M}x${N}x${K}`, dtype, backend, ms: ms.toFixed(3) };
  if (device === 'cuda') {
    row['TFLOP/s'] = tflops.toFixed(1);
    row['% of 790'] = ((100 * tflops) / CUBLAS_ANCHOR_TFLOPS).toFixed(0);
  } else {
    row['GFLOP/s'] = (tflops * 1e3).toFixed(1);
  }
  return row;
}

function benchMatmulCuda() {
  const rows = [];
  const cases = [
    // [label, [M, N, K], dtype, options, iterations]
    ['matmul', [4096, 4096, 4096], 'bfloat16', {}, 30],
    ['matmul transB', [4096, 4096, 4096], 'bfloat16', { transB: true }, 30],
    ['matmul', [8192, 8192, 8192], 'bfloat16', {}, 20],
    ['matmul', [4096, 4096, 4096], 'float16', {}, 30],
    ['matmul', [4096, 4096, 4096], 'float32', {}, 20],
  ];
  const backends = cublasAvailable() ? ['auto', 'fallback'] : ['fallback'];
  for (const backend of backends) {
    const prev = ops.setMatmulBackend(backend);
    try {
      for (const [label, [M, N, K], dtype, opts, iters] of cases) {
        // The fallback kernel is for correctness; time it on the headline shape only.
        if (backend === 'fallback' && !(M === 4096 && dtype === 'bfloat16' && !opts.transB)) continue;
        const a = randn([M, K], { dtype, device: 'cuda', seed: 1 });
        const b = randn(opts.transB ? [N, K] : [K, N], { dtype, device: 'cuda', seed: 2 });
        const ms = deviceMs(() => ops.matmul(a, b, opts).dispose(), backend === 'fallback' ? 5 : iters, backend === 'fallback' ? 1 : 5);
        rows.push(matmulRow(label, [M, N, K], dtype, 'cuda', opts, ms, ops.matmulLastPath()));
        disposeAll(a, b);
      }
      // Mamba-130m in_proj as training runs it: x (8, 2048, 768) @ W (3072, 768)^T, bf16.
      if (backend === 'auto') {
        const x = randn([8, 2048, 768], { dtype: 'bfloat16', device: 'cuda', seed: 3 });
        const w = randn([3072, 768], { dtype: 'bfloat16', device: 'cuda', seed: 4 });
        const bias = randn([3072], { dtype: 'bfloat16', device: 'cuda', seed: 5 });
        const ms = deviceMs(() => ops.linear(x, w, bias).dispose());
        rows.push(matmulRow('linear + bias (in_proj)', [16384, 3072, 768], 'bfloat16', 'cuda', {}, ms, ops.matmulLastPath()));
        disposeAll(x, w, bias);
      }
    } finally {
      ops.setMatmulBackend(prev);
    }
  }
  return rows;
}

function benchMatmulCpu() {
  const rows = [];
  for (const [n, dtype] of [
    [512, 'float32'],
    [1024, 'float32'],
    [1024, 'bfloat16'],
  ]) {
    const a = randn([n, n], { dtype, seed: 1 });
    const b = randn([n, n], { dtype, seed: 2 });
    const ms = wallMs(() => ops.matmul(a, b).dispose());
    rows.push(matmulRow('matmul', [n, n, n], dtype, 'cpu', {}, ms, 'cpu'));
    disposeAll(a, b);
  }
  return rows;
}

// ---- per-call overhead: one small op from TypeScript to a queued kernel ----

function overheadRows(device) {
  const a = randn([8, 8], { device, seed: 1 });
  const b = randn([8, 8], { device, seed: 2 });
  const rows = [
    { op: 'matmul 8x8x8 float32 (+ dispose)', device, 'µs/call': usPerCall(() => ops.matmul(a, b).dispose()).toFixed(2) },
    { op: 'cast 8x8 float32 -> bfloat16 (+ dispose)', device, 'µs/call': usPerCall(() => a.cast('bfloat16').dispose()).toFixed(2) },
  ];
  disposeAll(a, b);
  return rows;
}

// ---- fused ops (rmsnorm, conv1d, cross-entropy) at the Mamba-130m training shapes, batch 8 x 2048 tokens ----
// GB/s counts the minimal traffic (each tensor read or written once); the target is >= 70% of 4.27 TB/s.
// Times are per call from loops of k calls (deviceMsPerCall); they include the gaps between back-to-back
// kernels and any second kernel of an op (e.g. conv1d's dweight sum), not the host-side cost of a call.
// Backward kernels are timed through the native binding with saved tensors made by one forward.

const HBM_BYTES_PER_S = 4.27e12;

function bwRow(op, shape, dtype, ms, bytes) {
  const gbs = bytes / (ms * 1e-3) / 1e9;
  return { op, shape, dtype, ms: ms.toFixed(4), 'GB/s': gbs.toFixed(0), '% of 4.27 TB/s': ((100 * gbs * 1e9) / HBM_BYTES_PER_S).toFixed(0) };
}

function benchFusedCuda() {
  const nat = require(path.join(libDir, 'native')).native();
  const h = (t) => t.handle('bench');
  const rows = [];
  const dev = { device: 'cuda' };
  for (const dtype of ['bfloat16', 'float32']) {
    const es = dtype === 'float32' ? 4 : 2;
    // RMSNorm (16384, 768): plain, and the block's fused add with the float32 residual (prenorm chain).
    const [M, C] = [8 * 2048, 768];
    const x = randn([M, C], { ...dev, dtype, seed: 1 });
    const w = randn([C], { ...dev, seed: 2 });
    const res = randn([M, C], { ...dev, seed: 3 });
    const dy = randn([M, C], { ...dev, dtype, seed: 4 });
    let ms = deviceMsPerCall(() => ops.rmsNorm(x, w).out.dispose());
    rows.push(bwRow('rmsNorm fwd', `${M}x${C}`, dtype, ms, M * C * 2 * es));
    ms = deviceMsPerCall(() => {
      const r = ops.rmsNorm(x, w, { residual: res });
      disposeAll(r.out, r.residual);
    });
    rows.push(bwRow('rmsNorm+residual fwd', `${M}x${C}`, dtype, ms, M * C * (2 * es + 8)));
    const [o, rout, rstd] = nat.rmsNormFwd(h(x), h(w), h(res), 1e-5, 'float32', true);
    ms = deviceMsPerCall(() => nat.rmsNormBwd(rout, h(w), rstd, h(dy), rout, dtype, true).forEach((t) => t && nat.dispose(t)));
    rows.push(bwRow('rmsNorm+residual bwd', `${M}x${C}`, dtype, ms, M * C * (2 * es + 12)));
    [o, rout, rstd].forEach((t) => nat.dispose(t));
    disposeAll(x, w, res, dy);

    // Causal conv1d (8, 1536, 2048), width 4, bias, SiLU.
    const [B, D, L, W] = [8, 1536, 2048, 4];
    const cx = randn([B, D, L], { ...dev, dtype, seed: 5 });
    const cw = randn([D, W], { ...dev, seed: 6 });
    const cb = randn([D], { ...dev, seed: 7 });
    const cdy = randn([B, D, L], { ...dev, dtype, seed: 8 });
    ms = deviceMsPerCall(() => ops.causalConv1d(cx, cw, cb, { activation: 'silu' }).out.dispose());
    rows.push(bwRow('causalConv1d fwd', `${B}x${D}x${L} w${W}`, dtype, ms, B * D * L * 2 * es));
    ms = deviceMsPerCall(() => nat.conv1dBwd(h(cx), h(cw), h(cb), null, h(cdy), null, true, false).forEach((t) => t && nat.dispose(t)));
    rows.push(bwRow('causalConv1d bwd', `${B}x${D}x${L} w${W}`, dtype, ms, B * D * L * 3 * es));
    disposeAll(cx, cw, cb, cdy);

    // Cross-entropy (16384, 50280), mean.
    const [N, V] = [8 * 2048, 50280];
    const logits = randn([N, V], { ...dev, dtype, seed: 9 });
    const targets = m.tensor(Int32Array.from({ length: N }, (_, i) => (i * 7919) % V), [N], { dtype: 'int32', device: 'cuda' });
    ms = deviceMsPerCall(() => ops.crossEntropy(logits, targets).dispose(), 4);
    rows.push(bwRow('crossEntropy fwd', `${N}x${V}`, dtype, ms, N * V * es));
    const [loss, lse, count] = nat.crossEntropyFwd(h(logits), h(targets), -100, 1, 0);
    ms = deviceMsPerCall(() => nat.dispose(nat.crossEntropyBwd(h(logits), h(targets), lse, count, loss, -100, 1, 0)), 4);
    rows.push(bwRow('crossEntropy bwd', `${N}x${V}`, dtype, ms, N * V * 2 * es));
    [loss, lse, count].forEach((t) => nat.dispose(t));
    disposeAll(logits, targets);
  }
  return rows;
}

// ---- the table of benchmarks: append entries for other ops ----

const BENCHES = [
  { name: 'matmul', cuda: benchMatmulCuda, cpu: benchMatmulCpu },
  { name: 'overhead', cuda: () => overheadRows('cuda'), cpu: () => overheadRows('cpu') },
  { name: 'fused', cuda: benchFusedCuda },
];

function main() {
  const only = (process.argv.find((a) => a.startsWith('--only=')) || '').slice('--only='.length).split(',').filter(Boolean);
  const picked = BENCHES.filter((b) => only.length === 0 || only.some((o) => b.name.startsWith(o)));
  const useCuda = cudaAvailable() && !process.argv.includes('--cpu');
  const date = new Date().toISOString().slice(0, 10);
  if (useCuda) {
    console.log(`device: ${devices()[0].name}, ${date}; cuBLASLt: ${cublasAvailable() ? cublasInfo() : `not used (${cublasInfo()})`}`);
    for (const b of picked.filter((x) => x.cuda)) {
      console.log(`\n${b.name} (cuda)`);
      console.table(b.cuda());
    }
  } else {
    console.log(`bench-ops: ${cudaAvailable() ? '--cpu given' : 'no CUDA device'}; CPU only`);
  }
  console.log(`\nCPU: ${os.cpus().length} cores (${os.cpus()[0].model}), ${date}`);
  for (const b of picked.filter((x) => x.cpu)) {
    console.log(`\n${b.name} (cpu)`);
    console.table(b.cpu());
  }
  if (filler) filler.dispose();
  console.log(`live tensors after the benchmarks: ${memory().numTensors}`);
}

main();

#!/usr/bin/env node
// `npm run bench:train`: full training steps of a MambaLM through the public API, as `mamba-node train`
// (lib/cli/train.ts) and the Trainer run them: float32 master weights, a bfloat16 forward on CUDA
// (`forward(ids, { dtype })`), cross-entropy, backward, the global gradient norm folded into the fused AdamW
// step as the clip factor (`paramGroupsForMamba`: no decay on biases, norms, A_log, D), zeroGrad. Data: random
// int32 tokens (batch, seq + 1) made once on the device, ids = tokens[:, :-1], targets = tokens[:, 1:].
// Defaults: the 130M configuration (d_model 768, 24 layers, vocabulary 50277 padded to 50280 by mambaConfig,
// d_state 16, expand 2), batch 8 x 2048, against the official reference of shared/guide/perf-anchors.md
// (PyTorch + mamba_ssm on an H200, fp32 params, bf16 autocast, fused AdamW: 120k tokens/s, 27.5 GB peak).
// After --warmup steps, two timed passes of --steps steps each (wall clock, CUDA synchronized at the end of
// every step): the first runs the step as the Trainer does (its only synchronizations are the loss and
// gradient-norm read-backs), which gives tokens/s and ms/step; the second also synchronizes after backward,
// which gives the forward (incl. loss read-back) / backward / optimizer (norm + AdamW + zeroGrad) split.
// Peak memory: memory().cuda.peakAllocatedBytes / peakReservedBytes over the timed passes.
// On a GPU host without Node, from the test bundle: ./node scripts/bench-train.js [options]
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const { parseArgs } = require('node:util');

const libDir = ['dist', path.join('dist-test', 'lib')].map((d) => path.join(__dirname, '..', d)).find((d) => fs.existsSync(path.join(d, 'index.js')));
if (!libDir) throw new Error('bench-train: build the TypeScript first (npm run build:ts)');
const m = require(libDir);
const { nn, ops, optim, tensor, tidy, memory, resetPeakMemory, synchronize, cudaAvailable, devices, OutOfMemoryError } = m;

// The official figures (perf-anchors.md), valid for the default configuration on an H200.
const REFERENCE = { tokensPerSecond: 120e3, msPerStep: 136.4, peakGB: 27.5 };
const DEFAULTS = { batch: 8, seq: 2048, layers: 24, dModel: 768, vocab: 50277, dState: 16, expand: 2 };

const USAGE = `usage: node scripts/bench-train.js [options]
Times full MambaLM training steps (forward, cross-entropy, backward, clip, AdamW) on random tokens.
  --steps N          timed steps per pass                          [10]
  --warmup N         untimed steps first                           [3]
  --batch B          sequences per step                            [${DEFAULTS.batch}]
  --seq L            tokens per sequence                           [${DEFAULTS.seq}]
  --layers N         Mamba blocks                                  [${DEFAULTS.layers}]
  --d-model D        model width                                   [${DEFAULTS.dModel}]
  --vocab V          vocabulary (padded to a multiple of 8)        [${DEFAULTS.vocab}]
  --d-state N        SSM state size                                [${DEFAULTS.dState}]
  --expand E         mixer expansion                               [${DEFAULTS.expand}]
  --device cpu|cuda  [cuda when available]
  --dtype D          compute dtype of the forward                  [bfloat16 on CUDA, else float32]
  --checkpoint       activation checkpointing (recompute each mixer in backward)
  --lr LR            AdamW learning rate                           [6e-4]
  --clip NORM        gradient-norm clip                            [1]
  --seed N           seed of the model and the data                [1]
  --json             also print the results as one JSON line`;

function parseOptions(argv) {
  const spec = {};
  for (const k of ['steps', 'warmup', 'batch', 'seq', 'layers', 'd-model', 'vocab', 'd-state', 'expand', 'device', 'dtype', 'lr', 'clip', 'seed'])
    spec[k] = { type: 'string' };
  for (const k of ['checkpoint', 'json', 'help']) spec[k] = { type: 'boolean' };
  const { values: v } = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false });
  if (v.help) return null;
  const num = (name, dflt, ok) => {
    const raw = v[name];
    if (raw === undefined) return dflt;
    const x = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(x) || !ok(x)) throw new Error(`bench-train: invalid value '${raw}' for --${name}`);
    return x;
  };
  const pos = (x) => Number.isInteger(x) && x >= 1;
  const device = v.device ?? (cudaAvailable() ? 'cuda' : 'cpu');
  if (device !== 'cpu' && device !== 'cuda') throw new Error(`bench-train: --device must be cpu or cuda, not '${device}'`);
  return {
    steps: num('steps', 10, pos),
    warmup: num('warmup', 3, (x) => Number.isInteger(x) && x >= 0),
    batch: num('batch', DEFAULTS.batch, pos),
    seq: num('seq', DEFAULTS.seq, pos),
    layers: num('layers', DEFAULTS.layers, pos),
    dModel: num('d-model', DEFAULTS.dModel, pos),
    vocab: num('vocab', DEFAULTS.vocab, (x) => pos(x) && x >= 2),
    dState: num('d-state', DEFAULTS.dState, pos),
    expand: num('expand', DEFAULTS.expand, pos),
    device,
    dtype: v.dtype ?? (device === 'cuda' ? 'bfloat16' : 'float32'),
    checkpoint: v.checkpoint ?? false,
    lr: num('lr', 6e-4, (x) => x > 0),
    clip: num('clip', 1, (x) => x > 0),
    seed: num('seed', 1, (x) => Number.isInteger(x) && x >= 0),
    json: v.json ?? false,
  };
}

/** Uniform int32 tokens in [0, vocab), (batch, seq + 1), from a seeded mulberry32 (the same on every device). */
function randomTokens(batch, seq, vocab, seed) {
  const next = require(path.join(libDir, 'mulberry32')).uniforms(seed);
  const ids = new Int32Array(batch * seq);
  const targets = new Int32Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    let prev = Math.floor(next() * vocab);
    for (let l = 0; l < seq; l++) {
      const tok = Math.floor(next() * vocab);
      ids[b * seq + l] = prev;
      targets[b * seq + l] = tok;
      prev = tok;
    }
  }
  return { ids, targets };
}

const now = () => performance.now();
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const mean = (xs) => sum(xs) / xs.length;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const GB = 1e9;

function main() {
  const o = parseOptions(process.argv.slice(2));
  if (!o) {
    console.log(USAGE);
    return;
  }
  const sync = () => {
    if (o.device === 'cuda') synchronize();
  };
  const model = new nn.MambaLM({ dModel: o.dModel, nLayer: o.layers, vocabSize: o.vocab, dState: o.dState, expand: o.expand }, { seed: o.seed, device: o.device });
  const optimizer = new optim.AdamW(optim.paramGroupsForMamba(model.namedParameters()), { lr: o.lr, weightDecay: 0.1, betas: [0.9, 0.95] });
  const params = optimizer.params();
  const data = randomTokens(o.batch, o.seq, o.vocab, o.seed);
  const ids = tensor(data.ids, [o.batch, o.seq], { dtype: 'int32', device: o.device });
  const targets = tensor(data.targets, [o.batch, o.seq], { dtype: 'int32', device: o.device });
  const tokens = o.batch * o.seq;
  const c = model.config;
  const where = o.device === 'cuda' ? `${devices()[0]?.name ?? 'cuda'}` : 'cpu';
  console.log(
    `bench-train: MambaLM d_model ${c.dModel}, ${c.nLayer} layers, vocab ${c.vocabSize}, d_state ${c.dState}, expand ${c.expand}: ` +
      `${(model.numParameters() / 1e6).toFixed(1)}M parameters on ${where}; ${o.dtype} forward over float32 weights` +
      `${o.checkpoint ? ', activation checkpointing' : ''}; batch ${o.batch} x ${o.seq} = ${tokens} tokens/step (library: ${path.relative(process.cwd(), libDir) || '.'})`,
  );

  let lastLoss = NaN;
  let warned = false;
  /** One training step; returns [forward, backward, optimizer] wall ms (backward/optimizer only meaningful with splitSync). */
  const step = (splitSync) => {
    const t0 = now();
    let t1 = 0;
    let t2 = 0;
    tidy(() => {
      const loss = ops.crossEntropy(model.forward(ids, { dtype: o.dtype, checkpoint: o.checkpoint }), targets);
      lastLoss = loss.dataSync()[0]; // the Trainer reads the loss back here, which waits for the forward
      t1 = now();
      loss.backward();
      if (splitSync) sync();
      t2 = now();
    });
    const norm = optim.gradNorm(params);
    optimizer.step({ gradScale: optim.clipScale(norm, o.clip) });
    optimizer.zeroGrad();
    sync();
    const t3 = now();
    if ((!Number.isFinite(lastLoss) || !Number.isFinite(norm)) && !warned) {
      warned = true; // the times still count; the numbers are for the lead to look into
      console.warn(`bench-train: warning: non-finite loss ${lastLoss} or gradient norm ${norm}`);
    }
    return [t1 - t0, t2 - t1, t3 - t2];
  };

  try {
    const tw = now();
    for (let i = 0; i < o.warmup; i++) step(false);
    sync();
    const warmMs = now() - tw;
    resetPeakMemory();
    const flow = [];
    for (let i = 0; i < o.steps; i++) flow.push(sum(step(false)));
    const split = [];
    for (let i = 0; i < o.steps; i++) split.push(step(true));
    const mem = memory().cuda;

    const msStep = mean(flow);
    const tps = tokens / (msStep / 1e3);
    const isReferenceConfig =
      o.device === 'cuda' && o.dtype === 'bfloat16' && o.batch === DEFAULTS.batch && o.seq === DEFAULTS.seq && c.nLayer === DEFAULTS.layers &&
      c.dModel === DEFAULTS.dModel && c.vocabSize === 50280 && c.dState === DEFAULTS.dState && c.expand === DEFAULTS.expand;
    const fmt = (x, d = 1) => x.toFixed(d);
    const steps = (n) => `${n} step${n === 1 ? '' : 's'}`;
    console.log(`warm-up: ${steps(o.warmup)} in ${fmt(warmMs / 1e3, 2)} s; final loss ${fmt(lastLoss, 4)} (one batch repeated; ln V = ${fmt(Math.log(o.vocab), 2)})`);
    console.log(
      `training step (as the Trainer runs it), ${steps(o.steps)}: ${fmt(msStep, 2)} ms/step mean, ${fmt(median(flow), 2)} median, ` +
        `${fmt(Math.min(...flow), 2)} min  ->  ${Math.round(tps).toLocaleString('en-US')} tokens/s`,
    );
    const fwd = split.map((s) => s[0]);
    const bwd = split.map((s) => s[1]);
    const opt = split.map((s) => s[2]);
    const splitTotal = mean(split.map(sum));
    const pct = (x) => `${fmt((100 * x) / splitTotal, 0)}%`;
    console.log(`per phase (synchronized after each phase), ${steps(o.steps)}: ${fmt(splitTotal, 2)} ms/step mean`);
    console.table([
      { phase: 'forward + loss (incl. read-back)', 'ms mean': fmt(mean(fwd), 2), 'ms median': fmt(median(fwd), 2), share: pct(mean(fwd)) },
      { phase: 'backward', 'ms mean': fmt(mean(bwd), 2), 'ms median': fmt(median(bwd), 2), share: pct(mean(bwd)) },
      { phase: 'optimizer (grad norm, AdamW, zeroGrad)', 'ms mean': fmt(mean(opt), 2), 'ms median': fmt(median(opt), 2), share: pct(mean(opt)) },
    ]);
    if (o.device === 'cuda')
      console.log(
        `peak memory over the timed steps: ${fmt(mem.peakAllocatedBytes / GB, 2)} GB allocated, ${fmt(mem.peakReservedBytes / GB, 2)} GB reserved ` +
          `(now ${fmt(mem.allocatedBytes / GB, 2)} / ${fmt(mem.reservedBytes / GB, 2)} GB; 1 GB = 1e9 bytes)`,
      );
    else console.log('peak memory: not tracked on the CPU (the CUDA allocator keeps the peaks)');
    console.log(
      `official reference (PyTorch + mamba_ssm, H200, 130M, batch 8 x 2048, bf16 autocast, fused AdamW): ` +
        `${REFERENCE.tokensPerSecond / 1e3}k tokens/s (${REFERENCE.msPerStep} ms/step), ${REFERENCE.peakGB} GB peak`,
    );
    const ratio = tps / REFERENCE.tokensPerSecond;
    const memRatio = o.device === 'cuda' ? mem.peakAllocatedBytes / GB / REFERENCE.peakGB : NaN;
    console.log(
      `this run: ${fmt(ratio, 3)}x the reference's tokens/s` +
        (o.device === 'cuda' ? `, ${fmt(memRatio, 2)}x its peak memory (allocated)` : '') +
        (isReferenceConfig ? '' : '  [not the reference configuration: not comparable]'),
    );
    if (o.json)
      console.log(
        JSON.stringify({
          config: { ...o, vocabPadded: c.vocabSize, parameters: model.numParameters(), device: where },
          msPerStep: msStep,
          msPerStepMedian: median(flow),
          tokensPerSecond: tps,
          phasesMs: { forward: mean(fwd), backward: mean(bwd), optimizer: mean(opt), total: splitTotal },
          peakAllocatedBytes: mem.peakAllocatedBytes,
          peakReservedBytes: mem.peakReservedBytes,
          ratioTokensPerSecond: ratio,
          ratioPeakMemory: memRatio,
          referenceConfig: isReferenceConfig,
          lastLoss,
        }),
      );
  } catch (e) {
    if (OutOfMemoryError && e instanceof OutOfMemoryError) console.error('bench-train: out of device memory; try --checkpoint or a smaller --batch / --seq');
    throw e;
  } finally {
    ids.dispose();
    targets.dispose();
    optimizer.dispose();
    model.dispose();
  }
  console.log(`live tensors after cleanup: ${memory().numTensors}`);
}

main();

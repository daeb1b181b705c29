/**
 * `mamba-node train`: trains a small Mamba language model (lib/nn MambaLM) on the Selective Copying task of
 * the Mamba paper (lib/train/selective_copying.ts) with AdamW, warmup + cosine, gradient clipping and atomic
 * checkpoints, evaluates token accuracy on held-out sequences, stops once the target accuracy is reached
 * (or the time budget runs out) and writes `chart.svg` (loss and accuracy per step) and
 * `checkpoint.safetensors` to the output directory. On CUDA the forward runs in bfloat16 over float32 master
 * weights (`--dtype` to change). Ctrl-C stops between steps with a checkpoint; `--resume` continues it.
 *
 * @example
 * ```sh
 * npx mamba-node train                      # defaults sized for ~3 minutes on 2 CPU cores
 * npx mamba-node train --out runs/copy --steps 3000 --resume
 * ```
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { bestDevice } from '../device';
import { checkDType, checkDevice, DType, Device } from '../dtype';
import { memory, tidy } from '../memory';
import { MambaLM } from '../nn/mamba';
import { crossEntropy } from '../ops/cross_entropy';
import { AdamW, paramGroupsForMamba } from '../optim/adamw';
import { warmupCosine } from '../optim/schedule';
import { ChartPoint, writeTrainingChart } from '../train/chart';
import { CopyingBatch, SelectiveCopying, tokenAccuracy } from '../train/selective_copying';
import { Trainer } from '../train/trainer';

const USAGE = `usage: mamba-node train [options]
Trains a small Mamba on Selective Copying (Mamba paper, section 4.1.1) and reports held-out token accuracy.
  --out DIR           output directory (chart.svg, checkpoint.safetensors)   [runs/selective-copying]
  --steps N           maximum optimizer steps                                  [4000]
  --time SECONDS      stop after this long (0: no limit)                       [180]
  --target ACC        stop once held-out token accuracy reaches ACC            [0.99]
  --noise-len L       noise positions (the paper: 4096)                        [16]
  --tokens M          tokens to memorise (the paper: 16)                       [4]
  --vocab A           vocabulary incl. noise and marker (the paper: 16)        [8]
  --batch B           sequences per step                                       [32]
  --d-model D         model width                                              [32]
  --layers N          Mamba blocks                                             [2]
  --d-state N         SSM state size                                           [16]
  --lr LR             peak learning rate                                       [0.004]
  --warmup N          warmup steps                                             [100]
  --weight-decay WD   AdamW weight decay (not on biases, norms, A_log, D)      [0.1]
  --clip NORM         gradient-norm clip                                       [1]
  --eval-every N      steps between held-out evaluations                      [50]
  --seed N            seed of the data and the initialisation                  [1]
  --device cpu|cuda   [best available]       --dtype float32|bfloat16   [bfloat16 on CUDA, else float32]
  --resume            continue from DIR/checkpoint.safetensors`;

/** The parsed options of `mamba-node train`. */
export interface TrainCommandOptions {
  out: string;
  steps: number;
  timeSeconds: number;
  target: number;
  noiseLen: number;
  tokens: number;
  vocab: number;
  batch: number;
  dModel: number;
  layers: number;
  dState: number;
  lr: number;
  warmup: number;
  weightDecay: number;
  clip: number;
  evalEvery: number;
  seed: number;
  device: Device;
  dtype: DType;
  resume: boolean;
}

/** Parses the arguments after `train`; throws an Error with a usage line on bad input. */
export function parseTrainArgs(argv: string[]): TrainCommandOptions | 'help' {
  const spec = {
    out: { type: 'string' },
    steps: { type: 'string' },
    time: { type: 'string' },
    target: { type: 'string' },
    'noise-len': { type: 'string' },
    tokens: { type: 'string' },
    vocab: { type: 'string' },
    batch: { type: 'string' },
    'd-model': { type: 'string' },
    layers: { type: 'string' },
    'd-state': { type: 'string' },
    lr: { type: 'string' },
    warmup: { type: 'string' },
    'weight-decay': { type: 'string' },
    clip: { type: 'string' },
    'eval-every': { type: 'string' },
    seed: { type: 'string' },
    device: { type: 'string' },
    dtype: { type: 'string' },
    resume: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  } as const;
  const { values: v } = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false });
  if (v.help) return 'help';
  const num = (name: keyof typeof v, dflt: number, ok: (x: number) => boolean): number => {
    const raw = v[name];
    if (raw === undefined) return dflt;
    const x = Number(raw);
    if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(x) || !ok(x)) throw new Error(`mamba-node train: invalid value '${String(raw)}' for --${name}`);
    return x;
  };
  const int = (x: number) => Number.isInteger(x) && x >= 1;
  const device = checkDevice(v.device ?? bestDevice(), 'train', 'device');
  return {
    out: v.out ?? path.join('runs', 'selective-copying'),
    steps: num('steps', 4000, int),
    timeSeconds: num('time', 180, (x) => x >= 0),
    target: num('target', 0.99, (x) => x > 0 && x <= 1),
    noiseLen: num('noise-len', 16, (x) => Number.isInteger(x) && x >= 0),
    tokens: num('tokens', 4, int),
    vocab: num('vocab', 8, (x) => int(x) && x >= 3),
    batch: num('batch', 32, int),
    dModel: num('d-model', 32, int),
    layers: num('layers', 2, int),
    dState: num('d-state', 16, int),
    lr: num('lr', 4e-3, (x) => x > 0),
    warmup: num('warmup', 100, (x) => Number.isInteger(x) && x >= 0),
    weightDecay: num('weight-decay', 0.1, (x) => x >= 0),
    clip: num('clip', 1, (x) => x > 0),
    evalEvery: num('eval-every', 50, int),
    seed: num('seed', 1, (x) => Number.isInteger(x) && x >= 0),
    device,
    dtype: checkDType(v.dtype ?? (device === 'cuda' ? 'bfloat16' : 'float32'), 'train', 'dtype'),
    resume: v.resume ?? false,
  };
}

/** Runs `mamba-node train`; resolves to the process exit code (0: target reached, 1: not reached). */
export async function trainCommand(argv: string[]): Promise<number> {
  const o = parseTrainArgs(argv);
  if (o === 'help') {
    console.log(USAGE);
    return 0;
  }
  const task = new SelectiveCopying({ noiseLen: o.noiseLen, numTokens: o.tokens, vocabSize: o.vocab, batchSize: o.batch, seed: o.seed });
  const model = new MambaLM({ dModel: o.dModel, nLayer: o.layers, vocabSize: o.vocab, dState: o.dState }, { seed: o.seed, device: o.device });
  const optimizer = new AdamW(paramGroupsForMamba(model.namedParameters()), { lr: o.lr, weightDecay: o.weightDecay });
  const forward = (ids: CopyingBatch['inputs']) => model.forward(ids, { dtype: o.dtype });
  const evalBatches = 4;
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  process.once('SIGINT', onSigint);
  const timer = o.timeSeconds > 0 ? setTimeout(() => stop.abort(), o.timeSeconds * 1000) : undefined;
  const points: ChartPoint[] = [];
  const chartFile = path.join(o.out, 'chart.svg');
  const title = `Selective Copying (L=${o.noiseLen}, M=${o.tokens}, A=${o.vocab}): Mamba d=${o.dModel}, ${o.layers} layers`;
  const t0 = performance.now();
  let reached = false;
  const trainer = new Trainer({
    model,
    optimizer,
    lossFn: (m: MambaLM, b: CopyingBatch) => crossEntropy(m.forward(b.inputs, { dtype: o.dtype }), b.targets),
    data: (pos) => task.batches('train', pos, o.device),
    evalFn: () => {
      let correct = 0;
      let total = 0;
      for (let i = 0; i < evalBatches; i++)
        tidy(() => {
          const b = task.batch('eval', i, o.device);
          const r = tokenAccuracy(forward(b.inputs), b.targets);
          correct += r.correct;
          total += r.total;
        });
      return { accuracy: correct / total };
    },
    evalEvery: o.evalEvery,
    schedule: warmupCosine({ warmupSteps: Math.min(o.warmup, o.steps), totalSteps: o.steps, minRatio: 0.1 }),
    maxGradNorm: o.clip,
    checkpointDir: o.out,
    checkpointEvery: 500,
    signal: stop.signal,
    callbacks: {
      onStep: (s) => {
        points.push({ step: s.step, loss: s.loss });
        if (s.step % 25 === 0 || s.skipped)
          console.log(`step ${s.step}  loss ${s.loss.toFixed(4)}  lr ${s.lr.toExponential(2)}  |g| ${s.gradNorm.toFixed(3)}${s.skipped ? '  (skipped: non-finite)' : ''}  ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      },
      onEval: (e) => {
        points.push({ step: e.step, accuracy: e.metrics.accuracy });
        console.log(`eval at step ${e.step}: held-out token accuracy ${(e.metrics.accuracy * 100).toFixed(2)}%`);
        writeTrainingChart(chartFile, points, { title });
        if (e.metrics.accuracy >= o.target) {
          reached = true;
          stop.abort();
        }
      },
      onCheckpoint: (c) => console.log(`checkpoint: ${c.path} (step ${c.step})`),
    },
  });
  try {
    console.log(`mamba-node train: ${model.numParameters()} parameters on ${o.device} (${o.dtype}); sequences of ${task.seqLen} tokens, batch ${o.batch}`);
    if (o.resume && (await trainer.resume())) console.log(`resumed at step ${trainer.step}`);
    const result = await trainer.fit({ steps: o.steps });
    const final = result.lastEval?.accuracy ?? (await trainer.evaluate()).accuracy;
    if (points.at(-1)?.accuracy !== final) points.push({ step: result.step, accuracy: final });
    reached ||= final >= o.target;
    writeTrainingChart(chartFile, points, { title });
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(
      `${reached ? 'reached' : 'did not reach'} ${(o.target * 100).toFixed(0)}%: held-out token accuracy ${(final * 100).toFixed(2)}% after ${result.step} steps, ${secs} s; ` +
        `chart ${chartFile}; live tensors ${memory().numTensors}`,
    );
    return reached ? 0 : 1;
  } finally {
    process.removeListener('SIGINT', onSigint);
    clearTimeout(timer);
    optimizer.dispose();
    model.dispose();
  }
}

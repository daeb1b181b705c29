/**
 * `mamba-node train`: trains a small Mamba language model (lib/nn MambaLM) with AdamW, warmup + cosine,
 * gradient clipping and atomic checkpoints, and writes `chart.svg` (training loss and held-out accuracy per
 * step) and `checkpoint.safetensors` to the output directory. Two tasks:
 * - by default the Selective Copying task of the Mamba paper (lib/train/selective_copying.ts): evaluates
 *   token accuracy on held-out sequences and stops once the target accuracy is reached;
 * - with `--data FILE`, a byte-level language model of the file (lib/train/byte_lm.ts, vocabulary 256):
 *   random windows of the first 90% train it, windows of the last 10% are held out; it ends with the
 *   held-out loss in nats and bits per byte and the next-byte accuracy.
 * Both stop at `--steps`, after `--time` seconds, or on Ctrl-C (between steps, with a checkpoint;
 * `--resume` continues it). On CUDA the forward runs in bfloat16 over float32 master weights (`--dtype`).
 *
 * @example
 * ```sh
 * npx mamba-node train                      # Selective Copying, ~10 s on 2 CPU cores
 * npx mamba-node train --data book.txt      # a byte-level model of book.txt
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
import type { Tensor } from '../tensor';
import { BYTE_VOCAB_SIZE, ByteCorpus, evaluateByteLM } from '../train/byte_lm';
import { ChartPoint, writeTrainingChart } from '../train/chart';
import { SelectiveCopying, tokenAccuracy } from '../train/selective_copying';
import { TokenBatch } from '../train/token_batches';
import { Trainer } from '../train/trainer';

const USAGE = `usage: mamba-node train [options]
Trains a small Mamba on Selective Copying (Mamba paper, section 4.1.1) and reports held-out token accuracy,
or with --data FILE a byte-level language model of FILE, reporting held-out bits per byte and accuracy.
  --data FILE         train a byte-level LM (vocabulary 256) on FILE: the first 90% trains, the last 10% is held out
  --out DIR           output directory (chart.svg, checkpoint.safetensors)   [runs/selective-copying; runs/byte-lm]
  --steps N           maximum optimizer steps                                  [4000; 2000]
  --time SECONDS      stop after this long (0: no limit)                       [180]
  --batch B           sequences per step                         [32 (64 on CUDA); 16]
  --d-model D         model width                                [32 (64 on CUDA); 64]
  --layers N          Mamba blocks                                             [2]
  --d-state N         SSM state size                                           [16]
  --lr LR             peak learning rate                                       [0.004; 0.003]
  --warmup N          warmup steps                                             [100]
  --weight-decay WD   AdamW weight decay (not on biases, norms, A_log, D)      [0.1]
  --clip NORM         gradient-norm clip                                       [1]
  --eval-every N      steps between held-out evaluations                      [50; 100]
  --seed N            seed of the data and the initialisation                  [1]
  --device cpu|cuda   [best available]       --dtype float32|bfloat16   [bfloat16 on CUDA, else float32]
  --resume            continue from DIR/checkpoint.safetensors
Selective Copying only:
  --target ACC        stop once held-out token accuracy reaches ACC            [0.99]
  --noise-len L       noise positions (the paper: 4096)                        [16; 32 on CUDA]
  --tokens M          tokens to memorise (the paper: 16)                       [4; 8 on CUDA]
  --vocab A           vocabulary incl. noise and marker (the paper: 16)        [8; 10 on CUDA]
--data only:
  --seq-len N         bytes per training window                                [128]
  --eval-batches N    held-out batches per evaluation                          [4]`;

/** The parsed options of `mamba-node train`. */
export interface TrainCommandOptions {
  /** The text of a byte-level LM (`--data`); undefined: Selective Copying. */
  data?: string;
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
  /** Bytes per window of the byte-level LM. */
  seqLen: number;
  /** Held-out batches per evaluation of the byte-level LM. */
  evalBatches: number;
  device: Device;
  dtype: DType;
  resume: boolean;
}

/** Parses the arguments after `train`; throws an Error with a usage line on bad input. */
export function parseTrainArgs(argv: string[]): TrainCommandOptions | 'help' {
  const spec = {
    data: { type: 'string' },
    'seq-len': { type: 'string' },
    'eval-batches': { type: 'string' },
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
  const bytes = v.data !== undefined;
  if (bytes && v.data === '') throw new Error('mamba-node train: --data needs a file name');
  // Options of one task given to the other are mistakes, not something to ignore silently.
  const only = bytes ? (['target', 'noise-len', 'tokens', 'vocab'] as const) : (['seq-len', 'eval-batches'] as const);
  for (const name of only)
    if (v[name] !== undefined) throw new Error(`mamba-node train: --${name} applies ${bytes ? 'to Selective Copying, not with --data' : 'only with --data'}`);
  const device = checkDevice(v.device ?? bestDevice(), 'train', 'device');
  // A GPU gets a bigger default Selective Copying task (twice the noise and tokens, 4x the parameters): on
  // 2 CPU cores it reaches 99% in ~800 steps / 30 s (2026-11-29), the small one in ~900 steps / 8 s.
  const big = !bytes && device === 'cuda';
  return {
    data: v.data,
    out: v.out ?? path.join('runs', bytes ? 'byte-lm' : 'selective-copying'),
    steps: num('steps', bytes ? 2000 : 4000, int),
    timeSeconds: num('time', 180, (x) => x >= 0),
    target: num('target', 0.99, (x) => x > 0 && x <= 1),
    noiseLen: num('noise-len', big ? 32 : 16, (x) => Number.isInteger(x) && x >= 0),
    tokens: num('tokens', big ? 8 : 4, int),
    vocab: bytes ? BYTE_VOCAB_SIZE : num('vocab', big ? 10 : 8, (x) => int(x) && x >= 3),
    batch: num('batch', bytes ? 16 : big ? 64 : 32, int),
    dModel: num('d-model', bytes || big ? 64 : 32, int),
    layers: num('layers', 2, int),
    dState: num('d-state', 16, int),
    lr: num('lr', bytes ? 3e-3 : 4e-3, (x) => x > 0),
    warmup: num('warmup', 100, (x) => Number.isInteger(x) && x >= 0),
    weightDecay: num('weight-decay', 0.1, (x) => x >= 0),
    clip: num('clip', 1, (x) => x > 0),
    evalEvery: num('eval-every', bytes ? 100 : 50, int),
    seed: num('seed', 1, (x) => Number.isInteger(x) && x >= 0),
    seqLen: num('seq-len', 128, int),
    evalBatches: num('eval-batches', 4, int),
    device,
    dtype: checkDType(v.dtype ?? (device === 'cuda' ? 'bfloat16' : 'float32'), 'train', 'dtype'),
    resume: v.resume ?? false,
  };
}

/** What differs between the two tasks; the loop in `trainCommand` is shared. */
interface TaskSpec {
  title: string;
  /** What one step trains on, for the first line. */
  describe: string;
  data: (position: number) => Iterable<TokenBatch>;
  /** Held-out metrics; `accuracy` is plotted. */
  evaluate: (forward: (ids: Tensor<'int32'>) => Tensor) => Record<string, number> & { accuracy: number };
  /** The line printed after each evaluation. */
  evalLine: (m: Record<string, number>) => string;
  /** Stop once held-out accuracy reaches this. */
  target?: number;
  /** The last line, and the exit code. */
  report: (m: Record<string, number>, reached: boolean) => { line: string; code: number };
}

function copyingTask(o: TrainCommandOptions): TaskSpec {
  const task = new SelectiveCopying({ noiseLen: o.noiseLen, numTokens: o.tokens, vocabSize: o.vocab, batchSize: o.batch, seed: o.seed });
  const evalBatches = 4;
  return {
    title: `Selective Copying (L=${o.noiseLen}, M=${o.tokens}, A=${o.vocab}): Mamba d=${o.dModel}, ${o.layers} layers`,
    describe: `Selective Copying sequences of ${task.seqLen} tokens, batch ${o.batch}`,
    data: (pos) => task.batches('train', pos, o.device),
    evaluate: (forward) => {
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
    evalLine: (m) => `held-out token accuracy ${(m.accuracy * 100).toFixed(2)}%`,
    target: o.target,
    report: (m, reached) => ({
      line: `${reached ? 'reached' : 'did not reach'} ${(o.target * 100).toFixed(0)}%: held-out token accuracy ${(m.accuracy * 100).toFixed(2)}%`,
      code: reached ? 0 : 1,
    }),
  };
}

function byteTask(o: TrainCommandOptions, file: string): TaskSpec {
  const corpus = ByteCorpus.fromFile(file, { seqLen: o.seqLen, batchSize: o.batch, seed: o.seed });
  const scores = (m: Record<string, number>) =>
    `held-out loss ${m.loss.toFixed(4)} nats/byte (${m.bitsPerByte.toFixed(3)} bits/byte), next-byte accuracy ${(m.accuracy * 100).toFixed(1)}%`;
  return {
    title: `Byte-level LM of ${path.basename(file)} (${corpus.trainBytes + corpus.heldOutBytes} bytes): Mamba d=${o.dModel}, ${o.layers} layers`,
    describe: `${file}: ${corpus.trainBytes} training bytes, ${corpus.heldOutBytes} held out; windows of ${o.seqLen} bytes, batch ${o.batch}`,
    data: (pos) => corpus.batches('train', pos, o.device),
    evaluate: (forward) => {
      const m = evaluateByteLM(forward, corpus, { batches: o.evalBatches, device: o.device });
      return { accuracy: m.accuracy, loss: m.loss, bitsPerByte: m.bitsPerByte, bytes: m.bytes };
    },
    evalLine: scores,
    report: (m) => ({ line: `${scores(m)} on ${m.bytes} held-out bytes`, code: 0 }),
  };
}

/**
 * Runs `mamba-node train`; resolves to the process exit code (Selective Copying: 0 when the target was
 * reached, 1 when not; `--data`: 0).
 */
export async function trainCommand(argv: string[]): Promise<number> {
  const o = parseTrainArgs(argv);
  if (o === 'help') {
    console.log(USAGE);
    return 0;
  }
  // The data is read (and a bad file refused) before the model is built.
  const spec = o.data === undefined ? copyingTask(o) : byteTask(o, o.data);
  const model = new MambaLM({ dModel: o.dModel, nLayer: o.layers, vocabSize: o.vocab, dState: o.dState }, { seed: o.seed, device: o.device });
  const optimizer = new AdamW(paramGroupsForMamba(model.namedParameters()), { lr: o.lr, weightDecay: o.weightDecay });
  const forward = (ids: Tensor<'int32'>) => model.forward(ids, { dtype: o.dtype });
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  process.once('SIGINT', onSigint);
  const timer = o.timeSeconds > 0 ? setTimeout(() => stop.abort(), o.timeSeconds * 1000) : undefined;
  const points: ChartPoint[] = [];
  const chartFile = path.join(o.out, 'chart.svg');
  const t0 = performance.now();
  let reached = false;
  const trainer = new Trainer({
    model,
    optimizer,
    lossFn: (m: MambaLM, b: TokenBatch) => crossEntropy(m.forward(b.inputs, { dtype: o.dtype }), b.targets),
    data: spec.data,
    evalFn: () => spec.evaluate(forward),
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
        console.log(`eval at step ${e.step}: ${spec.evalLine(e.metrics)}`);
        writeTrainingChart(chartFile, points, { title: spec.title });
        if (spec.target !== undefined && e.metrics.accuracy >= spec.target) {
          reached = true;
          stop.abort();
        }
      },
      onCheckpoint: (c) => console.log(`checkpoint: ${c.path} (step ${c.step})`),
    },
  });
  try {
    console.log(`mamba-node train: ${model.numParameters()} parameters on ${o.device} (${o.dtype}); ${spec.describe}`);
    if (o.resume && (await trainer.resume())) console.log(`resumed at step ${trainer.step}`);
    const result = await trainer.fit({ steps: o.steps });
    const final = result.lastEval ?? (await trainer.evaluate());
    if (points.at(-1)?.accuracy !== final.accuracy) points.push({ step: result.step, accuracy: final.accuracy });
    reached ||= spec.target !== undefined && final.accuracy >= spec.target;
    writeTrainingChart(chartFile, points, { title: spec.title });
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    const { line, code } = spec.report(final, reached);
    console.log(`${line} after ${result.step} steps, ${secs} s; chart ${chartFile}; live tensors ${memory().numTensors}`);
    return code;
  } finally {
    process.removeListener('SIGINT', onSigint);
    clearTimeout(timer);
    optimizer.dispose();
    model.dispose();
  }
}

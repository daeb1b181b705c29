/**
 * A generic training loop: `new Trainer({ model, optimizer, lossFn, data, ... })` then `await fit({ steps })`.
 * One step = `gradAccumulation` micro-batches (each loss scaled by 1/k and run backward, inside its own
 * `tidy()`), the global gradient norm, optional clipping folded into the fused AdamW step, then the learning
 * rate for the next step from the schedule. A non-finite loss or gradient norm skips the step (parameters
 * and optimizer state untouched, the micro-batches still consumed so the data order does not shift);
 * `maxNonFinite` skips in a row stop training with a TrainingError and write no checkpoint. Checkpoints
 * (model state, optimizer moments and step counts, trainer step, data position, the state of the global
 * generator behind unseeded `rand`/`randn`) are written atomically and `resume()` restores them exactly: on
 * the CPU, N steps straight and N/2 + restart + N/2 give bitwise the same losses and parameters, also when
 * the loss draws unseeded random numbers. `data(position)` must yield the same batches from a given micro-batch
 * position each time it is called (seed by position, as `SelectiveCopying` does).
 *
 * @example
 * ```ts
 * const trainer = new Trainer({
 *   model, optimizer: new AdamW(paramGroupsForMamba(model.namedParameters()), { lr: 3e-3 }),
 *   lossFn: (m, b) => ops.crossEntropy(m.forward(b.inputs), b.targets),
 *   data: (pos) => task.batches('train', pos),
 *   schedule: warmupCosine({ warmupSteps: 50, totalSteps: 1000 }), maxGradNorm: 1,
 *   checkpointDir: 'runs/copy', checkpointEvery: 100, signal: AbortSignal.timeout(180_000),
 * });
 * await trainer.resume();                 // no-op without a checkpoint
 * const result = await trainer.fit({ steps: 1000 });
 * ```
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { noGrad } from '../autograd/grad_mode';
import type { Node } from '../autograd/node';
import { rngState, setRngState, tensor } from '../creation';
import { describeValue } from '../dtype';
import type { DType } from '../dtype';
import { ArgumentError, TrainingError } from '../errors';
import { dispose, tidy } from '../memory';
import { mul } from '../ops/elementwise';
import type { AdamW, AdamWStateDict } from '../optim/adamw';
import { clipScale, gradNorm } from '../optim/clip';
import type { Schedule } from '../optim/schedule';
import { Tensor } from '../tensor';
import { CheckpointEntry, readCheckpoint, writeCheckpoint } from './checkpoint';

/** What the Trainer needs of a model (lib/nn's Module provides it). */
export interface TrainableModel {
  namedParameters(): Iterable<readonly [string, Tensor]>;
  parameters(): Iterable<Tensor>;
  /** The model's own tensors by name (not copies); the Trainer reads them and does not dispose them. */
  stateDict(): Record<string, Tensor> | ReadonlyMap<string, Tensor>;
  /**
   * Takes the values of `state` (same names and shapes). The Trainer disposes the tensors it passes once this
   * returns, so keep a copy or a new handle (`t.detach()`) rather than the tensor itself.
   */
  loadStateDict(state: Record<string, Tensor>): unknown;
  train(): unknown;
  eval(): unknown;
}

/** Reported after every step. */
export interface StepInfo {
  /** Steps completed so far (1 after the first). */
  step: number;
  /** Mean loss over the step's micro-batches (NaN / Infinity when the step was skipped for it). */
  loss: number;
  /** Learning rate of the first parameter group during this step. */
  lr: number;
  /** Global gradient norm before clipping (NaN when the loss was non-finite and no backward ran). */
  gradNorm: number;
  /** True when the step was skipped for a non-finite loss or gradient. */
  skipped: boolean;
  /** Skipped steps in a row, this one included. */
  nonFiniteRun: number;
  /** Wall time of the step. */
  ms: number;
}

/** Reported after every evaluation. */
export interface EvalInfo {
  step: number;
  metrics: Record<string, number>;
}

/** Reported after every checkpoint written. */
export interface CheckpointInfo {
  step: number;
  path: string;
}

/** Callbacks; each may return a promise, which the Trainer awaits. */
export interface TrainerCallbacks {
  onStep?(info: StepInfo): void | Promise<void>;
  onEval?(info: EvalInfo): void | Promise<void>;
  onCheckpoint?(info: CheckpointInfo): void | Promise<void>;
}

/** Options of `new Trainer`. B is the batch type. */
export interface TrainerOptions<M extends TrainableModel, B> {
  model: M;
  optimizer: AdamW;
  /** The scalar loss of one micro-batch (shape [] or [1]); runs in grad mode inside a tidy(). */
  lossFn: (model: M, batch: B) => Tensor;
  /** Batches from micro-batch `position` on (0 at the start); called again on resume and when it runs out. */
  data: (position: number) => Iterable<B> | Iterator<B>;
  /** Metrics on held-out data, run in eval mode with grad off every `evalEvery` steps and at the end. */
  evalFn?: (model: M) => Record<string, number> | Promise<Record<string, number>>;
  /** Default: 0 (only at the end of fit) when evalFn is given. */
  evalEvery?: number;
  /** Factor of each group's initial learning rate per step index. Default: constant. */
  schedule?: Schedule;
  /** Micro-batches per optimizer step. Default 1. */
  gradAccumulation?: number;
  /** Clip the global gradient norm to this (inside the fused step). Default: no clipping. */
  maxGradNorm?: number;
  callbacks?: TrainerCallbacks;
  /** Stops training between steps (a checkpoint is written first when checkpointDir is set). */
  signal?: AbortSignal;
  /** Where `checkpoint.safetensors` is written and resumed from. */
  checkpointDir?: string;
  /** Steps between checkpoints (0: only at the end of fit). Default 0. */
  checkpointEvery?: number;
  /** Skipped steps in a row that stop training with a TrainingError. Default 5. */
  maxNonFinite?: number;
}

/** Options of `fit`. */
export interface FitOptions {
  /** Train until this many steps are completed in total (a resumed trainer continues towards it). */
  steps: number;
}

/** What `fit` resolves to. */
export interface FitResult {
  /** Steps completed in total. */
  step: number;
  stopReason: 'completed' | 'aborted';
  /** The loss of every step this call ran. */
  losses: number[];
  /** The last evaluation's metrics, if any ran. */
  lastEval?: Record<string, number>;
}

/** The file name of the checkpoint inside `checkpointDir`. */
export const CHECKPOINT_FILE = 'checkpoint.safetensors';

interface TrainerState {
  step: number;
  dataPosition: number;
  nonFiniteRun: number;
  /** The global generator of unseeded `rand`/`randn` (lib/creation.ts), as a decimal string (JSON has no 64-bit integers). */
  rngState?: string;
  modelDTypes: Record<string, DType>;
  optimizer: Omit<AdamWStateDict, 'state'> & { state: ({ step: number; shape: number[] } | null)[] };
}

function positiveInt(v: unknown, fn: string, arg: string, dflt: number, min = 1): number {
  const x = v === undefined ? dflt : v;
  if (!Number.isSafeInteger(x) || (x as number) < min)
    throw new ArgumentError(`${fn}: expected an integer >= ${min} for option '${arg}' but received ${describeValue(x)}`, { fn, arg });
  return x as number;
}

function entriesOf(sd: Record<string, Tensor> | ReadonlyMap<string, Tensor>): [string, Tensor][] {
  return sd instanceof Map ? [...(sd as ReadonlyMap<string, Tensor>)] : Object.entries(sd as Record<string, Tensor>);
}

function toIterator<B>(src: Iterable<B> | Iterator<B>): Iterator<B> {
  const it = src as Partial<Iterable<B>> & Partial<Iterator<B>>;
  if (typeof it[Symbol.iterator] === 'function') return (it as Iterable<B>)[Symbol.iterator]();
  if (typeof it.next === 'function') return it as Iterator<B>;
  throw new ArgumentError(`Trainer: option 'data' returned ${describeValue(src)}, not an iterable or iterator`, { fn: 'Trainer', arg: 'data' });
}

/**
 * Frees the saved tensors of the graph behind `t` without running backward (a skipped step): they are
 * separate handles outside tidy(), and would otherwise wait for the garbage collector.
 */
function releaseGraph(t: Tensor): void {
  const stack: Node[] = t.gradFn ? [t.gradFn] : [];
  const seen = new Set<Node>(stack);
  while (stack.length) {
    const node = stack.pop() as Node;
    for (const e of node.edges)
      if (e?.node && !seen.has(e.node)) {
        seen.add(e.node);
        stack.push(e.node);
      }
    node.release();
  }
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The training loop (see the file comment). */
export class Trainer<M extends TrainableModel, B> {
  /** Steps completed so far (restored by `resume`). */
  get step(): number {
    return this.step_;
  }

  private readonly o: TrainerOptions<M, B>;
  private readonly accumulation: number;
  private readonly maxNonFinite: number;
  private readonly evalEvery: number;
  private readonly checkpointEvery: number;
  private step_ = 0;
  private dataPosition = 0;
  private nonFiniteRun = 0;
  private iterator: Iterator<B> | null = null;

  constructor(options: TrainerOptions<M, B>) {
    const fn = 'Trainer';
    if (options === null || typeof options !== 'object') throw new ArgumentError(`${fn}: expected an options object`, { fn, arg: 'options' });
    const m = options.model as Partial<TrainableModel> | undefined;
    for (const k of ['namedParameters', 'parameters', 'stateDict', 'loadStateDict', 'train', 'eval'] as const)
      if (!m || typeof m[k] !== 'function') throw new ArgumentError(`${fn}: option 'model' has no ${k}() method`, { fn, arg: 'model' });
    if (!options.optimizer || typeof options.optimizer.step !== 'function') throw new ArgumentError(`${fn}: option 'optimizer' is not an optimizer`, { fn, arg: 'optimizer' });
    if (typeof options.lossFn !== 'function') throw new ArgumentError(`${fn}: expected a function for option 'lossFn'`, { fn, arg: 'lossFn' });
    if (typeof options.data !== 'function') throw new ArgumentError(`${fn}: expected a function (position) => batches for option 'data'`, { fn, arg: 'data' });
    if (options.evalFn !== undefined && typeof options.evalFn !== 'function') throw new ArgumentError(`${fn}: expected a function for option 'evalFn'`, { fn, arg: 'evalFn' });
    if (options.schedule !== undefined && typeof options.schedule !== 'function') throw new ArgumentError(`${fn}: expected a function for option 'schedule'`, { fn, arg: 'schedule' });
    if (options.maxGradNorm !== undefined && !(typeof options.maxGradNorm === 'number' && options.maxGradNorm > 0 && Number.isFinite(options.maxGradNorm)))
      throw new ArgumentError(`${fn}: expected a finite positive number for option 'maxGradNorm' but received ${describeValue(options.maxGradNorm)}`, { fn, arg: 'maxGradNorm' });
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new ArgumentError(`${fn}: expected an AbortSignal for option 'signal'`, { fn, arg: 'signal' });
    if (options.checkpointDir !== undefined && typeof options.checkpointDir !== 'string') throw new ArgumentError(`${fn}: expected a path for option 'checkpointDir'`, { fn, arg: 'checkpointDir' });
    this.accumulation = positiveInt(options.gradAccumulation, fn, 'gradAccumulation', 1);
    this.maxNonFinite = positiveInt(options.maxNonFinite, fn, 'maxNonFinite', 5);
    this.evalEvery = positiveInt(options.evalEvery, fn, 'evalEvery', 0, 0);
    this.checkpointEvery = positiveInt(options.checkpointEvery, fn, 'checkpointEvery', 0, 0);
    this.o = options;
  }

  /** The checkpoint path, or undefined without `checkpointDir`. */
  get checkpointPath(): string | undefined {
    return this.o.checkpointDir === undefined ? undefined : path.join(this.o.checkpointDir, CHECKPOINT_FILE);
  }

  /**
   * Trains until `steps` steps are completed in total, the signal aborts (resolves with stopReason
   * 'aborted') or `maxNonFinite` steps in a row are skipped (rejects with a TrainingError).
   */
  async fit(options: FitOptions): Promise<FitResult> {
    const fn = 'Trainer.fit';
    const target = positiveInt(options?.steps, fn, 'steps', NaN, 0);
    const losses: number[] = [];
    let lastEval: Record<string, number> | undefined;
    let lastSaved = -1;
    const { model, callbacks = {}, signal } = this.o;
    model.train();
    let stopReason: FitResult['stopReason'] = 'completed';
    while (this.step_ < target) {
      if (signal?.aborted) {
        stopReason = 'aborted';
        break;
      }
      const info = this.trainStep();
      losses.push(info.loss);
      if (info.skipped && this.nonFiniteRun >= this.maxNonFinite)
        throw new TrainingError(
          `Trainer.fit: ${this.nonFiniteRun} steps in a row had a non-finite loss or gradient (last loss ${info.loss}, gradient norm ${info.gradNorm}) at step ${this.step_}; ` +
            'lower the learning rate, clip gradients (maxGradNorm) or check the data. No checkpoint was written for these steps.',
          { fn },
        );
      await callbacks.onStep?.(info);
      if (this.o.evalFn && this.evalEvery > 0 && this.step_ % this.evalEvery === 0 && this.step_ < target) lastEval = await this.evaluate();
      if (this.o.checkpointDir !== undefined && this.checkpointEvery > 0 && this.step_ % this.checkpointEvery === 0) {
        await this.saveAndReport();
        lastSaved = this.step_;
      }
      await yieldToEventLoop();
    }
    if (this.o.evalFn && stopReason === 'completed') lastEval = await this.evaluate();
    if (this.o.checkpointDir !== undefined && lastSaved !== this.step_) await this.saveAndReport();
    return { step: this.step_, stopReason, losses, lastEval };
  }

  /**
   * Runs `evalFn` in eval mode with grad off, reports it through onEval and returns its metrics. The global
   * random generator is put back afterwards, so evaluations never shift the random numbers training draws.
   */
  async evaluate(): Promise<Record<string, number>> {
    const { model, evalFn, callbacks = {} } = this.o;
    if (!evalFn) throw new ArgumentError('Trainer.evaluate: no evalFn was given', { fn: 'Trainer.evaluate', arg: 'evalFn' });
    model.eval();
    // Random numbers drawn by an evaluation do not advance the generator training draws from, so when
    // evaluations happen (an extra one at the end of a fit that is later resumed) does not change training.
    const rng = rngState();
    let metrics: Record<string, number>;
    try {
      metrics = await noGrad(() => evalFn(model));
    } finally {
      setRngState(rng);
      model.train();
    }
    await callbacks.onEval?.({ step: this.step_, metrics });
    return metrics;
  }

  /**
   * Writes the checkpoint now (model state, optimizer state, step, data position and the global random
   * generator's state) to
   * `checkpointDir/checkpoint.safetensors`, atomically. Refuses (TrainingError) when any value is
   * non-finite, so a diverged run never replaces a good checkpoint. Resolves to the path.
   */
  async saveCheckpoint(): Promise<string> {
    const fn = 'Trainer.saveCheckpoint';
    const file = this.checkpointPath;
    if (file === undefined) throw new ArgumentError(`${fn}: no checkpointDir was given`, { fn, arg: 'checkpointDir' });
    const entries = new Map<string, CheckpointEntry>();
    const modelDTypes: Record<string, DType> = {};
    // Float data only (int32 values are always finite); dtype-based, as typed arrays from the addon may come
    // from another realm where instanceof fails.
    const finite = (name: string, data: ArrayLike<number>) => {
      for (let i = 0; i < data.length; i++)
        if (!Number.isFinite(data[i])) throw new TrainingError(`${fn}: '${name}' holds a non-finite value at index ${i}; not writing the checkpoint`, { fn });
    };
    for (const [name, t] of entriesOf(this.o.model.stateDict())) {
      const data = t.dataSync() as Float32Array | Int32Array;
      if (t.dtype !== 'int32') finite(`model.${name}`, data);
      modelDTypes[name] = t.dtype;
      entries.set(`model.${name}`, { dtype: t.dtype === 'int32' ? 'int32' : 'float32', shape: [...t.shape], data });
    }
    const opt = this.o.optimizer.stateDict();
    opt.state.forEach((s, i) => {
      if (!s) return;
      finite(`optim.${i}.exp_avg`, s.expAvg);
      finite(`optim.${i}.exp_avg_sq`, s.expAvgSq);
      entries.set(`optim.${i}.exp_avg`, { dtype: 'float32', shape: s.shape, data: s.expAvg });
      entries.set(`optim.${i}.exp_avg_sq`, { dtype: 'float32', shape: s.shape, data: s.expAvgSq });
    });
    const state: TrainerState = {
      step: this.step_,
      dataPosition: this.dataPosition,
      nonFiniteRun: this.nonFiniteRun,
      rngState: rngState().toString(),
      modelDTypes,
      optimizer: { ...opt, state: opt.state.map((s) => (s ? { step: s.step, shape: s.shape } : null)) },
    };
    await writeCheckpoint(file, entries, state);
    return file;
  }

  /**
   * Restores the checkpoint at `file` (default: the one in `checkpointDir`), including the global random
   * generator (process-wide, as `manualSeed` sets it). Resolves to false when no file is given and
   * `checkpointDir` holds none; rejects with a TrainingError for a malformed checkpoint or one that does not
   * fit the model (the model's names and shapes and the optimizer moments are checked before anything is
   * loaded).
   */
  async resume(file?: string): Promise<boolean> {
    const fn = 'Trainer.resume';
    const target = file ?? this.checkpointPath;
    if (target === undefined) throw new ArgumentError(`${fn}: no checkpoint path and no checkpointDir`, { fn, arg: 'file' });
    if (file === undefined && !fs.existsSync(target)) return false;
    const { entries, state: raw } = await readCheckpoint(target);
    const state = raw as TrainerState;
    if (!state || !Number.isSafeInteger(state.step) || !Number.isSafeInteger(state.dataPosition) || !Array.isArray(state.optimizer?.state) || !state.modelDTypes)
      throw new TrainingError(`${fn}: ${target} holds no trainer state`, { fn, arg: 'file' });
    // Checked before anything is loaded; checkpoints written before the state was saved have none.
    let rng: bigint | undefined;
    if (state.rngState !== undefined) {
      if (typeof state.rngState !== 'string' || !/^[0-9]{1,20}$/.test(state.rngState) || BigInt(state.rngState) >= 1n << 64n)
        throw new TrainingError(`${fn}: ${target} holds an invalid random generator state ${describeValue(state.rngState)}`, { fn, arg: 'file' });
      rng = BigInt(state.rngState);
    }
    const { model, optimizer } = this.o;

    const current = new Map(entriesOf(model.stateDict()));
    const modelNames = [...entries.keys()].filter((k) => k.startsWith('model.')).map((k) => k.slice(6));
    const missing = [...current.keys()].filter((k) => !entries.has(`model.${k}`));
    const extra = modelNames.filter((k) => !current.has(k));
    if (missing.length || extra.length)
      throw new TrainingError(`${fn}: the checkpoint does not fit the model (missing: [${missing.join(', ')}], unexpected: [${extra.join(', ')}])`, { fn, arg: 'file' });
    for (const [name, t] of current) {
      const e = entries.get(`model.${name}`) as CheckpointEntry;
      if (e.shape.length !== t.shape.length || e.shape.some((s, i) => s !== t.shape[i]))
        throw new TrainingError(`${fn}: '${name}' has shape [${e.shape.join(', ')}] in the checkpoint but [${t.shape.join(', ')}] in the model`, { fn, arg: 'file' });
    }

    const opt = state.optimizer;
    const optimizerState: AdamWStateDict = {
      ...opt,
      state: opt.state.map((s, i) => {
        if (!s) return null;
        const m = entries.get(`optim.${i}.exp_avg`);
        const v = entries.get(`optim.${i}.exp_avg_sq`);
        if (!m || !v || m.dtype !== 'float32' || v.dtype !== 'float32') throw new TrainingError(`${fn}: optimizer state ${i} is missing from ${target}`, { fn, arg: 'file' });
        return { step: s.step, shape: s.shape, expAvg: m.data as Float32Array, expAvgSq: v.data as Float32Array };
      }),
    };

    const namesBefore = new Map<Tensor, string>();
    for (const [name, p] of model.namedParameters()) namesBefore.set(p, name);
    const loaded: Record<string, Tensor> = {};
    try {
      for (const [name, t] of current) {
        const e = entries.get(`model.${name}`) as CheckpointEntry;
        loaded[name] = tensor(e.data, e.shape, { dtype: state.modelDTypes[name] ?? t.dtype, device: t.device });
      }
      model.loadStateDict(loaded);
    } finally {
      dispose(loaded);
    }
    // A model may swap its parameter tensors instead of writing into them; the optimizer follows by name.
    const after = new Map<string, Tensor>();
    for (const [name, p] of model.namedParameters()) after.set(name, p);
    const replacement = new Map<Tensor, Tensor>();
    for (const [p, name] of namesBefore) {
      const q = after.get(name);
      if (q && q !== p) replacement.set(p, q);
    }
    if (replacement.size) optimizer.replaceParams(replacement);

    optimizer.loadStateDict(optimizerState);
    this.step_ = state.step;
    this.dataPosition = state.dataPosition;
    this.nonFiniteRun = state.nonFiniteRun ?? 0;
    if (rng !== undefined) setRngState(rng);
    this.iterator = null;
    return true;
  }

  private async saveAndReport(): Promise<void> {
    const file = await this.saveCheckpoint();
    await this.o.callbacks?.onCheckpoint?.({ step: this.step_, path: file });
  }

  private nextBatch(): B {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!this.iterator) this.iterator = toIterator(this.o.data(this.dataPosition));
      const r = this.iterator.next();
      if (!r.done) {
        this.dataPosition += 1;
        return r.value;
      }
      this.iterator = null;
    }
    throw new TrainingError(`Trainer.fit: option 'data' yielded no batch at position ${this.dataPosition}`, { fn: 'Trainer.fit', arg: 'data' });
  }

  private applySchedule(): number {
    const factor = this.o.schedule ? this.o.schedule(this.step_) : 1;
    if (!Number.isFinite(factor) || factor < 0)
      throw new TrainingError(`Trainer.fit: the schedule gave ${factor} at step ${this.step_}`, { fn: 'Trainer.fit', arg: 'schedule' });
    for (const g of this.o.optimizer.paramGroups) g.lr = g.initialLr * factor;
    return this.o.optimizer.paramGroups[0]?.lr ?? 0;
  }

  /** One optimizer step over `accumulation` micro-batches. */
  private trainStep(): StepInfo {
    const t0 = performance.now();
    const { model, optimizer, lossFn } = this.o;
    const lr = this.applySchedule();
    const k = this.accumulation;
    let total = 0;
    let finite = true;
    for (let i = 0; i < k; i++) {
      tidy(() => {
        const batch = this.nextBatch();
        if (!finite) return;
        const loss = lossFn(model, batch);
        if (!(loss instanceof Tensor) || loss.size !== 1)
          throw new ArgumentError(`Trainer.fit: lossFn must return a single-element Tensor but returned ${loss instanceof Tensor ? `shape [${loss.shape.join(', ')}]` : describeValue(loss)}`, {
            fn: 'Trainer.fit',
            arg: 'lossFn',
          });
        const value = (loss.dataSync() as Float32Array)[0];
        total += value;
        if (!Number.isFinite(value)) {
          finite = false;
          releaseGraph(loss);
          return;
        }
        (k > 1 ? mul(loss, 1 / k) : loss).backward();
      });
    }
    const params = optimizer.params();
    const loss = finite ? total / k : total;
    const norm = finite ? gradNorm(params) : NaN;
    const skipped = !finite || !Number.isFinite(norm);
    if (!skipped) optimizer.step({ gradScale: this.o.maxGradNorm ? clipScale(norm, this.o.maxGradNorm) : 1 });
    optimizer.zeroGrad();
    this.nonFiniteRun = skipped ? this.nonFiniteRun + 1 : 0;
    this.step_ += 1;
    return { step: this.step_, loss, lr, gradNorm: norm, skipped, nonFiniteRun: this.nonFiniteRun, ms: performance.now() - t0 };
  }
}

// The Trainer on a tiny model built from ops: it learns a trivial token map; resume is exact (N steps
// straight == N/2 + restart + N/2, losses and parameters bitwise, with accumulation, clipping, a schedule
// and weight-decay groups); a non-finite loss skips the step leaving parameters and optimizer state as they
// were; repeated ones stop with a TrainingError and no non-finite checkpoint; the AbortSignal stops between
// steps and checkpoints; callbacks and periodic evaluation run; bad options are typed errors. Resume also
// restores the global generator of unseeded rand/randn (a loss with unseeded noise resumes exactly).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { ArgumentError, Tensor, TrainingError, manualSeed, noGrad, ops, randn, tidy } from '../../lib';
import { AdamW, paramGroupsForMamba, warmupCosine } from '../../lib/optim';
import { StepInfo, Trainer, readCheckpoint, tokenAccuracy } from '../../lib/train';
import { expectEqualArrays, expectTypedError } from '../setup';
import { TinyModel, TokenBatch, snapshot, tinyLoss, tokenBatches } from './helpers';

const V = 12;
const shape = { vocab: V, batch: 4, len: 8 };

let dirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-trainer-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  dirs = [];
});

/** The async form of expectTypedError: `promise` rejects with `cls` naming `fn` and `arg`. */
async function expectRejected(promise: Promise<unknown>, cls: new (...args: never[]) => Error, fn: string, arg: string): Promise<void> {
  const caught = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(caught).toBeInstanceOf(cls);
  expect((caught as { fn?: string }).fn).toBe(fn);
  expect((caught as { arg?: string }).arg).toBe(arg);
}

function setup(
  opts: {
    checkpointDir?: string;
    poison?: (i: number) => boolean;
    maxNonFinite?: number;
    checkpointEvery?: number;
    lr?: number;
    signal?: AbortSignal;
    onStep?: (s: StepInfo) => void;
    lossFn?: (m: TinyModel, b: TokenBatch) => Tensor;
    evalFn?: (m: TinyModel) => Record<string, number>;
  } = {},
) {
  const model = new TinyModel(V, 16, 3);
  const optimizer = new AdamW(paramGroupsForMamba(model.namedParameters()), { lr: opts.lr ?? 0.03, weightDecay: 0.1 });
  const steps: StepInfo[] = [];
  const trainer = new Trainer<TinyModel, TokenBatch>({
    model,
    optimizer,
    lossFn: opts.lossFn ?? tinyLoss,
    data: (pos) => tokenBatches(pos, { ...shape, poison: opts.poison }),
    evalFn: opts.evalFn,
    schedule: warmupCosine({ warmupSteps: 3, totalSteps: 10, minRatio: 0.2 }),
    gradAccumulation: 2,
    maxGradNorm: 0.5,
    checkpointDir: opts.checkpointDir,
    checkpointEvery: opts.checkpointEvery,
    maxNonFinite: opts.maxNonFinite,
    signal: opts.signal,
    callbacks: {
      onStep: (s) => {
        steps.push(s);
        opts.onStep?.(s);
      },
    },
  });
  const done = () => {
    optimizer.dispose();
    model.dispose();
  };
  return { model, optimizer, trainer, steps, done };
}

describe('Trainer', () => {
  test('a tiny model learns a token map; onEval reports the accuracy', async () => {
    const model = new TinyModel(V, 16, 1);
    const optimizer = new AdamW(model.parameters(), { lr: 0.05, weightDecay: 0 });
    const evals: number[] = [];
    const trainer = new Trainer<TinyModel, TokenBatch>({
      model,
      optimizer,
      lossFn: tinyLoss,
      data: (pos) => tokenBatches(pos, shape),
      evalFn: (m) =>
        tidy(() => {
          const b = tokenBatches(10_000, { ...shape, batch: 16 }).next().value as TokenBatch;
          return { accuracy: tokenAccuracy(m.forward(b.ids), b.targets).accuracy };
        }),
      evalEvery: 40,
      callbacks: { onEval: (e) => void evals.push(e.metrics.accuracy) },
    });
    const r = await trainer.fit({ steps: 80 });
    expect(r.stopReason).toBe('completed');
    expect(r.step).toBe(80);
    expect(r.losses).toHaveLength(80);
    expect(r.losses[79]).toBeLessThan(r.losses[0] / 10);
    expect(evals).toHaveLength(2);
    expect(r.lastEval!.accuracy).toBeGreaterThanOrEqual(0.99);
    expect(model.training).toBe(true);
    optimizer.dispose();
    model.dispose();
  });

  test('resume is exact: 8 steps straight == 4 + restart + 4 (losses and parameters bitwise)', async () => {
    const straight = setup();
    await straight.trainer.fit({ steps: 8 });
    const refLosses = straight.steps.map((s) => s.loss);
    const refParams = snapshot(straight.model);
    const refOpt = straight.optimizer.stateDict();
    straight.done();

    const dir = tmpDir();
    const first = setup({ checkpointDir: dir });
    const r1 = await first.trainer.fit({ steps: 4 });
    expect(r1.step).toBe(4);
    first.done();

    const second = setup({ checkpointDir: dir });
    expect(await second.trainer.resume()).toBe(true);
    expect(second.trainer.step).toBe(4);
    await second.trainer.fit({ steps: 8 });
    const losses = [...first.steps, ...second.steps].map((s) => s.loss);
    expectEqualArrays(losses, refLosses);
    const lrs = [...first.steps, ...second.steps].map((s) => s.lr);
    expectEqualArrays(lrs, straight.steps.map((s) => s.lr));
    snapshot(second.model).forEach((p, i) => expectEqualArrays(p, refParams[i]));
    const opt = second.optimizer.stateDict();
    opt.state.forEach((s, i) => {
      expect(s!.step).toBe(refOpt.state[i]!.step);
      expectEqualArrays(s!.expAvg, refOpt.state[i]!.expAvg);
      expectEqualArrays(s!.expAvgSq, refOpt.state[i]!.expAvgSq);
    });
    second.done();
  });

  test('resume restores the global generator: a loss with unseeded noise resumes exactly', async () => {
    // The noise comes from the global generator (no seed). A fresh process starts that generator where the
    // first one did (manualSeed(21) here), so without the saved state the second half would draw the first
    // half's noise again. The evaluation draws too, and only the split run evaluates at step 4 (the end of
    // its first fit): evaluations must not shift training's random numbers either.
    const noisyLoss = (m: TinyModel, b: TokenBatch) => ops.crossEntropy(ops.add(m.forward(b.ids), randn([shape.batch, shape.len, V], { std: 2 })), b.targets);
    const noisyEval = () => tidy(() => ({ noise: (randn([1]).dataSync() as Float32Array)[0] }));
    const run = (checkpointDir?: string) => setup({ checkpointDir, lossFn: noisyLoss, evalFn: noisyEval });

    manualSeed(21);
    const straight = run();
    await straight.trainer.fit({ steps: 8 });
    const refLosses = straight.steps.map((s) => s.loss);
    const refParams = snapshot(straight.model);
    straight.done();

    const dir = tmpDir();
    manualSeed(21);
    const first = run(dir);
    await first.trainer.fit({ steps: 4 });
    first.done();
    manualSeed(21);
    const second = run(dir);
    expect(await second.trainer.resume()).toBe(true);
    await second.trainer.fit({ steps: 8 });
    expectEqualArrays([...first.steps, ...second.steps].map((s) => s.loss), refLosses);
    snapshot(second.model).forEach((p, i) => expectEqualArrays(p, refParams[i]));
    second.done();

    // The control: the same resume with the generator reset afterwards draws other noise, so the
    // comparison above depends on the restored state.
    const third = run(dir);
    expect(await third.trainer.resume()).toBe(true);
    manualSeed(21);
    await third.trainer.fit({ steps: 8 });
    expect(third.steps.map((s) => s.loss)).not.toEqual(refLosses.slice(4));
    third.done();
  });

  test('resume without a checkpoint is a no-op; a checkpoint of another model is refused', async () => {
    const dir = tmpDir();
    const a = setup({ checkpointDir: dir });
    expect(await a.trainer.resume()).toBe(false);
    await a.trainer.fit({ steps: 1 });
    a.done();
    const model = new TinyModel(V + 1, 16, 3);
    const optimizer = new AdamW(model.parameters());
    const t = new Trainer({ model, optimizer, lossFn: tinyLoss, data: (pos) => tokenBatches(pos, shape), checkpointDir: dir });
    await expectRejected(t.resume(), TrainingError, 'Trainer.resume', 'file');
    optimizer.dispose();
    model.dispose();
  });

  test('a non-finite loss skips the step: parameters and optimizer state unchanged, training goes on', async () => {
    // Step 4 (0-based 3) reads micro-batches 6 and 7; batch 7 is poisoned.
    const s = setup({ poison: (i) => i === 7 });
    await s.trainer.fit({ steps: 3 });
    const params = snapshot(s.model);
    const opt = s.optimizer.stateDict();
    await s.trainer.fit({ steps: 4 });
    const info = s.steps[3];
    expect(info.skipped).toBe(true);
    expect(info.loss).toBeNaN();
    expect(info.nonFiniteRun).toBe(1);
    snapshot(s.model).forEach((p, i) => expectEqualArrays(p, params[i]));
    const after = s.optimizer.stateDict();
    after.state.forEach((st, i) => {
      expect(st!.step).toBe(opt.state[i]!.step);
      expectEqualArrays(st!.expAvg, opt.state[i]!.expAvg);
    });
    for (const p of s.model.parameters()) expect(p.grad).toBeNull();
    await s.trainer.fit({ steps: 6 });
    expect(s.steps[4].skipped).toBe(false);
    expect(s.steps[5].nonFiniteRun).toBe(0);
    s.done();
  });

  test('maxNonFinite skipped steps in a row stop with a TrainingError; no non-finite checkpoint', async () => {
    const dir = tmpDir();
    const s = setup({ checkpointDir: dir, checkpointEvery: 1, maxNonFinite: 3, poison: (i) => i >= 4 });
    let caught: unknown;
    try {
      await s.trainer.fit({ steps: 20 });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(TrainingError);
    expect((caught as Error).message).toMatch(/3 steps in a row/);
    expect(s.trainer.step).toBe(5);
    const { entries, state } = await readCheckpoint(path.join(dir, 'checkpoint.safetensors'));
    expect((state as { step: number }).step).toBe(4);
    for (const e of entries.values()) for (const v of e.data) expect(Number.isFinite(v)).toBe(true);
    s.done();
  });

  test('the AbortSignal stops between steps, with a checkpoint', async () => {
    const dir = tmpDir();
    const ac = new AbortController();
    const checkpoints: number[] = [];
    const s = setup({ checkpointDir: dir, signal: ac.signal, onStep: (i) => i.step === 3 && ac.abort() });
    (s.trainer as unknown as { o: { callbacks: { onCheckpoint: (c: { step: number }) => void } } }).o.callbacks.onCheckpoint = (c) => void checkpoints.push(c.step);
    const r = await s.trainer.fit({ steps: 10 });
    expect(r.stopReason).toBe('aborted');
    expect(r.step).toBe(3);
    expect(checkpoints).toEqual([3]);
    expect(((await readCheckpoint(path.join(dir, 'checkpoint.safetensors'))).state as { step: number }).step).toBe(3);
    s.done();
  });

  test('an abort from a timer lands between steps', async () => {
    const s = setup({ signal: AbortSignal.timeout(30) });
    const r = await s.trainer.fit({ steps: 100_000 });
    expect(r.stopReason).toBe('aborted');
    expect(r.step).toBeLessThan(100_000);
    s.done();
  });

  test('memory: live tensors do not grow over steps', async () => {
    const s = setup();
    await s.trainer.fit({ steps: 2 });
    const before = (await import('../../lib')).memory().numTensors;
    await s.trainer.fit({ steps: 12 });
    expect((await import('../../lib')).memory().numTensors).toBe(before);
    s.done();
  });

  test('bad options are typed errors', async () => {
    const model = new TinyModel(V, 4, 1);
    const optimizer = new AdamW(model.parameters());
    const base = { model, optimizer, lossFn: tinyLoss, data: (pos: number) => tokenBatches(pos, shape) };
    expectTypedError(() => new Trainer({ ...base, model: {} as TinyModel }), ArgumentError, 'Trainer', 'model');
    expectTypedError(() => new Trainer({ ...base, lossFn: 1 as unknown as typeof tinyLoss }), ArgumentError, 'Trainer', 'lossFn');
    expectTypedError(() => new Trainer({ ...base, gradAccumulation: 0 }), ArgumentError, 'Trainer', 'gradAccumulation');
    expectTypedError(() => new Trainer({ ...base, maxGradNorm: -1 }), ArgumentError, 'Trainer', 'maxGradNorm');
    expectTypedError(() => new Trainer({ ...base, signal: {} as AbortSignal }), ArgumentError, 'Trainer', 'signal');
    const t = new Trainer({ ...base, lossFn: (m: TinyModel, b: TokenBatch) => noGrad(() => m.forward(b.ids)) });
    await expect(t.fit({ steps: 1 })).rejects.toBeInstanceOf(ArgumentError);
    await expect(new Trainer(base).fit({ steps: -1 })).rejects.toBeInstanceOf(ArgumentError);
    await expectRejected(new Trainer(base).saveCheckpoint(), ArgumentError, 'Trainer.saveCheckpoint', 'checkpointDir');
    optimizer.dispose();
    model.dispose();
  });
});

/**
 * Test setup shared by every jest file: CUDA detection (`hasCuda`, `describeCuda`, which skips only
 * when no GPU is present), closeness checks that report the worst element, a GC helper, and the leak
 * check: after each test the live-tensor count must be back at its value before the test.
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

import { cudaAvailable, memory, tidy } from '../lib';
import { uniforms } from '../lib/mulberry32';

export const hasCuda = cudaAvailable();

/** `describe` for CUDA suites: skipped only when this machine has no CUDA device. */
export const describeCuda: jest.Describe = hasCuda ? describe : describe.skip;
/** `describe` for what only a machine without CUDA can check (CUDA refused with a DeviceError). */
export const describeNoCuda: jest.Describe = hasCuda ? describe.skip : describe;

let baseline = 0;
beforeEach(() => {
  baseline = memory().numTensors;
});
afterEach(() => {
  const now = memory().numTensors;
  if (now !== baseline) throw new Error(`leak check: ${now - baseline} live tensor(s) more than before the test`);
});

v8.setFlagsFromString('--expose-gc');
const gcFn = vm.runInNewContext('gc') as () => void;

/** Runs full GCs and lets N-API finalizers (queued after GC) run. */
export async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gcFn();
    await new Promise((r) => setImmediate(r));
  }
}

/** A small seeded generator of uniforms in [0, 1) (mulberry32) for test data, so failures reproduce. */
export function rng(seed: number): () => number {
  return uniforms(seed);
}

/** The multi-index of flat (row-major) index `i` in `shape`. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

/** The flat (row-major) index of multi-index `idx` in `shape`. */
export function ravel(idx: readonly number[], shape: readonly number[]): number {
  return idx.reduce((o, v, d) => o * shape[d] + v, 0);
}

/**
 * Runs `call` inside `tidy` (so tensors it made before throwing are freed) and asserts it throws `cls` naming
 * `fn` and `arg` (each when given).
 */
export function expectTypedError(call: () => unknown, cls: new (...args: never[]) => Error, fn?: string, arg?: string): void {
  let caught: unknown;
  try {
    tidy(() => {
      call();
    });
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(cls);
  if (fn !== undefined) expect((caught as { fn?: string }).fn).toBe(fn);
  if (arg !== undefined) expect((caught as { arg?: string }).arg).toBe(arg);
}

/** Asserts |a - b| <= atol + rtol * |b| elementwise; the message names the worst element. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const b = expected[i];
    const excess = Math.abs(a - b) - (atol + rtol * Math.abs(b));
    const bad = Number.isNaN(a) !== Number.isNaN(b) || (!Number.isNaN(b) && !(excess <= 0) && a !== b);
    if (bad && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0)
    throw new Error(`not close: worst at index ${worst}: got ${actual[worst]}, expected ${expected[worst]} (rtol ${rtol}, atol ${atol})`);
}

/** Asserts bitwise-equal float32/int32 arrays, naming the first difference. */
export function expectEqualArrays(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i]) && !(Number.isNaN(actual[i]) && Number.isNaN(expected[i])))
      throw new Error(`arrays differ first at index ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

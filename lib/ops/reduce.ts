/**
 * Sums over axes (float32 accumulation, fixed order: deterministic), `mean`, and `sumTo` (the reduction
 * of a broadcast gradient back to an input's shape). Negative axes count from the end, as in PyTorch.
 *
 * @example
 * ```ts
 * const s = ops.sum(x, [1], { keepDims: true });   // (B, L, D) -> (B, 1, D)
 * const m = ops.mean(x);                            // all axes -> shape []
 * ```
 */
import { recordOp } from '../autograd/node';
import { ArgumentError, ShapeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';
import { scaleRaw } from './elementwise';

/** Options of the reductions. */
export interface ReduceOptions {
  /** Keep reduced axes as size 1. Default false. */
  keepDims?: boolean;
}

/** Normalises `axes` (a number, an array, or undefined for all) to sorted, unique, non-negative axes. */
export function normalizeAxes(axes: number | readonly number[] | undefined, rank: number, fn: string): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof axes === 'number' ? [axes] : axes;
  if (!Array.isArray(list)) throw new ArgumentError(`${fn}: expected a number or an array of numbers for argument 'axes'`, { fn, arg: 'axes' });
  const out = new Set<number>();
  for (const a of list) {
    if (typeof a !== 'number' || !Number.isInteger(a) || a < -rank || a >= rank)
      throw new ArgumentError(`${fn}: axis ${String(a)} is out of range for a tensor of rank ${rank}`, { fn, arg: 'axes' });
    out.add(a < 0 ? a + rank : a);
  }
  return [...out].sort((x, y) => x - y);
}

function reducedShape(shape: readonly number[], axes: number[], keepDims: boolean): number[] {
  const out: number[] = [];
  shape.forEach((s, i) => {
    if (!axes.includes(i)) out.push(s);
    else if (keepDims) out.push(1);
  });
  return out;
}

function sumRaw(x: Tensor, axes: number[], keepDims: boolean, fn: string): Tensor {
  const shape = reducedShape(x.shape, axes, keepDims);
  return new Tensor(native().sum(x.handle(fn, 'x'), axes, keepDims), shape, x.dtype, x.device);
}

/** Broadcasts `g` (the reduced gradient) back to `shape`, given the reduced axes. */
function expandBack(g: Tensor, shape: readonly number[], axes: number[], fn: string): Tensor {
  const kept = reducedShape(shape, axes, true);
  const view = native().reshape(g.handle(fn, 'grad'), kept);
  try {
    return new Tensor(native().broadcastTo(view, [...shape]), shape, g.dtype, g.device);
  } finally {
    native().dispose(view);
  }
}

/** Sum over `axes` (default: all). */
export function sum(x: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  const fn = 'sum';
  if (!(x instanceof Tensor)) throw new ArgumentError(`${fn}: expected a Tensor for argument 'x'`, { fn, arg: 'x' });
  const ax = normalizeAxes(axes, x.rank, fn);
  const out = sumRaw(x, ax, options.keepDims ?? false, fn);
  const shape = x.shape;
  recordOp(fn, [x], [out], ([g]) => [g && expandBack(g, shape, ax, fn)]);
  return out;
}

/** Mean over `axes` (default: all). */
export function mean(x: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  const fn = 'mean';
  if (!(x instanceof Tensor)) throw new ArgumentError(`${fn}: expected a Tensor for argument 'x'`, { fn, arg: 'x' });
  const ax = normalizeAxes(axes, x.rank, fn);
  const count = ax.reduce((n, a) => n * x.shape[a], 1);
  const s = sumRaw(x, ax, options.keepDims ?? false, fn);
  const out = scaleRaw(s, 1 / count, fn);
  s.dispose();
  const shape = x.shape;
  recordOp(fn, [x], [out], ([g]) => {
    if (!g) return [];
    const e = expandBack(g, shape, ax, fn);
    const r = scaleRaw(e, 1 / count, fn);
    e.dispose();
    return [r];
  });
  return out;
}

/**
 * Sums `g` down to `shape` (the inverse of broadcasting `shape` up to `g.shape`): leading extra axes and
 * axes where `shape` has size 1 are summed. Returns a new tensor; records nothing (used inside backward).
 */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  const fn = 'sumTo';
  const lead = g.rank - shape.length;
  if (lead < 0) throw new ShapeError(`${fn}: cannot reduce [${g.shape.join(', ')}] to the larger rank of [${shape.join(', ')}]`, { fn, arg: 'shape' });
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead) axes.push(i);
    else if (shape[i - lead] === 1 && g.shape[i] !== 1) axes.push(i);
    else if (shape[i - lead] !== g.shape[i])
      throw new ShapeError(`${fn}: [${g.shape.join(', ')}] does not broadcast from [${shape.join(', ')}]`, { fn, arg: 'shape' });
  }
  if (axes.length === 0) return g.share();
  const s = native().sum(g.handle(fn, 'grad'), axes, true);
  try {
    return new Tensor(native().reshape(s, [...shape]), shape, g.dtype, g.device);
  } finally {
    native().dispose(s);
  }
}

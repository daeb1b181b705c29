/**
 * Reductions beyond sums (lib/ops/reduce.ts): max, min, argmax, argmin and logsumexp over axes, and
 * softmax / logSoftmax along one axis, for float32 / float16 / bfloat16 on CPU and CUDA with float32
 * math (native/ops/reduce_extra.cc). Axes that are not adjacent are permuted together first. NaN counts
 * as the largest and the smallest value (PyTorch), and ties go to the first position. Negative axes
 * count from the end; `keepDims` keeps reduced axes as size 1.
 * Gradients: max / min send the gradient to the (first) position of the result; logsumexp's is
 * g * exp(x - logsumexp(x)); softmax's y * (g - sum(g * y)); logSoftmax's g - exp(y) * sum(g).
 *
 * @example
 * ```ts
 * const m = ops.max(x, -1, { keepDims: true });   // (B, L, V) -> (B, L, 1)
 * const ids = ops.argmax(logits, -1);              // int32 (B, L)
 * const p = ops.softmax(logits);                   // along the last axis
 * ```
 */
import { isGradEnabled } from '../autograd/grad_mode';
import { recordOp } from '../autograd/node';
import { describeValue } from '../dtype';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { NativeHandle, native } from '../native';
import { Tensor } from '../tensor';
import { exp, mul, sub } from './elementwise';
import { ReduceOptions, normalizeAxes } from './reduce';
import { normalizeAxis, permuteRaw } from './shape';

function checkFloat(x: unknown, fn: string): Tensor {
  if (!(x instanceof Tensor)) throw new ArgumentError(`${fn}: expected a Tensor for argument 'x' but received ${describeValue(x)}`, { fn, arg: 'x' });
  if (x.dtype === 'int32') throw new DTypeError(`${fn}: argument 'x' must be float32, float16 or bfloat16 but is int32`, { fn, arg: 'x' });
  return x;
}

function keepDimsOf(options: ReduceOptions, fn: string): boolean {
  if (options === null || typeof options !== 'object')
    throw new ArgumentError(`${fn}: expected an options object for argument 'options' but received ${describeValue(options)}`, { fn, arg: 'options' });
  if (options.keepDims !== undefined && typeof options.keepDims !== 'boolean')
    throw new ArgumentError(`${fn}: expected a boolean for option 'keepDims' but received ${describeValue(options.keepDims)}`, { fn, arg: 'keepDims' });
  return options.keepDims ?? false;
}

function reducedShape(shape: readonly number[], axes: readonly number[], keepDims: boolean): number[] {
  const out: number[] = [];
  shape.forEach((s, i) => {
    if (!axes.includes(i)) out.push(s);
    else if (keepDims) out.push(1);
  });
  return out;
}

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** A handle viewed as `shape` (the original handle is released). */
function wrapAs(h: NativeHandle, shape: readonly number[], dtype: Tensor['dtype'], device: Tensor['device']): Tensor {
  const n = native();
  try {
    return new Tensor(n.reshape(h, [...shape]), shape, dtype, device);
  } finally {
    n.dispose(h);
  }
}

/**
 * x laid out so that the reduced axes form the block [start, end): x itself when they are adjacent,
 * else a copy with the kept axes first and the reduced ones last (`perm`; the caller disposes `src`).
 */
interface Block {
  src: Tensor;
  perm: number[] | null;
  start: number;
  end: number;
}

function toBlock(x: Tensor, axes: readonly number[], fn: string): Block {
  const adjacent = axes.every((a, i) => i === 0 || a === axes[i - 1] + 1);
  if (adjacent) return { src: x, perm: null, start: axes.length ? axes[0] : 0, end: axes.length ? axes[axes.length - 1] + 1 : 0 };
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const perm = [...kept, ...axes];
  return { src: permuteRaw(x, perm, fn), perm, start: kept.length, end: x.rank };
}

function releaseBlock(b: Block): void {
  if (b.perm) b.src.dispose();
}

// max / min / argmax have no value over zero elements (unless there is no output either).
function checkNotEmpty(x: Tensor, axes: readonly number[], fn: string): void {
  if (prod(axes.map((a) => x.shape[a])) === 0 && prod(reducedShape(x.shape, axes, false)) > 0)
    throw new ShapeError(`${fn}: cannot reduce over an axis of size 0 (shape [${x.shape.join(', ')}])`, { fn, arg: 'x' });
}

function extreme(op: 'max' | 'min', x: Tensor, axes: number | readonly number[] | undefined, options: ReduceOptions): Tensor {
  const fn = op;
  checkFloat(x, fn);
  const ax = normalizeAxes(axes, x.rank, fn);
  const keepDims = keepDimsOf(options, fn);
  checkNotEmpty(x, ax, fn);
  const shape = reducedShape(x.shape, ax, keepDims);
  const block = toBlock(x, ax, fn);
  const withIndex = isGradEnabled() && x.requiresGrad;
  let out: Tensor;
  let index: Tensor | null = null;
  try {
    const [vh, ih] = native().reduceAxes(block.src.handle(fn, 'x'), op, block.start, block.end, withIndex);
    out = wrapAs(vh, shape, x.dtype, x.device);
    if (ih) index = wrapAs(ih, shape, 'int32', x.device);
  } finally {
    releaseBlock(block);
  }
  if (index) {
    const srcShape = block.perm ? block.perm.map((a) => x.shape[a]) : [...x.shape];
    const dims = [prod(srcShape.slice(0, block.start)), prod(srcShape.slice(block.start, block.end)), prod(srcShape.slice(block.end))];
    const inverse = block.perm ? block.perm.map((_, i) => (block.perm as number[]).indexOf(i)) : null;
    recordOp(
      fn,
      [x],
      [out],
      ([g], [idx]) => {
        if (!g) return [null];
        const scattered = wrapAs(native().argScatter(g.handle(fn, 'grad'), idx.handle(fn, 'index'), dims, 1), srcShape, g.dtype, g.device);
        if (!inverse) return [scattered];
        try {
          return [permuteRaw(scattered, inverse, fn)];
        } finally {
          scattered.dispose();
        }
      },
      [index],
    );
    index.dispose();
  }
  return out;
}

/**
 * The largest value over `axes` (default: all). NaN wins; the gradient goes to the first position of the
 * maximum.
 *
 * @example
 * ```ts
 * ops.max(x, [0, 2]).shape;   // x (2, 3, 4) -> [3]
 * ```
 */
export function max(x: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  return extreme('max', x, axes, options);
}

/** The smallest value over `axes` (default: all); see `max`. */
export function min(x: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  return extreme('min', x, axes, options);
}

function argExtreme(op: 'max' | 'min', x: Tensor, axis: number | undefined, options: ReduceOptions): Tensor {
  const fn = op === 'max' ? 'argmax' : 'argmin';
  checkFloat(x, fn);
  const keepDims = keepDimsOf(options, fn);
  // No axis: positions in the flattened tensor, as in PyTorch.
  const ax = axis === undefined ? x.shape.map((_, i) => i) : [normalizeAxis(axis, x.rank, fn)];
  checkNotEmpty(x, ax, fn);
  const shape = reducedShape(x.shape, ax, keepDims);
  const start = ax.length ? ax[0] : 0;
  const [vh, ih] = native().reduceAxes(x.handle(fn, 'x'), op, start, ax.length ? ax[ax.length - 1] + 1 : 0, true);
  native().dispose(vh);
  return wrapAs(ih as NativeHandle, shape, 'int32', x.device);
}

/**
 * Positions (int32) of the largest values along `axis`, or in the flattened tensor when `axis` is
 * omitted. Ties and NaN resolve to the first position. Not differentiable.
 *
 * @example
 * ```ts
 * const next = ops.argmax(logits, -1);   // (B, V) -> int32 (B)
 * ```
 */
export function argmax(x: Tensor, axis?: number, options: ReduceOptions = {}): Tensor<'int32'> {
  return argExtreme('max', x, axis, options) as Tensor<'int32'>;
}

/** Positions (int32) of the smallest values along `axis`; see `argmax`. */
export function argmin(x: Tensor, axis?: number, options: ReduceOptions = {}): Tensor<'int32'> {
  return argExtreme('min', x, axis, options) as Tensor<'int32'>;
}

/**
 * log(sum(exp(x))) over `axes` (default: all), computed stably (running maximum, float32). Empty axes
 * give -inf.
 *
 * @example
 * ```ts
 * const logZ = ops.logsumexp(logits, -1);   // (B, V) -> (B)
 * ```
 */
export function logsumexp(x: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  const fn = 'logsumexp';
  checkFloat(x, fn);
  const ax = normalizeAxes(axes, x.rank, fn);
  const keepDims = keepDimsOf(options, fn);
  const shape = reducedShape(x.shape, ax, keepDims);
  const block = toBlock(x, ax, fn);
  let out: Tensor;
  try {
    const [vh] = native().reduceAxes(block.src.handle(fn, 'x'), 'logsumexp', block.start, block.end, false);
    out = wrapAs(vh, shape, x.dtype, x.device);
  } finally {
    releaseBlock(block);
  }
  const kept = reducedShape(x.shape, ax, true);
  recordOp(
    fn,
    [x],
    [out],
    ([g], [sx, so]) => {
      if (!g) return [null];
      const n = native();
      const gk = new Tensor(n.reshape(g.handle(fn, 'grad'), kept), kept, g.dtype, g.device);
      const ok = new Tensor(n.reshape(so.handle(fn, 'out'), kept), kept, so.dtype, so.device);
      const d = sub(sx, ok);
      const e = exp(d);
      try {
        return [mul(e, gk)];
      } finally {
        [gk, ok, d, e].forEach((t) => t.dispose());
      }
    },
    [x, out],
  );
  return out;
}

function softmaxOf(x: Tensor, axis: number, log: boolean): Tensor {
  const fn = log ? 'logSoftmax' : 'softmax';
  checkFloat(x, fn);
  if (x.rank === 0) throw new ShapeError(`${fn}: argument 'x' must have at least one axis`, { fn, arg: 'x' });
  const a = normalizeAxis(axis, x.rank, fn);
  const out = new Tensor(native().softmax(x.handle(fn, 'x'), a, log), x.shape, x.dtype, x.device);
  recordOp(
    fn,
    [x],
    [out],
    ([g], [y]) => [g && new Tensor(native().softmaxBackward(y.handle(fn, 'out'), g.handle(fn, 'grad'), a, log), y.shape, y.dtype, y.device)],
    [out],
  );
  return out;
}

/**
 * exp(x) / sum(exp(x)) along `axis` (default: the last), with the maximum subtracted first. A row of
 * only -inf gives NaN, as in PyTorch.
 *
 * @example
 * ```ts
 * const probs = ops.softmax(logits);   // rows sum to 1
 * ```
 */
export function softmax(x: Tensor, axis = -1): Tensor {
  return softmaxOf(x, axis, false);
}

/** log(softmax(x)) along `axis` (default: the last), computed as x - logsumexp(x) in one pass. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return softmaxOf(x, axis, true);
}

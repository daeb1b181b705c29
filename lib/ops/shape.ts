/**
 * Layout ops: permute, transpose, slice / narrow, concat, split, expand and indexSelect, on CPU and
 * CUDA for every dtype (bits are copied, never converted). Tensors are always contiguous, so each op
 * returns a new contiguous tensor: permute, slice and expand are one strided copy (native/ops/shape.cc;
 * the strides are computed here), concat copies each input into its region of the output. Negative
 * axes count from the end, as in PyTorch. Every op is differentiable: permute's gradient is the inverse
 * permute, slice's puts the gradient back into zeros, concat's slices it, split's concatenates, expand's
 * sums back (sumTo) and indexSelect's adds the rows back where they came from (deterministically).
 *
 * @example
 * ```ts
 * const y = ops.permute(x, [0, 2, 1]);              // (B, L, D) -> (B, D, L)
 * const [a, b] = ops.split(x, [3, 5], -1);          // (.., 8) -> (.., 3), (.., 5)
 * const rows = ops.indexSelect(table, 0, ids);      // (V, D), ids (N) int32 -> (N, D)
 * ```
 */
import { recordOp } from '../autograd/node';
import { full, tensor } from '../creation';
import { describeValue } from '../dtype';
import { ArgumentError, DTypeError, DeviceError, ShapeError } from '../errors';
import { NativeHandle, native } from '../native';
import { Tensor } from '../tensor';
import { sumTo } from './reduce';

function checkTensor(x: unknown, fn: string, arg = 'x'): Tensor {
  if (!(x instanceof Tensor)) throw new ArgumentError(`${fn}: expected a Tensor for argument '${arg}' but received ${describeValue(x)}`, { fn, arg });
  return x;
}

function checkInt(v: unknown, fn: string, arg: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v))
    throw new ArgumentError(`${fn}: expected an integer for argument '${arg}' but received ${describeValue(v)}`, { fn, arg });
  return v;
}

/** @internal An axis of a tensor of rank `rank`, negative counting from the end, as a non-negative index. */
export function normalizeAxis(axis: unknown, rank: number, fn: string, arg = 'axis'): number {
  const a = checkInt(axis, fn, arg);
  if (a < -rank || a >= rank) throw new ArgumentError(`${fn}: axis ${a} is out of range for a tensor of rank ${rank}`, { fn, arg });
  return a < 0 ? a + rank : a;
}

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1] * shape[d + 1];
  return s;
}

function wrap(h: NativeHandle, shape: readonly number[], like: Tensor): Tensor {
  return new Tensor(h, shape, like.dtype, like.device);
}

/** A new handle over x's storage (nothing copied) viewed as `shape`. */
function view(x: Tensor, shape: readonly number[], fn: string): Tensor {
  return wrap(native().reshape(x.handle(fn, 'x'), [...shape]), shape, x);
}

/** @internal x with its axes reordered (`perm` already normalized); records nothing. */
export function permuteRaw(x: Tensor, perm: readonly number[], fn: string): Tensor {
  const shape = perm.map((a) => x.shape[a]);
  if (perm.every((a, i) => a === i)) return view(x, shape, fn);
  const strides = contiguousStrides(x.shape);
  return wrap(native().stridedCopy(x.handle(fn, 'x'), shape, perm.map((a) => strides[a]), 0), shape, x);
}

/** @internal The box [starts, starts + sizes) of x (already validated); records nothing. */
export function sliceRaw(x: Tensor, starts: readonly number[], sizes: readonly number[], fn: string): Tensor {
  if (sizes.every((s, d) => s === x.shape[d])) return view(x, sizes, fn);
  const strides = contiguousStrides(x.shape);
  const offset = starts.reduce((o, s, d) => o + s * strides[d], 0);
  return wrap(native().stridedCopy(x.handle(fn, 'x'), [...sizes], strides, offset), sizes, x);
}

/** @internal Concatenation of validated tensors along a normalized axis; records nothing. */
function concatRaw(xs: readonly Tensor[], axis: number, fn: string): Tensor {
  const shape = [...xs[0].shape];
  shape[axis] = xs.reduce((n, t) => n + t.shape[axis], 0);
  return wrap(
    native().concat(
      xs.map((t, i) => t.handle(fn, `tensors[${i}]`)),
      axis,
    ),
    shape,
    xs[0],
  );
}

function invert(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((a, i) => (inv[a] = i));
  return inv;
}

/**
 * `x` with its axes reordered: output axis i is input axis `axes[i]` (a permutation; negative axes
 * allowed). The gradient is permuted back.
 *
 * @example
 * ```ts
 * ops.permute(x, [2, 0, 1]).shape;   // x (2, 3, 4) -> [4, 2, 3]
 * ```
 */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  const fn = 'permute';
  checkTensor(x, fn);
  if (!Array.isArray(axes)) throw new ArgumentError(`${fn}: expected an array of axes for argument 'axes' but received ${describeValue(axes)}`, { fn, arg: 'axes' });
  if (axes.length !== x.rank)
    throw new ShapeError(`${fn}: argument 'axes' has ${axes.length} entries for a tensor of rank ${x.rank}`, { fn, arg: 'axes' });
  const perm = axes.map((a) => normalizeAxis(a, x.rank, fn, 'axes'));
  if (new Set(perm).size !== perm.length) throw new ArgumentError(`${fn}: argument 'axes' [${axes.join(', ')}] repeats an axis`, { fn, arg: 'axes' });
  return permuteRecorded(x, perm, fn);
}

function permuteRecorded(x: Tensor, perm: number[], fn: string): Tensor {
  const out = permuteRaw(x, perm, fn);
  const inv = invert(perm);
  recordOp(fn, [x], [out], ([g]) => [g && permuteRaw(g, inv, fn)]);
  return out;
}

/**
 * `x` with axes `axis0` and `axis1` swapped (default: the last two).
 *
 * @example
 * ```ts
 * ops.transpose(x).shape;   // x (2, 3, 4) -> [2, 4, 3]
 * ```
 */
export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  const fn = 'transpose';
  checkTensor(x, fn);
  const a = normalizeAxis(axis0, x.rank, fn, 'axis0');
  const b = normalizeAxis(axis1, x.rank, fn, 'axis1');
  const perm = Array.from({ length: x.rank }, (_, i) => (i === a ? b : i === b ? a : i));
  return permuteRecorded(x, perm, fn);
}

function sliceRecorded(x: Tensor, starts: number[], sizes: number[], fn: string): Tensor {
  const out = sliceRaw(x, starts, sizes, fn);
  const shape = [...x.shape];
  recordOp(fn, [x], [out], ([g]) => [g && wrap(native().sliceScatter(g.handle(fn, 'grad'), shape, starts), shape, g)]);
  return out;
}

/**
 * Elements `start` to `end` (exclusive) of `x` along `axis`, like Python's `x[..., start:end]` (step 1):
 * negative positions count from the end and are clamped to the axis, `end` defaults to its size.
 *
 * @example
 * ```ts
 * ops.slice(x, -1, 2).shape;        // x (4, 10) -> [4, 8]
 * ops.slice(x, 0, 1, 3).shape;      // -> [2, 10]
 * ```
 */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const fn = 'slice';
  checkTensor(x, fn);
  const a = normalizeAxis(axis, x.rank, fn);
  const n = x.shape[a];
  const clamp = (v: number) => Math.min(n, Math.max(0, v < 0 ? v + n : v));
  const s = clamp(checkInt(start, fn, 'start'));
  const e = end === undefined ? n : clamp(checkInt(end, fn, 'end'));
  const starts = x.shape.map((_, d) => (d === a ? s : 0));
  const sizes = x.shape.map((size, d) => (d === a ? Math.max(0, e - s) : size));
  return sliceRecorded(x, starts, sizes, fn);
}

/**
 * `length` elements of `x` along `axis` from `start` (negative counts from the end), as PyTorch's
 * `narrow`: unlike `slice`, a range outside the axis is an error.
 */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const fn = 'narrow';
  checkTensor(x, fn);
  const a = normalizeAxis(axis, x.rank, fn);
  const n = x.shape[a];
  let s = checkInt(start, fn, 'start');
  const len = checkInt(length, fn, 'length');
  if (s < -n || s > n) throw new ArgumentError(`${fn}: start ${s} is out of range for an axis of size ${n}`, { fn, arg: 'start' });
  if (s < 0) s += n;
  if (len < 0 || s + len > n)
    throw new ArgumentError(`${fn}: length ${len} from ${s} does not fit an axis of size ${n}`, { fn, arg: 'length' });
  const starts = x.shape.map((_, d) => (d === a ? s : 0));
  const sizes = x.shape.map((size, d) => (d === a ? len : size));
  return sliceRecorded(x, starts, sizes, fn);
}

function checkList(xs: unknown, fn: string): Tensor[] {
  if (!Array.isArray(xs) || xs.length === 0)
    throw new ArgumentError(`${fn}: expected a non-empty array of tensors for argument 'tensors' but received ${describeValue(xs)}`, { fn, arg: 'tensors' });
  xs.forEach((t, i) => checkTensor(t, fn, `tensors[${i}]`));
  return xs as Tensor[];
}

/**
 * The tensors joined along `axis` (default 0). They must share dtype, device and rank, and sizes on every
 * other axis. The gradient is sliced back to each input.
 *
 * @example
 * ```ts
 * ops.concat([a, b], -1).shape;   // a (2, 3), b (2, 5) -> [2, 8]
 * ```
 */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  const fn = 'concat';
  const xs = checkList(tensors, fn);
  const x0 = xs[0];
  if (x0.rank === 0) throw new ShapeError(`${fn}: cannot join 0-d tensors`, { fn, arg: 'tensors' });
  const a = normalizeAxis(axis, x0.rank, fn);
  xs.forEach((t, i) => {
    const arg = `tensors[${i}]`;
    if (t.dtype !== x0.dtype) throw new DTypeError(`${fn}: argument '${arg}' has dtype ${t.dtype} but tensors[0] has ${x0.dtype}`, { fn, arg });
    if (t.device !== x0.device) throw new DeviceError(`${fn}: argument '${arg}' is on ${t.device} but tensors[0] is on ${x0.device}`, { fn, arg });
    if (t.rank !== x0.rank || t.shape.some((s, d) => d !== a && s !== x0.shape[d]))
      throw new ShapeError(`${fn}: argument '${arg}' has shape [${t.shape.join(', ')}], which does not match [${x0.shape.join(', ')}] outside axis ${a}`, {
        fn,
        arg,
      });
  });
  const out = concatRaw(xs, a, fn);
  const shapes = xs.map((t) => t.shape);
  const need = xs.map((t) => t.requiresGrad);
  recordOp(fn, xs, [out], ([g]) => {
    if (!g) return [];
    let offset = 0;
    return shapes.map((shape, i) => {
      const starts = shape.map((_, d) => (d === a ? offset : 0));
      offset += shape[a];
      return need[i] ? sliceRaw(g, starts, shape, fn) : null;
    });
  });
  return out;
}

/**
 * `x` cut along `axis` (default 0) into pieces of `sizes[i]` elements, or, for a number, pieces of that
 * size (the last may be smaller), as PyTorch's `split`. The gradient concatenates the pieces' gradients
 * (zeros for pieces that got none).
 *
 * @example
 * ```ts
 * const [xz, dt] = ops.split(proj, [2 * dInner, dtRank], -1);
 * ```
 */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const fn = 'split';
  checkTensor(x, fn);
  const a = normalizeAxis(axis, x.rank, fn);
  const n = x.shape[a];
  let parts: number[];
  if (typeof sizes === 'number') {
    const size = checkInt(sizes, fn, 'sizes');
    if (size <= 0) throw new ArgumentError(`${fn}: argument 'sizes' must be positive but is ${size}`, { fn, arg: 'sizes' });
    parts = Array.from({ length: Math.max(1, Math.ceil(n / size)) }, (_, i) => Math.min(size, n - i * size));
  } else if (Array.isArray(sizes)) {
    parts = sizes.map((s) => checkInt(s, fn, 'sizes'));
    if (parts.some((s) => s < 0) || parts.reduce((t, s) => t + s, 0) !== n)
      throw new ShapeError(`${fn}: sizes [${parts.join(', ')}] must be non-negative and add up to ${n}, the size of axis ${a}`, { fn, arg: 'sizes' });
  } else {
    throw new ArgumentError(`${fn}: expected a number or an array of sizes for argument 'sizes' but received ${describeValue(sizes)}`, { fn, arg: 'sizes' });
  }
  let offset = 0;
  const outs = parts.map((len) => {
    const starts = x.shape.map((_, d) => (d === a ? offset : 0));
    offset += len;
    return sliceRaw(
      x,
      starts,
      x.shape.map((s, d) => (d === a ? len : s)),
      fn,
    );
  });
  const shapes = outs.map((o) => o.shape);
  const { dtype, device } = x;
  recordOp(fn, [x], outs, (grads) => {
    const zeros: Tensor[] = [];
    const pieces = shapes.map((shape, i) => {
      const g = grads[i];
      if (g) return g;
      const z = full(shape, 0, { dtype, device });
      zeros.push(z);
      return z;
    });
    try {
      return [concatRaw(pieces, a, fn)];
    } finally {
      zeros.forEach((z) => z.dispose());
    }
  });
  return outs;
}

/**
 * `x` repeated along its size-1 axes (and new leading axes) to `shape`, as PyTorch's `expand`: -1 keeps
 * an axis's size. The gradient sums back over the repeated axes.
 *
 * @example
 * ```ts
 * ops.expand(bias, [4, -1]).shape;   // bias (1, 8) -> [4, 8]
 * ```
 */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const fn = 'expand';
  checkTensor(x, fn);
  if (!Array.isArray(shape)) throw new ShapeError(`${fn}: expected an array of sizes for argument 'shape' but received ${describeValue(shape)}`, { fn, arg: 'shape' });
  const lead = shape.length - x.rank;
  if (lead < 0)
    throw new ShapeError(`${fn}: cannot expand shape [${x.shape.join(', ')}] to the lower rank of [${shape.join(', ')}]`, { fn, arg: 'shape' });
  const resolved = shape.map((s, i) => {
    const own = i >= lead ? x.shape[i - lead] : undefined;
    const size = checkInt(s, fn, 'shape');
    if (size === -1 && own !== undefined) return own;
    if (size < 0 || (own !== undefined && own !== 1 && own !== size))
      throw new ShapeError(`${fn}: cannot expand shape [${x.shape.join(', ')}] to [${shape.join(', ')}] (axis ${i})`, { fn, arg: 'shape' });
    return size;
  });
  // Stride 0 repeats: new leading axes and expanded size-1 axes read the same elements again.
  const own = contiguousStrides(x.shape);
  const strides = resolved.map((s, i) => (i < lead || x.shape[i - lead] !== s ? 0 : own[i - lead]));
  const out = lead === 0 && resolved.every((s, i) => s === x.shape[i])
    ? view(x, resolved, fn)
    : wrap(native().stridedCopy(x.handle(fn, 'x'), resolved, strides, 0), resolved, x);
  const shape0 = x.shape;
  recordOp(fn, [x], [out], ([g]) => [g && sumTo(g, shape0)]);
  return out;
}

/**
 * The entries of `x` at positions `index` along `axis` (PyTorch's `index_select`): the output has
 * `index.length` entries there. `index` is a 1-d int32 tensor on x's device (or an array of numbers);
 * positions must lie in [0, size of axis). The gradient adds each output row back to the row it came
 * from (float32 accumulation, in order of the index: deterministic).
 *
 * @example
 * ```ts
 * const emb = ops.indexSelect(table, 0, tokenIds);   // table (V, D), tokenIds (N) -> (N, D)
 * ```
 */
export function indexSelect(x: Tensor, axis: number, index: Tensor | readonly number[]): Tensor {
  const fn = 'indexSelect';
  checkTensor(x, fn);
  if (x.rank === 0) throw new ShapeError(`${fn}: argument 'x' must have at least one axis`, { fn, arg: 'x' });
  const a = normalizeAxis(axis, x.rank, fn);
  let idx: Tensor;
  if (Array.isArray(index)) {
    index.forEach((v) => checkInt(v, fn, 'index'));
    idx = tensor(index as number[], [index.length], { dtype: 'int32', device: x.device });
  } else {
    idx = checkTensor(index, fn, 'index');
    if (idx.dtype !== 'int32') throw new DTypeError(`${fn}: argument 'index' must be int32 but is ${idx.dtype}`, { fn, arg: 'index' });
    if (idx.rank !== 1) throw new ShapeError(`${fn}: argument 'index' must be 1-d but has shape [${idx.shape.join(', ')}]`, { fn, arg: 'index' });
    if (idx.device !== x.device) throw new DeviceError(`${fn}: argument 'index' is on ${idx.device} but x is on ${x.device}`, { fn, arg: 'index' });
  }
  try {
    const shape = x.shape.map((s, d) => (d === a ? idx.size : s));
    const out = wrap(native().indexSelect(x.handle(fn, 'x'), a, idx.handle(fn, 'index')), shape, x);
    const xShape = x.shape;
    recordOp(fn, [x], [out], ([g], [si]) => [g && wrap(native().indexAdd(g.handle(fn, 'grad'), a, si.handle(fn, 'index'), xShape[a]), xShape, g)], [idx]);
    return out;
  } finally {
    if (idx !== index) idx.dispose();
  }
}

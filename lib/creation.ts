/**
 * Creating tensors: from JS data (`tensor`), constant fills (`zeros`, `ones`, `full`), ranges
 * (`arange`) and seeded random tensors (`rand`, `randn`). Random values depend only on the seed and
 * the element index, so a seed gives the same numbers on the CPU and on CUDA. Without a seed, seeds
 * are drawn from a global generator that `manualSeed()` resets (its start is fixed, so runs repeat).
 */
import { DType, DTypeLike, Device, DeviceLike, checkDType, checkDevice, describeValue } from './dtype';
import { ArgumentError, DTypeError, ShapeError } from './errors';
import { native } from './native';
import { checkShape, shapeSize } from './shape';
import { Tensor } from './tensor';

/** Options shared by the creation functions. */
export interface CreateOptions<T extends DTypeLike = DTypeLike> {
  /** Element type (default 'float32'; 'int32' for integer typed-array data). 'int64' is stored as int32. */
  dtype?: T;
  /** 'cpu' (default) or 'cuda'. */
  device?: DeviceLike;
}

/** The dtype a tensor created with dtype option `T` has (`int64` is stored as `int32`). */
export type Resolved<T> = T extends 'int64' ? 'int32' : T extends DType ? T : 'float32';

/** Nested arrays of numbers, or of bigints for int64 ids. */
export type NestedArray = number | bigint | readonly NestedArray[];
/** Data accepted by `tensor()`. */
export type TensorData =
  | NestedArray
  | Float32Array
  | Float64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigInt64Array;

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

function inferShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let level: NestedArray = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = (level as readonly NestedArray[])[0];
  }
  return shape;
}

function flatten(data: NestedArray, shape: number[], fn: string): (number | bigint)[] {
  const out: (number | bigint)[] = [];
  const walk = (v: NestedArray, dim: number): void => {
    if (dim === shape.length) {
      if (typeof v !== 'number' && typeof v !== 'bigint')
        throw new ArgumentError(`${fn}: argument 'data' is not rectangular or holds ${describeValue(v)} where a number belongs`, {
          fn,
          arg: 'data',
        });
      out.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[dim])
      throw new ShapeError(`${fn}: argument 'data' is not rectangular (expected ${shape[dim]} items at depth ${dim})`, {
        fn,
        arg: 'data',
      });
    for (const item of v as readonly NestedArray[]) walk(item, dim + 1);
  };
  walk(data, 0);
  return out;
}

function toInt32(values: ArrayLike<number | bigint>, fn: string): Int32Array {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (!Number.isInteger(n) || n < INT32_MIN || n > INT32_MAX)
      throw new ArgumentError(`${fn}: value ${String(v)} at index ${i} of argument 'data' is not an integer in the int32 range`, {
        fn,
        arg: 'data',
      });
    out[i] = n;
  }
  return out;
}

function toFloat32(values: ArrayLike<number | bigint>): Float32Array {
  if (values instanceof Float32Array) return values;
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Number(values[i]);
  return out;
}

/**
 * A tensor holding `data` (nested arrays, a number, or a typed array with `shape`).
 *
 * @example
 * ```ts
 * const a = tensor([[1, 2], [3, 4]]);                                  // float32 [2, 2] on the CPU
 * const ids = tensor(new BigInt64Array([5n, 7n]), [1, 2], { dtype: 'int64' }); // stored as int32
 * ```
 */
export function tensor<T extends DTypeLike = 'float32'>(
  data: TensorData,
  shape?: readonly number[],
  options: CreateOptions<T> = {},
): Tensor<Resolved<T>> {
  const fn = 'tensor';
  const isTyped = ArrayBuffer.isView(data);
  const integerData = data instanceof Int32Array || data instanceof BigInt64Array;
  const dtype = checkDType(options.dtype ?? (integerData ? 'int32' : 'float32'), fn);
  const device = checkDevice(options.device ?? 'cpu', fn);
  let values: ArrayLike<number | bigint>;
  let dims: number[];
  if (isTyped) {
    values = data as ArrayLike<number | bigint>;
    dims = shape === undefined ? [values.length] : checkShape(shape, fn);
  } else if (typeof data === 'number' || typeof data === 'bigint' || Array.isArray(data)) {
    const inferred = inferShape(data as NestedArray);
    values = flatten(data as NestedArray, inferred, fn);
    dims = shape === undefined ? inferred : checkShape(shape, fn);
  } else {
    throw new ArgumentError(`${fn}: expected an array, a number or a typed array for argument 'data' but received ${describeValue(data)}`, {
      fn,
      arg: 'data',
    });
  }
  if (shapeSize(dims) !== values.length)
    throw new ShapeError(`${fn}: ${values.length} values do not fill shape [${dims.join(', ')}]`, { fn, arg: 'shape' });
  const buf = dtype === 'int32' ? toInt32(values, fn) : toFloat32(values);
  return new Tensor(native().fromData(buf, dims, dtype, device), dims, dtype as Resolved<T>, device);
}

function resolve<T extends DTypeLike>(options: CreateOptions<T>, fn: string): { dtype: DType; device: Device } {
  return { dtype: checkDType(options.dtype ?? 'float32', fn), device: checkDevice(options.device ?? 'cpu', fn) };
}

function fill<T extends DTypeLike>(fn: string, shape: readonly number[], value: number, options: CreateOptions<T>): Tensor<Resolved<T>> {
  const dims = checkShape(shape, fn);
  const { dtype, device } = resolve(options, fn);
  if (typeof value !== 'number')
    throw new ArgumentError(`${fn}: expected a number for argument 'value' but received ${describeValue(value)}`, { fn, arg: 'value' });
  if (dtype === 'int32' && (!Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX))
    throw new ArgumentError(`${fn}: value ${value} is not an int32`, { fn, arg: 'value' });
  return new Tensor(native().full(dims, dtype, device, value), dims, dtype as Resolved<T>, device);
}

/** A tensor of `shape` filled with `value`. */
export function full<T extends DTypeLike = 'float32'>(
  shape: readonly number[],
  value: number,
  options: CreateOptions<T> = {},
): Tensor<Resolved<T>> {
  return fill('full', shape, value, options);
}

/** A tensor of zeros. */
export function zeros<T extends DTypeLike = 'float32'>(shape: readonly number[], options: CreateOptions<T> = {}): Tensor<Resolved<T>> {
  return fill('zeros', shape, 0, options);
}

/** A tensor of ones. */
export function ones<T extends DTypeLike = 'float32'>(shape: readonly number[], options: CreateOptions<T> = {}): Tensor<Resolved<T>> {
  return fill('ones', shape, 1, options);
}

/**
 * Values `start, start + step, ...` below `stop` (above it for a negative step), like PyTorch's
 * arange. With one number, the range is `[0, stop)`.
 *
 * @example
 * ```ts
 * arange(5).dataSync();            // [0, 1, 2, 3, 4]
 * arange(1, 2, 0.25).dataSync();   // [1, 1.25, 1.5, 1.75]
 * ```
 */
export function arange<T extends DTypeLike = 'float32'>(
  startOrStop: number,
  stop?: number,
  step = 1,
  options: CreateOptions<T> = {},
): Tensor<Resolved<T>> {
  const fn = 'arange';
  const start = stop === undefined ? 0 : startOrStop;
  const end = stop === undefined ? startOrStop : stop;
  for (const [name, v] of [
    ['start', start],
    ['stop', end],
    ['step', step],
  ] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new ArgumentError(`${fn}: expected a finite number for argument '${name}' but received ${describeValue(v)}`, { fn, arg: name });
  }
  if (step === 0) throw new ArgumentError(`${fn}: argument 'step' must not be 0`, { fn, arg: 'step' });
  const { dtype, device } = resolve(options, fn);
  const n = Math.max(0, Math.ceil((end - start) / step));
  if (!Number.isSafeInteger(n)) throw new ArgumentError(`${fn}: the range has too many elements`, { fn, arg: 'stop' });
  return new Tensor(native().arange(n, start, step, dtype, device), [n], dtype as Resolved<T>, device);
}

// ---- seeds ----

const MASK64 = (1n << 64n) - 1n;
const DEFAULT_SEED = 0x5eed_0f_3a3b4cn;
let generatorState = DEFAULT_SEED;

/** Resets the global generator that supplies seeds to `rand`/`randn` calls without one. */
export function manualSeed(seed: number | bigint): void {
  generatorState = checkSeed(seed, 'manualSeed');
}

/**
 * The state of the global generator (an unsigned 64-bit integer), to be given back to `setRngState`
 * later: the Trainer saves it in checkpoints so a resumed run draws the same unseeded random numbers
 * as an uninterrupted one.
 *
 * @example
 * ```ts
 * const s = rngState();
 * const a = randn([4]);
 * setRngState(s);
 * const b = randn([4]);           // the same values as a
 * ```
 */
export function rngState(): bigint {
  return generatorState;
}

/**
 * Restores the global generator to a state returned by `rngState` (any bigint in [0, 2^64)).
 * Throws an ArgumentError naming `setRngState` and `state` for anything else; numbers are refused too,
 * since a state above 2^53 cannot round-trip through one.
 *
 * @example
 * ```ts
 * setRngState(BigInt(savedStateString));
 * ```
 */
export function setRngState(state: bigint): void {
  const fn = 'setRngState';
  if (typeof state !== 'bigint' || state < 0n || state > MASK64)
    throw new ArgumentError(`${fn}: expected a bigint in [0, 2^64) for argument 'state' but received ${describeValue(state)}`, { fn, arg: 'state' });
  generatorState = state;
}

/** The next seed of the global generator (SplitMix64). */
function nextSeed(): bigint {
  generatorState = (generatorState + 0x9e3779b97f4a7c15n) & MASK64;
  let z = generatorState;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

function checkSeed(seed: unknown, fn: string): bigint {
  if (typeof seed === 'bigint' && seed >= 0n && seed <= MASK64) return seed;
  if (typeof seed === 'number' && Number.isSafeInteger(seed) && seed >= 0) return BigInt(seed);
  throw new ArgumentError(`${fn}: expected a non-negative integer seed but received ${describeValue(seed)}`, { fn, arg: 'seed' });
}

/** Options of `rand` and `randn`. */
export interface RandomOptions<T extends DTypeLike = DTypeLike> extends CreateOptions<T> {
  /** Seed: the same seed gives the same values on every device. */
  seed?: number | bigint;
}

function random<T extends DTypeLike>(
  fn: 'rand' | 'randn',
  shape: readonly number[],
  a: number,
  b: number,
  options: RandomOptions<T>,
): Tensor<Resolved<T>> {
  const dims = checkShape(shape, fn);
  const { dtype, device } = resolve(options, fn);
  if (dtype === 'int32') throw new DTypeError(`${fn}: argument 'dtype' must be a float dtype`, { fn, arg: 'dtype' });
  const seed = options.seed === undefined ? nextSeed() : checkSeed(options.seed, fn);
  const h = native()[fn](dims, dtype, device, seed, a, b);
  return new Tensor(h, dims, dtype as Resolved<T>, device);
}

/**
 * Uniform random values in `[low, high)` (default [0, 1)).
 *
 * @example
 * ```ts
 * const u = rand([1024], { seed: 7, device: 'cuda' });
 * ```
 */
export function rand<T extends DTypeLike = 'float32'>(
  shape: readonly number[],
  options: RandomOptions<T> & { low?: number; high?: number } = {},
): Tensor<Resolved<T>> {
  const low = options.low ?? 0;
  const high = options.high ?? 1;
  if (!Number.isFinite(low) || !Number.isFinite(high) || !(high > low))
    throw new ArgumentError(`rand: expected finite low < high but received [${low}, ${high})`, { fn: 'rand', arg: 'options' });
  return random('rand', shape, low, high, options);
}

/**
 * Normal random values (default mean 0, std 1).
 *
 * @example
 * ```ts
 * const w = randn([768, 768], { seed: 1, std: 0.02 });
 * ```
 */
export function randn<T extends DTypeLike = 'float32'>(
  shape: readonly number[],
  options: RandomOptions<T> & { mean?: number; std?: number } = {},
): Tensor<Resolved<T>> {
  const mean = options.mean ?? 0;
  const std = options.std ?? 1;
  if (!Number.isFinite(mean) || !Number.isFinite(std) || std < 0)
    throw new ArgumentError(`randn: expected a finite mean and std >= 0 but received mean ${mean}, std ${std}`, {
      fn: 'randn',
      arg: 'options',
    });
  return random('randn', shape, mean, std, options);
}

/**
 * `Tensor`: the typed JS face of a native tensor handle (contiguous storage on 'cpu' or 'cuda').
 * Tensors are immutable; `to`, `cast` and `reshape` return new tensors (sharing storage where the
 * data does not change). Device memory is released by `dispose()` (or `tidy()`); the garbage
 * collector is only a backstop. Creation functions live in creation.ts.
 *
 * @example
 * ```ts
 * const x = randn([2, 3], { seed: 1 });
 * const y = x.to('cuda').cast('bfloat16');
 * console.log(y.shape, y.dtype, await y.data());
 * x.dispose(); y.dispose();
 * ```
 */
import { DataFor, DType, Device, DeviceLike, DTypeLike, checkDType, checkDevice } from './dtype';
import { DisposedError, ShapeError } from './errors';
import { NativeHandle, native } from './native';
import { track } from './scope';
import { checkShape } from './shape';

// Node 20.4+ defines Symbol.dispose; older 20.x lines get the well-known registry symbol that
// TypeScript's `using` helpers also look for.
if (!(Symbol as { dispose?: symbol }).dispose) Object.defineProperty(Symbol, 'dispose', { value: Symbol.for('Symbol.dispose') });

/** An n-dimensional array on the CPU or a CUDA device. */
export class Tensor<D extends DType = DType> {
  /** Sizes of each dimension. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: D;
  /** Where the storage lives. */
  readonly device: Device;
  /** Whether autograd should track this tensor (used once autograd lands). */
  requiresGrad = false;
  private handle_: NativeHandle | null;

  /** @internal Wraps a native handle; use the creation functions instead. */
  constructor(handle: NativeHandle, shape: readonly number[], dtype: D, device: Device) {
    this.handle_ = handle;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.device = device;
    track(this);
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this.handle_ === null;
  }

  /** @internal The native handle; throws DisposedError after dispose(). */
  handle(fn: string, arg = 'tensor'): NativeHandle {
    if (this.handle_ === null) throw new DisposedError(`${fn}: argument '${arg}' is a disposed tensor`, { fn, arg });
    return this.handle_;
  }

  /** A copy on `device` (the same tensor data, shared, when it is already there). */
  to(device: DeviceLike): Tensor<D> {
    const dev = checkDevice(device, 'to');
    return new Tensor(native().to(this.handle('to'), dev), this.shape, this.dtype, dev);
  }

  /** The values converted to `dtype` (round to nearest even for 16-bit floats; float -> int32 truncates). */
  cast<T extends DTypeLike>(dtype: T): Tensor<T extends 'int64' ? 'int32' : Exclude<T, 'int64'>> {
    const dt = checkDType(dtype, 'cast');
    type R = T extends 'int64' ? 'int32' : Exclude<T, 'int64'>;
    return new Tensor(native().cast(this.handle('cast'), dt), this.shape, dt as R, this.device);
  }

  /** The same data viewed with another shape; one size may be -1 (inferred). */
  reshape(shape: readonly number[]): Tensor<D> {
    const resolved = resolveReshape(shape, this.size, 'reshape');
    return new Tensor(native().reshape(this.handle('reshape'), resolved), resolved, this.dtype, this.device);
  }

  /** The values, waiting for pending device work (blocks the thread; prefer `data()`). */
  dataSync(): DataFor<D> {
    return native().dataSync(this.handle('dataSync')) as DataFor<D>;
  }

  /** The values, read back without blocking the event loop. */
  data(): Promise<DataFor<D>> {
    try {
      return native().data(this.handle('data')) as Promise<DataFor<D>>;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The values as nested arrays of numbers. */
  arraySync(): unknown {
    const flat = Array.from(this.dataSync() as ArrayLike<number>);
    const build = (dim: number, offset: number): unknown => {
      if (dim === this.shape.length) return flat[offset];
      const stride = this.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  /** Releases the storage now (idempotent). Later use throws DisposedError. */
  dispose(): void {
    if (this.handle_ === null) return;
    native().dispose(this.handle_);
    this.handle_ = null;
  }

  /** Same as dispose(), so `using t = ...` frees the tensor at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    const state = this.isDisposed ? ', disposed' : '';
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device}${state})`;
  }
}

function resolveReshape(shape: readonly number[], size: number, fn: string): number[] {
  if (!Array.isArray(shape)) throw new ShapeError(`${fn}: expected an array for argument 'shape'`, { fn, arg: 'shape' });
  const inferred = shape.filter((s) => s === -1).length;
  if (inferred > 1) throw new ShapeError(`${fn}: at most one size may be -1 in argument 'shape'`, { fn, arg: 'shape' });
  const known = checkShape(
    shape.map((s) => (s === -1 ? 1 : s)),
    fn,
  ).reduce((a, b) => a * b, 1);
  const out = [...shape];
  if (inferred) {
    if (known === 0 || size % known !== 0)
      throw new ShapeError(`${fn}: cannot infer -1 in [${shape.join(', ')}] for ${size} elements`, { fn, arg: 'shape' });
    out[out.indexOf(-1)] = size / known;
  } else if (known !== size) {
    throw new ShapeError(`${fn}: cannot view ${size} elements as [${shape.join(', ')}]`, { fn, arg: 'shape' });
  }
  return out;
}

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
import { ArgumentError, AutogradError, DTypeError, DisposedError, ShapeError } from './errors';
import { NativeHandle, native } from './native';
import type { BackwardOptions } from './autograd/engine';
import type { Node } from './autograd/node';
import { track, untrack } from './scope';
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
  private handle_: NativeHandle | null;
  private needsGrad_ = false;
  private grad_: Tensor | null = null;
  private gradFn_: Node | null = null;
  private outputIndex_ = 0;
  private retainsGrad_ = false;
  private hooks_: ((grad: Tensor) => Tensor | void)[] = [];

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

  /** Releases the storage now (idempotent), and the gradient with it. Later use throws DisposedError. */
  dispose(): void {
    if (this.handle_ === null) return;
    native().dispose(this.handle_);
    this.handle_ = null;
    this.grad_?.dispose();
    this.grad_ = null;
  }

  // ---- autograd ----

  /** Whether gradients flow to this tensor. Settable on leaves with a float dtype. */
  get requiresGrad(): boolean {
    return this.needsGrad_;
  }

  set requiresGrad(v: boolean) {
    if (typeof v !== 'boolean') throw new ArgumentError(`requiresGrad: expected a boolean but received ${typeof v}`, { fn: 'requiresGrad' });
    if (v && this.dtype === 'int32')
      throw new DTypeError('requiresGrad: only float tensors can require grad', { fn: 'requiresGrad', arg: 'dtype' });
    if (this.gradFn_ && !v)
      throw new AutogradError('requiresGrad: a non-leaf tensor always requires grad; use detach()', { fn: 'requiresGrad' });
    this.needsGrad_ = v;
  }

  /** Chainable form of the `requiresGrad` setter. */
  requiresGrad_(v = true): this {
    this.requiresGrad = v;
    return this;
  }

  /** Accumulated gradient (leaves, and non-leaves after retainGrad()). */
  get grad(): Tensor | null {
    return this.grad_;
  }

  /** The node that produced this tensor, or null for a leaf. */
  get gradFn(): Node | null {
    return this.gradFn_;
  }

  /** @internal Which output of `gradFn` this tensor is. */
  get outputIndex(): number {
    return this.outputIndex_;
  }

  get isLeaf(): boolean {
    return this.gradFn_ === null;
  }

  get retainsGrad(): boolean {
    return this.retainsGrad_;
  }

  /** @internal Called by recordOp for each output. */
  setGradFn(node: Node, index: number): void {
    this.gradFn_ = node;
    this.outputIndex_ = index;
    this.needsGrad_ = true;
  }

  /** @internal Replaces `.grad` (the engine owns the old one); kept out of tidy() scopes. */
  setGrad(g: Tensor | null): void {
    if (this.grad_ && this.grad_ !== g) this.grad_.dispose();
    this.grad_ = g;
    if (g) untrack(g);
  }

  /** @internal Registered gradient hooks, in order. */
  hooks(): readonly ((grad: Tensor) => Tensor | void)[] {
    return this.hooks_;
  }

  /**
   * Computes gradients of this tensor with respect to every leaf that requires grad (accumulating into
   * `.grad`). `grad` defaults to ones for a single-element tensor.
   */
  backward(grad?: Tensor, options: BackwardOptions = {}): void {
    // Loaded on use: the engine imports the ops, which import this file.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const engine = require('./autograd/engine') as typeof import('./autograd/engine');
    engine.backward([this], [grad], options);
  }

  /**
   * Calls `hook(grad)` when this tensor's gradient is computed; a returned tensor replaces the gradient.
   * Returns a handle whose `remove()` unregisters the hook.
   */
  registerHook(hook: (grad: Tensor) => Tensor | void): { remove(): void } {
    if (typeof hook !== 'function') throw new ArgumentError("registerHook: expected a function for argument 'hook'", { fn: 'registerHook', arg: 'hook' });
    if (!this.needsGrad_)
      throw new AutogradError('registerHook: cannot register a hook on a tensor that does not require grad', { fn: 'registerHook' });
    this.hooks_.push(hook);
    return {
      remove: () => {
        const i = this.hooks_.indexOf(hook);
        if (i >= 0) this.hooks_.splice(i, 1);
      },
    };
  }

  /** Keeps `.grad` for this non-leaf tensor after backward. */
  retainGrad(): this {
    if (!this.needsGrad_) throw new AutogradError('retainGrad: the tensor does not require grad', { fn: 'retainGrad' });
    if (this.gradFn_) this.retainsGrad_ = true;
    return this;
  }

  /** A tensor over the same data that is cut from the graph (a leaf that does not require grad). */
  detach(): Tensor<D> {
    return new Tensor(native().to(this.handle('detach'), this.device), this.shape, this.dtype, this.device);
  }

  /** Drops the accumulated gradient. */
  zeroGrad(): void {
    this.setGrad(null);
  }

  /** @internal A new handle over the same storage, outside every tidy() scope, with no graph. */
  share(): Tensor<D> {
    const t = new Tensor(native().to(this.handle('share'), this.device), this.shape, this.dtype, this.device);
    untrack(t);
    return t;
  }

  // ---- layout ops and reductions (lib/ops/shape.ts, lib/ops/reduce_extra.ts, lib/ops/reduce.ts) ----

  /** `ops.permute`: axes reordered, as `x.permute(2, 0, 1)` or `x.permute([2, 0, 1])`. */
  permute(...axes: number[] | [readonly number[]]): Tensor<D> {
    const list = (Array.isArray(axes[0]) ? axes[0] : axes) as readonly number[];
    return opsModule().permute(this, list) as Tensor<D>;
  }

  /** `ops.transpose`: two axes swapped (default: the last two). */
  transpose(axis0 = -2, axis1 = -1): Tensor<D> {
    return opsModule().transpose(this, axis0, axis1) as Tensor<D>;
  }

  /** `ops.slice`: elements `start` to `end` (exclusive, Python-style) along `axis`. */
  slice(axis: number, start: number, end?: number): Tensor<D> {
    return opsModule().slice(this, axis, start, end) as Tensor<D>;
  }

  /** `ops.narrow`: `length` elements from `start` along `axis`. */
  narrow(axis: number, start: number, length: number): Tensor<D> {
    return opsModule().narrow(this, axis, start, length) as Tensor<D>;
  }

  /** `ops.split`: pieces of `sizes` (or of one size) along `axis` (default 0). */
  split(sizes: number | readonly number[], axis = 0): Tensor<D>[] {
    return opsModule().split(this, sizes, axis) as Tensor<D>[];
  }

  /** `ops.expand`: repeated along size-1 and new leading axes, as `x.expand(4, -1)` or `x.expand([4, -1])`. */
  expand(...shape: number[] | [readonly number[]]): Tensor<D> {
    const list = (Array.isArray(shape[0]) ? shape[0] : shape) as readonly number[];
    return opsModule().expand(this, list) as Tensor<D>;
  }

  /** `ops.indexSelect`: the entries at `index` along `axis`. */
  indexSelect(axis: number, index: Tensor | readonly number[]): Tensor<D> {
    return opsModule().indexSelect(this, axis, index) as Tensor<D>;
  }

  /** `ops.sum` over `axes` (default: all). */
  sum(axes?: number | readonly number[], options?: { keepDims?: boolean }): Tensor<D> {
    return opsModule().sum(this, axes, options) as Tensor<D>;
  }

  /** `ops.mean` over `axes` (default: all). */
  mean(axes?: number | readonly number[], options?: { keepDims?: boolean }): Tensor<D> {
    return opsModule().mean(this, axes, options) as Tensor<D>;
  }

  /** `ops.max` over `axes` (default: all). */
  max(axes?: number | readonly number[], options?: { keepDims?: boolean }): Tensor<D> {
    return opsModule().max(this, axes, options) as Tensor<D>;
  }

  /** `ops.min` over `axes` (default: all). */
  min(axes?: number | readonly number[], options?: { keepDims?: boolean }): Tensor<D> {
    return opsModule().min(this, axes, options) as Tensor<D>;
  }

  /** `ops.argmax`: int32 positions of the maxima along `axis` (flattened when omitted). */
  argmax(axis?: number, options?: { keepDims?: boolean }): Tensor<'int32'> {
    return opsModule().argmax(this, axis, options);
  }

  /** `ops.argmin`: int32 positions of the minima along `axis` (flattened when omitted). */
  argmin(axis?: number, options?: { keepDims?: boolean }): Tensor<'int32'> {
    return opsModule().argmin(this, axis, options);
  }

  /** `ops.logsumexp` over `axes` (default: all). */
  logsumexp(axes?: number | readonly number[], options?: { keepDims?: boolean }): Tensor<D> {
    return opsModule().logsumexp(this, axes, options) as Tensor<D>;
  }

  /** `ops.softmax` along `axis` (default: the last). */
  softmax(axis = -1): Tensor<D> {
    return opsModule().softmax(this, axis) as Tensor<D>;
  }

  /** `ops.logSoftmax` along `axis` (default: the last). */
  logSoftmax(axis = -1): Tensor<D> {
    return opsModule().logSoftmax(this, axis) as Tensor<D>;
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

// The ops behind the tensor methods, loaded on first use: lib/ops imports this file.
function opsModule(): typeof import('./ops') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('./ops') as typeof import('./ops');
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

/**
 * The fused selective scan of Mamba (mamba_ssm `selective_scan_fn` semantics), on CPU and CUDA.
 * Per (b, d): delta' = softplus(delta + deltaBias) (each part optional); h_t = exp(delta'_t A) h_{t-1}
 * + delta'_t B_t u_t; y_t = C_t . h_t + D u_t; out_t = y_t silu(z_t). The state stays on chip on
 * CUDA; a forward that a backward will follow saves only float32 state checkpoints every 32 steps,
 * and the backward recomputes the states from them.
 *
 * Shapes: u, delta, z, out (batch, dim, L); A (dim, dstate) float32; B, C (batch, dstate, L),
 * (batch, groups, dstate, L) with dim % groups == 0, or time-invariant (dim, dstate); D, deltaBias
 * (dim) float32; initialState, lastState (batch, dim, dstate) float32. u, delta, z, B, C share one
 * dtype (float32, float16 or bfloat16); out and the gradients of those inputs have that dtype.
 * Reference: test/reference/selective_scan.ts (float64).
 *
 * @example
 * ```ts
 * const { out, lastState } = ops.selectiveScan(u, delta, A, B, C, { D, z, deltaBias, deltaSoftplus: true, returnLastState: true });
 * const fwd = ops.selectiveScanForward(u, delta, A, B, C, { D, z });
 * const g = ops.selectiveScanBackward(fwd.saved, dout);   // { du, ddelta, dA, dB, dC, dD, dz, ... }
 * fwd.saved.dispose();
 * ```
 */
import { recordOp } from '../autograd/node';
import { isGradEnabled } from '../autograd/grad_mode';
import { ArgumentError } from '../errors';
import { NativeHandle, ScanInputs, native } from '../native';
import { untrack } from '../scope';
import { Tensor } from '../tensor';

/** Options of the selective scan. */
export interface SelectiveScanOptions {
  /** Skip connection (dim) float32: y += D * u. */
  D?: Tensor;
  /** Gate (batch, dim, L): out = y * silu(z). */
  z?: Tensor;
  /** Added to delta before the softplus, (dim) float32. */
  deltaBias?: Tensor;
  /** Apply softplus to delta (+ deltaBias). Default false. */
  deltaSoftplus?: boolean;
  /** State before step 0, (batch, dim, dstate) float32; lets a long sequence be scanned in segments. */
  initialState?: Tensor;
  /** Also return the state after the last step. Default false. */
  returnLastState?: boolean;
  /** Backward: bitwise-repeatable gradients (no order-dependent float atomics). Default false. */
  deterministic?: boolean;
}

/** The result of a scan. */
export interface SelectiveScanResult {
  /** (batch, dim, L) in the input dtype. */
  out: Tensor;
  /** (batch, dim, dstate) float32, when `returnLastState`. */
  lastState?: Tensor;
}

/** Gradients of every input of the scan. */
export interface SelectiveScanGrads {
  du: Tensor;
  ddelta: Tensor;
  dA: Tensor;
  dB: Tensor;
  dC: Tensor;
  dD?: Tensor;
  dz?: Tensor;
  dDeltaBias?: Tensor;
  /** Present when the forward had an initialState. */
  dInitialState?: Tensor;
}

/**
 * What the backward needs: the inputs (shared, not copied) and the float32 state checkpoints.
 * Owns its references: dispose it when the backward is done (the GC is only a backstop).
 */
export class SelectiveScanSaved {
  /** @internal */
  constructor(
    readonly inputs: readonly (Tensor | null)[],
    readonly checkpoints: Tensor,
    readonly deltaSoftplus: boolean,
    readonly deterministic: boolean,
  ) {
    for (const t of [...inputs, checkpoints]) if (t) untrack(t);
  }

  get isDisposed(): boolean {
    return this.checkpoints.isDisposed;
  }

  /** Releases the saved tensors. */
  dispose(): void {
    for (const t of [...this.inputs, this.checkpoints]) t?.dispose();
  }
}

const INPUT_NAMES = ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'deltaBias', 'initialState'] as const;

function checkInputs(fn: string, u: unknown, delta: unknown, A: unknown, B: unknown, C: unknown, opts: SelectiveScanOptions) {
  if (opts === null || typeof opts !== 'object')
    throw new ArgumentError(`${fn}: expected an options object for argument 'options'`, { fn, arg: 'options' });
  const all = [u, delta, A, B, C, opts.D, opts.z, opts.deltaBias, opts.initialState];
  all.forEach((t, i) => {
    const required = i < 5;
    if ((required || t !== undefined) && !(t instanceof Tensor))
      throw new ArgumentError(`${fn}: expected a Tensor for argument '${INPUT_NAMES[i]}'`, { fn, arg: INPUT_NAMES[i] });
  });
  for (const flag of ['deltaSoftplus', 'returnLastState', 'deterministic'] as const) {
    if (opts[flag] !== undefined && typeof opts[flag] !== 'boolean')
      throw new ArgumentError(`${fn}: expected a boolean for option '${flag}'`, { fn, arg: flag });
  }
  return all.map((t, i) => (t === undefined ? null : (t as Tensor).handle(fn, INPUT_NAMES[i]))) as ScanInputs;
}

function wrap(h: NativeHandle, like: Tensor, shape: readonly number[] = like.shape): Tensor {
  return new Tensor(h, shape, like.dtype, like.device);
}

function wrapF32(h: NativeHandle | null, device: Tensor['device'], shape: readonly number[]): Tensor | undefined {
  return h ? new Tensor(h, shape, 'float32', device) : undefined;
}

function run(fn: string, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, opts: SelectiveScanOptions, save: boolean) {
  const handles = checkInputs(fn, u, delta, A, B, C, opts);
  const [out, last, ckpt] = native().selectiveScanFwd(
    ...handles,
    opts.deltaSoftplus ?? false,
    opts.returnLastState ?? false,
    save,
  );
  const [batch, dim] = u.shape;
  const dstate = A.shape[1];
  const result: SelectiveScanResult = { out: wrap(out, u) };
  if (last) result.lastState = wrapF32(last, u.device, [batch, dim, dstate]);
  return { result, ckpt };
}

/**
 * Runs the scan. Returns `{ out, lastState? }`. When grad mode is on and an input requires grad, records
 * one autograd node whose backward is the fused backward kernel (saving only the inputs and the float32
 * state checkpoints); gradients flow from both `out` and `lastState`.
 */
export function selectiveScan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, options: SelectiveScanOptions = {}): SelectiveScanResult {
  const fn = 'selectiveScan';
  const inputs = [u, delta, A, B, C, options?.D, options?.z, options?.deltaBias, options?.initialState];
  const needsGrad = isGradEnabled() && inputs.some((t) => t instanceof Tensor && t.requiresGrad);
  if (!needsGrad) return run(fn, u, delta, A, B, C, options, false).result;
  const fwd = selectiveScanForward(u, delta, A, B, C, { ...options, returnLastState: true });
  // The node keeps the saved inputs and checkpoints itself (released after backward), so the graph
  // owns them like any other op's saved tensors.
  const present = fwd.saved.inputs.map((t) => t !== null);
  const toSave = [...fwd.saved.inputs.filter((t): t is Tensor => t !== null), fwd.saved.checkpoints];
  const { deltaSoftplus, deterministic } = fwd.saved;
  const outShape = fwd.out.shape;
  const outputs = [fwd.out, fwd.lastState as Tensor];
  recordOp(
    fn,
    inputs,
    outputs,
    ([gOut, gLast], held) => {
      let k = 0;
      const savedInputs = present.map((p) => (p ? held[k++] : null));
      const saved = new SelectiveScanSaved(savedInputs, held[k], deltaSoftplus, deterministic);
      const dout = gOut ?? zerosLike(held[0], outShape);
      const g = selectiveScanBackward(saved, dout, gLast ?? undefined);
      if (!gOut) dout.dispose();
      return [g.du, g.ddelta, g.dA, g.dB, g.dC, g.dD, g.dz, g.dDeltaBias, g.dInitialState];
    },
    toSave,
  );
  fwd.saved.dispose();
  if (options.returnLastState) return { out: fwd.out, lastState: fwd.lastState };
  // The last state is still an output of the node (for the graph), but the caller did not ask for it.
  fwd.lastState?.dispose();
  return { out: fwd.out };
}

function zerosLike(like: Tensor, shape: readonly number[]): Tensor {
  return new Tensor(native().full([...shape], like.dtype, like.device, 0), shape, like.dtype, like.device);
}

/**
 * The scan, also saving what `selectiveScanBackward` needs (the inputs, shared, plus float32 state
 * checkpoints of shape (batch, dim, ceil(L / 32), dstate)).
 */
export function selectiveScanForward(
  u: Tensor,
  delta: Tensor,
  A: Tensor,
  B: Tensor,
  C: Tensor,
  options: SelectiveScanOptions = {},
): SelectiveScanResult & { saved: SelectiveScanSaved } {
  const { result, ckpt } = run('selectiveScanForward', u, delta, A, B, C, options, true);
  const [batch, dim, L] = u.shape;
  const dstate = A.shape[1];
  const checkpoints = wrapF32(ckpt, u.device, [batch, dim, Math.ceil(L / native().scanCheckpointChunk), dstate]) as Tensor;
  // The saved inputs are new handles over the same storage, so disposing the caller's tensors is safe.
  const inputs = [u, delta, A, B, C, options.D, options.z, options.deltaBias, options.initialState].map((t) => (t ? t.to(t.device) : null));
  const saved = new SelectiveScanSaved(inputs, checkpoints, options.deltaSoftplus ?? false, options.deterministic ?? false);
  return { ...result, saved };
}

/**
 * Gradients of every input, given the forward's `saved` state and the gradient of `out` (and of
 * `lastState`, when the last state feeds later computation, e.g. the next segment of a long sequence).
 */
export function selectiveScanBackward(saved: SelectiveScanSaved, dout: Tensor, dLastState?: Tensor): SelectiveScanGrads {
  const fn = 'selectiveScanBackward';
  if (!(saved instanceof SelectiveScanSaved))
    throw new ArgumentError(`${fn}: expected the 'saved' of selectiveScanForward for argument 'saved'`, { fn, arg: 'saved' });
  if (!(dout instanceof Tensor)) throw new ArgumentError(`${fn}: expected a Tensor for argument 'dout'`, { fn, arg: 'dout' });
  if (dLastState !== undefined && !(dLastState instanceof Tensor))
    throw new ArgumentError(`${fn}: expected a Tensor for argument 'dLastState'`, { fn, arg: 'dLastState' });
  const [u, delta, A, B, C, D, z, bias, h0] = saved.inputs;
  const hs = saved.inputs.map((t, i) => (t ? t.handle(fn, `saved.${INPUT_NAMES[i]}`) : null)) as ScanInputs;
  const r = native().selectiveScanBwd(
    ...hs,
    saved.checkpoints.handle(fn, 'saved.checkpoints'),
    dout.handle(fn, 'dout'),
    dLastState ? dLastState.handle(fn, 'dLastState') : null,
    saved.deltaSoftplus,
    saved.deterministic,
    h0 !== null,
  );
  const dev = (u as Tensor).device;
  const grads: SelectiveScanGrads = {
    du: wrap(r[0], u as Tensor),
    ddelta: wrap(r[1], delta as Tensor),
    dA: wrap(r[2], A as Tensor),
    dB: reshapedLike(r[3], B as Tensor),
    dC: reshapedLike(r[4], C as Tensor),
  };
  if (r[5]) grads.dD = wrapF32(r[5], dev, (D as Tensor).shape);
  if (r[6]) grads.dz = wrap(r[6], z as Tensor);
  if (r[7]) grads.dDeltaBias = wrapF32(r[7], dev, (bias as Tensor).shape);
  if (r[8]) grads.dInitialState = wrapF32(r[8], dev, (h0 as Tensor).shape);
  return grads;
}

// The kernels write dB/dC as (batch, groups, dstate, L); a 3-d B (batch, dstate, L) gets its own shape back.
function reshapedLike(h: NativeHandle, like: Tensor): Tensor {
  if (like.rank !== 3) return wrap(h, like);
  const n = native();
  const view = n.reshape(h, [...like.shape]);
  n.dispose(h);
  return wrap(view, like);
}

/**
 * AdamW with PyTorch's semantics (torch.optim.AdamW, amsgrad off): decoupled weight decay `p -= lr*wd*p`,
 * bias-corrected first and second moments, `eps` added outside the square root. One fused native step per
 * parameter (native/ops/adamw.cc; CPU and CUDA share the per-element math of native/adamw_ops.h) reads the
 * gradient in its own dtype (float32, float16 or bfloat16) and updates the float32 parameter and its two
 * float32 moment tensors IN PLACE. That in-place write is the one exception to "tensors are immutable" in
 * this library and stays inside this class: every handle sharing a parameter's storage (reshape views,
 * `detach()`, tensors saved by a graph not yet run backward) sees the new values, so call `step()` after
 * `backward()`, as in PyTorch. Parameters must be float32 (fp32 master weights; a bf16 forward casts them).
 *
 * @example
 * ```ts
 * const opt = new AdamW(paramGroupsForMamba(model.namedParameters()), { lr: 1e-3, weightDecay: 0.1 });
 * loss.backward();
 * opt.step();
 * opt.zeroGrad();
 * ```
 */
import { tensor, zeros } from '../creation';
import { describeValue } from '../dtype';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { native } from '../native';
import { untrack } from '../scope';
import { Tensor } from '../tensor';

/** Hyperparameters of AdamW (PyTorch's defaults). */
export interface AdamWOptions {
  /** Learning rate. Default 1e-3. */
  lr?: number;
  /** Decay rates of the first and second moments. Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Added to the denominator outside the square root. Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay. Default 1e-2. */
  weightDecay?: number;
}

/** A set of parameters sharing hyperparameters; unset ones come from the optimizer's options. */
export interface ParamGroupInit extends AdamWOptions {
  params: readonly Tensor[];
  /** A label for logs and state dicts, e.g. 'decay' / 'no_decay'. */
  name?: string;
}

/** A parameter group as the optimizer holds it. `lr` may be changed between steps (schedules do). */
export interface ParamGroup {
  params: Tensor[];
  name: string;
  lr: number;
  /** The learning rate the group was created with; schedules scale it. */
  readonly initialLr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

/** Options of `AdamW.step`. */
export interface AdamWStepOptions {
  /** Every gradient is multiplied by this before use (gradient clipping folded into the step). Default 1. */
  gradScale?: number;
}

/** Per-parameter state: the number of steps taken and the moments (float32, on the parameter's device). */
interface ParamState {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

/** A serialisable snapshot of the optimizer: host copies of every moment, so it survives later steps. */
export interface AdamWStateDict {
  version: 1;
  groups: { name: string; lr: number; initialLr: number; betas: [number, number]; eps: number; weightDecay: number; size: number }[];
  /** One entry per parameter in group order; null for a parameter that never had a gradient. */
  state: ({ step: number; shape: number[]; expAvg: Float32Array; expAvgSq: Float32Array } | null)[];
}

function checkHyper(o: AdamWOptions, defaults: Required<AdamWOptions>, fn: string): Required<AdamWOptions> {
  if (o === null || typeof o !== 'object') throw new ArgumentError(`${fn}: expected an options object but received ${describeValue(o)}`, { fn, arg: 'options' });
  const num = (v: unknown, arg: string, dflt: number, ok: (x: number) => boolean, range: string): number => {
    const x = v === undefined ? dflt : v;
    if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x))
      throw new ArgumentError(`${fn}: expected ${range} for option '${arg}' but received ${describeValue(x)}`, { fn, arg });
    return x;
  };
  const betas = o.betas ?? defaults.betas;
  if (!Array.isArray(betas) || betas.length !== 2)
    throw new ArgumentError(`${fn}: expected [beta1, beta2] for option 'betas' but received ${describeValue(betas)}`, { fn, arg: 'betas' });
  return {
    lr: num(o.lr, 'lr', defaults.lr, (x) => x >= 0, 'a finite number >= 0'),
    betas: [
      num(betas[0], 'betas', 0, (x) => x >= 0 && x < 1, 'betas in [0, 1)'),
      num(betas[1], 'betas', 0, (x) => x >= 0 && x < 1, 'betas in [0, 1)'),
    ],
    eps: num(o.eps, 'eps', defaults.eps, (x) => x >= 0, 'a finite number >= 0'),
    weightDecay: num(o.weightDecay, 'weightDecay', defaults.weightDecay, (x) => x >= 0, 'a finite number >= 0'),
  };
}

const DEFAULTS: Required<AdamWOptions> = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2 };

/** The AdamW optimizer over float32 parameters (see the file comment for the in-place contract). */
export class AdamW {
  /** The parameter groups; change `lr` here to schedule the learning rate. */
  readonly paramGroups: ParamGroup[];
  private readonly state = new Map<Tensor, ParamState>();

  /**
   * @param params parameters (float32 leaves that require grad), or groups of them with their own options
   * @param options defaults for every group
   */
  constructor(params: readonly Tensor[] | readonly ParamGroupInit[], options: AdamWOptions = {}) {
    const fn = 'AdamW';
    const defaults = checkHyper(options, DEFAULTS, fn);
    if (!Array.isArray(params) || params.length === 0)
      throw new ArgumentError(`${fn}: expected a non-empty array of tensors or parameter groups for argument 'params'`, { fn, arg: 'params' });
    const inits: ParamGroupInit[] = params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ParamGroupInit[]);
    const seen = new Set<Tensor>();
    this.paramGroups = inits.map((g, gi) => {
      if (g === null || typeof g !== 'object' || !Array.isArray(g.params))
        throw new ArgumentError(`${fn}: parameter group ${gi} has no 'params' array`, { fn, arg: 'params' });
      const h = checkHyper(g, defaults, fn);
      for (const p of g.params) {
        if (!(p instanceof Tensor)) throw new ArgumentError(`${fn}: group ${gi} holds ${describeValue(p)} where a Tensor was expected`, { fn, arg: 'params' });
        if (p.dtype !== 'float32')
          throw new DTypeError(`${fn}: parameters must be float32 (master weights) but one is ${p.dtype}; cast in the forward pass instead`, { fn, arg: 'params' });
        if (seen.has(p)) throw new ArgumentError(`${fn}: a parameter appears more than once`, { fn, arg: 'params' });
        p.handle(fn, 'params');
        seen.add(p);
      }
      return { params: [...g.params], name: g.name ?? `group${gi}`, lr: h.lr, initialLr: h.lr, betas: [h.betas[0], h.betas[1]], eps: h.eps, weightDecay: h.weightDecay };
    });
  }

  /** Every parameter, in group order. */
  params(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /**
   * Updates every parameter that has a gradient (parameters without one are skipped, their state untouched).
   * The gradient may be float32, float16 or bfloat16 and must have the parameter's shape and device.
   */
  step(options: AdamWStepOptions = {}): void {
    const fn = 'AdamW.step';
    const scale = options.gradScale ?? 1;
    if (typeof scale !== 'number' || !Number.isFinite(scale))
      throw new ArgumentError(`${fn}: expected a finite number for option 'gradScale' but received ${describeValue(scale)}`, { fn, arg: 'gradScale' });
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        const grad = p.grad;
        if (!grad) continue;
        if (grad.shape.length !== p.shape.length || grad.shape.some((s, i) => s !== p.shape[i]))
          throw new ShapeError(`${fn}: a gradient of shape [${grad.shape.join(', ')}] for a parameter of shape [${p.shape.join(', ')}]`, { fn, arg: 'grad' });
        const st = this.stateOf(p);
        st.step += 1;
        native().adamwStep(
          p.handle(fn, 'param'),
          grad.handle(fn, 'grad'),
          st.expAvg.handle(fn, 'expAvg'),
          st.expAvgSq.handle(fn, 'expAvgSq'),
          g.lr,
          g.betas[0],
          g.betas[1],
          g.eps,
          g.weightDecay,
          st.step,
          scale,
        );
      }
    }
  }

  /** Drops every parameter's gradient (PyTorch's `set_to_none=True`). */
  zeroGrad(): void {
    for (const p of this.params()) if (!p.isDisposed) p.zeroGrad();
  }

  /** Host copies of the hyperparameters, step counts and moments (for checkpoints; reads device memory). */
  stateDict(): AdamWStateDict {
    return {
      version: 1,
      groups: this.paramGroups.map((g) => ({ name: g.name, lr: g.lr, initialLr: g.initialLr, betas: [g.betas[0], g.betas[1]], eps: g.eps, weightDecay: g.weightDecay, size: g.params.length })),
      state: this.params().map((p) => {
        const st = this.state.get(p);
        if (!st) return null;
        return { step: st.step, shape: [...p.shape], expAvg: st.expAvg.dataSync() as Float32Array, expAvgSq: st.expAvgSq.dataSync() as Float32Array };
      }),
    };
  }

  /**
   * Restores a `stateDict()` of an optimizer built over the same parameter shapes in the same order. The
   * learning rates are restored too, so a schedule resumes where it was.
   */
  loadStateDict(sd: AdamWStateDict): void {
    const fn = 'AdamW.loadStateDict';
    if (!sd || sd.version !== 1 || !Array.isArray(sd.groups) || !Array.isArray(sd.state))
      throw new ArgumentError(`${fn}: expected a state dict from AdamW.stateDict() (version 1)`, { fn, arg: 'stateDict' });
    if (sd.groups.length !== this.paramGroups.length || sd.groups.some((g, i) => g.size !== this.paramGroups[i].params.length))
      throw new ShapeError(
        `${fn}: the state dict has groups of sizes [${sd.groups.map((g) => g.size).join(', ')}] but the optimizer has [${this.paramGroups.map((g) => g.params.length).join(', ')}]`,
        { fn, arg: 'stateDict' },
      );
    const params = this.params();
    if (sd.state.length !== params.length) throw new ShapeError(`${fn}: ${sd.state.length} parameter states for ${params.length} parameters`, { fn, arg: 'stateDict' });
    sd.state.forEach((s, i) => {
      if (!s) return;
      const p = params[i];
      if (s.shape.length !== p.shape.length || s.shape.some((d, k) => d !== p.shape[k]) || s.expAvg.length !== p.size || s.expAvgSq.length !== p.size)
        throw new ShapeError(`${fn}: state ${i} has shape [${s.shape.join(', ')}] but the parameter has [${p.shape.join(', ')}]`, { fn, arg: 'stateDict' });
      if (!Number.isInteger(s.step) || s.step < 0) throw new ArgumentError(`${fn}: state ${i} has step ${s.step}`, { fn, arg: 'stateDict' });
    });
    const fresh = new Map<Tensor, ParamState>();
    sd.state.forEach((s, i) => {
      if (!s) return;
      const p = params[i];
      const expAvg = tensor(s.expAvg, p.shape, { device: p.device });
      const expAvgSq = tensor(s.expAvgSq, p.shape, { device: p.device });
      untrack(expAvg);
      untrack(expAvgSq);
      fresh.set(p, { step: s.step, expAvg, expAvgSq });
    });
    this.disposeState();
    for (const [p, st] of fresh) this.state.set(p, st);
    sd.groups.forEach((g, i) => {
      const pg = this.paramGroups[i];
      pg.lr = g.lr;
      pg.betas = [g.betas[0], g.betas[1]];
      pg.eps = g.eps;
      pg.weightDecay = g.weightDecay;
      (pg as { initialLr: number }).initialLr = g.initialLr;
    });
  }

  /**
   * @internal Points the optimizer at new parameter tensors (a model whose `loadStateDict` replaced its
   * tensors): `replacement` maps each old parameter to its successor of the same shape; state moves along.
   */
  replaceParams(replacement: ReadonlyMap<Tensor, Tensor>): void {
    const fn = 'AdamW.replaceParams';
    for (const g of this.paramGroups) {
      g.params = g.params.map((p) => {
        const q = replacement.get(p);
        if (!q || q === p) return p;
        if (q.dtype !== 'float32' || q.shape.length !== p.shape.length || q.shape.some((s, i) => s !== p.shape[i]))
          throw new ShapeError(`${fn}: a replacement of shape [${q.shape.join(', ')}] ${q.dtype} for a float32 parameter of shape [${p.shape.join(', ')}]`, { fn, arg: 'replacement' });
        const st = this.state.get(p);
        if (st) {
          this.state.delete(p);
          this.state.set(q, st);
        }
        return q;
      });
    }
  }

  /** Frees the moment tensors (the parameters belong to the model). */
  dispose(): void {
    this.disposeState();
  }

  private disposeState(): void {
    for (const st of this.state.values()) {
      st.expAvg.dispose();
      st.expAvgSq.dispose();
    }
    this.state.clear();
  }

  private stateOf(p: Tensor): ParamState {
    let st = this.state.get(p);
    if (!st) {
      // Kept out of any tidy() scope: the state lives as long as the optimizer.
      const expAvg = zeros(p.shape, { device: p.device });
      const expAvgSq = zeros(p.shape, { device: p.device });
      untrack(expAvg);
      untrack(expAvgSq);
      st = { step: 0, expAvg, expAvgSq };
      this.state.set(p, st);
    }
    return st;
  }
}

/**
 * Splits named parameters into a weight-decay group and a no-decay group the way Mamba is trained: biases
 * (names ending in '.bias'), norm weights (names containing 'norm'), `A_log` and `D` get no weight decay.
 * Pass the result to `new AdamW(groups, { weightDecay })`; the no-decay group has `weightDecay: 0`.
 *
 * @example
 * ```ts
 * const opt = new AdamW(paramGroupsForMamba(model.namedParameters()), { lr: 3e-3, weightDecay: 0.1 });
 * ```
 */
export function paramGroupsForMamba(namedParameters: Iterable<readonly [string, Tensor]>): ParamGroupInit[] {
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const [name, p] of namedParameters) (isNoDecay(name) ? noDecay : decay).push(p);
  const groups: ParamGroupInit[] = [];
  if (decay.length) groups.push({ params: decay, name: 'decay' });
  if (noDecay.length) groups.push({ params: noDecay, name: 'no_decay', weightDecay: 0 });
  return groups;
}

/** Whether `paramGroupsForMamba` exempts the parameter called `name` from weight decay. */
export function isNoDecay(name: string): boolean {
  return name.endsWith('.bias') || name.includes('norm') || name.endsWith('A_log') || name.endsWith('.D') || name === 'D';
}

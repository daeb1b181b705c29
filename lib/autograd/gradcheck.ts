/**
 * `gradcheck(fn, inputs)`: compares the autograd gradients of `fn` at `inputs` with central finite
 * differences. The ops run on the CPU in float32 (there is no float64 tensor); the differences, the
 * random projection of the outputs and all comparisons are done in float64 in JS, so the default
 * tolerances are those of float32 evaluation (eps 1e-3, atol 1e-3, rtol 1e-2).
 *
 * @example
 * ```ts
 * const x = randn([3, 4], { seed: 1 }).requiresGrad_();
 * const r = gradcheck((a) => ops.tanh(a), [x]);   // { ok, maxError, worst }
 * ```
 */
import { tensor } from '../creation';
import { uniforms } from '../mulberry32';
import { ArgumentError } from '../errors';
import { Tensor } from '../tensor';
import { tidy } from '../memory';
import { noGrad } from './grad_mode';
import { backward } from './engine';

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  /** Seed of the random projection of the outputs. */
  seed?: number;
}

export interface GradcheckResult {
  ok: boolean;
  /** Largest |numerical - analytical| - (atol + rtol |numerical|) seen (<= 0 when ok). */
  maxExcess: number;
  /** Where the largest excess was: input index, element index, numerical and analytical values. */
  worst: { input: number; index: number; numerical: number; analytical: number } | null;
}

// A small deterministic generator for the projection: uniforms in [-0.5, 0.5).
function rng(seed: number): () => number {
  const next = uniforms(seed);
  return () => next() - 0.5;
}

/**
 * Checks d<fn(inputs), v>/d inputs for a random v against central differences, for every input that
 * requires grad. `fn` returns a tensor or an array of tensors. Inputs must be float32 CPU tensors.
 */
export function gradcheck(fn: (...xs: Tensor[]) => Tensor | Tensor[], inputs: Tensor[], options: GradcheckOptions = {}): GradcheckResult {
  const name = 'gradcheck';
  const { eps = 1e-3, atol = 1e-3, rtol = 1e-2, seed = 0 } = options;
  if (typeof fn !== 'function') throw new ArgumentError(`${name}: expected a function for argument 'fn'`, { fn: name, arg: 'fn' });
  for (const x of inputs)
    if (!(x instanceof Tensor) || x.device !== 'cpu' || x.dtype !== 'float32')
      throw new ArgumentError(`${name}: inputs must be float32 CPU tensors`, { fn: name, arg: 'inputs' });
  const values = inputs.map((x) => Float64Array.from(x.dataSync()));
  // fn's outputs; its intermediates are disposed by the tidy scope.
  const run = (vals: Float64Array[]): Tensor[] =>
    noGrad(() =>
      tidy(() => {
        const xs = vals.map((v, i) => tensor(Float32Array.from(v), inputs[i].shape));
        const out = fn(...xs);
        return Array.isArray(out) ? out : [out];
      }),
    );
  // The projection v, one array per output.
  const r = rng(seed);
  const probe = run(values);
  const proj = probe.map((o) => Float64Array.from({ length: o.size }, () => r()));
  probe.forEach((o) => o.dispose());
  const objective = (vals: Float64Array[]): number => {
    const outs = run(vals);
    let s = 0;
    outs.forEach((o, k) => o.dataSync().forEach((v, i) => (s += v * proj[k][i])));
    outs.forEach((o) => o.dispose());
    return s;
  };
  // Analytical: backward of <fn(x), v>.
  const leaves = inputs.map((x) => {
    const l = tensor(x.dataSync(), x.shape);
    l.requiresGrad = x.requiresGrad;
    return l;
  });
  const analytic = tidy(() => {
    const outs = fn(...leaves);
    const list = Array.isArray(outs) ? outs : [outs];
    backward(
      list,
      list.map((o, k) => tensor(Float32Array.from(proj[k]), o.shape)),
    );
    return leaves.map((l) => (l.grad ? Float64Array.from(l.grad.dataSync()) : null));
  });
  leaves.forEach((l) => l.dispose());
  let maxExcess = -Infinity;
  let worst: GradcheckResult['worst'] = null;
  values.forEach((v, k) => {
    if (!inputs[k].requiresGrad) return;
    for (let i = 0; i < v.length; i++) {
      const keep = v[i];
      v[i] = keep + eps;
      const up = objective(values);
      v[i] = keep - eps;
      const down = objective(values);
      v[i] = keep;
      const numerical = (up - down) / (2 * eps);
      const analytical = analytic[k] ? analytic[k][i] : 0;
      const excess = Math.abs(numerical - analytical) - (atol + rtol * Math.abs(numerical));
      if (excess > maxExcess || Number.isNaN(excess)) {
        maxExcess = Number.isNaN(excess) ? Infinity : excess;
        worst = { input: k, index: i, numerical, analytical };
      }
    }
  });
  return { ok: maxExcess <= 0, maxExcess, worst };
}

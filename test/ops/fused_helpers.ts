// Shared by the fused-op tests (rmsnorm, conv1d, embedding, cross_entropy, softplus_bias): seeded data rounded
// to the tested dtype (so float64 references see exactly the kernel's inputs), per-dtype tolerances, and a
// helper that runs autograd backward and reads (then disposes) the leaf gradients.
import { DType, Device, Tensor, backward, tensor } from '../../lib';
import { rng } from '../setup';

export { rng };

export function normal(r: () => number, n: number, scale = 1, shift = 0): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = shift + scale * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

/** A tensor of `data` in `dtype`, and its values as the kernel sees them (rounded to the dtype). */
export function make(data: Float64Array, shape: number[], dtype: DType, device: Device = 'cpu'): [Tensor, Float64Array] {
  const t = tensor(data, shape, { dtype, device });
  return [t, Float64Array.from(t.dataSync())];
}

export function read(t: Tensor): Float64Array {
  return Float64Array.from(t.dataSync());
}

/** (rtol, atol) for outputs rounded once to the dtype after float32 math. */
export const TOL: Record<string, [number, number]> = { float32: [2e-5, 2e-5], float16: [2e-3, 2e-3], bfloat16: [1.6e-2, 1.6e-2] };
export const FLOATS: DType[] = ['float32', 'float16', 'bfloat16'];

/** Runs backward from `outputs` seeded with `seeds`; returns each input's gradient (null if none) and disposes them. */
export function gradsOf(inputs: Tensor[], outputs: Tensor[], seeds: Tensor[]): (Float64Array | null)[] {
  backward(outputs, seeds);
  return inputs.map((t) => {
    const g = t.grad;
    if (!g) return null;
    const v = read(g);
    t.zeroGrad();
    return v;
  });
}

/**
 * Gradient norms and clipping by the global L2 norm over all parameters (torch.nn.utils.clip_grad_norm_).
 * Each gradient's sum of squares is computed in float32 on its own device and added up on that device, so
 * one read-back per device gives the norm; on CUDA all gradients go through one multi-tensor kernel
 * (`sumOfSquares`, like PyTorch's multi_tensor_l2norm), deterministic and without temporaries. A non-finite
 * norm (a NaN or infinite gradient anywhere) is returned as is and no gradient is changed: the caller skips
 * the step (the Trainer does).
 *
 * @example
 * ```ts
 * loss.backward();
 * const norm = clipGradNorm(model.parameters(), 1.0);   // gradients rescaled when norm > 1
 * if (Number.isFinite(norm)) opt.step();
 * ```
 */
import { noGrad } from '../autograd/grad_mode';
import { describeValue } from '../dtype';
import { ArgumentError, DeviceError, DisposedError, DTypeError } from '../errors';
import { tidy } from '../memory';
import { native } from '../native';
import { add, mul, square } from '../ops/elementwise';
import { sum } from '../ops/reduce';
import { Tensor } from '../tensor';

function checkParams(params: Iterable<Tensor>, fn: string): Tensor[] {
  const list = params instanceof Tensor ? [params] : [...params];
  for (const p of list)
    if (!(p instanceof Tensor)) throw new ArgumentError(`${fn}: expected tensors in argument 'params' but received ${describeValue(p)}`, { fn, arg: 'params' });
  return list;
}

/**
 * The float32 sum of the squares of every element of `tensors` (float tensors on one device), as a 0-d
 * float32 tensor on that device: the squared L2 norm of all of them together. One native call; on CUDA one
 * multi-tensor kernel plus a fixed-order final sum, so the result is bitwise repeatable and nothing is read
 * back. Records no autograd node.
 *
 * @example
 * ```ts
 * const sq = sumOfSquares(model.parameters().map((p) => p.grad!));   // shape [], float32
 * const norm = Math.sqrt(sq.dataSync()[0]);
 * ```
 */
export function sumOfSquares(tensors: readonly Tensor[]): Tensor {
  const fn = 'sumOfSquares';
  if (!Array.isArray(tensors) || tensors.length === 0)
    throw new ArgumentError(`${fn}: expected a non-empty array of tensors for argument 'tensors' but received ${describeValue(tensors)}`, { fn, arg: 'tensors' });
  const first = tensors[0];
  tensors.forEach((t, i) => {
    if (!(t instanceof Tensor))
      throw new ArgumentError(`${fn}: expected tensors in argument 'tensors' but index ${i} is ${describeValue(t)}`, { fn, arg: 'tensors' });
    if (t.isDisposed) throw new DisposedError(`${fn}: argument 'tensors' holds a disposed tensor (index ${i})`, { fn, arg: 'tensors' });
    if (t.dtype === 'int32') throw new DTypeError(`${fn}: expected float tensors in argument 'tensors' but index ${i} is int32`, { fn, arg: 'tensors' });
    if (t.device !== first.device)
      throw new DeviceError(`${fn}: argument 'tensors' mixes devices: index ${i} is on ${t.device} but index 0 is on ${first.device}`, { fn, arg: 'tensors' });
  });
  return new Tensor(native().multiNormSq(tensors.map((t) => t.handle(fn, 'tensors'))), [], 'float32', first.device);
}

/** The L2 norm of all gradients of `params` together (0 when none has a gradient). Reads back one scalar per device. */
export function gradNorm(params: Iterable<Tensor>): number {
  const list = checkParams(params, 'gradNorm');
  return noGrad(() =>
    tidy(() => {
      const perDevice = new Map<string, Tensor>();
      const cudaGrads: Tensor[] = [];
      for (const p of list) {
        const g = p.grad;
        if (!g || g.size === 0) continue;
        if (g.device === 'cuda') {
          cudaGrads.push(g);
          continue;
        }
        // Flattened first: a 1-D sum is the simplest reduction, whatever the gradient's layout.
        const flat = g.reshape([g.size]);
        const s = sum(square(flat.dtype === 'float32' ? flat : flat.cast('float32')));
        const prev = perDevice.get(g.device);
        perDevice.set(g.device, prev ? add(prev, s) : s);
      }
      if (cudaGrads.length > 0) perDevice.set('cuda', sumOfSquares(cudaGrads));
      let total = 0;
      for (const s of perDevice.values()) total += (s.dataSync() as Float32Array)[0];
      return Math.sqrt(total);
    }),
  );
}

/**
 * The factor `clipGradNorm` multiplies gradients by: `maxNorm / (norm + 1e-6)` when that is below 1, else 1
 * (PyTorch's formula). Pass it as `AdamW.step({ gradScale })` to clip inside the fused step instead.
 */
export function clipScale(norm: number, maxNorm: number): number {
  if (typeof maxNorm !== 'number' || !(maxNorm > 0))
    throw new ArgumentError(`clipScale: expected a positive number for argument 'maxNorm' but received ${describeValue(maxNorm)}`, { fn: 'clipScale', arg: 'maxNorm' });
  if (!Number.isFinite(norm)) return 1;
  const c = maxNorm / (norm + 1e-6);
  return c < 1 ? c : 1;
}

/**
 * Rescales the gradients of `params` so their global L2 norm is at most `maxNorm`; returns the norm before
 * clipping. Gradients are replaced by scaled copies (tensors are immutable). With a non-finite norm nothing
 * is changed and the non-finite norm is returned.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): number {
  const fn = 'clipGradNorm';
  const list = checkParams(params, fn);
  if (typeof maxNorm !== 'number' || !(maxNorm > 0) || !Number.isFinite(maxNorm))
    throw new ArgumentError(`${fn}: expected a finite positive number for argument 'maxNorm' but received ${describeValue(maxNorm)}`, { fn, arg: 'maxNorm' });
  const norm = gradNorm(list);
  const scale = clipScale(norm, maxNorm);
  if (scale < 1)
    noGrad(() => {
      for (const p of list) if (p.grad) p.setGrad(mul(p.grad, scale));
    });
  return norm;
}

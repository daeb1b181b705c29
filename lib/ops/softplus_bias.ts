/**
 * softplus(delta + bias[d]): the time-step path of the Mamba mixer, one fused kernel and one fused backward.
 * softplus(v) = v > 20 ? v : log1p(exp(v)), computed in float32. Shapes: delta (batch, dim, L) in float32,
 * float16 or bfloat16; bias (dim) in float32 or delta's dtype; the result has delta's shape and dtype.
 * Backward: ddelta = dout * sigmoid(delta + bias), dbias = its sum over batch and time (deterministic).
 *
 * @example
 * ```ts
 * const dt = ops.softplusBias(delta, dtBias);   // delta (8, 1536, 2048), dtBias (1536)
 * ```
 */
import { recordOp } from '../autograd/node';
import { ShapeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';
import { checkFloat, wrapLike } from './fused_common';

/** softplus(delta + bias[d]) over delta (batch, dim, L) with bias (dim). */
export function softplusBias(delta: Tensor, bias: Tensor): Tensor {
  const fn = 'softplusBias';
  checkFloat(delta, fn, 'delta');
  checkFloat(bias, fn, 'bias', delta.device);
  if (delta.rank !== 3) throw new ShapeError(`${fn}: expected shape (batch, dim, L) for argument 'delta' but received [${delta.shape.join(', ')}]`, { fn, arg: 'delta' });
  const out = wrapLike(native().softplusBiasFwd(delta.handle(fn, 'delta'), bias.handle(fn, 'bias')), delta.shape, delta);
  recordOp(
    fn,
    [delta, bias],
    [out],
    ([g], [sd, sb]) => {
      if (!g) return [null, null];
      const [dd, db] = native().softplusBiasBwd(sd.handle(fn), sb.handle(fn), g.handle(fn, 'grad'));
      return [wrapLike(dd, sd.shape, sd), wrapLike(db, sb.shape, sb)];
    },
    [delta, bias],
  );
  return out;
}

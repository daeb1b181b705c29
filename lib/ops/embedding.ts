/**
 * Embedding lookup (torch.nn.functional.embedding): out[..., :] = weight[ids[...], :]. Shapes: ids (...)
 * int32; weight (vocab, dim) in float32, float16 or bfloat16; out (..., dim) in weight's dtype. Backward:
 * a scatter-add of dout into dweight (vocab, dim), accumulated in float32. On the CPU out-of-range ids throw
 * an ArgumentError naming the index; on CUDA they are not checked (that would need a synchronisation): the
 * forward writes a NaN row for them and the backward skips them. The CUDA backward uses float atomics by
 * default; `deterministic: true` uses fixed-point integer atomics, bitwise repeatable.
 *
 * @example
 * ```ts
 * const h = ops.embedding(ids, embWeight);   // ids (8, 2048) int32, embWeight (50280, 768) -> (8, 2048, 768)
 * ```
 */
import { recordOp } from '../autograd/node';
import { DTypeError, ShapeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';
import { checkBool, checkFloat, checkOptions, checkTensor, wrapLike } from './fused_common';

/** Options of `embedding`. */
export interface EmbeddingOptions {
  /** CUDA backward: bitwise-repeatable gradients (fixed-point atomics). Default false. */
  deterministic?: boolean;
}

/** Rows of `weight` (vocab, dim) picked by the int32 `ids` (...) -> (..., dim). */
export function embedding(ids: Tensor, weight: Tensor, options: EmbeddingOptions = {}): Tensor {
  const fn = 'embedding';
  checkTensor(ids, fn, 'ids');
  if (ids.dtype !== 'int32') throw new DTypeError(`${fn}: expected int32 for argument 'ids' but received ${ids.dtype}`, { fn, arg: 'ids' });
  checkFloat(weight, fn, 'weight', ids.device);
  if (weight.rank !== 2) throw new ShapeError(`${fn}: expected shape (vocab, dim) for argument 'weight' but received [${weight.shape.join(', ')}]`, { fn, arg: 'weight' });
  const det = checkBool(checkOptions<EmbeddingOptions>(options, fn).deterministic, fn, 'deterministic', false);
  const out = wrapLike(native().embeddingFwd(ids.handle(fn, 'ids'), weight.handle(fn, 'weight')), [...ids.shape, weight.shape[1]], weight);
  const vocab = weight.shape[0];
  recordOp(
    fn,
    [ids, weight],
    [out],
    ([g], [sids]) => {
      if (!g) return [null, null];
      const dw = native().embeddingBwd(sids.handle(fn), g.handle(fn, 'grad'), vocab, det);
      return [null, new Tensor(dw, [vocab, g.shape[g.rank - 1]], g.dtype, g.device)];
    },
    [ids],
  );
  return out;
}

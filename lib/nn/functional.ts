/**
 * Differentiable helpers the layers need that the op library leaves out: a recorded cast (the mixed
 * precision path casts float32 master weights to the compute dtype per op, and their gradients must
 * flow back), a recorded reshape, and activation checkpointing (`checkpoint`), which runs a function
 * without recording and re-runs it with recording in backward, so only its inputs are kept.
 *
 * @example
 * ```ts
 * const w16 = castRecorded(weight, 'bfloat16');               // gradient returns to weight in float32
 * const y = checkpoint((x) => mixer.compute(x), x, mixer.parameters());
 * ```
 */
import { backward } from '../autograd/engine';
import { enableGrad, isGradEnabled, noGrad } from '../autograd/grad_mode';
import { recordOp } from '../autograd/node';
import { DType } from '../dtype';
import { tidy } from '../memory';
import { Tensor } from '../tensor';

/** `x` converted to `dtype`, recorded so the gradient is converted back; `x` itself when it has that dtype. */
export function castRecorded(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const out = x.cast(dtype);
  // The engine converts each gradient to its input's dtype, so the backward passes g through unchanged.
  recordOp('cast', [x], [out], ([g]) => [g ? g.share() : null]);
  return out;
}

/** `x` viewed with `shape` (same number of elements), recorded so the gradient is reshaped back. */
export function reshapeRecorded(x: Tensor, shape: readonly number[]): Tensor {
  const out = x.reshape(shape);
  const from = x.shape;
  recordOp('reshape', [x], [out], ([g]) => [g ? g.reshape(from) : null]);
  return out;
}

/**
 * `body(x)` (x -> one tensor) computed without keeping its intermediate activations: the forward runs with
 * recording off and saves only `x`; backward re-runs `body` with recording on and backpropagates through
 * it, which sends the gradients of `params` (the leaves `body` reads, e.g. a layer's weights) straight into
 * their `.grad`. When recording is off this is just `body(x)`.
 */
export function checkpoint(body: (x: Tensor) => Tensor, x: Tensor, params: readonly Tensor[]): Tensor {
  const needs = isGradEnabled() && (x.requiresGrad || params.some((p) => p.requiresGrad));
  if (!needs) return body(x);
  const out = noGrad(() => body(x));
  const needX = x.requiresGrad;
  recordOp(
    'checkpoint',
    [x, ...params],
    [out],
    ([g], [sx]) => {
      if (!g) return [];
      const leaf = sx.detach();
      if (needX) leaf.requiresGrad = true;
      try {
        const y = enableGrad(() => tidy(() => body(leaf)));
        try {
          backward([y], [g]);
        } finally {
          y.dispose();
        }
        // A handle of its own: disposing the leaf below disposes the leaf's .grad handle.
        return [leaf.grad ? leaf.grad.share() : null];
      } finally {
        leaf.dispose();
      }
    },
    [x],
  );
  return out;
}

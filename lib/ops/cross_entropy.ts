/**
 * Cross-entropy from logits with class-index targets, exactly torch.nn.functional.cross_entropy: fused
 * log-softmax + NLL in float32, `ignoreIndex` (those targets add nothing and are not counted by 'mean'),
 * 'mean' (over non-ignored targets; NaN when all are ignored, as in PyTorch), 'sum' or 'none', and label
 * smoothing as PyTorch defines it: (1 - s) * nll + s * mean_c(-log p_c). Shapes: logits (N, V) or (B, L, V)
 * in float32, float16 or bfloat16; targets (N) / (B, L) int32; the loss is a scalar (shape []) or, for
 * 'none', the targets' shape, in the logits dtype. One autograd node: the backward kernel rereads the logits
 * and writes dlogits in their dtype (no probabilities are stored). Targets outside [0, V) other than
 * ignoreIndex throw an ArgumentError on the CPU; on CUDA (no synchronisation) they give a NaN loss.
 *
 * @example
 * ```ts
 * const loss = ops.crossEntropy(logits, labels);   // logits (8, 2048, 50280), labels (8, 2048) int32
 * ```
 */
import { recordOp } from '../autograd/node';
import { describeValue } from '../dtype';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';
import { checkFloat, checkNumber, checkOptions, checkTensor, view, wrapLike } from './fused_common';

/** Options of `crossEntropy`. */
export interface CrossEntropyOptions {
  /** Targets equal to this are skipped. Default -100. */
  ignoreIndex?: number;
  /** Default 'mean'. */
  reduction?: 'mean' | 'sum' | 'none';
  /** In [0, 1]. Default 0. */
  labelSmoothing?: number;
}

const REDUCTIONS = { none: 0, mean: 1, sum: 2 } as const;

/** Cross-entropy of logits (..., V) against int32 class targets (...). */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const fn = 'crossEntropy';
  checkFloat(logits, fn, 'logits');
  checkTensor(targets, fn, 'targets');
  if (targets.dtype !== 'int32') throw new DTypeError(`${fn}: expected int32 for argument 'targets' but received ${targets.dtype}`, { fn, arg: 'targets' });
  const o = checkOptions<CrossEntropyOptions>(options, fn);
  const ignoreIndex = checkNumber(o.ignoreIndex, fn, 'ignoreIndex', -100);
  if (!Number.isInteger(ignoreIndex) || ignoreIndex < -2147483648 || ignoreIndex > 2147483647)
    throw new ArgumentError(`${fn}: expected an int32 for option 'ignoreIndex' but received ${ignoreIndex}`, { fn, arg: 'ignoreIndex' });
  const reduction = o.reduction ?? 'mean';
  if (!(reduction in REDUCTIONS))
    throw new ArgumentError(`${fn}: expected 'mean', 'sum' or 'none' for option 'reduction' but received ${describeValue(reduction)}`, { fn, arg: 'reduction' });
  const smoothing = checkNumber(o.labelSmoothing, fn, 'labelSmoothing', 0);
  if (smoothing < 0 || smoothing > 1)
    throw new ArgumentError(`${fn}: expected a number in [0, 1] for option 'labelSmoothing' but received ${smoothing}`, { fn, arg: 'labelSmoothing' });
  if (logits.rank < 2 || targets.rank !== logits.rank - 1 || targets.shape.some((s, i) => s !== logits.shape[i]))
    throw new ShapeError(
      `${fn}: expected logits (N, V) or (B, L, V) with targets of their leading shape but received logits [${logits.shape.join(', ')}] and targets [${targets.shape.join(', ')}]`,
      { fn, arg: 'targets' },
    );
  const V = logits.shape[logits.rank - 1];
  const N = targets.size;
  const red = REDUCTIONS[reduction as keyof typeof REDUCTIONS];
  const l2 = view(logits, [N, V], fn, 'logits');
  const t1 = view(targets, [N], fn, 'targets');
  const [lossH, lseH, countH] = native().crossEntropyFwd(l2.handle(fn, 'logits'), t1.handle(fn, 'targets'), ignoreIndex, red, smoothing);
  const lossShape = red === 0 ? targets.shape : [];
  const loss = wrapLike(red === 0 ? reshapeHandle(lossH, [...lossShape]) : lossH, lossShape, logits);
  const lse = new Tensor(lseH, [N], 'float32', logits.device);
  const count = new Tensor(countH, [], 'float32', logits.device);
  recordOp(
    fn,
    [logits, targets],
    [loss],
    ([g], [sl, st, slse, scount]) => {
      if (!g) return [null, null];
      const g1 = red === 0 ? view(g, [N], fn, 'grad') : g;
      const d = native().crossEntropyBwd(sl.handle(fn), st.handle(fn), slse.handle(fn), scount.handle(fn), g1.handle(fn, 'grad'), ignoreIndex, red, smoothing);
      if (g1 !== g) g1.dispose();
      return [wrapLike(reshapeHandle(d, [...logits.shape]), logits.shape, logits), null];
    },
    [l2, t1, lse, count],
  );
  for (const t of [l2, t1, lse, count]) t.dispose();
  return loss;
}

function reshapeHandle(h: ReturnType<typeof native>['reshape'] extends (...a: never[]) => infer R ? R : never, shape: number[]) {
  const n = native();
  const v = n.reshape(h, shape);
  n.dispose(h);
  return v;
}

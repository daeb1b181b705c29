/**
 * Causal depthwise conv1d of the Mamba mixer (causal-conv1d's `causal_conv1d_fn`), exactly PyTorch
 * `Conv1d(dim, dim, width, groups=dim, padding=width-1)(x)[..., :L]`, optionally followed by SiLU, with an
 * optional initial state (the width-1 steps before x, for sequences processed in segments) and the final
 * state (the last width-1 steps) returned for the next segment. Shapes: x, out (batch, dim, L) in float32,
 * float16 or bfloat16; weight (dim, width) or Hugging Face's (dim, 1, width), width 2..4, in float32 or x's
 * dtype; bias (dim) like weight; states (batch, dim, width-1) in x's dtype. Float32 accumulation. One
 * autograd node; its backward kernel gives dx, dweight, dbias and dInitialState (deterministic).
 *
 * @example
 * ```ts
 * const { out } = ops.causalConv1d(x, convWeight, convBias, { activation: 'silu' });   // x (8, 1536, 2048)
 * ```
 */
import { recordOp } from '../autograd/node';
import { describeValue } from '../dtype';
import { ArgumentError, ShapeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';
import { checkBool, checkFloat, checkOptions, orZeros, view, wrapLike } from './fused_common';

/** Options of `causalConv1d`. */
export interface CausalConv1dOptions {
  /** 'silu' applies SiLU to the output. Default none. */
  activation?: 'silu';
  /** The width-1 steps before x, (batch, dim, width-1); zeros when absent. */
  initialState?: Tensor;
  /** Also return the last width-1 steps of [initialState, x]. Default false. */
  returnFinalState?: boolean;
}

/** The result of `causalConv1d`. */
export interface CausalConv1dResult {
  /** (batch, dim, L) in x's dtype. */
  out: Tensor;
  /** (batch, dim, width-1), with `returnFinalState`. */
  finalState?: Tensor;
}

/** Causal depthwise conv1d of x (batch, dim, L) with weight (dim, width) or (dim, 1, width). */
export function causalConv1d(x: Tensor, weight: Tensor, bias?: Tensor, options: CausalConv1dOptions = {}): CausalConv1dResult {
  const fn = 'causalConv1d';
  checkFloat(x, fn, 'x');
  checkFloat(weight, fn, 'weight', x.device);
  if (bias !== undefined && bias !== null) checkFloat(bias, fn, 'bias', x.device);
  const o = checkOptions<CausalConv1dOptions>(options, fn);
  if (o.activation !== undefined && o.activation !== 'silu')
    throw new ArgumentError(`${fn}: expected 'silu' or undefined for option 'activation' but received ${describeValue(o.activation)}`, { fn, arg: 'activation' });
  const silu = o.activation === 'silu';
  const h0 = o.initialState === undefined ? undefined : checkFloat(o.initialState, fn, 'initialState', x.device);
  const wantFinal = checkBool(o.returnFinalState, fn, 'returnFinalState', false);
  if (x.rank !== 3) throw new ShapeError(`${fn}: expected shape (batch, dim, L) for argument 'x' but received [${x.shape.join(', ')}]`, { fn, arg: 'x' });
  const dim = x.shape[1];
  const hfLayout = weight.rank === 3 && weight.shape[1] === 1;
  if (!(weight.rank === 2 || hfLayout) || weight.shape[0] !== dim)
    throw new ShapeError(`${fn}: expected shape (dim=${dim}, width) or (dim, 1, width) for argument 'weight' but received [${weight.shape.join(', ')}]`, { fn, arg: 'weight' });
  const width = weight.shape[weight.rank - 1];
  const w2 = view(weight, [dim, width], fn, 'weight');
  const b = bias ?? null;
  const [outH, finH] = native().conv1dFwd(x.handle(fn, 'x'), w2.handle(fn, 'weight'), b ? b.handle(fn, 'bias') : null, h0 ? h0.handle(fn, 'initialState') : null, silu, wantFinal);
  const out = wrapLike(outH, x.shape, x);
  const stateShape = [x.shape[0], dim, width - 1];
  const fin = finH ? wrapLike(finH, stateShape, x) : undefined;
  recordOp(
    fn,
    [x, weight, b, h0],
    fin ? [out, fin] : [out],
    ([gOut, gFin], saved) => {
      const [sx, sw] = saved;
      const sb = b ? saved[2] : null;
      const sh0 = h0 ? saved[b ? 3 : 2] : null;
      const dy = orZeros(gOut, out);
      const [dx, dw, db, dh0] = native().conv1dBwd(
        sx.handle(fn), sw.handle(fn), sb ? sb.handle(fn) : null, sh0 ? sh0.handle(fn) : null,
        dy.handle(fn, 'grad'), gFin ? gFin.handle(fn, 'grad') : null, silu, sh0 !== null,
      );
      if (dy !== gOut) dy.dispose();
      // The kernel writes dweight as (dim, width); a (dim, 1, width) weight gets a native view of its own shape.
      const dwView = native().reshape(dw, [...weight.shape]);
      native().dispose(dw);
      const dwT = wrapLike(dwView, weight.shape, weight);
      return [wrapLike(dx, sx.shape, sx), dwT, db && b ? wrapLike(db, b.shape, b) : null, dh0 ? wrapLike(dh0, stateShape, sx) : null];
    },
    [x, w2, ...(b ? [b] : []), ...(h0 ? [h0] : [])],
  );
  w2.dispose();
  return fin ? { out, finalState: fin } : { out };
}

/**
 * RMSNorm over the last dim with an optional fused residual add (mamba_ssm `RMSNorm` / `rms_norm_fn`):
 * r = x + residual (or x), out = r / sqrt(mean(r^2) + eps) * weight, all in float32. With `prenorm` the sum r
 * is returned too (float32 when `residualInFp32`, the default, else x's dtype), so Mamba blocks chain as
 * `({ out: h, residual } = rmsNorm(h, w, { residual }))`. Shapes: x, residual, out (..., hidden); weight
 * (hidden) in float32 or x's dtype. One autograd node whose backward kernel gives dx, dweight and dresidual
 * (and takes the gradient of the returned residual). References: test/ops/rmsnorm.test.ts (float64).
 *
 * @example
 * ```ts
 * const { out, residual } = ops.rmsNorm(hidden, normWeight, { residual: prev });  // residual float32
 * const y = ops.rmsNorm(h, normF).out;
 * ```
 */
import { recordOp } from '../autograd/node';
import { ShapeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';
import { checkBool, checkFloat, checkNumber, checkOptions, orZeros, wrapLike } from './fused_common';

/** Options of `rmsNorm`. */
export interface RmsNormOptions {
  /** Added to x before the norm; same shape as x. */
  residual?: Tensor;
  /** Default 1e-5 (Mamba's layer_norm_epsilon). */
  eps?: number;
  /** Keep (and return) x + residual in float32. Default true. */
  residualInFp32?: boolean;
  /** Return x + residual as `residual`. Default: true when `residual` is given. */
  prenorm?: boolean;
}

/** The result of `rmsNorm`. */
export interface RmsNormResult {
  /** (..., hidden) in x's dtype. */
  out: Tensor;
  /** x + residual (or x), with `prenorm`: float32 when residualInFp32, else x's dtype. */
  residual?: Tensor;
}

/** RMSNorm of x (..., hidden) with weight (hidden), optionally after adding `residual`. */
export function rmsNorm(x: Tensor, weight: Tensor, options: RmsNormOptions = {}): RmsNormResult {
  const fn = 'rmsNorm';
  checkFloat(x, fn, 'x');
  checkFloat(weight, fn, 'weight', x.device);
  const o = checkOptions<RmsNormOptions>(options, fn);
  const eps = checkNumber(o.eps, fn, 'eps', 1e-5);
  const inFp32 = checkBool(o.residualInFp32, fn, 'residualInFp32', true);
  const res = o.residual === undefined ? undefined : checkFloat(o.residual, fn, 'residual', x.device);
  const prenorm = checkBool(o.prenorm, fn, 'prenorm', res !== undefined);
  if (x.rank < 1) throw new ShapeError(`${fn}: expected shape (..., hidden) for argument 'x' but received []`, { fn, arg: 'x' });
  const hidden = x.shape[x.rank - 1];
  if (weight.rank !== 1 || weight.shape[0] !== hidden)
    throw new ShapeError(`${fn}: expected shape [${hidden}] for argument 'weight' but received [${weight.shape.join(', ')}]`, { fn, arg: 'weight' });
  if (res && (res.rank !== x.rank || res.shape.some((s, i) => s !== x.shape[i])))
    throw new ShapeError(`${fn}: expected shape [${x.shape.join(', ')}] for argument 'residual' but received [${res.shape.join(', ')}]`, { fn, arg: 'residual' });
  // The sum lives in rdtype; a residual of the other float dtype is converted first (its gradient back after).
  const rdtype = inFp32 && (res || prenorm) ? 'float32' : x.dtype;
  const resIn = res && res.dtype !== rdtype ? res.cast(rdtype) : res;
  const [outH, routH, rstdH] = native().rmsNormFwd(x.handle(fn, 'x'), weight.handle(fn, 'weight'), resIn ? resIn.handle(fn, 'residual') : null, eps, rdtype, prenorm);
  if (resIn && resIn !== res) resIn.dispose();
  const out = wrapLike(outH, x.shape, x);
  const rout = routH ? new Tensor(routH, x.shape, rdtype, x.device) : undefined;
  const rstd = new Tensor(rstdH, x.shape.slice(0, -1), 'float32', x.device);
  const outputs = prenorm && rout ? [out, rout] : [out];
  recordOp(
    fn,
    [x, weight, res],
    outputs,
    ([gOut, gRes], [r, w, sRstd]) => {
      const dy = orZeros(gOut, out);
      const [dx, dw, dres] = native().rmsNormBwd(r.handle(fn), w.handle(fn), sRstd.handle(fn), dy.handle(fn, 'grad'), gRes ? gRes.handle(fn, 'grad') : null, x.dtype, res !== undefined);
      if (dy !== gOut) dy.dispose();
      let dresT = dres && res ? new Tensor(dres, r.shape, r.dtype, r.device) : null;
      if (dresT && res && dresT.dtype !== res.dtype) {
        const c = dresT.cast(res.dtype);
        dresT.dispose();
        dresT = c;
      }
      return [wrapLike(dx, x.shape, x), wrapLike(dw, w.shape, w), dresT];
    },
    [rout ?? x, weight, rstd],
  );
  rstd.dispose();
  if (rout && !prenorm) rout.dispose();
  return prenorm && rout ? { out, residual: rout } : { out };
}

/**
 * Argument checks and handle plumbing shared by the fused ops (rmsnorm.ts, conv1d.ts, embedding.ts,
 * cross_entropy.ts, softplus_bias.ts). Errors name the public function and argument.
 */
import { zeros } from '../creation';
import { describeValue } from '../dtype';
import { ArgumentError, DeviceError, DTypeError } from '../errors';
import { NativeHandle, native } from '../native';
import { Tensor } from '../tensor';

/** @internal */
export function checkTensor(x: unknown, fn: string, arg: string): Tensor {
  if (!(x instanceof Tensor)) throw new ArgumentError(`${fn}: expected a Tensor for argument '${arg}' but received ${describeValue(x)}`, { fn, arg });
  return x;
}

/** @internal A float tensor on `device` (when given). */
export function checkFloat(x: unknown, fn: string, arg: string, device?: Tensor['device']): Tensor {
  const t = checkTensor(x, fn, arg);
  if (t.dtype === 'int32') throw new DTypeError(`${fn}: expected a float tensor for argument '${arg}' but received int32`, { fn, arg });
  if (device && t.device !== device) throw new DeviceError(`${fn}: argument '${arg}' is on ${t.device} but the input is on ${device}`, { fn, arg });
  return t;
}

/** @internal */
export function checkOptions<T extends object>(o: unknown, fn: string): T {
  if (o === null || typeof o !== 'object') throw new ArgumentError(`${fn}: expected an options object but received ${describeValue(o)}`, { fn, arg: 'options' });
  return o as T;
}

/** @internal */
export function checkBool(v: unknown, fn: string, arg: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new ArgumentError(`${fn}: expected a boolean for option '${arg}' but received ${describeValue(v)}`, { fn, arg });
  return v;
}

/** @internal */
export function checkNumber(v: unknown, fn: string, arg: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ArgumentError(`${fn}: expected a finite number for option '${arg}' but received ${describeValue(v)}`, { fn, arg });
  return v;
}

/** @internal A tensor over a native handle with the dtype/device of `like`. */
export function wrapLike(h: NativeHandle, shape: readonly number[], like: Tensor): Tensor {
  return new Tensor(h, shape, like.dtype, like.device);
}

/** @internal The same storage seen with another shape, outside autograd (a new handle the caller disposes). */
export function view(t: Tensor, shape: readonly number[], fn: string, arg: string): Tensor {
  return new Tensor(native().reshape(t.handle(fn, arg), [...shape]), shape, t.dtype, t.device);
}

/** @internal The gradient of an output that received none. */
export function orZeros(g: Tensor | null, like: Tensor): Tensor {
  return g ? g : zeros([...like.shape], { dtype: like.dtype, device: like.device });
}

/**
 * Element types and devices, as string unions (the names users know from PyTorch and tfjs).
 * 'int64' is accepted as input for token ids and stored as int32.
 */
import { DTypeError, DeviceError } from './errors';

/** Element types a tensor can hold. */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'int32';
/** Element types accepted on input: `'int64'` is converted to `'int32'`. */
export type DTypeLike = DType | 'int64';
/** Where a tensor's storage lives. `'cuda:0'` is accepted as input and means `'cuda'`. */
export type Device = 'cpu' | 'cuda';
export type DeviceLike = Device | 'cuda:0';

/** The JS array type that holds a tensor's values when read back. */
export type DataFor<D extends DType> = D extends 'int32' ? Int32Array : Float32Array;

export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'int32'];

const BYTES: Record<DType, number> = { float32: 4, float16: 2, bfloat16: 2, int32: 4 };

/** Bytes per element of `dtype`. */
export function dtypeSize(dtype: DType): number {
  return BYTES[dtype];
}

export function isFloat(dtype: DType): boolean {
  return dtype !== 'int32';
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : String(v);
}

/** Validates a dtype argument; 'int64' maps to 'int32'. */
export function checkDType(v: unknown, fn: string, arg = 'dtype'): DType {
  if (v === 'int64') return 'int32';
  if (typeof v === 'string' && (DTYPES as readonly string[]).includes(v)) return v as DType;
  throw new DTypeError(
    `${fn}: expected 'float32', 'float16', 'bfloat16', 'int32' or 'int64' for argument '${arg}' but received ${describe(v)}`,
    { fn, arg },
  );
}

/** Validates a device argument; 'cuda:0' maps to 'cuda'. */
export function checkDevice(v: unknown, fn: string, arg = 'device'): Device {
  if (v === 'cpu' || v === 'cuda') return v;
  if (v === 'cuda:0') return 'cuda';
  throw new DeviceError(`${fn}: expected 'cpu' or 'cuda' for argument '${arg}' but received ${describe(v)}`, { fn, arg });
}

export { describe as describeValue };

/**
 * Explicit memory management: `tidy()` disposes the tensors a function creates (except what it
 * returns), `keep()` exempts a tensor, `dispose()` frees tensors in any container, `memory()`
 * reports live tensors and bytes per device (what the leak tests check) and the CUDA allocator's
 * current and peak bytes, `resetPeakMemory()` restarts the peaks, `emptyCache()` returns the CUDA
 * allocator's cached blocks to the driver.
 *
 * @example
 * ```ts
 * const y = tidy(() => randn([4]).cast('bfloat16'));  // the float32 intermediate is disposed
 * console.log(memory().numTensors);
 * resetPeakMemory();
 * trainStep();
 * console.log(memory().cuda.peakAllocatedBytes / 1e9, 'GB at most during the step');
 * ```
 */
import { ArgumentError } from './errors';
import { CudaMemoryStats, native } from './native';
import { Tracked, closeScope, openScope, untrack } from './scope';
import { Tensor } from './tensor';

/** Live tensors and bytes, in total and per device. */
export interface MemoryInfo {
  /** Live (not disposed, not collected) tensors on all devices. */
  numTensors: number;
  /** Bytes of tensor storage on all devices (storages shared by several tensors count once). */
  numBytes: number;
  cpu: { tensors: number; bytes: number };
  cuda: CudaMemoryStats;
}

/**
 * Live tensors and bytes per device, and the CUDA caching allocator's allocated, reserved and peak bytes.
 *
 * @example
 * ```ts
 * const { cuda } = memory();
 * console.log(cuda.allocatedBytes, cuda.reservedBytes, cuda.peakAllocatedBytes);
 * ```
 */
export function memory(): MemoryInfo {
  const m = native().memory();
  return { numTensors: m.cpu.tensors + m.cuda.tensors, numBytes: m.cpu.bytes + m.cuda.bytes, cpu: m.cpu, cuda: m.cuda };
}

/** Every tensor inside `value` (arrays, plain objects, Maps, Sets; cycles tolerated). */
export function collectTensors(value: unknown, out: Set<Tensor> = new Set(), seen: Set<unknown> = new Set()): Set<Tensor> {
  if (value instanceof Tensor) {
    out.add(value);
    return out;
  }
  if (value === null || typeof value !== 'object' || seen.has(value)) return out;
  seen.add(value);
  if (Array.isArray(value) || value instanceof Set) for (const v of value) collectTensors(v, out, seen);
  else if (value instanceof Map) for (const v of value.values()) collectTensors(v, out, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collectTensors(v, out, seen);
  return out;
}

/**
 * Runs `fn` and disposes every tensor created during it, except the tensors it returns (in any
 * array/object) and those passed to `keep()`. `fn` must be synchronous.
 */
export function tidy<R>(fn: () => R): R {
  if (typeof fn !== 'function')
    throw new ArgumentError(`tidy: expected a function for argument 'fn' but received ${typeof fn}`, { fn: 'tidy', arg: 'fn' });
  openScope();
  let result: R;
  try {
    result = fn();
  } catch (e) {
    closeScope(new Set());
    throw e;
  }
  if (result instanceof Promise) {
    closeScope(new Set());
    throw new ArgumentError('tidy: the function returned a Promise; tidy() only takes synchronous functions', { fn: 'tidy', arg: 'fn' });
  }
  closeScope(collectTensors(result) as Set<Tracked>);
  return result;
}

/** Exempts `t` from every enclosing `tidy()`; returns it. */
export function keep<T extends Tensor>(t: T): T {
  if (!(t instanceof Tensor)) throw new ArgumentError('keep: expected a Tensor for argument \'tensor\'', { fn: 'keep', arg: 'tensor' });
  untrack(t);
  return t;
}

/** Disposes every tensor in `value` (a tensor, or arrays/objects holding tensors). */
export function dispose(value: unknown): void {
  for (const t of collectTensors(value)) t.dispose();
}

/** Returns the CUDA allocator's cached (unused) blocks to the driver. No-op without CUDA. */
export function emptyCache(): void {
  native().emptyCache();
}

/**
 * Sets `memory().cuda.peakAllocatedBytes` and `peakReservedBytes` to the current allocated and reserved
 * bytes, so the next reading gives the peak of what runs in between (torch.cuda.reset_peak_memory_stats).
 * Memory held by tensors the garbage collector has already released is not counted as current. No-op
 * without CUDA (the peaks stay 0).
 *
 * @example
 * ```ts
 * resetPeakMemory();
 * const loss = crossEntropy(model.forward(ids, { dtype: 'bfloat16' }), targets);
 * loss.backward();
 * console.log(`${(memory().cuda.peakAllocatedBytes / 1e9).toFixed(2)} GB peak`);
 * ```
 */
export function resetPeakMemory(): void {
  native().resetPeakMemory();
}

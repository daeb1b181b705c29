/**
 * What the build and the machine offer: whether CUDA is available, the devices found, the best
 * device for new work, and `synchronize()` to wait for queued CUDA work.
 *
 * @example
 * ```ts
 * if (cudaAvailable()) console.log(devices()[0].name);   // e.g. 'NVIDIA H200'
 * const x = zeros([8], { device: bestDevice() });
 * ```
 */
import { Device } from './dtype';
import { native } from './native';

/** A CUDA device as reported by the runtime. */
export interface DeviceInfo {
  index: number;
  name: string;
  /** Bytes of device memory. */
  totalMemory: number;
  /** e.g. '9.0' for Hopper. */
  computeCapability: string;
  multiprocessors: number;
}

/** True when the addon was built with CUDA and a CUDA device is present. */
export function cudaAvailable(): boolean {
  return native().cudaAvailable();
}

/** True when the addon was built with CUDA support (whether or not a device is present). */
export function compiledWithCuda(): boolean {
  return native().compiledWithCuda();
}

/** The CUDA devices found (empty without CUDA). */
export function devices(): DeviceInfo[] {
  return native().devices();
}

/** 'cuda' when available, else 'cpu'. */
export function bestDevice(): Device {
  return cudaAvailable() ? 'cuda' : 'cpu';
}

/** Waits until all queued CUDA work is done. No-op without CUDA. */
export function synchronize(): void {
  native().synchronize();
}

/**
 * Device time of each of `iterations` calls of `fn` (which should enqueue CUDA work), in milliseconds,
 * measured with CUDA events on the library stream. For benchmarks; throws DeviceError without CUDA.
 *
 * @example
 * ```ts
 * const ms = cudaTime(() => x.cast('bfloat16').dispose(), 50);
 * ```
 */
export function cudaTime(fn: () => void, iterations: number): number[] {
  return native().cudaTime(fn, iterations);
}

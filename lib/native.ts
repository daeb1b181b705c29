/**
 * The only place that loads the compiled addon (build/Release/mamba_node.node). `NativeBinding`
 * types every export; the rest of lib/ calls the addon only through `native()`. Loading registers
 * the error classes of errors.ts so native code throws them directly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { ERROR_KINDS, MambaError } from './errors';

/** An opaque native tensor handle (a type-tagged object owned by the addon). */
export interface NativeHandle {
  readonly __brand: 'NativeHandle';
}

export type NativeDType = 'float32' | 'float16' | 'bfloat16' | 'int32';
export type NativeDevice = 'cpu' | 'cuda';

export interface NativeDeviceInfo {
  index: number;
  name: string;
  totalMemory: number;
  computeCapability: string;
  multiprocessors: number;
}

/** Live CUDA tensors and the caching allocator's counters (all 0 without CUDA). */
export interface CudaMemoryStats {
  tensors: number;
  bytes: number;
  /** Bytes the caching allocator has handed out (rounded to its size classes). */
  allocatedBytes: number;
  /** Bytes held from the driver: allocated plus cached. */
  reservedBytes: number;
  /** cudaMalloc calls so far. */
  deviceAllocs: number;
  /**
   * The highest `allocatedBytes` since the process started or the last `resetPeakMemory()`
   * (torch.cuda.max_memory_allocated). 0 without CUDA.
   */
  peakAllocatedBytes: number;
  /** The highest `reservedBytes` since then (torch.cuda.max_memory_reserved). 0 without CUDA. */
  peakReservedBytes: number;
}

export interface NativeMemory {
  cpu: { tensors: number; bytes: number };
  cuda: CudaMemoryStats;
}

/** u, delta, A, B, C, D, z, deltaBias, initialState (the last four optional). */
export type ScanInputs = [
  u: NativeHandle,
  delta: NativeHandle,
  A: NativeHandle,
  B: NativeHandle,
  C: NativeHandle,
  D: NativeHandle | null,
  z: NativeHandle | null,
  deltaBias: NativeHandle | null,
  initialState: NativeHandle | null,
];

export interface NativeBinding {
  registerErrors(classes: readonly (new (message: string, source: object) => Error)[]): void;
  // tensors: shapes are arrays of non-negative integers
  fromData(values: Float32Array | Int32Array, shape: number[], dtype: NativeDType, device: NativeDevice): NativeHandle;
  full(shape: number[], dtype: NativeDType, device: NativeDevice, value: number): NativeHandle;
  arange(n: number, start: number, step: number, dtype: NativeDType, device: NativeDevice): NativeHandle;
  rand(shape: number[], dtype: NativeDType, device: NativeDevice, seed: bigint, low: number, high: number): NativeHandle;
  randn(shape: number[], dtype: NativeDType, device: NativeDevice, seed: bigint, mean: number, std: number): NativeHandle;
  to(t: NativeHandle, device: NativeDevice): NativeHandle;
  cast(t: NativeHandle, dtype: NativeDType): NativeHandle;
  reshape(t: NativeHandle, shape: number[]): NativeHandle;
  dataSync(t: NativeHandle): Float32Array | Int32Array;
  data(t: NativeHandle): Promise<Float32Array | Int32Array>;
  dispose(t: NativeHandle): void;
  isDisposed(t: NativeHandle): boolean;
  // selective scan (native/ops/selective_scan.cc); absent optional inputs are null
  selectiveScanFwd(...args: [...ScanInputs, deltaSoftplus: boolean, returnLastState: boolean, saveCheckpoints: boolean]): [
    out: NativeHandle,
    lastState: NativeHandle | null,
    checkpoints: NativeHandle | null,
  ];
  /** Steps between the float32 state checkpoints a scan forward saves (native/params.h). */
  readonly scanCheckpointChunk: number;
  selectiveScanBwd(
    ...args: [...ScanInputs, checkpoints: NativeHandle, dout: NativeHandle, dLastState: NativeHandle | null, deltaSoftplus: boolean, deterministic: boolean, wantDInitialState: boolean]
  ): [NativeHandle, NativeHandle, NativeHandle, NativeHandle, NativeHandle, ...(NativeHandle | null)[]];
  // fused ops (native/ops/fused.cc); absent optional inputs are null
  rmsNormFwd(x: NativeHandle, weight: NativeHandle, residual: NativeHandle | null, eps: number, residualDtype: NativeDType, prenorm: boolean): [
    out: NativeHandle,
    residualOut: NativeHandle | null,
    rstd: NativeHandle,
  ];
  rmsNormBwd(r: NativeHandle, weight: NativeHandle, rstd: NativeHandle, dout: NativeHandle, dResidualOut: NativeHandle | null, xDtype: NativeDType, wantDResidual: boolean): [
    dx: NativeHandle,
    dweight: NativeHandle,
    dresidual: NativeHandle | null,
  ];
  conv1dFwd(x: NativeHandle, weight: NativeHandle, bias: NativeHandle | null, initialState: NativeHandle | null, silu: boolean, returnFinalState: boolean): [
    out: NativeHandle,
    finalState: NativeHandle | null,
  ];
  conv1dBwd(
    ...args: [x: NativeHandle, weight: NativeHandle, bias: NativeHandle | null, initialState: NativeHandle | null, dout: NativeHandle, dFinalState: NativeHandle | null, silu: boolean, wantDInitialState: boolean]
  ): [dx: NativeHandle, dweight: NativeHandle, dbias: NativeHandle | null, dInitialState: NativeHandle | null];
  embeddingFwd(ids: NativeHandle, weight: NativeHandle): NativeHandle;
  embeddingBwd(ids: NativeHandle, dout: NativeHandle, vocab: number, deterministic: boolean): NativeHandle;
  crossEntropyFwd(logits: NativeHandle, targets: NativeHandle, ignoreIndex: number, reduction: 0 | 1 | 2, labelSmoothing: number): [
    loss: NativeHandle,
    lse: NativeHandle,
    count: NativeHandle,
  ];
  crossEntropyBwd(
    ...args: [logits: NativeHandle, targets: NativeHandle, lse: NativeHandle, count: NativeHandle, dloss: NativeHandle, ignoreIndex: number, reduction: 0 | 1 | 2, labelSmoothing: number]
  ): NativeHandle;
  softplusBiasFwd(delta: NativeHandle, bias: NativeHandle): NativeHandle;
  softplusBiasBwd(delta: NativeHandle, bias: NativeHandle, dout: NativeHandle): [ddelta: NativeHandle, dbias: NativeHandle];
  // matmul / linear (native/ops/matmul.cc)
  matmul(a: NativeHandle, b: NativeHandle, transA: boolean, transB: boolean): NativeHandle;
  linear(x: NativeHandle, weight: NativeHandle, bias: NativeHandle | null): NativeHandle;
  cublasAvailable(): boolean;
  cublasInfo(): string;
  setMatmulBackend(backend: 'auto' | 'fallback'): 'auto' | 'fallback';
  matmulLastPath(): '' | 'cublasLt' | 'fallback';
  // elementwise and sum (native/ops/elementwise.cc); op codes of native/elementwise_ops.h
  unary(op: number, x: NativeHandle, alpha: number, beta: number): NativeHandle;
  unaryBackward(op: number, x: NativeHandle, grad: NativeHandle, alpha: number, beta: number): NativeHandle;
  binary(op: number, a: NativeHandle, b: NativeHandle, fnName: string): NativeHandle;
  broadcastTo(x: NativeHandle, shape: number[]): NativeHandle;
  where(cond: NativeHandle, a: NativeHandle, b: NativeHandle): NativeHandle;
  sum(x: NativeHandle, axes: number[], keepDims: boolean): NativeHandle;
  // layout ops (native/ops/shape.cc); strides and offsets in elements
  stridedCopy(x: NativeHandle, shape: number[], strides: number[], offset: number): NativeHandle;
  concat(xs: NativeHandle[], axis: number): NativeHandle;
  sliceScatter(src: NativeHandle, shape: number[], starts: number[]): NativeHandle;
  indexSelect(x: NativeHandle, axis: number, index: NativeHandle): NativeHandle;
  indexAdd(src: NativeHandle, axis: number, index: NativeHandle, size: number): NativeHandle;
  // axis reductions and softmax (native/ops/reduce_extra.cc); reduceAxes reduces the axes [start, end)
  reduceAxes(x: NativeHandle, op: 'max' | 'min' | 'logsumexp', start: number, end: number, withIndex: boolean): [NativeHandle, NativeHandle | null];
  softmax(x: NativeHandle, axis: number, log: boolean): NativeHandle;
  softmaxBackward(y: NativeHandle, g: NativeHandle, axis: number, log: boolean): NativeHandle;
  argScatter(g: NativeHandle, index: NativeHandle, shape: number[], axis: number): NativeHandle;
  // fused AdamW (native/ops/adamw.cc): updates param, expAvg, expAvgSq (float32) IN PLACE; only lib/optim calls it
  adamwStep(
    ...args: [param: NativeHandle, grad: NativeHandle, expAvg: NativeHandle, expAvgSq: NativeHandle, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number, gradScale: number]
  ): void;
  // sum of the squares of every element of float tensors on one device -> 0-d float32 tensor (native/ops/adamw.cc)
  multiNormSq(tensors: NativeHandle[]): NativeHandle;
  // devices and memory
  compiledWithCuda(): boolean;
  cudaAvailable(): boolean;
  devices(): NativeDeviceInfo[];
  memory(): NativeMemory;
  emptyCache(): void;
  resetPeakMemory(): void;
  synchronize(): void;
  cudaTime(fn: () => void, iterations: number): number[];
}

let binding: NativeBinding | undefined;

/**
 * Where the compiled addon is looked for: the package's build/Release, seen from lib/ (ts-jest),
 * dist/ (compiled) or dist-test/lib/ (the compiled tests of the GPU bundle).
 */
export const ADDON_PATHS = [
  path.join(__dirname, '..', 'build', 'Release', 'mamba_node.node'),
  path.join(__dirname, '..', '..', 'build', 'Release', 'mamba_node.node'),
];

/** The loaded addon. Throws a MambaError saying how to build it when it is missing. */
export function native(): NativeBinding {
  if (binding) return binding;
  const found = ADDON_PATHS.find((p) => fs.existsSync(p));
  let b: NativeBinding;
  try {
    if (!found) throw new Error('file not found');
    b = require(found) as NativeBinding;
  } catch (e) {
    throw new MambaError(
      `mamba-node: cannot load the native addon at ${found ?? ADDON_PATHS[0]} (${(e as Error).message}); ` +
        'build it with `npm run build:addon` (MAMBA_NO_CUDA=1 for a CPU-only build)',
      { fn: 'native' },
    );
  }
  b.registerErrors(ERROR_KINDS);
  binding = b;
  return b;
}

/**
 * mamba-node: Mamba (selective state space models) for Node.js and TypeScript, with hand-written
 * CUDA kernels. Public exports only; see docs/architecture.md for the layers.
 *
 * @packageDocumentation
 */
export { Tensor } from './tensor';
export * as ops from './ops';
export * as optim from './optim';
export * as train from './train';
export { Trainer } from './train';
export * as nn from './nn';
export { noGrad, enableGrad, isGradEnabled, backward, defineFunction, gradcheck } from './autograd';
export type { BackwardOptions, FunctionContext, FunctionDefinition, GradcheckOptions, GradcheckResult } from './autograd';
export type { DType, DTypeLike, Device, DeviceLike, DataFor } from './dtype';
export { dtypeSize } from './dtype';
export { tensor, zeros, ones, full, arange, rand, randn, manualSeed, rngState, setRngState } from './creation';
export type { CreateOptions, RandomOptions, TensorData, NestedArray, Resolved } from './creation';
export { tidy, keep, dispose, memory, emptyCache, resetPeakMemory } from './memory';
export type { MemoryInfo } from './memory';
export type { CudaMemoryStats } from './native';
export { cudaAvailable, compiledWithCuda, devices, bestDevice, synchronize, cudaTime } from './device';
export type { DeviceInfo } from './device';
export { cublasAvailable, cublasInfo } from './ops/matmul';
export { loadSafetensors, saveSafetensors, readSafetensorsHeader, MAX_HEADER_BYTES } from './io/safetensors';
export type { LoadSafetensorsOptions, SaveSafetensorsOptions, SafetensorsDType, SafetensorsHeader, SafetensorsTensorInfo } from './io/safetensors';
export { writeFileAtomic } from './io/atomic';
export type { AtomicContents, AtomicSink } from './io/atomic';
export {
  MambaError,
  ArgumentError,
  ShapeError,
  DTypeError,
  DeviceError,
  OutOfMemoryError,
  DisposedError,
  InternalError,
  AutogradError,
  TrainingError,
  FormatError,
} from './errors';
export type { ErrorSource, FormatErrorSource } from './errors';

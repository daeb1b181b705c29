/** Differentiable ops, one file per op family (exported from the package as `ops`). */
export { selectiveScan, selectiveScanForward, selectiveScanBackward, SelectiveScanSaved } from './selective_scan';
export type { SelectiveScanOptions, SelectiveScanResult, SelectiveScanGrads } from './selective_scan';
export { rmsNorm } from './rmsnorm';
export type { RmsNormOptions, RmsNormResult } from './rmsnorm';
export { causalConv1d } from './conv1d';
export type { CausalConv1dOptions, CausalConv1dResult } from './conv1d';
export { embedding } from './embedding';
export type { EmbeddingOptions } from './embedding';
export { crossEntropy } from './cross_entropy';
export type { CrossEntropyOptions } from './cross_entropy';
export { softplusBias } from './softplus_bias';
export { matmul, linear, setMatmulBackend, matmulLastPath } from './matmul';
export type { MatmulOptions } from './matmul';
export { add, sub, mul, div, pow, neg, exp, log, sqrt, rsqrt, abs, square, silu, softplus, sigmoid, tanh, relu, gelu, clamp, where, broadcastTo } from './elementwise';
export { sum, mean, sumTo } from './reduce';
export type { ReduceOptions } from './reduce';
export { max, min, argmax, argmin, logsumexp, softmax, logSoftmax } from './reduce_extra';
export { permute, transpose, slice, narrow, concat, split, expand, indexSelect } from './shape';

/** Differentiable ops, one file per op family (exported from the package as `ops`). */
export { selectiveScan, selectiveScanForward, selectiveScanBackward, SelectiveScanSaved } from './selective_scan';
export type { SelectiveScanOptions, SelectiveScanResult, SelectiveScanGrads } from './selective_scan';
export { matmul, linear, setMatmulBackend, matmulLastPath } from './matmul';
export type { MatmulOptions } from './matmul';

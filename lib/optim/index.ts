/** Optimizers and their helpers: AdamW (fused native step), gradient clipping, learning-rate schedules. */
export { AdamW, paramGroupsForMamba, isNoDecay } from './adamw';
export type { AdamWOptions, AdamWStepOptions, AdamWStateDict, ParamGroup, ParamGroupInit } from './adamw';
export { gradNorm, clipGradNorm, clipScale, sumOfSquares } from './clip';
export { warmupCosine, constantSchedule } from './schedule';
export type { Schedule, WarmupCosineOptions } from './schedule';

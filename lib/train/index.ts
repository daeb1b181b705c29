/** Training: the Trainer loop, atomic checkpoints, the Selective Copying task, byte-level language modelling and an SVG training chart. */
export { Trainer, CHECKPOINT_FILE } from './trainer';
export type { TrainableModel, TrainerOptions, TrainerCallbacks, StepInfo, EvalInfo, CheckpointInfo, FitOptions, FitResult } from './trainer';
export { readCheckpoint, writeCheckpoint, encodeCheckpoint, decodeCheckpoint, writeFileAtomicSync, CHECKPOINT_FORMAT } from './checkpoint';
export type { CheckpointEntry } from './checkpoint';
export { SelectiveCopying, tokenAccuracy, IGNORE_INDEX } from './selective_copying';
export type { SelectiveCopyingOptions, CopyingArrays, CopyingBatch, CopyingSplit, TokenAccuracy } from './selective_copying';
export { ByteCorpus, evaluateByteLM, BYTE_VOCAB_SIZE } from './byte_lm';
export type { ByteCorpusOptions, ByteBatch, ByteSplit, ByteLMMetrics } from './byte_lm';
export { trainingChartSvg, writeTrainingChart } from './chart';
export type { ChartPoint, ChartOptions } from './chart';

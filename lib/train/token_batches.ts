/**
 * The batching shared by the training tasks (Selective Copying, byte-level LM): a task defines its flat host
 * arrays per (split, index), this base turns them into int32 (batch, seqLen) tensors and the endless batch
 * stream the Trainer's `data(position)` reads.
 */
import { tensor } from '../creation';
import type { Device } from '../dtype';
import { Tensor } from '../tensor';

/** One batch as tensors: inputs and targets (batch, seqLen) int32. */
export interface TokenBatch {
  inputs: Tensor<'int32'>;
  targets: Tensor<'int32'>;
}

export abstract class TokenBatches<S extends string> {
  abstract readonly batchSize: number;
  abstract readonly seqLen: number;

  /** Batch `index` of `split` as flat host arrays (batch, seqLen). */
  abstract arrays(split: S, index: number): { inputs: Int32Array; targets: Int32Array };

  /** Batch `index` of `split` as int32 tensors (batch, seqLen) on `device`. */
  batch(split: S, index: number, device: Device = 'cpu'): TokenBatch {
    const { inputs, targets } = this.arrays(split, index);
    const shape = [this.batchSize, this.seqLen];
    return { inputs: tensor(inputs, shape, { dtype: 'int32', device }), targets: tensor(targets, shape, { dtype: 'int32', device }) };
  }

  /** Batches `start`, `start + 1`, ... of `split` without end (the Trainer's `data(position)`). */
  *batches(split: S, start = 0, device: Device = 'cpu'): Generator<TokenBatch> {
    for (let i = start; ; i++) yield this.batch(split, i, device);
  }
}

/**
 * The Selective Copying task of the Mamba paper (Gu & Dao 2023, Section 4.1.1 and Appendix E.1; the
 * generator follows `torch_copying_data(L, M, A, variable=True)` of state-spaces/s4): `numTokens` (M) random
 * data tokens from [1, vocabSize - 2] are scattered, in order, over `noiseLen + numTokens` (L + M) positions
 * otherwise filled with the noise token 0; then M marker tokens (vocabSize - 1) follow, and at the marker
 * positions the model must output the data tokens in their order. A model that cannot select by content
 * (an LTI SSM, a fixed convolution) fails it; Mamba solves it. Shapes: inputs and targets (batch, seqLen)
 * int32 with seqLen = L + 2M; targets are -100 (ignored by crossEntropy) except at the M marker positions.
 * Batches are a pure function of (seed, split, index), so a training run can restart at any batch
 * (Trainer `data(position)`), and the 'train' and 'eval' splits never share a sequence: each sequence is
 * assigned to a split by one bit of its hash and drawn again when it falls in the other.
 *
 * @example
 * ```ts
 * const task = new SelectiveCopying({ noiseLen: 64, numTokens: 8, vocabSize: 10, batchSize: 32, seed: 1 });
 * const { inputs, targets } = task.batch('train', 0);          // (32, 80) int32 each
 * const acc = tokenAccuracy(logits, targets);                    // logits (32, 80, 10)
 * ```
 */
import { describeValue } from '../dtype';
import { ArgumentError, DTypeError, ShapeError } from '../errors';
import { argmax } from '../ops/reduce_extra';
import { Tensor } from '../tensor';
import { mix32, uniforms } from '../mulberry32';
import { TokenBatch, TokenBatches } from './token_batches';

/** Options of `SelectiveCopying` (the paper uses L = 4096, M = 16, vocabulary 16). */
export interface SelectiveCopyingOptions {
  /** L: noise positions; the data tokens are spread over L + M positions. Default 64. */
  noiseLen?: number;
  /** M: data tokens to memorise and copy. Default 8. */
  numTokens?: number;
  /** A: vocabulary size including the noise token 0 and the marker A - 1 (at least 3). Default 10. */
  vocabSize?: number;
  /** Sequences per batch. Default 32. */
  batchSize?: number;
  /** Seed of the whole task. Default 0. */
  seed?: number;
}

/** One batch on the host: flat (batch, seqLen) arrays. */
export interface CopyingArrays {
  inputs: Int32Array;
  targets: Int32Array;
}

/** One batch as tensors: inputs and targets (batch, seqLen) int32. */
export type CopyingBatch = TokenBatch;

/** The split a batch is drawn from; the two never share a sequence. */
export type CopyingSplit = 'train' | 'eval';

/** The target value at positions that are not scored. */
export const IGNORE_INDEX = -100;

function intOption(v: unknown, dflt: number, min: number, arg: string): number {
  const x = v === undefined ? dflt : v;
  if (!Number.isSafeInteger(x) || (x as number) < min)
    throw new ArgumentError(`SelectiveCopying: expected an integer >= ${min} for option '${arg}' but received ${describeValue(x)}`, { fn: 'SelectiveCopying', arg });
  return x as number;
}

/** The Selective Copying data generator (see the file comment). */
export class SelectiveCopying extends TokenBatches<CopyingSplit> {
  readonly noiseLen: number;
  readonly numTokens: number;
  readonly vocabSize: number;
  readonly batchSize: number;
  readonly seed: number;
  /** The noise (blank) token. */
  readonly noiseToken = 0;
  /** The marker token that asks for the next data token. */
  readonly markerToken: number;
  /** L + 2M. */
  readonly seqLen: number;

  constructor(options: SelectiveCopyingOptions = {}) {
    super();
    this.noiseLen = intOption(options.noiseLen, 64, 0, 'noiseLen');
    this.numTokens = intOption(options.numTokens, 8, 1, 'numTokens');
    this.vocabSize = intOption(options.vocabSize, 10, 3, 'vocabSize');
    this.batchSize = intOption(options.batchSize, 32, 1, 'batchSize');
    this.seed = intOption(options.seed, 0, 0, 'seed');
    this.markerToken = this.vocabSize - 1;
    this.seqLen = this.noiseLen + 2 * this.numTokens;
  }

  /** Batch `index` of `split` as host arrays (batch, seqLen), a pure function of (seed, split, index). */
  arrays(split: CopyingSplit, index: number): CopyingArrays {
    if (split !== 'train' && split !== 'eval')
      throw new ArgumentError(`SelectiveCopying: expected 'train' or 'eval' for argument 'split' but received ${describeValue(split)}`, { fn: 'SelectiveCopying', arg: 'split' });
    if (!Number.isSafeInteger(index) || index < 0)
      throw new ArgumentError(`SelectiveCopying: expected an integer >= 0 for argument 'index' but received ${describeValue(index)}`, { fn: 'SelectiveCopying', arg: 'index' });
    const { batchSize: B, seqLen: T, numTokens: M, noiseLen: L } = this;
    const want = split === 'train' ? 0 : 1;
    const rand = uniforms(mix32(mix32(mix32(0x2545f491, this.seed), index % 4294967296), Math.floor(index / 4294967296) * 2 + want));
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
    const span = L + M;
    const slots = new Int32Array(span);
    const pos = new Int32Array(M);
    const tok = new Int32Array(M);
    for (let b = 0; b < B; b++) {
      // Draw until the sequence's hash puts it in this split (half the draws on average).
      for (;;) {
        for (let i = 0; i < span; i++) slots[i] = i;
        for (let j = 0; j < M; j++) {
          const r = j + Math.floor(rand() * (span - j));
          const t = slots[j];
          slots[j] = slots[r];
          slots[r] = t;
        }
        pos.set(slots.subarray(0, M));
        pos.sort();
        let h = 0x811c9dc5;
        for (let j = 0; j < M; j++) {
          tok[j] = 1 + Math.floor(rand() * (this.vocabSize - 2));
          h = mix32(mix32(h, pos[j]), tok[j]);
        }
        if ((h & 1) === want) break;
      }
      const row = b * T;
      for (let j = 0; j < M; j++) {
        inputs[row + pos[j]] = tok[j];
        inputs[row + span + j] = this.markerToken;
        targets[row + span + j] = tok[j];
      }
    }
    return { inputs, targets };
  }
}

/** Token accuracy over scored positions. */
export interface TokenAccuracy {
  /** Scored positions predicted right. */
  correct: number;
  /** Scored positions (targets other than ignoreIndex). */
  total: number;
  /** correct / total (NaN when nothing is scored). */
  accuracy: number;
  /** Fraction of sequences with every scored position right. */
  sequenceAccuracy: number;
}

/**
 * Accuracy of argmax(logits) against `targets` where targets differ from `ignoreIndex` (the answer positions
 * of Selective Copying). logits (batch, seqLen, V) or (N, V); targets of their leading shape (a Tensor or a
 * flat Int32Array). Reads the predictions back to the host.
 */
export function tokenAccuracy(logits: Tensor, targets: Tensor | Int32Array, ignoreIndex = IGNORE_INDEX): TokenAccuracy {
  const fn = 'tokenAccuracy';
  if (!(logits instanceof Tensor) || logits.rank < 2) throw new ShapeError(`${fn}: expected logits (..., V) of rank >= 2 but received ${describeValue(logits)}`, { fn, arg: 'logits' });
  const rows = logits.rank === 2 ? 1 : logits.shape[0];
  const n = logits.size / logits.shape[logits.rank - 1];
  if (targets instanceof Tensor && targets.dtype !== 'int32') throw new DTypeError(`${fn}: expected int32 targets but received ${targets.dtype}`, { fn, arg: 'targets' });
  const t = targets instanceof Tensor ? (targets.dataSync() as Int32Array) : targets;
  if (!ArrayBuffer.isView(t) || t.length !== n)
    throw new ShapeError(`${fn}: expected ${n} int32 targets for logits [${logits.shape.join(', ')}]`, { fn, arg: 'targets' });
  const predTensor = argmax(logits, -1);
  const pred = predTensor.dataSync() as Int32Array;
  predTensor.dispose();
  const perRow = n / rows;
  let correct = 0;
  let total = 0;
  let goodRows = 0;
  for (let r = 0; r < rows; r++) {
    let ok = true;
    for (let i = r * perRow; i < (r + 1) * perRow; i++) {
      if (t[i] === ignoreIndex) continue;
      total++;
      if (pred[i] === t[i]) correct++;
      else ok = false;
    }
    if (ok) goodRows++;
  }
  return { correct, total, accuracy: total ? correct / total : NaN, sequenceAccuracy: goodRows / rows };
}

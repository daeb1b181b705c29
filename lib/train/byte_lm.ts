/**
 * Byte-level language modelling on one file: the vocabulary is the 256 byte values, the model reads
 * `seqLen` bytes and predicts each next byte. The first 90% of the file (`heldOutFraction` 0.1) is the
 * training text and the last 10% the held-out text; every window lies wholly inside one of them, so no
 * held-out byte is ever trained on. A batch is `batchSize` windows at random offsets, a pure function of
 * (seed, split, index), so a run can restart at any batch (Trainer `data(position)`) and held-out scores
 * are computed on the same windows every time. Shapes: inputs and targets (batch, seqLen) int32, targets
 * the inputs shifted by one byte. `evaluateByteLM` reports the held-out cross entropy in nats and bits per
 * byte and the next-byte accuracy. `mamba-node train --data FILE` (lib/cli/train.ts) trains on it.
 *
 * @example
 * ```ts
 * const corpus = ByteCorpus.fromFile('book.txt', { seqLen: 128, batchSize: 16, seed: 1 });
 * const { inputs, targets } = corpus.batch('train', 0);               // (16, 128) int32 each
 * const m = evaluateByteLM((ids) => model.forward(ids), corpus, { batches: 4 });
 * console.log(m.bitsPerByte, m.accuracy);
 * ```
 */
import * as fs from 'node:fs';

import type { Device } from '../dtype';
import { describeValue } from '../dtype';
import { ArgumentError, ShapeError } from '../errors';
import { tidy } from '../memory';
import { crossEntropy } from '../ops/cross_entropy';
import { Tensor } from '../tensor';
import { mix32, mulberry32 } from '../mulberry32';
import { TokenBatch, TokenBatches } from './token_batches';
import { tokenAccuracy } from './selective_copying';

/** The vocabulary of a byte-level model. */
export const BYTE_VOCAB_SIZE = 256;

/** Options of `ByteCorpus`. */
export interface ByteCorpusOptions {
  /** Bytes the model reads per window (each window holds seqLen + 1 bytes). Default 128. */
  seqLen?: number;
  /** Windows per batch. Default 16. */
  batchSize?: number;
  /** Seed of the window offsets. Default 0. */
  seed?: number;
  /** The fraction at the end of the text held out for evaluation, in (0, 1). Default 0.1. */
  heldOutFraction?: number;
}

/** Which part of the text a batch is drawn from. */
export type ByteSplit = 'train' | 'eval';

/** One batch as tensors: inputs and targets (batch, seqLen) int32, targets[b, t] = inputs[b, t + 1] in the text. */
export type ByteBatch = TokenBatch;

/** Held-out scores of `evaluateByteLM`. */
export interface ByteLMMetrics {
  /** Mean cross entropy in nats per byte. */
  loss: number;
  /** The same in bits per byte (loss / ln 2). */
  bitsPerByte: number;
  /** Fraction of bytes whose argmax prediction is right. */
  accuracy: number;
  /** Bytes scored. */
  bytes: number;
}

/** Mulberry32 uniforms in [0, 1) with 53 random bits (two draws), so offsets are uniform in files above 4 GiB too. */
function uniforms53(seed: number): () => number {
  const next = mulberry32(seed);
  return () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
}

/** Bytes of training text in a text of n bytes: the held-out part is the rest. */
function trainLength(n: number, heldOutFraction: number): number {
  return Math.floor(n * (1 - heldOutFraction));
}

function intOption(v: unknown, dflt: number, min: number, fn: string, arg: string): number {
  const x = v === undefined ? dflt : v;
  if (!Number.isSafeInteger(x) || (x as number) < min)
    throw new ArgumentError(`${fn}: expected an integer >= ${min} for option '${arg}' but received ${describeValue(x)}`, { fn, arg });
  return x as number;
}

/** A text file as byte-level training and held-out windows (see the file comment). */
export class ByteCorpus extends TokenBatches<ByteSplit> {
  readonly seqLen: number;
  readonly batchSize: number;
  readonly seed: number;
  /** Bytes of training text: the first `floor(length · (1 - heldOutFraction))`. */
  readonly trainBytes: number;
  /** Bytes of held-out text: the rest. */
  readonly heldOutBytes: number;
  private readonly data: Uint8Array;

  /**
   * A corpus over `data` (not copied). Throws an ArgumentError naming `ByteCorpus` and `data` when either
   * part is shorter than one window (seqLen + 1 bytes).
   */
  constructor(data: Uint8Array, options: ByteCorpusOptions = {}) {
    super();
    const fn = 'ByteCorpus';
    if (!(data instanceof Uint8Array)) throw new ArgumentError(`${fn}: expected a Uint8Array for argument 'data' but received ${describeValue(data)}`, { fn, arg: 'data' });
    if (options === null || typeof options !== 'object') throw new ArgumentError(`${fn}: expected an options object`, { fn, arg: 'options' });
    this.seqLen = intOption(options.seqLen, 128, 1, fn, 'seqLen');
    this.batchSize = intOption(options.batchSize, 16, 1, fn, 'batchSize');
    this.seed = intOption(options.seed, 0, 0, fn, 'seed');
    const held = options.heldOutFraction ?? 0.1;
    if (typeof held !== 'number' || !(held > 0 && held < 1))
      throw new ArgumentError(`${fn}: expected a number in (0, 1) for option 'heldOutFraction' but received ${describeValue(held)}`, { fn, arg: 'heldOutFraction' });
    this.trainBytes = trainLength(data.length, held);
    this.heldOutBytes = data.length - this.trainBytes;
    const window = this.seqLen + 1;
    if (data.length === 0) throw new ArgumentError(`${fn}: the text is empty`, { fn, arg: 'data' });
    if (Math.min(this.trainBytes, this.heldOutBytes) < window)
      throw new ArgumentError(
        `${fn}: ${data.length} bytes are too few for windows of ${window} bytes in both the training part (${this.trainBytes} bytes) and ` +
          `the held-out part (${this.heldOutBytes} bytes); it needs at least ${ByteCorpus.minimumBytes(this.seqLen, held)} bytes (or a smaller seqLen)`,
        { fn, arg: 'data' },
      );
    this.data = data;
  }

  /** The length of the shortest text that holds a window of seqLen + 1 bytes in both parts. */
  static minimumBytes(seqLen: number, heldOutFraction = 0.1): number {
    const window = seqLen + 1;
    const fits = (n: number) => {
      const train = trainLength(n, heldOutFraction);
      return train >= window && n - train >= window;
    };
    // Below both bounds (train = floor(n(1 - h)) >= window needs n(1 - h) >= window; held = n - train < nh + 1),
    // then up past the rounding of the split point.
    let n = Math.max(1, Math.floor(Math.max((window - 1) / heldOutFraction, window / (1 - heldOutFraction))) - 1);
    while (!fits(n)) n++;
    return n;
  }

  /**
   * Reads `file` whole. A missing or unreadable file, an empty one and one too short for `seqLen` are
   * ArgumentErrors naming `ByteCorpus.fromFile` and `path` (a file-system error is the `cause`).
   */
  static fromFile(file: string, options: ByteCorpusOptions = {}): ByteCorpus {
    const fn = 'ByteCorpus.fromFile';
    if (typeof file !== 'string' || file.length === 0) throw new ArgumentError(`${fn}: expected a file path for argument 'path' but received ${describeValue(file)}`, { fn, arg: 'path' });
    let data: Buffer;
    try {
      data = fs.readFileSync(file);
    } catch (e) {
      const err = new ArgumentError(`${fn}: cannot read ${file} (${(e as Error).message})`, { fn, arg: 'path' });
      (err as { cause?: unknown }).cause = e;
      throw err;
    }
    if (data.length === 0) throw new ArgumentError(`${fn}: ${file} is empty`, { fn, arg: 'path' });
    try {
      return new ByteCorpus(new Uint8Array(data.buffer, data.byteOffset, data.length), options);
    } catch (e) {
      if (e instanceof ArgumentError && e.arg === 'data') throw new ArgumentError(`${fn}: ${file}: ${e.message.replace(/^ByteCorpus: /, '')}`, { fn, arg: 'path' });
      throw e;
    }
  }

  /** Batch `index` of `split` as host arrays: inputs and targets (batch, seqLen), flat. */
  arrays(split: ByteSplit, index: number): { inputs: Int32Array; targets: Int32Array } {
    const fn = 'ByteCorpus';
    if (split !== 'train' && split !== 'eval')
      throw new ArgumentError(`${fn}: expected 'train' or 'eval' for argument 'split' but received ${describeValue(split)}`, { fn, arg: 'split' });
    if (!Number.isSafeInteger(index) || index < 0)
      throw new ArgumentError(`${fn}: expected an integer >= 0 for argument 'index' but received ${describeValue(index)}`, { fn, arg: 'index' });
    const { batchSize: B, seqLen: T } = this;
    const [start, length] = split === 'train' ? [0, this.trainBytes] : [this.trainBytes, this.heldOutBytes];
    const offsets = length - T; // window starts in [start, start + offsets)
    const rand = uniforms53(mix32(mix32(mix32(0x3c6ef372, this.seed), index % 4294967296), Math.floor(index / 4294967296) * 2 + (split === 'train' ? 0 : 1)));
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const at = start + Math.floor(rand() * offsets);
      for (let t = 0; t < T; t++) {
        inputs[b * T + t] = this.data[at + t];
        targets[b * T + t] = this.data[at + t + 1];
      }
    }
    return { inputs, targets };
  }
}

/**
 * Held-out cross entropy (nats and bits per byte) and next-byte accuracy over `batches` held-out batches
 * (0 .. batches - 1, the same windows on every call). `forward` maps ids (batch, seqLen) int32 to logits
 * (batch, seqLen, V) with V >= 256; run it with grad off (the Trainer's evalFn is).
 *
 * @example
 * ```ts
 * const { loss, bitsPerByte, accuracy } = noGrad(() => evaluateByteLM((ids) => model.forward(ids), corpus));
 * ```
 */
export function evaluateByteLM(forward: (ids: Tensor<'int32'>) => Tensor, corpus: ByteCorpus, options: { batches?: number; device?: Device } = {}): ByteLMMetrics {
  const fn = 'evaluateByteLM';
  if (typeof forward !== 'function') throw new ArgumentError(`${fn}: expected a function for argument 'forward'`, { fn, arg: 'forward' });
  if (!(corpus instanceof ByteCorpus)) throw new ArgumentError(`${fn}: expected a ByteCorpus for argument 'corpus' but received ${describeValue(corpus)}`, { fn, arg: 'corpus' });
  const batches = intOption(options.batches, 4, 1, fn, 'batches');
  let nats = 0;
  let correct = 0;
  let total = 0;
  for (let i = 0; i < batches; i++)
    tidy(() => {
      const b = corpus.batch('eval', i, options.device);
      const logits = forward(b.inputs);
      if (!(logits instanceof Tensor) || logits.rank !== 3 || logits.shape[0] !== corpus.batchSize || logits.shape[1] !== corpus.seqLen || logits.shape[2] < BYTE_VOCAB_SIZE)
        throw new ShapeError(
          `${fn}: forward must return logits (${corpus.batchSize}, ${corpus.seqLen}, >= ${BYTE_VOCAB_SIZE}) but returned ${logits instanceof Tensor ? `[${logits.shape.join(', ')}]` : describeValue(logits)}`,
          { fn, arg: 'forward' },
        );
      nats += (crossEntropy(logits, b.targets, { reduction: 'sum' }).dataSync() as Float32Array)[0];
      const acc = tokenAccuracy(logits, b.targets);
      correct += acc.correct;
      total += acc.total;
    });
  const loss = nats / total;
  return { loss, bitsPerByte: loss / Math.LN2, accuracy: correct / total, bytes: total };
}

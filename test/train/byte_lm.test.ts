// Byte-level language modelling (lib/train/byte_lm.ts) and `mamba-node train --data`: windows come from the
// right part of the text (training: the first 90%, held out: the last 10%), targets are the inputs shifted by
// one byte, batches are a pure function of (seed, split, index), short / empty / missing files are typed
// errors, the held-out metrics are right on a model with known output, a small MambaLM's loss goes down, and
// the command writes its chart and checkpoint, prints bits per byte and accuracy, and resumes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { ArgumentError, ShapeError, nn, noGrad, ops, optim, tensor, zeros } from '../../lib';
import { parseTrainArgs, trainCommand } from '../../lib/cli/train';
import { BYTE_VOCAB_SIZE, ByteBatch, ByteCorpus, Trainer, evaluateByteLM, readCheckpoint } from '../../lib/train';
import { expectEqualArrays, expectTypedError, rng } from '../setup';

let dir = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-byte-lm-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Seeded English-like text: sentences drawn from a few templates, so a small model learns it quickly. */
function text(bytes: number, seed = 1): Buffer {
  const r = rng(seed);
  const subjects = ['the cat', 'a dog', 'the old man', 'my sister', 'the bird'];
  const verbs = ['sees', 'likes', 'chases', 'finds', 'hears'];
  const objects = ['the ball.', 'a red fish.', 'the moon.', 'some bread.', 'the river.'];
  const pick = (a: string[]) => a[Math.floor(r() * a.length)];
  let s = '';
  while (s.length < bytes) s += `${pick(subjects)} ${pick(verbs)} ${pick(objects)} `;
  return Buffer.from(s.slice(0, bytes), 'latin1');
}

describe('ByteCorpus', () => {
  test('windows: targets are the next bytes; training windows from the first 90%, held-out ones from the last 10%', () => {
    // Bytes 0..127 in the training part and 128..255 in the held-out part show where every byte came from.
    const n = 5000;
    const data = new Uint8Array(n);
    const corpus0 = new ByteCorpus(data, { seqLen: 16 });
    expect(corpus0.trainBytes).toBe(4500);
    expect(corpus0.heldOutBytes).toBe(500);
    for (let i = 0; i < n; i++) data[i] = i < 4500 ? i % 128 : 128 + (i % 128);
    const corpus = new ByteCorpus(data, { seqLen: 16, batchSize: 8, seed: 4 });
    for (const [split, lo, hi] of [
      ['train', 0, 127],
      ['eval', 128, 255],
    ] as const) {
      const starts = new Set<number>();
      let bad = 0;
      for (let i = 0; i < 50; i++) {
        const { inputs, targets } = corpus.arrays(split, i);
        expect(inputs.length).toBe(8 * 16);
        for (let b = 0; b < 8; b++) {
          for (let t = 0; t < 16; t++) {
            const x = inputs[b * 16 + t];
            const y = targets[b * 16 + t];
            // in the band of its part, and consecutive bytes of the text (x + 1, wrapping inside the band)
            if (!(x >= lo && x <= hi && y >= lo && y <= hi) || y !== lo + ((x - lo + 1) % 128)) bad++;
            if (t + 1 < 16 && inputs[b * 16 + t + 1] !== y) bad++;
          }
          starts.add(inputs[b * 16]);
        }
      }
      expect(bad).toBe(0);
      // Offsets spread over the whole part: most of the 128 residues appear as a window's first byte.
      expect(starts.size).toBeGreaterThan(100);
    }
  });

  test('deterministic by (seed, split, index); another index, seed or split differs', () => {
    const data = text(4000);
    const a = new ByteCorpus(data, { seqLen: 32, batchSize: 4, seed: 1 });
    const b = new ByteCorpus(data, { seqLen: 32, batchSize: 4, seed: 1 });
    expectEqualArrays(a.arrays('train', 7).inputs, b.arrays('train', 7).inputs);
    expectEqualArrays(a.arrays('eval', 7).targets, b.arrays('eval', 7).targets);
    const same = (x: Int32Array, y: Int32Array) => Buffer.from(x.buffer).equals(Buffer.from(y.buffer));
    expect(same(a.arrays('train', 7).inputs, a.arrays('train', 8).inputs)).toBe(false);
    expect(same(a.arrays('train', 7).inputs, new ByteCorpus(data, { seqLen: 32, batchSize: 4, seed: 2 }).arrays('train', 7).inputs)).toBe(false);
    expect(same(a.arrays('train', 7).inputs, a.arrays('eval', 7).inputs)).toBe(false);
    // batches() yields batch(i) from its start on, as the Trainer's data(position) needs.
    const it = a.batches('train', 3);
    const first = it.next().value as ByteBatch;
    expectEqualArrays(first.inputs.dataSync(), a.arrays('train', 3).inputs);
    expect(first.inputs.shape).toEqual([4, 32]);
    expect(first.targets.dtype).toBe('int32');
    first.inputs.dispose();
    first.targets.dispose();
  });

  test('minimumBytes is the shortest text each part of which holds one window', () => {
    for (const seqLen of [1, 2, 7, 31, 128, 1000])
      for (const held of [0.1, 0.25, 0.5, 0.9]) {
        const n = ByteCorpus.minimumBytes(seqLen, held);
        expect(() => new ByteCorpus(new Uint8Array(n), { seqLen, heldOutFraction: held })).not.toThrow();
        expectTypedError(() => new ByteCorpus(new Uint8Array(n - 1), { seqLen, heldOutFraction: held }), ArgumentError, 'ByteCorpus', 'data');
      }
    expect(ByteCorpus.minimumBytes(128)).toBe(1281);
  });

  test('missing, empty and too-short files and bad options are typed errors', () => {
    const missing = path.join(dir, 'nope.txt');
    expectTypedError(() => ByteCorpus.fromFile(missing), ArgumentError, 'ByteCorpus.fromFile', 'path');
    expect(() => ByteCorpus.fromFile(missing)).toThrow(/cannot read .*nope\.txt/);
    const empty = path.join(dir, 'empty.txt');
    fs.writeFileSync(empty, '');
    expectTypedError(() => ByteCorpus.fromFile(empty), ArgumentError, 'ByteCorpus.fromFile', 'path');
    expect(() => ByteCorpus.fromFile(empty)).toThrow(/is empty/);
    const short = path.join(dir, 'short.txt');
    fs.writeFileSync(short, text(1280));
    expectTypedError(() => ByteCorpus.fromFile(short), ArgumentError, 'ByteCorpus.fromFile', 'path');
    expect(() => ByteCorpus.fromFile(short)).toThrow(/1280 bytes are too few .* at least 1281 bytes/);
    expect(ByteCorpus.fromFile(short, { seqLen: 64 }).seqLen).toBe(64);
    expectTypedError(() => ByteCorpus.fromFile(''), ArgumentError, 'ByteCorpus.fromFile', 'path');
    const data = text(3000);
    expectTypedError(() => new ByteCorpus([1, 2] as unknown as Uint8Array), ArgumentError, 'ByteCorpus', 'data');
    expectTypedError(() => new ByteCorpus(data, { seqLen: 0 }), ArgumentError, 'ByteCorpus', 'seqLen');
    expectTypedError(() => new ByteCorpus(data, { batchSize: 1.5 }), ArgumentError, 'ByteCorpus', 'batchSize');
    expectTypedError(() => new ByteCorpus(data, { seed: -1 }), ArgumentError, 'ByteCorpus', 'seed');
    expectTypedError(() => new ByteCorpus(data, { heldOutFraction: 1 }), ArgumentError, 'ByteCorpus', 'heldOutFraction');
    const c = new ByteCorpus(data, { seqLen: 8 });
    expectTypedError(() => c.arrays('test' as 'eval', 0), ArgumentError, 'ByteCorpus', 'split');
    expectTypedError(() => c.arrays('train', -1), ArgumentError, 'ByteCorpus', 'index');
  });
});

describe('evaluateByteLM', () => {
  test('uniform logits score ln 256 nats (8 bits) per byte; accuracy counts argmax hits', () => {
    const corpus = new ByteCorpus(text(3000), { seqLen: 16, batchSize: 4 });
    // All-equal logits: argmax is byte 0, which the text never holds.
    const m = evaluateByteLM((ids) => zeros([ids.shape[0], ids.shape[1], BYTE_VOCAB_SIZE]), corpus, { batches: 3 });
    expect(m.bytes).toBe(3 * 4 * 16);
    expect(m.loss).toBeCloseTo(Math.log(256), 5);
    expect(m.bitsPerByte).toBeCloseTo(8, 5);
    expect(m.accuracy).toBe(0);
    // A model that always puts logit 1 on the space byte (0 elsewhere) is right exactly where the next byte
    // is a space, and its loss is log(255 + e) - 1 there, log(255 + e) elsewhere.
    let spaces = 0;
    for (let i = 0; i < 2; i++) for (const y of corpus.arrays('eval', i).targets) spaces += y === 32 ? 1 : 0;
    expect(spaces).toBeGreaterThan(0);
    const oneHot = new Float32Array(256);
    oneHot[32] = 1;
    const bySpace = evaluateByteLM((ids) => ops.add(zeros([ids.shape[0], ids.shape[1], 256]), tensor(oneHot)), corpus, { batches: 2 });
    const total = 2 * 4 * 16;
    expect(bySpace.accuracy).toBeCloseTo(spaces / total, 12);
    expect(bySpace.loss).toBeCloseTo(Math.log(255 + Math.E) - spaces / total, 5);
    expectTypedError(() => evaluateByteLM((ids) => zeros([ids.shape[0], 3]), corpus), ShapeError, 'evaluateByteLM', 'forward');
    expectTypedError(() => evaluateByteLM((ids) => zeros([ids.shape[0], ids.shape[1], 255]), corpus), ShapeError, 'evaluateByteLM', 'forward');
    expectTypedError(() => evaluateByteLM((ids) => zeros([1]), corpus, { batches: 0 }), ArgumentError, 'evaluateByteLM', 'batches');
  });
});

describe('byte-level training', () => {
  test('a small MambaLM learns the text: training and held-out loss go down', async () => {
    const corpus = new ByteCorpus(text(6000), { seqLen: 32, batchSize: 8, seed: 2 });
    const model = new nn.MambaLM({ dModel: 32, nLayer: 1, vocabSize: BYTE_VOCAB_SIZE }, { seed: 3 });
    const optimizer = new optim.AdamW(optim.paramGroupsForMamba(model.namedParameters()), { lr: 1e-2, weightDecay: 0.1 });
    const evaluate = () => noGrad(() => evaluateByteLM((ids) => model.forward(ids), corpus, { batches: 2 }));
    const before = evaluate();
    const trainer = new Trainer({
      model,
      optimizer,
      lossFn: (m: nn.MambaLM, b: ByteBatch) => ops.crossEntropy(m.forward(b.inputs), b.targets),
      data: (pos) => corpus.batches('train', pos),
      maxGradNorm: 1,
    });
    const { losses } = await trainer.fit({ steps: 40 });
    const after = evaluate();
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(before.loss).toBeGreaterThan(5); // about ln 256 = 5.55 at initialisation
    expect(mean(losses.slice(-5))).toBeLessThan(0.6 * mean(losses.slice(0, 5)));
    expect(after.loss).toBeLessThan(0.6 * before.loss);
    expect(after.accuracy).toBeGreaterThan(before.accuracy + 0.2);
    optimizer.dispose();
    model.dispose();
  });
});

describe('mamba-node train --data', () => {
  test('parses options: byte-LM defaults; options of the other task are refused', () => {
    const o = parseTrainArgs(['--data', 'book.txt']);
    expect(o).toMatchObject({ data: 'book.txt', vocab: 256, seqLen: 128, batch: 16, dModel: 64, steps: 2000, evalEvery: 100, evalBatches: 4 });
    expect((o as { out: string }).out).toBe(path.join('runs', 'byte-lm'));
    // The Selective Copying defaults depend on the device (parsing needs no GPU, so both are checked anywhere).
    expect(parseTrainArgs(['--device', 'cpu'])).toMatchObject({ data: undefined, vocab: 8, batch: 32, noiseLen: 16, dtype: 'float32' });
    expect(parseTrainArgs(['--device', 'cuda'])).toMatchObject({ data: undefined, vocab: 10, batch: 64, noiseLen: 32, dtype: 'bfloat16' });
    expect(() => parseTrainArgs(['--data', 'a.txt', '--vocab', '16'])).toThrow(/--vocab applies to Selective Copying/);
    expect(() => parseTrainArgs(['--data', 'a.txt', '--target', '0.5'])).toThrow(/--target/);
    expect(() => parseTrainArgs(['--seq-len', '64'])).toThrow(/--seq-len applies only with --data/);
    expect(() => parseTrainArgs(['--data', 'a.txt', '--seq-len', '0'])).toThrow(/--seq-len/);
    expect(() => parseTrainArgs(['--data', ''])).toThrow(/--data/);
  });

  test('a short run writes chart.svg and a checkpoint, prints bits per byte and accuracy; --resume continues it', async () => {
    const out = path.join(dir, 'run');
    const file = path.join(dir, 'text.txt');
    fs.writeFileSync(file, text(8000, 5));
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      const args = ['--data', file, '--out', out, '--time', '0', '--seq-len', '32', '--batch', '8', '--d-model', '32', '--layers', '1', '--eval-every', '10', '--eval-batches', '2', '--warmup', '5', '--lr', '0.01', '--device', 'cpu'];
      expect(await trainCommand([...args, '--steps', '30'])).toBe(0);
      const lines = log.mock.calls.map(([l]) => String(l));
      expect(lines[0]).toMatch(/7200 training bytes, 800 held out; windows of 32 bytes, batch 8/);
      const evals = lines.filter((l) => l.startsWith('eval at step')).map((l) => Number(/held-out loss ([0-9.]+) nats\/byte/.exec(l)![1]));
      expect(evals).toHaveLength(3);
      expect(evals[2]).toBeLessThan(evals[0]);
      const last = lines.at(-1)!;
      expect(last).toMatch(/^held-out loss [0-9.]+ nats\/byte \([0-9.]+ bits\/byte\), next-byte accuracy [0-9.]+% on 512 held-out bytes after 30 steps/);
      expect(fs.readFileSync(path.join(out, 'chart.svg'), 'utf8')).toContain('<polyline');
      expect(((await readCheckpoint(path.join(out, 'checkpoint.safetensors'))).state as { step: number }).step).toBe(30);
      log.mockClear();
      expect(await trainCommand([...args, '--steps', '40', '--resume'])).toBe(0);
      expect(log.mock.calls.some(([l]) => String(l) === 'resumed at step 30')).toBe(true);
      expect(((await readCheckpoint(path.join(out, 'checkpoint.safetensors'))).state as { step: number }).step).toBe(40);
    } finally {
      log.mockRestore();
    }
  });

  test('a missing or too-short file is refused before training starts', async () => {
    const missing = path.join(dir, 'missing.txt');
    await expect(trainCommand(['--data', missing, '--out', path.join(dir, 'x'), '--device', 'cpu'])).rejects.toMatchObject({ name: 'ArgumentError', fn: 'ByteCorpus.fromFile', arg: 'path' });
    const short = path.join(dir, 'short2.txt');
    fs.writeFileSync(short, 'abc');
    await expect(trainCommand(['--data', short, '--out', path.join(dir, 'x'), '--device', 'cpu'])).rejects.toThrow(/3 bytes are too few/);
    expect(fs.existsSync(path.join(dir, 'x'))).toBe(false);
  });
});

// Selective Copying data (layout of the Mamba paper's task: tokens scattered in order among noise, then
// markers where the tokens must be output; deterministic by (seed, split, index); train and eval disjoint),
// the token-accuracy metric, and the SVG chart.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { ArgumentError, DTypeError, tensor, tidy } from '../../lib';
import { IGNORE_INDEX, SelectiveCopying, tokenAccuracy, trainingChartSvg, writeTrainingChart } from '../../lib/train';
import { expectEqualArrays, expectTypedError } from '../setup';

describe('SelectiveCopying', () => {
  test('layout: M tokens in order among noise, then M markers whose targets are the tokens', () => {
    const task = new SelectiveCopying({ noiseLen: 20, numTokens: 5, vocabSize: 8, batchSize: 64, seed: 3 });
    expect(task.seqLen).toBe(30);
    const { inputs, targets } = task.arrays('train', 0);
    const T = task.seqLen;
    for (let b = 0; b < 64; b++) {
      const row = inputs.subarray(b * T, (b + 1) * T);
      const tgt = targets.subarray(b * T, (b + 1) * T);
      const data = Array.from(row.subarray(0, 25)).filter((v) => v !== 0);
      expect(data).toHaveLength(5);
      for (const v of data) expect(v >= 1 && v <= 6).toBe(true);
      expectEqualArrays(row.subarray(25), [7, 7, 7, 7, 7]);
      expectEqualArrays(tgt.subarray(25), data);
      expect(Array.from(tgt.subarray(0, 25)).every((v) => v === IGNORE_INDEX)).toBe(true);
    }
  });

  test('deterministic by (seed, split, index); positions spread over the whole span', () => {
    const a = new SelectiveCopying({ seed: 1, batchSize: 8 });
    const b = new SelectiveCopying({ seed: 1, batchSize: 8 });
    expectEqualArrays(a.arrays('train', 5).inputs, b.arrays('train', 5).inputs);
    expect(Buffer.from(a.arrays('train', 5).inputs.buffer).equals(Buffer.from(a.arrays('train', 6).inputs.buffer))).toBe(false);
    expect(Buffer.from(a.arrays('train', 5).inputs.buffer).equals(Buffer.from(new SelectiveCopying({ seed: 2, batchSize: 8 }).arrays('train', 5).inputs.buffer))).toBe(false);
    const seen = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const { inputs } = a.arrays('train', i);
      for (let k = 0; k < inputs.length; k++) if (inputs[k] !== 0 && inputs[k] !== a.markerToken) seen.add(k % a.seqLen);
    }
    expect(seen.size).toBe(a.noiseLen + a.numTokens);
  });

  test('train and eval never share a sequence', () => {
    const task = new SelectiveCopying({ noiseLen: 4, numTokens: 2, vocabSize: 4, batchSize: 50, seed: 9 });
    const rows = (split: 'train' | 'eval') => {
      const out = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const { inputs } = task.arrays(split, i);
        for (let b = 0; b < 50; b++) out.add(inputs.subarray(b * task.seqLen, (b + 1) * task.seqLen).join(','));
      }
      return out;
    };
    const train = rows('train');
    const evalRows = rows('eval');
    // 15 position pairs x 4 token pairs = 60 sequences in all: both splits cover their half and no more.
    expect(train.size + evalRows.size).toBeLessThanOrEqual(60);
    expect(train.size).toBeGreaterThan(10);
    for (const r of evalRows) expect(train.has(r)).toBe(false);
  });

  test('tensors, the batch generator and bad options', () => {
    const task = new SelectiveCopying({ batchSize: 2 });
    const it = task.batches('eval', 3);
    const b = it.next().value!;
    expect(b.inputs.shape).toEqual([2, task.seqLen]);
    expect(b.targets.dtype).toBe('int32');
    expectEqualArrays(b.inputs.dataSync(), task.arrays('eval', 3).inputs);
    b.inputs.dispose();
    b.targets.dispose();
    expectTypedError(() => new SelectiveCopying({ vocabSize: 2 }), ArgumentError, 'SelectiveCopying', 'vocabSize');
    expectTypedError(() => new SelectiveCopying({ numTokens: 0 }), ArgumentError, 'SelectiveCopying', 'numTokens');
    expectTypedError(() => task.arrays('test' as 'train', 0), ArgumentError, 'SelectiveCopying', 'split');
    expectTypedError(() => task.arrays('train', -1), ArgumentError, 'SelectiveCopying', 'index');
  });
});

describe('tokenAccuracy', () => {
  test('scores only positions whose target is not ignored', () => {
    tidy(() => {
      // (2, 3, 4) logits: argmax per position = [3, 0, 1] and [2, 2, 0]
      const logits = tensor([
        [[0, 0, 0, 9], [9, 0, 0, 0], [0, 9, 0, 0]],
        [[0, 0, 9, 0], [0, 0, 9, 0], [9, 0, 0, 0]],
      ]);
      const targets = tensor([[IGNORE_INDEX, 0, 1], [IGNORE_INDEX, 2, 3]], undefined, { dtype: 'int32' });
      const r = tokenAccuracy(logits, targets);
      expect(r).toEqual({ correct: 3, total: 4, accuracy: 0.75, sequenceAccuracy: 0.5 });
      expectTypedError(() => tokenAccuracy(logits, tensor([[1, 2, 3], [1, 2, 3]])), DTypeError, 'tokenAccuracy', 'targets');
    });
  });
});

describe('training chart', () => {
  test('an SVG with a loss line and an accuracy line', () => {
    const points = Array.from({ length: 50 }, (_, i) => ({ step: i + 1, loss: 3 * Math.exp(-i / 10), accuracy: i % 10 === 9 ? i / 50 : undefined }));
    points.push({ step: 51, loss: NaN, accuracy: undefined });
    const svg = trainingChartSvg(points, { title: 'copy <test>' });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg).toContain('copy &lt;test&gt;');
    expect(svg).toContain('loss (log)');
    expect(svg).not.toContain('NaN');
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-chart-')), 'chart.svg');
    writeTrainingChart(file, points);
    expect(fs.readFileSync(file, 'utf8')).toContain('<polyline');
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
    expect(trainingChartSvg([])).toContain('</svg>');
  });
});

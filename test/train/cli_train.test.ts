// `mamba-node train` (lib/cli/train.ts): argument parsing, and a short run that writes the chart and the
// checkpoint and resumes from it. The full run (99% held-out accuracy) is `npx mamba-node train`.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { parseTrainArgs, trainCommand } from '../../lib/cli/train';
import { readCheckpoint } from '../../lib/train';

describe('mamba-node train', () => {
  test('parses options and rejects bad values', () => {
    const o = parseTrainArgs(['--steps', '10', '--lr', '0.01', '--device', 'cpu', '--resume']);
    expect(o).toMatchObject({ steps: 10, lr: 0.01, device: 'cpu', dtype: 'float32', resume: true, noiseLen: 16, tokens: 4, vocab: 8 });
    expect(parseTrainArgs(['--help'])).toBe('help');
    expect(() => parseTrainArgs(['--steps', '0'])).toThrow(/--steps/);
    expect(() => parseTrainArgs(['--vocab', '2'])).toThrow(/--vocab/);
    expect(() => parseTrainArgs(['--bogus'])).toThrow();
  });

  test('on CUDA the default Selective Copying task and model are bigger; explicit options still win', () => {
    expect(parseTrainArgs(['--device', 'cuda'])).toMatchObject({ noiseLen: 32, tokens: 8, vocab: 10, batch: 64, dModel: 64, dtype: 'bfloat16' });
    expect(parseTrainArgs(['--device', 'cuda', '--noise-len', '16', '--batch', '8'])).toMatchObject({ noiseLen: 16, batch: 8, tokens: 8 });
    expect(parseTrainArgs(['--device', 'cuda', '--data', 'x.txt'])).toMatchObject({ batch: 16, dModel: 64, vocab: 256 });
  });

  test('a short run writes chart.svg and a checkpoint; --resume continues it', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-cli-train-'));
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      const args = ['--out', out, '--time', '0', '--eval-every', '10', '--device', 'cpu', '--warmup', '5'];
      expect(await trainCommand([...args, '--steps', '20'])).toBe(1);
      expect(fs.readFileSync(path.join(out, 'chart.svg'), 'utf8')).toContain('<polyline');
      expect(((await readCheckpoint(path.join(out, 'checkpoint.safetensors'))).state as { step: number }).step).toBe(20);
      expect(await trainCommand([...args, '--steps', '30', '--resume'])).toBe(1);
      expect(log.mock.calls.some(([l]) => String(l).includes('resumed at step 20'))).toBe(true);
      expect(((await readCheckpoint(path.join(out, 'checkpoint.safetensors'))).state as { step: number }).step).toBe(30);
    } finally {
      log.mockRestore();
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});

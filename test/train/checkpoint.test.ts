// Checkpoint files: round trip, the safetensors layout, strict rejection of truncated or inconsistent files
// (TrainingError), no temporary files left behind, and the crash test of reliability target 8: a child
// process rewrites the checkpoint in a loop and is killed with SIGKILL at random moments; the checkpoint
// left behind must always read back whole and self-consistent.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { TrainingError } from '../../lib';
import { CheckpointEntry, decodeCheckpoint, encodeCheckpoint, readCheckpoint, writeCheckpoint } from '../../lib/train';
import { expectEqualArrays, rng } from '../setup';

let dir = '';
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-ckpt-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function sample(): Map<string, CheckpointEntry> {
  const r = rng(5);
  return new Map<string, CheckpointEntry>([
    ['model.w', { dtype: 'float32', shape: [3, 5], data: Float32Array.from({ length: 15 }, () => r() - 0.5) }],
    ['model.empty', { dtype: 'float32', shape: [0, 4], data: new Float32Array(0) }],
    ['ids', { dtype: 'int32', shape: [3], data: Int32Array.from([7, -1, 2147483647]) }],
  ]);
}

function expectRejected(buf: Buffer, pattern: RegExp): void {
  let caught: unknown;
  try {
    decodeCheckpoint(buf, 'x.safetensors');
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(TrainingError);
  expect((caught as Error).message).toMatch(pattern);
}

describe('checkpoint files', () => {
  test('round trip of entries and state; safetensors layout; no temporary files left', () => {
    const file = path.join(dir, 'a', 'checkpoint.safetensors');
    const entries = sample();
    writeCheckpoint(file, entries, { step: 12, note: 'x' });
    writeCheckpoint(file, entries, { step: 13 });
    expect(fs.readdirSync(path.dirname(file))).toEqual(['checkpoint.safetensors']);
    const { entries: got, state } = readCheckpoint(file);
    expect(state).toEqual({ step: 13 });
    expect([...got.keys()]).toEqual([...entries.keys()]);
    for (const [k, e] of entries) {
      expect(got.get(k)!.shape).toEqual(e.shape);
      expect(got.get(k)!.dtype).toBe(e.dtype);
      expectEqualArrays(got.get(k)!.data, e.data);
    }
    const buf = fs.readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(buf.subarray(8, 8 + n).toString());
    expect(header['model.w']).toEqual({ dtype: 'F32', shape: [3, 5], data_offsets: [0, 60] });
    expect(header.__metadata__.format).toBe('mamba-node-checkpoint');
  });

  test('truncated, padded and inconsistent files are rejected with a TrainingError', () => {
    const good = encodeCheckpoint(sample(), { step: 1 });
    expectRejected(good.subarray(0, 4), /too short/);
    expectRejected(good.subarray(0, good.length - 1), /header describes/);
    expectRejected(Buffer.concat([good, Buffer.alloc(1)]), /header describes/);
    const huge = Buffer.from(good);
    huge.writeBigUInt64LE(1n << 40n);
    expectRejected(huge, /header length/);
    const edit = (f: (h: Record<string, any>) => void) => {
      const n = Number(good.readBigUInt64LE(0));
      const h = JSON.parse(good.subarray(8, 8 + n).toString());
      f(h);
      const json = Buffer.from(JSON.stringify(h));
      const head = Buffer.alloc(8);
      head.writeBigUInt64LE(BigInt(json.length));
      return Buffer.concat([head, json, good.subarray(8 + n)]);
    };
    expectRejected(edit((h) => (h['model.w'].dtype = 'F64')), /dtype/);
    expectRejected(edit((h) => (h['model.w'].shape = [3, 4])), /needs/);
    expectRejected(edit((h) => (h['model.w'].shape = [-3, -5])), /shape/);
    expectRejected(edit((h) => (h['model.w'].data_offsets = [4, 64])), /starts at/);
    expectRejected(edit((h) => (h.__metadata__.format = 'other')), /not a mamba-node-checkpoint/);
    expectRejected(edit((h) => (h.__metadata__.state = '{')), /training state is not JSON/);
    const notJson = Buffer.from(good);
    notJson[8] = 0x7b + 1;
    expectRejected(notJson, /not JSON/);
    expect(() => readCheckpoint(path.join(dir, 'missing.safetensors'))).toThrow(TrainingError);
  });

  test('SIGKILL during saves never leaves an unreadable checkpoint', async () => {
    // The child runs the real checkpoint module (it needs only node:fs and lib/errors): compiled already in
    // the GPU bundle's dist-test/, transpiled here from the TypeScript source otherwise.
    const root = path.join(__dirname, '..', '..', 'lib');
    let lib = root;
    if (!fs.existsSync(path.join(root, 'train', 'checkpoint.js'))) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const ts = require('typescript') as typeof import('typescript');
      lib = path.join(dir, 'lib');
      fs.mkdirSync(path.join(lib, 'train'), { recursive: true });
      for (const rel of ['errors.ts', 'train/checkpoint.ts']) {
        const out = ts.transpileModule(fs.readFileSync(path.join(root, rel), 'utf8'), { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } });
        fs.writeFileSync(path.join(lib, rel.replace(/\.ts$/, '.js')), out.outputText);
      }
    }
    const file = path.join(dir, 'crash', 'checkpoint.safetensors');
    // Each save holds 4 MiB whose every value equals the save's counter, so a torn file cannot pass.
    const child = `
      const { writeCheckpoint } = require(${JSON.stringify(path.join(lib, 'train', 'checkpoint.js'))});
      const n = 1 << 20;
      for (let i = 1; ; i++) {
        const data = new Float32Array(n).fill(i);
        writeCheckpoint(${JSON.stringify(file)}, new Map([['a', { dtype: 'float32', shape: [n], data }]]), { i });
        if (i === 1) process.stdout.write('ready\\n');
      }`;
    const r = rng(11);
    let checked = 0;
    for (let round = 0; round < 6; round++) {
      const p = spawn(process.execPath, ['-e', child], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => p.stdout.once('data', () => resolve()));
      await new Promise((resolve) => setTimeout(resolve, 5 + r() * 60));
      const exited = new Promise((resolve) => p.once('exit', resolve));
      p.kill('SIGKILL');
      await exited;
      const { entries, state } = readCheckpoint(file);
      const i = (state as { i: number }).i;
      const data = entries.get('a')!.data;
      expect(data.length).toBe(1 << 20);
      expect(data[0]).toBe(i);
      expect(data[data.length - 1]).toBe(i);
      checked++;
    }
    expect(checked).toBe(6);
    // The next save removes what the killed writers left behind.
    writeCheckpoint(file, new Map(), { i: 0 });
    expect(fs.readdirSync(path.dirname(file))).toEqual(['checkpoint.safetensors']);
  });
});

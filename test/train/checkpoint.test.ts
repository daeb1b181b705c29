// Checkpoint files: round trip, the safetensors layout (saveSafetensors'), strict rejection of truncated,
// inconsistent or foreign files by lib/io's reader (a TrainingError whose cause is the FormatError), no
// temporary files left behind, and the crash test of reliability target 8: a child
// process rewrites the checkpoint in a loop and is killed with SIGKILL at random moments; the checkpoint
// left behind must always read back whole and self-consistent.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { FormatError, TrainingError, readSafetensorsHeader, saveSafetensors, tensor } from '../../lib';
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

async function expectRejected(buf: Buffer, pattern: RegExp): Promise<void> {
  const caught = await decodeCheckpoint(buf, 'x.safetensors').then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(caught).toBeInstanceOf(TrainingError);
  expect((caught as TrainingError).fn).toBe('readCheckpoint');
  expect((caught as TrainingError).arg).toBe('path');
  expect((caught as Error).message).toMatch(/^readCheckpoint: x\.safetensors: /);
  expect((caught as Error).message).toMatch(pattern);
}

/** A require()-able path of lib/train/checkpoint for a child process (transpiled when the tests run from TypeScript). */
function checkpointModule(): string {
  const root = path.join(__dirname, '..', '..', 'lib');
  // Compiled already in the GPU bundle's dist-test/.
  if (fs.existsSync(path.join(root, 'train', 'checkpoint.js'))) return path.join(root, 'train', 'checkpoint.js');
  // The module writes through lib/io and creates tensors, so the child needs all of lib/ and the addon,
  // which lib/native.ts finds at ../build/Release from the transpiled lib/.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ts = require('typescript') as typeof import('typescript');
  const out = path.join(dir, 'child');
  const walk = (rel: string): void => {
    for (const ent of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = path.join(rel, ent.name);
      if (ent.isDirectory()) walk(r);
      else if (ent.name.endsWith('.ts')) {
        const js = ts.transpileModule(fs.readFileSync(path.join(root, r), 'utf8'), { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
        fs.mkdirSync(path.dirname(path.join(out, 'lib', r)), { recursive: true });
        fs.writeFileSync(path.join(out, 'lib', r.replace(/\.ts$/, '.js')), js);
      }
    }
  };
  walk('.');
  fs.symlinkSync(path.join(root, '..', 'build'), path.join(out, 'build'), 'dir');
  return path.join(out, 'lib', 'train', 'checkpoint.js');
}

describe('checkpoint files', () => {
  test('round trip of entries and state; safetensors layout; no temporary files left', async () => {
    const file = path.join(dir, 'a', 'checkpoint.safetensors');
    const entries = sample();
    await writeCheckpoint(file, entries, { step: 12, note: 'x' });
    await writeCheckpoint(file, entries, { step: 13 });
    expect(fs.readdirSync(path.dirname(file))).toEqual(['checkpoint.safetensors']);
    const { entries: got, state } = await readCheckpoint(file);
    expect(state).toEqual({ step: 13 });
    // File order, which is saveSafetensors' layout: F32 before I32, then by name.
    expect([...got.keys()]).toEqual(['model.empty', 'model.w', 'ids']);
    for (const [k, e] of entries) {
      expect(got.get(k)!.shape).toEqual(e.shape);
      expect(got.get(k)!.dtype).toBe(e.dtype);
      expectEqualArrays(got.get(k)!.data, e.data);
    }
    const buf = fs.readFileSync(file);
    expect(buf.equals(await encodeCheckpoint(entries, { step: 13 }))).toBe(true);
    const n = Number(buf.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(buf.subarray(8, 8 + n).toString());
    expect(header['model.w']).toEqual({ dtype: 'F32', shape: [3, 5], data_offsets: [0, 60] });
    expect(header.__metadata__.format).toBe('mamba-node-checkpoint');
    // Any safetensors reader opens it.
    const { metadata } = await readSafetensorsHeader(file);
    expect(JSON.parse(metadata.state)).toEqual({ step: 13 });
  });

  test('bad entries are TrainingErrors naming writeCheckpoint, before any file is touched', async () => {
    const file = path.join(dir, 'bad', 'checkpoint.safetensors');
    const bad = (e: CheckpointEntry) => writeCheckpoint(file, new Map([['x', e]]), {});
    for (const p of [
      bad({ dtype: 'float32', shape: [2, 2], data: new Float32Array(3) }),
      bad({ dtype: 'float16' as 'float32', shape: [1], data: new Float32Array(1) }),
      writeCheckpoint(file, new Map([['__metadata__', { dtype: 'float32', shape: [1], data: new Float32Array(1) }]]), {}),
    ])
      await expect(p).rejects.toMatchObject({ name: 'TrainingError', fn: 'writeCheckpoint', arg: 'entries' });
    expect(fs.existsSync(path.dirname(file))).toBe(false);
  });

  test('truncated, padded, inconsistent and foreign files are rejected with a TrainingError', async () => {
    const good = await encodeCheckpoint(sample(), { step: 1 });
    expect((await decodeCheckpoint(good)).state).toEqual({ step: 1 });
    // The strict reader of lib/io finds these; its FormatError is the cause.
    await expectRejected(good.subarray(0, 4), /too few for the 8-byte header length/);
    await expectRejected(good.subarray(0, good.length - 1), /bytes missing \(truncated\)/);
    await expectRejected(Buffer.concat([good, Buffer.alloc(1)]), /trailing bytes/);
    const huge = Buffer.from(good);
    huge.writeBigUInt64LE(1n << 40n);
    await expectRejected(huge, /header length/);
    const edit = (f: (h: Record<string, any>) => void) => {
      const n = Number(good.readBigUInt64LE(0));
      const h = JSON.parse(good.subarray(8, 8 + n).toString());
      f(h);
      const json = Buffer.from(JSON.stringify(h));
      const head = Buffer.alloc(8);
      head.writeBigUInt64LE(BigInt(json.length));
      return Buffer.concat([head, json, good.subarray(8 + n)]);
    };
    await expectRejected(edit((h) => (h['model.w'].dtype = 'F64')), /dtype/);
    await expectRejected(edit((h) => (h['model.w'].shape = [3, 4])), /needs/);
    await expectRejected(edit((h) => (h['model.w'].shape = [-3, -5])), /shape/);
    await expectRejected(edit((h) => (h['model.w'].data_offsets = [4, 64])), /data_offsets \[4, 64\]: the first tensor must start at offset 0/);
    const notJson = Buffer.from(good);
    notJson[8] = 0x7b + 1;
    await expectRejected(notJson, /not valid JSON/);
    const caught = await decodeCheckpoint(notJson).catch((e: unknown) => e);
    expect((caught as { cause?: unknown }).cause).toBeInstanceOf(FormatError);
    // What makes a valid safetensors file a checkpoint.
    await expectRejected(edit((h) => (h.__metadata__.format = 'other')), /not a mamba-node-checkpoint/);
    await expectRejected(edit((h) => delete h.__metadata__), /not a mamba-node-checkpoint/);
    await expectRejected(edit((h) => (h.__metadata__.state = '{')), /training state is not JSON/);
    const half = path.join(dir, 'half.safetensors');
    const h16 = tensor([1, 2], [2], { dtype: 'float16' });
    await saveSafetensors(half, { h: h16 }, { format: 'mamba-node-checkpoint', version: '1', state: '{}' });
    h16.dispose();
    await expectRejected(fs.readFileSync(half), /entry 'h' has dtype F16/);
    await expect(readCheckpoint(path.join(dir, 'missing.safetensors'))).rejects.toMatchObject({ name: 'TrainingError', fn: 'readCheckpoint', arg: 'path' });
  });

  test('SIGKILL during saves never leaves an unreadable checkpoint', async () => {
    const file = path.join(dir, 'crash', 'checkpoint.safetensors');
    // Each save holds 4 MiB whose every value equals the save's counter, so a torn file cannot pass.
    const child = `
      const { writeCheckpoint } = require(${JSON.stringify(checkpointModule())});
      const n = 1 << 20;
      (async () => {
        for (let i = 1; ; i++) {
          const data = new Float32Array(n).fill(i);
          await writeCheckpoint(${JSON.stringify(file)}, new Map([['a', { dtype: 'float32', shape: [n], data }]]), { i });
          if (i === 1) process.stdout.write('ready\\n');
        }
      })();`;
    const r = rng(11);
    let checked = 0;
    for (let round = 0; round < 6; round++) {
      const p = spawn(process.execPath, ['-e', child], { stdio: ['ignore', 'pipe', 'inherit'] });
      // A child that fails to start (its stderr is shown) fails the test instead of hanging it.
      await new Promise<void>((resolve, reject) => {
        p.stdout.once('data', () => resolve());
        p.once('exit', (code) => reject(new Error(`the writer exited with code ${code} before its first save`)));
      });
      await new Promise((resolve) => setTimeout(resolve, 5 + r() * 60));
      const exited = new Promise((resolve) => p.once('exit', resolve));
      p.kill('SIGKILL');
      await exited;
      const { entries, state } = await readCheckpoint(file);
      const i = (state as { i: number }).i;
      const data = entries.get('a')!.data;
      expect(data.length).toBe(1 << 20);
      expect(data[0]).toBe(i);
      expect(data[data.length - 1]).toBe(i);
      checked++;
    }
    expect(checked).toBe(6);
    // The next save removes what the killed writers left behind.
    await writeCheckpoint(file, new Map(), { i: 0 });
    expect(fs.readdirSync(path.dirname(file))).toEqual(['checkpoint.safetensors']);
  });
});

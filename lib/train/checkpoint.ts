/**
 * Training checkpoint files: named float32 / int32 arrays plus a JSON state, in the safetensors layout
 * (8-byte little-endian header length, a JSON header with `__metadata__` and one entry per array with dtype,
 * shape and data_offsets, then the raw bytes), so any safetensors reader can open them. Files are written
 * atomically (a temporary file in the same directory, fsync, rename, fsync of the directory): a process
 * killed mid-save leaves the previous checkpoint intact, never a torn one. Reading validates strictly
 * (lengths, sorted contiguous offsets, sizes from shapes, the exact file length) and rejects anything else
 * with a TrainingError. This file depends only on node:fs and the error classes, so a crash test can run
 * it in a child process; the Trainer (trainer.ts) turns tensors into entries and back.
 *
 * @example
 * ```ts
 * writeCheckpoint('ckpt/checkpoint.safetensors', new Map([['w', { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) }]]), { step: 10 });
 * const { entries, state } = readCheckpoint('ckpt/checkpoint.safetensors');
 * ```
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { TrainingError } from '../errors';

/** One named array of a checkpoint. 16-bit tensors are stored as float32 (exact) with their dtype in the state. */
export interface CheckpointEntry {
  dtype: 'float32' | 'int32';
  shape: number[];
  data: Float32Array | Int32Array;
}

/** The `format` value in the header's `__metadata__`. */
export const CHECKPOINT_FORMAT = 'mamba-node-checkpoint';
const VERSION = '1';
const MAX_HEADER = 100 * 1024 * 1024;
const CODES = { float32: 'F32', int32: 'I32' } as const;

function fail(message: string, file?: string): never {
  throw new TrainingError(file ? `readCheckpoint: ${file}: ${message}` : `readCheckpoint: ${message}`, { fn: 'readCheckpoint', arg: 'path' });
}

/** The bytes of a checkpoint holding `entries` (in key order) and the JSON-serialisable `state`. */
export function encodeCheckpoint(entries: ReadonlyMap<string, CheckpointEntry>, state: unknown): Buffer {
  if (os.endianness() !== 'LE') throw new TrainingError('writeCheckpoint: checkpoints are little-endian; this host is not', { fn: 'writeCheckpoint' });
  const header: Record<string, unknown> = { __metadata__: { format: CHECKPOINT_FORMAT, version: VERSION, state: JSON.stringify(state) } };
  let offset = 0;
  const parts: Buffer[] = [];
  for (const [name, e] of entries) {
    if (name === '__metadata__') throw new TrainingError("writeCheckpoint: '__metadata__' is not a valid entry name", { fn: 'writeCheckpoint', arg: 'entries' });
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (n !== e.data.length)
      throw new TrainingError(`writeCheckpoint: entry '${name}' has ${e.data.length} values for shape [${e.shape.join(', ')}]`, { fn: 'writeCheckpoint', arg: 'entries' });
    const bytes = Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength);
    header[name] = { dtype: CODES[e.dtype], shape: e.shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    parts.push(bytes);
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned, as the safetensors writer does.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([head, Buffer.from(json, 'utf8'), ...parts]);
}

/** Entries and state of checkpoint bytes; throws a TrainingError naming `file` for anything malformed. */
export function decodeCheckpoint(buf: Buffer, file?: string): { entries: Map<string, CheckpointEntry>; state: unknown } {
  if (buf.length < 8) fail(`${buf.length} bytes is too short for a checkpoint`, file);
  const n = buf.readBigUInt64LE(0);
  if (n > BigInt(Math.min(MAX_HEADER, buf.length - 8))) fail(`header length ${n} does not fit in ${buf.length} bytes`, file);
  const headerLen = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8'));
  } catch (e) {
    fail(`the header is not JSON (${(e as Error).message})`, file);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('the header is not a JSON object', file);
  const meta = (header as Record<string, unknown>).__metadata__ as Record<string, unknown> | undefined;
  if (!meta || meta.format !== CHECKPOINT_FORMAT || meta.version !== VERSION || typeof meta.state !== 'string')
    fail(`not a ${CHECKPOINT_FORMAT} version ${VERSION} file`, file);
  let state: unknown;
  try {
    state = JSON.parse(meta.state as string);
  } catch (e) {
    fail(`the training state is not JSON (${(e as Error).message})`, file);
  }
  const dataStart = 8 + headerLen;
  const raw: [string, CheckpointEntry['dtype'], number[], number, number][] = [];
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = e?.dtype === 'F32' ? 'float32' : e?.dtype === 'I32' ? 'int32' : null;
    if (!dtype) fail(`entry '${name}' has dtype ${JSON.stringify(e?.dtype)} (expected F32 or I32)`, file);
    if (!Array.isArray(e.shape) || !e.shape.every((s) => Number.isSafeInteger(s) && s >= 0)) fail(`entry '${name}' has an invalid shape`, file);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0) || off[1] < off[0])
      fail(`entry '${name}' has invalid data_offsets`, file);
    const shape = e.shape as number[];
    const numel = shape.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(numel * 4) || (off[1] as number) - (off[0] as number) !== numel * 4)
      fail(`entry '${name}' spans ${(off[1] as number) - (off[0] as number)} bytes but shape [${shape.join(', ')}] needs ${numel * 4}`, file);
    raw.push([name, dtype, shape, off[0] as number, off[1] as number]);
  }
  raw.sort((a, b) => a[3] - b[3]);
  let expect = 0;
  for (const [name, , , b, e] of raw) {
    if (b !== expect) fail(`entry '${name}' starts at ${b}, expected ${expect} (offsets must be contiguous and non-overlapping)`, file);
    expect = e;
  }
  if (dataStart + expect !== buf.length) fail(`the file has ${buf.length} bytes but its header describes ${dataStart + expect}`, file);
  const entries = new Map<string, CheckpointEntry>();
  for (const [name, dtype, shape, b, e] of raw) {
    // A copy, so the arrays are aligned and do not pin the file buffer.
    const bytes = new Uint8Array(buf.subarray(dataStart + b, dataStart + e));
    entries.set(name, { dtype, shape, data: dtype === 'float32' ? new Float32Array(bytes.buffer) : new Int32Array(bytes.buffer) });
  }
  return { entries, state };
}

/**
 * Writes `data` to `file` atomically: a temporary file next to it, fsync, rename over `file`, then fsync of
 * the directory so the rename itself is durable. Readers see either the old file or the new one. Temporary
 * files that earlier, killed writers left next to `file` are deleted.
 */
export function writeFileAtomicSync(file: string, data: Uint8Array): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    let done = 0;
    while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  removeStaleTemporaries(dir, path.basename(file));
  try {
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // Some platforms (Windows) cannot open or fsync a directory; the rename is still atomic there.
  }
}

/** Deletes temporary files of `base` left by processes that died mid-write (their pid is gone). */
function removeStaleTemporaries(dir: string, base: string): void {
  const prefix = `.${base}.`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const pid = Number(name.slice(prefix.length).split('.')[0]);
    if (!Number.isSafeInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    fs.rmSync(path.join(dir, name), { force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Encodes and writes a checkpoint atomically (see `writeFileAtomicSync`). */
export function writeCheckpoint(file: string, entries: ReadonlyMap<string, CheckpointEntry>, state: unknown): void {
  writeFileAtomicSync(file, encodeCheckpoint(entries, state));
}

/** Reads and validates a checkpoint written by `writeCheckpoint`. */
export function readCheckpoint(file: string): { entries: Map<string, CheckpointEntry>; state: unknown } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new TrainingError(`readCheckpoint: cannot read ${file} (${(e as Error).message})`, { fn: 'readCheckpoint', arg: 'path' });
  }
  return decodeCheckpoint(buf, file);
}

/**
 * Training checkpoint files: named float32 / int32 arrays (shape + flat data) plus a JSON training state,
 * stored as a safetensors file through lib/io: `saveSafetensors` writes it atomically (a temporary file in
 * the same directory, fsync, rename, fsync of the directory), so a process killed mid-save leaves the
 * previous checkpoint intact; `readSafetensorsHeader` / `loadSafetensors` validate it as strictly as any
 * downloaded file (docs/checkpoints.md). The header's `__metadata__` holds `format`
 * (`mamba-node-checkpoint`), `version` and `state` (the JSON text). Anything malformed, and anything that is
 * not such a checkpoint, is a TrainingError naming `readCheckpoint` (the FormatError that found it is its
 * `cause`). The Trainer (trainer.ts) turns tensors into entries and back.
 *
 * @example
 * ```ts
 * await writeCheckpoint('ckpt/checkpoint.safetensors', new Map([['w', { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) }]]), { step: 10 });
 * const { entries, state } = await readCheckpoint('ckpt/checkpoint.safetensors');
 * ```
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { tensor } from '../creation';
import { FormatError, TrainingError } from '../errors';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors, SafetensorsHeader } from '../io/safetensors';
import type { Tensor } from '../tensor';

/** One named array of a checkpoint. 16-bit tensors are stored as float32 (exact) with their dtype in the state. */
export interface CheckpointEntry {
  dtype: 'float32' | 'int32';
  shape: number[];
  data: Float32Array | Int32Array;
}

/** The `format` value in the header's `__metadata__`. */
export const CHECKPOINT_FORMAT = 'mamba-node-checkpoint';
const VERSION = '1';
const STORED = { F32: 'float32', I32: 'int32' } as const;

function readError(file: string, detail: string, cause?: unknown): TrainingError {
  const e = new TrainingError(`readCheckpoint: ${file}: ${detail}`, { fn: 'readCheckpoint', arg: 'path' });
  if (cause !== undefined) (e as { cause?: unknown }).cause = cause;
  return e;
}

/** The TrainingError for a FormatError of lib/io, naming `shown` instead of the path that was read. */
function fromFormatError(e: FormatError, shown: string): TrainingError {
  const prefix = `${e.fn}: ${e.file}: `;
  return readError(shown, e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message, e);
}

function writeError(message: string): TrainingError {
  return new TrainingError(`writeCheckpoint: ${message}`, { fn: 'writeCheckpoint', arg: 'entries' });
}

/**
 * Writes a checkpoint holding `entries` and the JSON-serialisable `state` to `file` atomically (creating
 * its directory), then deletes temporary files that killed writers left next to it. The layout is that of
 * `saveSafetensors`: entries ordered by dtype (F32 before I32), then by name.
 */
export async function writeCheckpoint(file: string, entries: ReadonlyMap<string, CheckpointEntry>, state: unknown): Promise<void> {
  const tensors = new Map<string, Tensor>();
  try {
    for (const [name, e] of entries) {
      if (name === '__metadata__') throw writeError("'__metadata__' is not a valid entry name");
      if (e.dtype !== 'float32' && e.dtype !== 'int32') throw writeError(`entry '${name}' has dtype ${String(e.dtype)} (float32 or int32 are stored)`);
      const n = e.shape.reduce((a, b) => a * b, 1);
      if (n !== e.data.length) throw writeError(`entry '${name}' has ${e.data.length} values for shape [${e.shape.join(', ')}]`);
      tensors.set(name, tensor(e.data, e.shape, { dtype: e.dtype }));
    }
    const dir = path.dirname(path.resolve(file));
    await fsp.mkdir(dir, { recursive: true });
    await saveSafetensors(file, tensors, { format: CHECKPOINT_FORMAT, version: VERSION, state: JSON.stringify(state) });
    removeStaleTemporaries(dir, path.basename(file));
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** Reads and validates a checkpoint written by `writeCheckpoint`; entries come in file order. */
export async function readCheckpoint(file: string): Promise<{ entries: Map<string, CheckpointEntry>; state: unknown }> {
  return readAs(file, file);
}

/** `readCheckpoint` of `file`, with errors naming `shown`. */
async function readAs(file: string, shown: string): Promise<{ entries: Map<string, CheckpointEntry>; state: unknown }> {
  // The header is read again after the data: a checkpoint replaced (atomically) in between would give the
  // state of one save with the tensors of another; a few retries outlast a writer saving in a loop.
  for (let attempt = 0; attempt < 3; attempt++) {
    const header = await guarded(() => readSafetensorsHeader(file), shown);
    const state = checkHeader(header, shown);
    const loaded = await guarded(() => loadSafetensors(file), shown);
    const entries = new Map<string, CheckpointEntry>();
    try {
      for (const [name, t] of loaded) {
        // Copies made in this realm: the addon's arrays may come from another one (jest), where instanceof fails.
        const src = t.dataSync();
        const data = t.dtype === 'int32' ? new Int32Array(src.length) : new Float32Array(src.length);
        data.set(src);
        entries.set(name, { dtype: t.dtype === 'int32' ? 'int32' : 'float32', shape: [...t.shape], data });
      }
    } finally {
      for (const t of loaded.values()) t.dispose();
    }
    const again = await guarded(() => readSafetensorsHeader(file), shown);
    if (sameHeader(header, again)) return { entries, state };
  }
  throw readError(shown, 'the file kept changing while it was being read');
}

async function guarded<T>(read: () => Promise<T>, shown: string): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if (e instanceof FormatError) throw fromFormatError(e, shown);
    if ((e as NodeJS.ErrnoException)?.code) throw readError(shown, `cannot read the file (${(e as Error).message})`, e);
    throw e;
  }
}

/** Checks what makes a safetensors file a checkpoint (format, version, dtypes) and returns the parsed state. */
function checkHeader(header: SafetensorsHeader, shown: string): unknown {
  const meta = header.metadata;
  if (meta.format !== CHECKPOINT_FORMAT || meta.version !== VERSION || typeof meta.state !== 'string')
    throw readError(shown, `not a ${CHECKPOINT_FORMAT} version ${VERSION} file`);
  for (const [name, info] of Object.entries(header.tensors))
    if (!(info.dtype in STORED)) throw readError(shown, `entry '${name}' has dtype ${info.dtype} (checkpoints hold F32 and I32 only)`);
  try {
    return JSON.parse(meta.state);
  } catch (e) {
    throw readError(shown, `the training state is not JSON (${(e as Error).message})`, e);
  }
}

function sameHeader(a: SafetensorsHeader, b: SafetensorsHeader): boolean {
  return JSON.stringify([a.metadata, a.tensors]) === JSON.stringify([b.metadata, b.tensors]);
}

/**
 * The bytes of a checkpoint holding `entries` and `state`, exactly as `writeCheckpoint` writes them (it
 * goes through a temporary file, so the writer is the same code).
 */
export async function encodeCheckpoint(entries: ReadonlyMap<string, CheckpointEntry>, state: unknown): Promise<Buffer> {
  return withTempFile(async (tmp) => {
    await writeCheckpoint(tmp, entries, state);
    return fsp.readFile(tmp);
  });
}

/**
 * Entries and state of checkpoint bytes (read through a temporary file by the same strict reader as
 * `readCheckpoint`); errors name `file` (default `<buffer>`).
 */
export async function decodeCheckpoint(buf: Uint8Array, file = '<buffer>'): Promise<{ entries: Map<string, CheckpointEntry>; state: unknown }> {
  return withTempFile(async (tmp) => {
    await fsp.writeFile(tmp, buf);
    return readAs(tmp, file);
  });
}

async function withTempFile<T>(use: (tmp: string) => Promise<T>): Promise<T> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'mamba-checkpoint-'));
  try {
    return await use(path.join(dir, 'checkpoint.safetensors'));
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/**
 * Writes `data` to `file` atomically and synchronously (for callers that cannot await, such as
 * `writeTrainingChart`): a temporary file next to it, fsync, rename over `file`, then fsync of the
 * directory. Readers see either the old file or the new one. `writeFileAtomic` (lib/io/atomic.ts) is the
 * asynchronous, streaming form that checkpoints use. Temporary files that earlier, killed writers left next
 * to `file` are deleted.
 */
export function writeFileAtomicSync(file: string, data: Uint8Array): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  const fd = fs.openSync(tmp, 'wx', 0o644);
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

/**
 * Deletes temporary files of `base` left by processes that died mid-write (their pid is gone). Both
 * writers name them `.<base>.<pid>.<random>.tmp`.
 */
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

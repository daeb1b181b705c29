/**
 * Atomic file replacement: the new contents go to a temporary file in the target's directory, which
 * is flushed to disk (fsync) and then renamed over the target; the directory is flushed too, so the
 * rename itself survives a power cut. A reader, or a process restarted after a crash or `kill -9`,
 * sees either the complete old file or the complete new one, never a mix or a truncated file. A
 * failed write removes its temporary file; a killed process can leave one behind
 * (`.<name>.<pid>.<random>.tmp`, never the target's name).
 *
 * @example
 * ```ts
 * await writeFileAtomic('state.json', JSON.stringify(state));
 * await writeFileAtomic('big.bin', async (out) => {
 *   for (const chunk of chunks) await out.write(chunk);
 * });
 * ```
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';

import { ArgumentError, MambaError } from '../errors';

/** Where a streaming writer of `writeFileAtomic` puts its bytes. */
export interface AtomicSink {
  /** The open temporary file (for positioned writes or `stat`); do not close it. */
  readonly handle: FileHandle;
  /** Appends `chunk` (strings as UTF-8), writing all of it before resolving. */
  write(chunk: Uint8Array | string): Promise<void>;
  /** Bytes appended through `write` so far. */
  readonly bytesWritten: number;
}

/** Contents for `writeFileAtomic`: bytes, a string (UTF-8), or a function that streams them. */
export type AtomicContents = Uint8Array | string | ((sink: AtomicSink) => Promise<void>);

// Keeps each write below libuv's 2 GiB limit per call.
const MAX_WRITE = 1 << 30;

class Sink implements AtomicSink {
  bytesWritten = 0;
  constructor(readonly handle: FileHandle) {}

  async write(chunk: Uint8Array | string): Promise<void> {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let done = 0;
    while (done < bytes.byteLength) {
      const len = Math.min(MAX_WRITE, bytes.byteLength - done);
      // write() may write less than asked (e.g. near a disk quota); loop until all of it is out.
      const { bytesWritten } = await this.handle.write(bytes, done, len, this.bytesWritten);
      if (bytesWritten <= 0) throw new MambaError('writeFileAtomic: the file system accepted no bytes', { fn: 'writeFileAtomic' });
      done += bytesWritten;
      this.bytesWritten += bytesWritten;
    }
  }
}

/**
 * Flushes a directory entry to disk. Platforms that cannot open or fsync a directory (Windows)
 * report EISDIR/EPERM/EINVAL/EBADF; the rename is still atomic there, only its durability across a
 * power cut is up to the OS.
 */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF' && code !== 'EACCES') throw e;
  } finally {
    await handle?.close();
  }
}

/**
 * Replaces the file at `target` with `contents` atomically: temporary file in the same directory,
 * fsync, rename over the target, fsync of the directory. On any error the temporary file is removed,
 * the target is left as it was, and the error is rethrown (file-system errors keep their `code`).
 *
 * @param target The file to create or replace.
 * @param contents Bytes, a string (written as UTF-8), or an async function that writes the contents
 *   through the `AtomicSink` it is given (for files too large to build in memory).
 *
 * @example
 * ```ts
 * await writeFileAtomic('/ckpt/latest.json', JSON.stringify({ step: 1000 }));
 * ```
 */
export async function writeFileAtomic(target: string, contents: AtomicContents): Promise<void> {
  const fn = 'writeFileAtomic';
  if (typeof target !== 'string' || target.length === 0)
    throw new ArgumentError(`${fn}: expected a non-empty file path for argument 'path'`, { fn, arg: 'path' });
  if (typeof contents !== 'string' && typeof contents !== 'function' && !(contents instanceof Uint8Array))
    throw new ArgumentError(`${fn}: expected a Uint8Array, a string or a writer function for argument 'contents'`, { fn, arg: 'contents' });
  const resolved = path.resolve(target);
  const dir = path.dirname(resolved);
  // Same directory as the target, so rename() never crosses file systems; a dot name keeps it out
  // of globs like *.safetensors; pid and random bytes keep concurrent writers apart.
  const temp = path.join(dir, `.${path.basename(resolved)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await fsp.open(temp, 'wx');
    const sink = new Sink(handle);
    if (typeof contents === 'function') await contents(sink);
    else await sink.write(contents);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(temp, resolved);
  } catch (e) {
    if (handle) await handle.close().catch(() => undefined);
    await fsp.rm(temp, { force: true }).catch(() => undefined);
    throw e;
  }
  await syncDirectory(dir);
}

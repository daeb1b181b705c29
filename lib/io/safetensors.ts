/**
 * Reading and writing safetensors files, the checkpoint format of Hugging Face: an 8-byte
 * little-endian header length N, N bytes of UTF-8 JSON (`{name: {dtype, shape, data_offsets},
 * "__metadata__"?: {string: string}}`), then the raw little-endian tensor bytes. Files are untrusted
 * input: the reader validates everything before it allocates anything sized by the file (header
 * limits, strict JSON with duplicate keys rejected, dtypes, shapes, overflow-checked byte counts,
 * contiguous offsets that cover the file exactly) and throws a `FormatError` naming the function, the
 * file and the tensor. Tensors are read one at a time at their offsets, so memory stays bounded by
 * the largest tensor plus its converted copy. Writing goes through `writeFileAtomic`, so a crash
 * mid-save leaves the previous file intact. docs/checkpoints.md describes the format and the checks.
 *
 * @example
 * ```ts
 * await saveSafetensors('model.safetensors', { 'embedding.weight': w }, { format: 'pt' });
 * const loaded = await loadSafetensors('model.safetensors', { device: 'cuda', dtype: 'bfloat16' });
 * ```
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

import { DType, DTypeLike, Device, DeviceLike, checkDType, checkDevice, describeValue } from '../dtype';
import { ArgumentError, DTypeError, FormatError, InternalError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';
import { writeFileAtomic } from './atomic';

/** The safetensors dtypes mamba-node reads and writes. */
export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64';

/** One tensor's entry in a safetensors header. */
export interface SafetensorsTensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte range `[begin, end)` relative to the end of the header. */
  offsets: [number, number];
}

/** What `readSafetensorsHeader` returns: entries in file order (by offset) and the free-form metadata. */
export interface SafetensorsHeader {
  tensors: Record<string, SafetensorsTensorInfo>;
  /** The `__metadata__` map; empty when the file has none. */
  metadata: Record<string, string>;
}

/** Options of `loadSafetensors`. */
export interface LoadSafetensorsOptions {
  /** Where the tensors are created (default 'cpu'). */
  device?: DeviceLike;
  /** Float dtype every float tensor is converted to (integer tensors always load as int32). */
  dtype?: DTypeLike;
  /** Load only these tensors (each must be in the file). */
  names?: readonly string[];
}

/** Options of `saveSafetensors`. */
export interface SaveSafetensorsOptions {
  /** Write int32 tensors as I64: `true` for all of them, or the names of some (default: I32). */
  int64?: boolean | readonly string[];
}

/** The safetensors limit on the header length (bytes). */
export const MAX_HEADER_BYTES = 100_000_000;

const ELEMENT_BYTES: Record<SafetensorsDType, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8 };

// Dtypes the format defines that mamba-node does not store, so they get a clearer message than "unknown".
const OTHER_DTYPES = new Set(['BOOL', 'U8', 'I8', 'I16', 'U16', 'U32', 'U64', 'F64', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64']);

// The Python/Rust writer orders tensors by descending dtype alignment, then by name, so every
// tensor's bytes start at a multiple of its element size; this is the rank in that order.
const WRITE_ORDER: Record<SafetensorsDType, number> = { I64: 0, F32: 1, I32: 2, BF16: 3, F16: 4 };

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// Reads and writes stay below libuv's 2 GiB limit per call.
const MAX_IO = 1 << 30;

// ---- 16-bit floats: the same bit operations as native/half.h ----

let f16Table: Uint32Array | undefined;

/** @internal float32 bits of float16 `h` (exact; NaN payloads kept), as native/half.h f16_to_f32. */
export function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (man << 13)) >>> 0;
  if (exp === 0) {
    if (man === 0) return sign >>> 0;
    // subnormal: man * 2^-24, exact in float32; renormalise the mantissa by hand
    let e = 113;
    let m = man;
    while ((m & 0x400) === 0) {
      m <<= 1;
      e -= 1;
    }
    return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
  }
  return (sign | ((exp + 112) << 23) | (man << 13)) >>> 0;
}

/** @internal float16 bits of the float32 with bits `u` (round to nearest even), as native/half.h f32_to_f16. */
export function f32BitsToF16(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >>> 13) & 0x3ff);
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a < 0x38800000) {
    if (a < 0x33000000) return sign;
    const shift = 126 - (a >>> 23);
    const man = (a & 0x7fffff) | 0x800000;
    let q = man >>> shift;
    const rem = man & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (q & 1) !== 0)) q += 1;
    return sign | q;
  }
  let r = a - 0x38000000;
  r += 0xfff + ((r >>> 13) & 1);
  return sign | (r >>> 13);
}

/** @internal bfloat16 bits of the float32 with bits `u` (round to nearest even), as native/half.h f32_to_bf16. */
export function f32BitsToBf16(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  // In C the sum wraps modulo 2^32; >>> 0 does the same to the exact JS sum.
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 0) >>> 16;
}

function f16Lookup(): Uint32Array {
  if (!f16Table) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32Bits(h);
  }
  return f16Table;
}

function swapBytes(bytes: Uint8Array, width: number): void {
  for (let i = 0; i + width <= bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

// ---- strict JSON ----

/** A JSON number kept as its text, so integers are checked exactly (no float rounding). */
class JsonNumber {
  constructor(readonly text: string) {}
}
type JsonValue = string | boolean | null | JsonNumber | JsonValue[] | Map<string, JsonValue>;

class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly position: number,
    readonly duplicateTopLevelKey?: string,
  ) {
    super(message);
  }
}

// The header needs three levels; the limit keeps crafted nesting from exhausting the stack.
const MAX_JSON_DEPTH = 32;
const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/**
 * Parses RFC 8259 JSON, rejecting what JSON.parse lets through silently: duplicate object keys (a
 * second definition of a tensor could hide from one reader and not another) and lone surrogates.
 */
function parseJson(text: string): JsonValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new JsonSyntaxError(i >= text.length ? `${what} (at the end of the header)` : `${what} at character ${i}`, i);
  };
  const skipSpace = (): void => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      i++;
    }
  };
  const hex4 = (): number => {
    const h = text.slice(i, i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('bad \\u escape');
    i += 4;
    return parseInt(h, 16);
  };
  const parseString = (): string => {
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in a string');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      i++;
      const e = text[i++];
      if (e === '"' || e === '\\' || e === '/') out += e;
      else if (e === 'b') out += '\b';
      else if (e === 'f') out += '\f';
      else if (e === 'n') out += '\n';
      else if (e === 'r') out += '\r';
      else if (e === 't') out += '\t';
      else if (e === 'u') {
        const code = hex4();
        if (code >= 0xdc00 && code <= 0xdfff) fail('lone low surrogate in a \\u escape');
        if (code >= 0xd800 && code <= 0xdbff) {
          if (text[i] !== '\\' || text[i + 1] !== 'u') fail('lone high surrogate in a \\u escape');
          i += 2;
          const low = hex4();
          if (low < 0xdc00 || low > 0xdfff) fail('lone high surrogate in a \\u escape');
          out += String.fromCharCode(code, low);
        } else {
          out += String.fromCharCode(code);
        }
      } else {
        i--;
        fail('invalid escape in a string');
      }
      start = i;
    }
  };
  const parseValue = (depth: number): JsonValue => {
    if (depth > MAX_JSON_DEPTH) fail(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
    skipSpace();
    const c = text[i];
    if (c === '{') {
      i++;
      const map = new Map<string, JsonValue>();
      skipSpace();
      if (text[i] === '}') {
        i++;
        return map;
      }
      for (;;) {
        skipSpace();
        if (text[i] !== '"') fail('expected a string key');
        const keyAt = i;
        const key = parseString();
        if (map.has(key)) {
          const shown = showName(key);
          throw new JsonSyntaxError(`duplicate key ${shown} at character ${keyAt}`, keyAt, depth === 0 ? key : undefined);
        }
        skipSpace();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        map.set(key, parseValue(depth + 1));
        skipSpace();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return map;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const arr: JsonValue[] = [];
      skipSpace();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(parseValue(depth + 1));
        skipSpace();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return parseString();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      NUMBER_RE.lastIndex = i;
      const m = NUMBER_RE.exec(text);
      if (!m) return fail('bad number');
      i += m[0].length;
      return new JsonNumber(m[0]);
    }
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return fail(c === undefined ? 'unexpected end of JSON' : 'unexpected character');
  };
  const root = parseValue(0);
  skipSpace();
  if (i !== text.length) fail('unexpected text after the JSON value');
  return root;
}

// ---- header validation ----

interface Entry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

interface ParsedHeader {
  entries: Entry[];
  metadata: [string, string][];
  dataStart: number;
}

function showName(name: string): string {
  return JSON.stringify(name.length > 120 ? `${name.slice(0, 120)}...` : name);
}

function describeJson(v: JsonValue): string {
  if (v instanceof JsonNumber) return `the number ${v.text.slice(0, 40)}`;
  if (v instanceof Map) return 'an object';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${showName(v)}`;
  return String(v);
}

class Checker {
  constructor(
    readonly fn: string,
    readonly file: string,
  ) {}

  error(message: string, tensor?: string): FormatError {
    const where = tensor === undefined ? '' : `tensor ${showName(tensor)}: `;
    return new FormatError(`${this.fn}: ${this.file}: ${where}${message}`, { fn: this.fn, file: this.file, tensor });
  }

  /** A non-negative integer no larger than 2^53 - 1, from its exact JSON text. */
  safeInteger(v: JsonValue | undefined, what: string, tensor: string): number {
    if (!(v instanceof JsonNumber) || !/^(?:0|[1-9][0-9]*)$/.test(v.text))
      throw this.error(`${what} must be a non-negative integer but is ${v === undefined ? 'missing' : describeJson(v)}`, tensor);
    if (v.text.length > 16 || BigInt(v.text) > BigInt(Number.MAX_SAFE_INTEGER))
      throw this.error(`${what} ${v.text.slice(0, 40)} is too large (over 2^53 - 1)`, tensor);
    return Number(v.text);
  }

  entry(name: string, v: JsonValue): Entry {
    if (!(v instanceof Map)) throw this.error(`the entry must be an object but is ${describeJson(v)}`, name);
    for (const key of v.keys())
      if (key !== 'dtype' && key !== 'shape' && key !== 'data_offsets')
        throw this.error(`unexpected field ${showName(key)} (only dtype, shape and data_offsets are allowed)`, name);
    const dtype = v.get('dtype');
    if (typeof dtype !== 'string') throw this.error(`'dtype' must be a string but is ${dtype === undefined ? 'missing' : describeJson(dtype)}`, name);
    if (!Object.prototype.hasOwnProperty.call(ELEMENT_BYTES, dtype)) {
      if (OTHER_DTYPES.has(dtype)) throw this.error(`dtype '${dtype}' is not supported (F32, F16, BF16, I32 and I64 are)`, name);
      throw this.error(`unknown dtype ${showName(dtype)}`, name);
    }
    const st = dtype as SafetensorsDType;
    const shapeValue = v.get('shape');
    if (!Array.isArray(shapeValue))
      throw this.error(`'shape' must be an array but is ${shapeValue === undefined ? 'missing' : describeJson(shapeValue)}`, name);
    const shape = shapeValue.map((s, k) => this.safeInteger(s, `shape[${k}]`, name));
    // Checked in shape order, so a huge size overflows even when a later size is 0 (as the Rust reader does).
    let count = 1n;
    for (const s of shape) {
      count *= BigInt(s);
      if (count > BigInt(Number.MAX_SAFE_INTEGER)) throw this.error(`shape [${shape.join(', ')}] has too many elements (overflow)`, name);
    }
    const bytes = count * BigInt(ELEMENT_BYTES[st]);
    if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw this.error(`shape [${shape.join(', ')}] of ${st} is too many bytes (overflow)`, name);
    const offsets = v.get('data_offsets');
    if (!Array.isArray(offsets) || offsets.length !== 2)
      throw this.error(`'data_offsets' must be an array of two integers but is ${offsets === undefined ? 'missing' : describeJson(offsets)}${Array.isArray(offsets) ? ` of length ${offsets.length}` : ''}`, name);
    const begin = this.safeInteger(offsets[0], 'data_offsets[0]', name);
    const end = this.safeInteger(offsets[1], 'data_offsets[1]', name);
    if (end < begin) throw this.error(`data_offsets [${begin}, ${end}] end before they begin`, name);
    if (BigInt(end - begin) !== bytes)
      throw this.error(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape [${shape.join(', ')}] of ${st} needs ${bytes} (length mismatch)`, name);
    return { name, dtype: st, shape, begin, end };
  }

  metadata(v: JsonValue): [string, string][] {
    if (!(v instanceof Map)) throw this.error(`'__metadata__' must be an object of strings but is ${describeJson(v)}`);
    const out: [string, string][] = [];
    for (const [k, s] of v) {
      if (typeof s !== 'string') throw this.error(`'__metadata__' value of ${showName(k)} must be a string but is ${describeJson(s)}`);
      out.push([k, s]);
    }
    return out;
  }

  /** Validates the parsed header; returns the entries sorted by offset and the data length. */
  header(root: JsonValue): { entries: Entry[]; metadata: [string, string][]; dataLength: number } {
    if (!(root instanceof Map)) throw this.error(`the header must be a JSON object but is ${describeJson(root)}`);
    let metadata: [string, string][] = [];
    const entries: Entry[] = [];
    for (const [name, v] of root) {
      if (name === '__metadata__') metadata = this.metadata(v);
      else entries.push(this.entry(name, v));
    }
    // Writers may list entries in any order (name order, alignment order); the bytes must still be
    // one contiguous run from offset 0, each tensor where the previous one ends.
    entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
    let expected = 0;
    for (const e of entries) {
      if (e.begin < expected)
        throw this.error(`data_offsets [${e.begin}, ${e.end}] overlap the previous tensor, which ends at ${expected}`, e.name);
      if (e.begin > expected)
        throw this.error(
          expected === 0
            ? `data_offsets [${e.begin}, ${e.end}]: the first tensor must start at offset 0`
            : `data_offsets [${e.begin}, ${e.end}] leave a gap of ${e.begin - expected} bytes after the previous tensor`,
          e.name,
        );
      expected = e.end;
    }
    return { entries, metadata, dataLength: expected };
  }
}

async function readFully(handle: FileHandle, into: Uint8Array, position: number, check: Checker, tensor?: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const len = Math.min(MAX_IO, into.length - done);
    const { bytesRead } = await handle.read(into, done, len, position + done);
    // The size was checked against fstat; a short read means the file shrank while being read.
    if (bytesRead === 0) throw check.error(`the file ended early at byte ${position + done} (was it changed while being read?)`, tensor);
    done += bytesRead;
  }
}

async function readHeader(handle: FileHandle, check: Checker): Promise<ParsedHeader> {
  const { size } = await handle.stat();
  if (size < 8) throw check.error(`the file has ${size} bytes, too few for the 8-byte header length (truncated)`);
  const lengthField = new Uint8Array(8);
  await readFully(handle, lengthField, 0, check);
  const n = Buffer.from(lengthField.buffer).readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) throw check.error(`the header length ${n} is over the limit of ${MAX_HEADER_BYTES} bytes`);
  if (n > BigInt(size - 8)) throw check.error(`the header length ${n} is more than the ${size - 8} bytes after the length field (truncated)`);
  const headerBytes = new Uint8Array(Number(n));
  await readFully(handle, headerBytes, 8, check);
  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, where the JSON parser rejects it as the Rust reader does.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw check.error('the header is not valid UTF-8');
  }
  let root: JsonValue;
  try {
    root = parseJson(text);
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    throw check.error(`the header is not valid JSON: ${e.message}`, e.duplicateTopLevelKey);
  }
  const { entries, metadata, dataLength } = check.header(root);
  const dataStart = 8 + Number(n);
  const expectedSize = dataStart + dataLength;
  if (expectedSize > size) throw check.error(`the tensors need ${expectedSize} bytes but the file has ${size}: ${expectedSize - size} bytes missing (truncated)`);
  if (expectedSize < size) throw check.error(`the file has ${size - expectedSize} trailing bytes after the last tensor (it should be ${expectedSize} bytes)`);
  return { entries, metadata, dataStart };
}

function checkPath(file: unknown, fn: string): asserts file is string {
  if (typeof file !== 'string' || file.length === 0)
    throw new ArgumentError(`${fn}: expected a non-empty file path for argument 'path' but received ${describeValue(file)}`, { fn, arg: 'path' });
}

// ---- loading ----

/** Turns one tensor's file bytes into the Float32Array / Int32Array that `fromData` takes. */
function decode(bytes: Uint8Array, e: Entry, check: Checker): Float32Array | Int32Array {
  const n = bytes.length / ELEMENT_BYTES[e.dtype];
  if (!LITTLE_ENDIAN) swapBytes(bytes, ELEMENT_BYTES[e.dtype]);
  switch (e.dtype) {
    case 'F32':
      return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    case 'I32':
      return new Int32Array(bytes.buffer, bytes.byteOffset, n);
    case 'BF16': {
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      return out;
    }
    case 'F16': {
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const table = f16Lookup();
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = table[src[i]];
      return out;
    }
    case 'I64': {
      // Halves of each int64 (this host is little-endian here, after any swap above: low word first).
      const words = LITTLE_ENDIAN ? new Int32Array(bytes.buffer, bytes.byteOffset, 2 * n) : null;
      const out = new Int32Array(n);
      const big = words ? null : new BigInt64Array(bytes.buffer, bytes.byteOffset, n);
      for (let i = 0; i < n; i++) {
        if (words) {
          const low = words[2 * i];
          const high = words[2 * i + 1];
          // in int32 range exactly when the high word is the sign extension of the low word
          if (high !== low >> 31)
            throw check.error(`I64 value ${(BigInt(high) << 32n) | BigInt(low >>> 0)} at index ${i} is outside the int32 range mamba-node stores ids in`, e.name);
          out[i] = low;
        } else {
          const v = big![i];
          if (v < -2147483648n || v > 2147483647n) throw check.error(`I64 value ${v} at index ${i} is outside the int32 range mamba-node stores ids in`, e.name);
          out[i] = Number(v);
        }
      }
      return out;
    }
  }
}

const NATURAL_DTYPE: Record<SafetensorsDType, DType> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16', I32: 'int32', I64: 'int32' };

function checkNames(names: unknown, fn: string): Set<string> | undefined {
  if (names === undefined) return undefined;
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string'))
    throw new ArgumentError(`${fn}: expected an array of tensor names for argument 'names'`, { fn, arg: 'names' });
  return new Set(names as string[]);
}

/**
 * Reads the header of a safetensors file (validated as strictly as `loadSafetensors` does, including
 * that the offsets cover the file exactly) without reading any tensor data.
 *
 * @example
 * ```ts
 * const { tensors, metadata } = await readSafetensorsHeader('model.safetensors');
 * for (const [name, info] of Object.entries(tensors)) console.log(name, info.dtype, info.shape);
 * ```
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fn = 'readSafetensorsHeader';
  checkPath(path, fn);
  const handle = await fsp.open(path, 'r');
  try {
    const { entries, metadata } = await readHeader(handle, new Checker(fn, path));
    // Null-prototype records: a tensor named "__proto__" must be an entry, not a prototype change.
    const tensors = Object.create(null) as Record<string, SafetensorsTensorInfo>;
    for (const e of entries) tensors[e.name] = { dtype: e.dtype, shape: e.shape, offsets: [e.begin, e.end] };
    const meta = Object.create(null) as Record<string, string>;
    for (const [k, v] of metadata) meta[k] = v;
    return { tensors, metadata: meta };
  } finally {
    await handle.close();
  }
}

/**
 * Loads the tensors of a safetensors file (all, or those in `names`), in file order. Each tensor's
 * bytes are read at its offset into a buffer of its own size, so peak memory is the largest tensor
 * plus its converted copy, never the whole file. F16/BF16 values are kept bit for bit (signalling
 * NaNs become quiet); I64 tensors load as int32 and must fit. With `dtype`, float tensors are
 * converted (round to nearest even) as they are created. A bad file throws `FormatError`; tensors
 * created before the error are disposed. File-system errors (ENOENT, EACCES) are rethrown as they are.
 *
 * @example
 * ```ts
 * const weights = await loadSafetensors('model.safetensors', { device: 'cuda', dtype: 'bfloat16' });
 * const emb = weights.get('backbone.embeddings.weight');
 * for (const t of weights.values()) t.dispose();
 * ```
 */
export async function loadSafetensors(path: string, options: LoadSafetensorsOptions = {}): Promise<Map<string, Tensor>> {
  const fn = 'loadSafetensors';
  checkPath(path, fn);
  if (typeof options !== 'object' || options === null)
    throw new ArgumentError(`${fn}: expected an object for argument 'options' but received ${describeValue(options)}`, { fn, arg: 'options' });
  const device: Device = checkDevice(options.device ?? 'cpu', fn);
  const castTo = options.dtype === undefined ? undefined : checkDType(options.dtype, fn);
  if (castTo === 'int32')
    throw new DTypeError(`${fn}: argument 'dtype' must be a float dtype (integer tensors always load as int32)`, { fn, arg: 'dtype' });
  const wanted = checkNames(options.names, fn);
  const check = new Checker(fn, path);
  const handle = await fsp.open(path, 'r');
  const out = new Map<string, Tensor>();
  try {
    const header = await readHeader(handle, check);
    if (wanted) {
      const present = new Set(header.entries.map((e) => e.name));
      for (const name of wanted)
        if (!present.has(name)) throw new ArgumentError(`${fn}: tensor ${showName(name)} in argument 'names' is not in ${path}`, { fn, arg: 'names' });
    }
    for (const e of header.entries) {
      if (wanted && !wanted.has(e.name)) continue;
      // A fresh ArrayBuffer per tensor: offset 0, so the typed-array views in decode() are aligned.
      const bytes = new Uint8Array(e.end - e.begin);
      await readFully(handle, bytes, header.dataStart + e.begin, check, e.name);
      const values = decode(bytes, e, check);
      const natural = NATURAL_DTYPE[e.dtype];
      const dtype = natural !== 'int32' && castTo !== undefined ? castTo : natural;
      out.set(e.name, new Tensor(native().fromData(values, e.shape, dtype, device), e.shape, dtype, device));
    }
  } catch (err) {
    for (const t of out.values()) t.dispose();
    throw err;
  } finally {
    await handle.close();
  }
  return out;
}

// ---- saving ----

interface SaveEntry {
  name: string;
  tensor: Tensor;
  dtype: SafetensorsDType;
  bytes: number;
}

function compareUtf8(a: string, b: string): number {
  // Rust compares names as UTF-8 bytes, which differs from JS (UTF-16) order above U+FFFF.
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function encode(data: Float32Array | Int32Array, dtype: SafetensorsDType): Uint8Array {
  let out: Uint8Array;
  switch (dtype) {
    case 'F32':
    case 'I32':
      out = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (!LITTLE_ENDIAN) out = out.slice();
      break;
    case 'BF16':
    case 'F16': {
      const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
      const half = new Uint16Array(data.length);
      const convert = dtype === 'BF16' ? f32BitsToBf16 : f32BitsToF16;
      for (let i = 0; i < bits.length; i++) half[i] = convert(bits[i]);
      out = new Uint8Array(half.buffer);
      break;
    }
    case 'I64': {
      const wide = new BigInt64Array(data.length);
      for (let i = 0; i < data.length; i++) wide[i] = BigInt(data[i]);
      out = new Uint8Array(wide.buffer);
      break;
    }
  }
  if (!LITTLE_ENDIAN) swapBytes(out, ELEMENT_BYTES[dtype]);
  return out;
}

function collectTensors(tensors: unknown, fn: string): [string, unknown][] {
  if (tensors instanceof Map) return [...tensors.entries()] as [string, unknown][];
  if (typeof tensors === 'object' && tensors !== null && !Array.isArray(tensors) && !(tensors instanceof Tensor)) return Object.entries(tensors);
  throw new ArgumentError(`${fn}: expected a Map or an object of tensors for argument 'tensors' but received ${describeValue(tensors)}`, {
    fn,
    arg: 'tensors',
  });
}

function int64Names(option: unknown, entries: [string, unknown][], fn: string): (name: string) => boolean {
  if (option === undefined || option === false) return () => false;
  if (option === true) return () => true;
  if (!Array.isArray(option) || option.some((n) => typeof n !== 'string'))
    throw new ArgumentError(`${fn}: expected true or an array of tensor names for option 'int64'`, { fn, arg: 'options' });
  const names = new Set(option as string[]);
  const present = new Set(entries.map(([n]) => n));
  for (const n of names) if (!present.has(n)) throw new ArgumentError(`${fn}: tensor ${showName(n)} in option 'int64' is not being saved`, { fn, arg: 'options' });
  return (name) => names.has(name);
}

/**
 * Writes `tensors` to a safetensors file, atomically (a crash mid-save leaves the old file). The
 * layout is the Python library's: JSON header without spaces (`__metadata__` first), padded with
 * spaces to a multiple of 8 bytes, tensors ordered by descending element size then name (so every
 * tensor is aligned), raw little-endian bytes. float16/bfloat16 tensors are written bit for bit;
 * int32 tensors are written as I32 unless `options.int64` asks for I64. One tensor at a time is read
 * back (`await t.data()`), so memory stays bounded by the largest tensor.
 *
 * @example
 * ```ts
 * await saveSafetensors('ckpt/model.safetensors', new Map([['lm_head.weight', w]]), { format: 'pt' });
 * ```
 */
export async function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  metadata?: Record<string, string>,
  options: SaveSafetensorsOptions = {},
): Promise<void> {
  const fn = 'saveSafetensors';
  checkPath(path, fn);
  const raw = collectTensors(tensors, fn);
  if (typeof options !== 'object' || options === null)
    throw new ArgumentError(`${fn}: expected an object for argument 'options' but received ${describeValue(options)}`, { fn, arg: 'options' });
  const asInt64 = int64Names(options.int64, raw, fn);
  const entries: SaveEntry[] = [];
  for (const [name, t] of raw) {
    if (typeof name !== 'string')
      throw new ArgumentError(`${fn}: tensor names in argument 'tensors' must be strings but one is ${describeValue(name)}`, { fn, arg: 'tensors' });
    if (name === '__metadata__')
      throw new ArgumentError(`${fn}: '__metadata__' is reserved and cannot name a tensor in argument 'tensors'`, { fn, arg: 'tensors' });
    if (!(t instanceof Tensor))
      throw new ArgumentError(`${fn}: argument 'tensors' holds ${describeValue(t)} under ${showName(name)} where a Tensor belongs`, { fn, arg: 'tensors' });
    t.handle(fn, 'tensors');
    let dtype: SafetensorsDType = t.dtype === 'float32' ? 'F32' : t.dtype === 'float16' ? 'F16' : t.dtype === 'bfloat16' ? 'BF16' : 'I32';
    if (asInt64(name)) {
      if (dtype !== 'I32')
        throw new DTypeError(`${fn}: option 'int64' names ${showName(name)}, a ${t.dtype} tensor; only int32 tensors can be written as I64`, { fn, arg: 'options' });
      dtype = 'I64';
    }
    entries.push({ name, tensor: t, dtype, bytes: t.size * ELEMENT_BYTES[dtype] });
  }
  let meta: [string, string][] = [];
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
      throw new ArgumentError(`${fn}: expected an object of strings for argument 'metadata' but received ${describeValue(metadata)}`, { fn, arg: 'metadata' });
    meta = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== 'string')
        throw new ArgumentError(`${fn}: argument 'metadata' must map to strings but ${showName(k)} maps to ${describeValue(v)}`, { fn, arg: 'metadata' });
      return [k, v];
    });
    meta.sort((a, b) => compareUtf8(a[0], b[0]));
  }
  entries.sort((a, b) => WRITE_ORDER[a.dtype] - WRITE_ORDER[b.dtype] || compareUtf8(a.name, b.name));

  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`"__metadata__":{${meta.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  let offset = 0;
  for (const e of entries) {
    parts.push(`${JSON.stringify(e.name)}:{"dtype":"${e.dtype}","shape":[${e.tensor.shape.join(',')}],"data_offsets":[${offset},${offset + e.bytes}]}`);
    offset += e.bytes;
  }
  let header = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  // Padding to 8 bytes (spaces are JSON whitespace) aligns the data start, as the Python writer does.
  header = Buffer.concat([header, Buffer.alloc((8 - (header.length % 8)) % 8, 0x20)]);
  if (header.length > MAX_HEADER_BYTES)
    throw new ArgumentError(`${fn}: the header would be ${header.length} bytes, over the ${MAX_HEADER_BYTES}-byte limit of the format (too many or too long names)`, {
      fn,
      arg: 'tensors',
    });
  const lengthField = Buffer.alloc(8);
  lengthField.writeBigUInt64LE(BigInt(header.length));

  await writeFileAtomic(path, async (sink) => {
    await sink.write(lengthField);
    await sink.write(header);
    for (const e of entries) {
      const bytes = encode(await e.tensor.data(), e.dtype);
      if (bytes.byteLength !== e.bytes)
        throw new InternalError(`${fn}: tensor ${showName(e.name)} gave ${bytes.byteLength} bytes where ${e.bytes} were expected`, { fn, arg: 'tensors' });
      await sink.write(bytes);
    }
  });
}

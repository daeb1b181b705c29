// safetensors reading and writing, and atomic file replacement: round trips for every dtype and odd
// shapes, bit-exact 16-bit floats, the Python library's byte layout, subsets and casts on load,
// crafted malicious and truncated files (each a FormatError naming the problem), a mutation fuzz loop
// (every mutant loads or throws FormatError, nothing else), bad arguments, and a SIGKILL loop that
// must never leave an unreadable target.
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  ArgumentError,
  DTypeError,
  DeviceError,
  DisposedError,
  FormatError,
  MAX_HEADER_BYTES,
  Tensor,
  arange,
  loadSafetensors,
  randn,
  readSafetensorsHeader,
  saveSafetensors,
  tensor,
  writeFileAtomic,
  zeros,
} from '../../lib';
import { f16ToF32Bits, f32BitsToBf16, f32BitsToF16 } from '../../lib/io/safetensors';
import { describeCuda, describeNoCuda, expectEqualArrays, rng } from '../setup';

let dir = '';
let fileCount = 0;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-safetensors-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function tempPath(name = 'file'): string {
  return path.join(dir, `${name}-${fileCount++}.safetensors`);
}

function disposeAll(tensors: Map<string, Tensor>): void {
  for (const t of tensors.values()) t.dispose();
}

function u64(n: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

/**
 * File bytes as the Python library lays them out: the 8-byte little-endian header length, the JSON
 * header (no spaces) padded with spaces to a multiple of 8 bytes, then the data.
 */
function pythonLayout(headerJson: string, data: Uint8Array = new Uint8Array(0)): Buffer {
  const raw = Buffer.from(headerJson, 'utf8');
  const header = Buffer.concat([raw, Buffer.alloc((8 - (raw.length % 8)) % 8, 0x20)]);
  return Buffer.concat([u64(header.length), header, data]);
}

/** Raw file bytes with a given header (no padding) and `dataBytes` zero bytes of data. */
function craft(header: string | Uint8Array, dataBytes = 0): Buffer {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  return Buffer.concat([u64(h.length), h, Buffer.alloc(dataBytes)]);
}

function writeTemp(bytes: Uint8Array, name = 'crafted'): string {
  const p = tempPath(name);
  fs.writeFileSync(p, bytes);
  return p;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function expectFormatError(call: Promise<unknown>, pattern: RegExp, fn: string, file: string, tensorName?: string): Promise<void> {
  let caught: unknown;
  try {
    const result = await call;
    if (result instanceof Map) disposeAll(result as Map<string, Tensor>);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FormatError);
  const err = caught as FormatError;
  expect(err.message).toMatch(pattern);
  expect(err.fn).toBe(fn);
  expect(err.file).toBe(file);
  expect(err.message).toContain(file);
  if (tensorName !== undefined) expect(err.tensor).toBe(tensorName);
}

async function rejection(call: Promise<unknown>): Promise<unknown> {
  try {
    const result = await call;
    if (result instanceof Map) disposeAll(result as Map<string, Tensor>);
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('round trips', () => {
  test('every dtype and odd shapes load back bit for bit', async () => {
    const made: Record<string, Tensor> = {
      f32: randn([3, 5, 7], { seed: 1 }),
      f16: randn([4, 9], { seed: 2, dtype: 'float16' }),
      bf16: randn([1, 1, 13], { seed: 3, dtype: 'bfloat16' }),
      i32: tensor(new Int32Array([-2147483648, -1, 0, 1, 2147483647, 12345])),
      scalar: tensor(3.25),
      scalarBf16: tensor(-0.5, [], { dtype: 'bfloat16' }),
      empty: zeros([0, 3]),
      empty16: zeros([5, 0], { dtype: 'float16' }),
      one: tensor([7], [1, 1, 1]),
      large: randn([1024, 1031], { seed: 4 }),
      largeBf16: randn([513, 1025], { seed: 5, dtype: 'bfloat16' }),
    };
    const p = tempPath('all');
    await saveSafetensors(p, made, { source: 'test' });
    const loaded = await loadSafetensors(p);
    try {
      expect([...loaded.keys()].sort()).toEqual(Object.keys(made).sort());
      for (const [name, t] of Object.entries(made)) {
        const back = loaded.get(name)!;
        expect(back.shape).toEqual(t.shape);
        expect(back.dtype).toBe(t.dtype);
        expect(back.device).toBe('cpu');
        expectEqualArrays(await back.data(), await t.data());
      }
      const header = await readSafetensorsHeader(p);
      expect(header.metadata).toEqual({ source: 'test' });
      expect(header.tensors.f16.dtype).toBe('F16');
      expect(header.tensors.bf16.dtype).toBe('BF16');
      expect(header.tensors.i32.dtype).toBe('I32');
      expect(header.tensors.scalar).toEqual({ dtype: 'F32', shape: [], offsets: expect.any(Array) });
      expect(header.tensors.empty.offsets[1] - header.tensors.empty.offsets[0]).toBe(0);
    } finally {
      disposeAll(loaded);
      for (const t of Object.values(made)) t.dispose();
    }
  });

  test('a Map is accepted and int32 tensors are written as I64 only when asked', async () => {
    const ids = tensor(new Int32Array([-7, 0, 2147483647, -2147483648]), [2, 2]);
    const other = tensor(new Int32Array([1, 2, 3]));
    const p = tempPath('int64');
    await saveSafetensors(p, new Map([['ids', ids], ['other', other]]), undefined, { int64: ['ids'] });
    const header = await readSafetensorsHeader(p);
    expect(header.tensors.ids).toEqual({ dtype: 'I64', shape: [2, 2], offsets: [0, 32] });
    expect(header.tensors.other.dtype).toBe('I32');
    expect(header.metadata).toEqual({});
    const raw = fs.readFileSync(p);
    const start = 8 + Number(raw.readBigUInt64LE(0));
    expect(raw.readBigInt64LE(start + 16)).toBe(2147483647n);
    expect(raw.readBigInt64LE(start + 24)).toBe(-2147483648n);
    const loaded = await loadSafetensors(p);
    expect(loaded.get('ids')!.dtype).toBe('int32');
    expectEqualArrays(await loaded.get('ids')!.data(), await ids.data());
    disposeAll(loaded);
    const p2 = tempPath('int64-all');
    await saveSafetensors(p2, { ids, other }, undefined, { int64: true });
    expect((await readSafetensorsHeader(p2)).tensors.other.dtype).toBe('I64');
    ids.dispose();
    other.dispose();
  });

  test('a subset of names loads only those tensors', async () => {
    const a = arange(6);
    const b = arange(4, undefined, 1, { dtype: 'bfloat16' });
    const c = tensor(new Int32Array([9]));
    const p = tempPath('subset');
    await saveSafetensors(p, { a, b, c });
    const loaded = await loadSafetensors(p, { names: ['c', 'b'] });
    expect([...loaded.keys()].sort()).toEqual(['b', 'c']);
    expectEqualArrays(await loaded.get('b')!.data(), [0, 1, 2, 3]);
    disposeAll(loaded);
    const err = await rejection(loadSafetensors(p, { names: ['a', 'nope'] }));
    expect(err).toBeInstanceOf(ArgumentError);
    expect((err as ArgumentError).arg).toBe('names');
    expect((err as Error).message).toMatch(/"nope"/);
    for (const t of [a, b, c]) t.dispose();
  });

  test('dtype on load converts float tensors (as cast does) and leaves int32 tensors alone', async () => {
    const f = randn([17, 3], { seed: 9 });
    const h = randn([5], { seed: 10, dtype: 'float16' });
    const i = tensor(new Int32Array([4, 5]));
    const p = tempPath('cast');
    await saveSafetensors(p, { f, h, i });
    const loaded = await loadSafetensors(p, { dtype: 'bfloat16' });
    expect(loaded.get('f')!.dtype).toBe('bfloat16');
    expect(loaded.get('h')!.dtype).toBe('bfloat16');
    expect(loaded.get('i')!.dtype).toBe('int32');
    const fc = f.cast('bfloat16');
    const hc = h.cast('bfloat16');
    expectEqualArrays(await loaded.get('f')!.data(), await fc.data());
    expectEqualArrays(await loaded.get('h')!.data(), await hc.data());
    disposeAll(loaded);
    const wide = await loadSafetensors(p, { dtype: 'float32', names: ['h'] });
    expect(wide.get('h')!.dtype).toBe('float32');
    expectEqualArrays(await wide.get('h')!.data(), await h.data());
    disposeAll(wide);
    for (const t of [f, h, i, fc, hc]) t.dispose();
  });

  test('a tensor named __proto__ and metadata keys like __proto__ are plain entries', async () => {
    const p = writeTemp(pythonLayout('{"__metadata__":{"__proto__":"x"},"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)));
    const header = await readSafetensorsHeader(p);
    expect(Object.keys(header.tensors)).toEqual(['__proto__']);
    expect(header.metadata.__proto__).toBe('x');
    expect(Object.getPrototypeOf(header.tensors)).toBeNull();
    const loaded = await loadSafetensors(p);
    expect(loaded.get('__proto__')!.shape).toEqual([1]);
    disposeAll(loaded);
  });
});

describe('16-bit floats', () => {
  const patterns = new Uint16Array(65536).map((_, i) => i);
  const isF16NaN = (h: number): boolean => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
  const isBf16NaN = (h: number): boolean => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;

  test.each([
    ['F16', isF16NaN, 0x0200, (h: number) => f16ToF32Bits(h)],
    ['BF16', isBf16NaN, 0x0040, (h: number) => (h << 16) >>> 0],
  ] as const)('all 65536 %s patterns load and save bit for bit (NaNs come back quiet)', async (dtype, isNaN16, quietBit, toF32Bits) => {
    const src = writeTemp(pythonLayout(`{"x":{"dtype":"${dtype}","shape":[256,256],"data_offsets":[0,131072]}}`, bytesOf(patterns)), dtype);
    const loaded = await loadSafetensors(src);
    const t = loaded.get('x')!;
    const values = new Uint32Array((await t.data()).buffer);
    for (let h = 0; h < 65536; h++) {
      const want = isNaN16(h) ? toF32Bits(h | quietBit) : toF32Bits(h);
      if (values[h] !== want) throw new Error(`${dtype} pattern 0x${h.toString(16)} loaded as 0x${values[h].toString(16)}, expected 0x${want.toString(16)}`);
    }
    const out = tempPath(`${dtype}-out`);
    await saveSafetensors(out, loaded);
    disposeAll(loaded);
    const raw = fs.readFileSync(out);
    const start = 8 + Number(raw.readBigUInt64LE(0));
    const written = new Uint16Array(raw.buffer.slice(raw.byteOffset + start, raw.byteOffset + start + 131072));
    for (let h = 0; h < 65536; h++) {
      const want = isNaN16(h) ? h | quietBit : h;
      if (written[h] !== want) throw new Error(`${dtype} pattern 0x${h.toString(16)} written as 0x${written[h].toString(16)}`);
    }
  });

  test('the JS conversions round like native/half.h on random and edge-case float32 values', async () => {
    const next = rng(77);
    const n = 1 << 17;
    const bits = new Uint32Array(n);
    const edges = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffbfffff, 0x477fefff, 0x477ff000, 0x38800000, 0x387fffff, 0x33000000, 0x33000001, 0x32ffffff, 0x7f7fffff, 0xff7fffff, 0x3f808000, 0x3f818000, 0x00000001];
    bits.set(edges);
    for (let i = edges.length; i < n; i++) bits[i] = Math.floor(next() * 4294967296);
    const x = tensor(new Float32Array(bits.buffer), [n]);
    const h = x.cast('float16');
    const b = x.cast('bfloat16');
    const hBits = new Uint32Array((await h.data()).buffer);
    const bBits = new Uint32Array((await b.data()).buffer);
    for (let i = 0; i < n; i++) {
      const wantH = f16ToF32Bits(f32BitsToF16(bits[i]));
      const wantB = (f32BitsToBf16(bits[i]) << 16) >>> 0;
      if (hBits[i] !== wantH) throw new Error(`f16 of 0x${bits[i].toString(16)}: native 0x${hBits[i].toString(16)}, JS 0x${wantH.toString(16)}`);
      if (bBits[i] !== wantB) throw new Error(`bf16 of 0x${bits[i].toString(16)}: native 0x${bBits[i].toString(16)}, JS 0x${wantB.toString(16)}`);
    }
    for (const t of [x, h, b]) t.dispose();
  });
});

describe('the Python library layout', () => {
  test('an empty file, with and without metadata, matches byte for byte', async () => {
    const empty = pythonLayout('{}');
    expect([...empty]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 32, 32, 32, 32, 32, 32]);
    const p = tempPath('empty');
    await saveSafetensors(p, {});
    expect(fs.readFileSync(p)).toEqual(empty);
    const loaded = await loadSafetensors(writeTemp(empty));
    expect(loaded.size).toBe(0);
    const withMeta = pythonLayout('{"__metadata__":{"framework":"pt"}}');
    expect(withMeta.length).toBe(48);
    const p2 = tempPath('empty-meta');
    await saveSafetensors(p2, {}, { framework: 'pt' });
    expect(fs.readFileSync(p2)).toEqual(withMeta);
    expect((await readSafetensorsHeader(writeTemp(withMeta))).metadata).toEqual({ framework: 'pt' });
  });

  test('one F32 tensor, unpadded and padded, matches byte for byte and loads', async () => {
    const data = bytesOf(new Float32Array([0, 1, 2, 3, 4, 5]));
    for (const [name, shape] of [
      ['attn.0', [1, 2, 3]],
      ['attn0', [1, 1, 2, 3]],
    ] as const) {
      const expected = pythonLayout(`{"${name}":{"dtype":"F32","shape":[${shape.join(',')}],"data_offsets":[0,24]}}`, data);
      expect(expected.readBigUInt64LE(0) % 8n).toBe(0n);
      const src = writeTemp(expected);
      const loaded = await loadSafetensors(src);
      expectEqualArrays(await loaded.get(name)!.data(), [0, 1, 2, 3, 4, 5]);
      const p = tempPath('attn');
      await saveSafetensors(p, loaded);
      expect(fs.readFileSync(p)).toEqual(expected);
      disposeAll(loaded);
    }
  });

  test('mixed dtypes are ordered by element size, then name, with the metadata first', async () => {
    // What safetensors.torch.save_file writes for these tensors: I64, F32, I32, BF16, F16, then by name.
    const json =
      '{"__metadata__":{"a":"1","format":"pt"},' +
      '"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},' +
      '"w":{"dtype":"F32","shape":[1],"data_offsets":[24,28]},' +
      '"c":{"dtype":"I32","shape":[1],"data_offsets":[28,32]},' +
      '"a":{"dtype":"BF16","shape":[3],"data_offsets":[32,38]},' +
      '"z":{"dtype":"F16","shape":[1,1],"data_offsets":[38,40]}}';
    const data = Buffer.concat([
      bytesOf(new BigInt64Array([5n, -3n])),
      bytesOf(new Float32Array([1.5, -2])),
      bytesOf(new Float32Array([0.25])),
      bytesOf(new Int32Array([-9])),
      bytesOf(new Uint16Array([0x3f80, 0xc000, 0x0000])),
      bytesOf(new Uint16Array([0x3c00])),
    ]);
    const expected = pythonLayout(json, data);
    const loaded = await loadSafetensors(writeTemp(expected));
    expectEqualArrays(await loaded.get('ids')!.data(), [5, -3]);
    expectEqualArrays(await loaded.get('a')!.data(), [1, -2, 0]);
    expectEqualArrays(await loaded.get('z')!.data(), [1]);
    expect(loaded.get('z')!.shape).toEqual([1, 1]);
    const p = tempPath('mixed');
    await saveSafetensors(p, loaded, { format: 'pt', a: '1' }, { int64: ['ids'] });
    expect(fs.readFileSync(p)).toEqual(expected);
    disposeAll(loaded);
  });
});

// [what is wrong, file bytes, message pattern, tensor named by the error]
type BadFile = [string, Buffer, RegExp, string?];
const f32a = '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}';
const entry = (fields: string): string => `{"a":{${fields}}}`;
const badFiles: BadFile[] = [
  ['an empty file', Buffer.alloc(0), /0 bytes, too few .*truncated/],
  ['a truncated header length', Buffer.from([8, 0, 0, 0, 0]), /5 bytes, too few/],
  ['a header length of 2^63', Buffer.concat([u64(2n ** 63n), Buffer.from('{}')]), /header length 9223372036854775808 is over the limit/],
  ['a header length just over 100 MB', Buffer.concat([u64(MAX_HEADER_BYTES + 1), Buffer.from('{}')]), /over the limit of 100000000 bytes/],
  ['a header length beyond the end of the file', Buffer.concat([u64(64), Buffer.from('{}')]), /header length 64 is more than the 2 bytes/],
  ['a header length of 0', u64(0), /not valid JSON: unexpected end/],
  ['a header that is not UTF-8', craft(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /not valid UTF-8/],
  ['a header that is not JSON', craft('hello'), /not valid JSON: unexpected character at character 0/],
  ['a header that is a JSON array', craft('[]'), /must be a JSON object but is an array/],
  ['a header that is a JSON number', craft('3'), /must be a JSON object but is the number 3/],
  ['a header that is true', craft('true'), /must be a JSON object but is true/],
  ['text after the JSON object', craft('{} x'), /unexpected text after the JSON value/],
  ['a byte-order mark before the JSON', craft('\ufeff{}'), /not valid JSON/],
  ['an unterminated string', craft('{"a'), /unterminated string/],
  ['a number as a key', craft('{1:2}'), /expected a string key/],
  ['a missing colon', craft('{"a" 1}'), /expected ':'/],
  ['an entry that is not an object', craft('{"a":3}'), /entry must be an object but is the number 3/, 'a'],
  ['an unknown dtype', craft(entry('"dtype":"F33","shape":[2],"data_offsets":[0,8]'), 8), /unknown dtype "F33"/, 'a'],
  ['an unsupported dtype (F64)', craft(entry('"dtype":"F64","shape":[1],"data_offsets":[0,8]'), 8), /dtype 'F64' is not supported/, 'a'],
  ['a dtype that is not a string', craft(entry('"dtype":4,"shape":[1],"data_offsets":[0,4]'), 4), /'dtype' must be a string but is the number 4/, 'a'],
  ['a missing dtype', craft(entry('"shape":[1],"data_offsets":[0,4]'), 4), /'dtype' must be a string but is missing/, 'a'],
  ['a missing shape', craft(entry('"dtype":"F32","data_offsets":[0,8]'), 8), /'shape' must be an array but is missing/, 'a'],
  ['a shape that is not an array', craft(entry('"dtype":"F32","shape":2,"data_offsets":[0,8]'), 8), /'shape' must be an array but is the number 2/, 'a'],
  ['a negative size', craft(entry('"dtype":"F32","shape":[-1],"data_offsets":[0,0]')), /shape\[0\] must be a non-negative integer but is the number -1/, 'a'],
  ['a fractional size', craft(entry('"dtype":"F32","shape":[1.5],"data_offsets":[0,8]'), 8), /shape\[0\] must be a non-negative integer but is the number 1.5/, 'a'],
  ['a size in exponent form', craft(entry('"dtype":"F32","shape":[2e0],"data_offsets":[0,8]'), 8), /shape\[0\] must be a non-negative integer/, 'a'],
  ['a size written as a string', craft(entry('"dtype":"F32","shape":["2"],"data_offsets":[0,8]'), 8), /shape\[0\] must be a non-negative integer but is the string "2"/, 'a'],
  ['a size with a leading zero', craft(entry('"dtype":"F32","shape":[02],"data_offsets":[0,8]'), 8), /not valid JSON: expected ',' or '\]'/],
  ['a size over 2^53', craft(entry('"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,8]'), 8), /shape\[0\] 9007199254740993 is too large/, 'a'],
  ['an element count that overflows', craft(entry('"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]')), /too many elements \(overflow\)/, 'a'],
  ['a byte count that overflows', craft(entry('"dtype":"I64","shape":[2251799813685248],"data_offsets":[0,8]'), 8), /too many bytes \(overflow\)/, 'a'],
  ['missing data_offsets', craft(entry('"dtype":"F32","shape":[2]'), 8), /'data_offsets' must be an array of two integers but is missing/, 'a'],
  ['three data_offsets', craft(entry('"dtype":"F32","shape":[2],"data_offsets":[0,8,8]'), 8), /of length 3/, 'a'],
  ['a fractional offset', craft(entry('"dtype":"F32","shape":[2],"data_offsets":[0,8.0]'), 8), /data_offsets\[1\] must be a non-negative integer/, 'a'],
  ['a negative offset', craft(entry('"dtype":"F32","shape":[2],"data_offsets":[-8,0]'), 8), /data_offsets\[0\] must be a non-negative integer/, 'a'],
  ['offsets that end before they begin', craft(entry('"dtype":"F32","shape":[2],"data_offsets":[8,0]'), 8), /end before they begin/, 'a'],
  ['a byte length that does not match the shape', craft(entry('"dtype":"F32","shape":[2],"data_offsets":[0,4]'), 4), /hold 4 bytes but shape \[2\] of F32 needs 8 \(length mismatch\)/, 'a'],
  ['a first tensor not at offset 0', craft(entry('"dtype":"F32","shape":[2],"data_offsets":[4,12]'), 12), /must start at offset 0/, 'a'],
  ['a gap between tensors', craft(`{${f32a},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}`, 20), /gap of 4 bytes/, 'b'],
  ['overlapping tensors', craft(`{${f32a},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), /overlap the previous tensor, which ends at 8/, 'b'],
  ['two tensors at the same offsets', craft(`{${f32a},"b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}`, 8), /overlap/],
  ['trailing bytes after the last tensor', craft(`{${f32a}}`, 12), /4 trailing bytes/],
  ['missing tensor bytes', craft(`{${f32a}}`, 4), /4 bytes missing \(truncated\)/],
  ['a tensor defined twice in the JSON text', craft(`{${f32a},${f32a}}`, 8), /duplicate key "a"/, 'a'],
  ['a field defined twice in an entry', craft(entry('"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]'), 8), /duplicate key "dtype"/],
  ['an unexpected field in an entry', craft(entry('"dtype":"F32","shape":[2],"data_offsets":[0,8],"offsets":[0,8]'), 8), /unexpected field "offsets"/, 'a'],
  ['__metadata__ that is not an object', craft(`{"__metadata__":"x",${f32a}}`, 8), /'__metadata__' must be an object of strings but is the string "x"/],
  ['a __metadata__ value that is not a string', craft(`{"__metadata__":{"step":1},${f32a}}`, 8), /'__metadata__' value of "step" must be a string but is the number 1/],
  ['a __metadata__ key defined twice', craft(`{"__metadata__":{"k":"1","k":"2"},${f32a}}`, 8), /duplicate key "k"/],
  ['JSON nested 100,000 levels deep', craft(`{"__metadata__":${'['.repeat(100000)}${']'.repeat(100000)}}`), /nested deeper than 32 levels/],
  ['a raw control character in a name', craft(`{"a\nb":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}`), /control character in a string/],
  ['a lone surrogate escape in a name', craft('{"\\ud800":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'), /lone high surrogate/],
  ['an invalid escape in a name', craft('{"\\q":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'), /invalid escape/],
  ['an I64 id outside the int32 range', Buffer.concat([craft(entry('"dtype":"I64","shape":[1],"data_offsets":[0,8]')), u64(2n ** 40n)]), /I64 value 1099511627776 at index 0 is outside the int32 range/, 'a'],
];

describe('malicious and truncated files', () => {
  test(`at least 30 crafted cases (${badFiles.length})`, () => {
    expect(badFiles.length).toBeGreaterThanOrEqual(30);
  });

  // A rest parameter: jest passes a done callback to functions declaring more parameters than a row has.
  test.each(badFiles)('%s is rejected with a FormatError', async (...[, bytes, pattern, tensorName]: BadFile) => {
    const p = writeTemp(bytes);
    await expectFormatError(loadSafetensors(p), pattern, 'loadSafetensors', p, tensorName);
    // The header alone is enough to reject every case but the out-of-range ids, which are in the data.
    if (!/I64 value/.test(pattern.source)) await expectFormatError(readSafetensorsHeader(p), pattern, 'readSafetensorsHeader', p, tensorName);
  });

  test('tensors loaded before a bad tensor is found are disposed', async () => {
    const header = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I64","shape":[1],"data_offsets":[4,12]}}';
    const p = writeTemp(Buffer.concat([craft(header), Buffer.alloc(4), u64(2n ** 33n)]));
    await expectFormatError(loadSafetensors(p), /outside the int32 range/, 'loadSafetensors', p, 'b');
  });

  test('mutated copies of a valid file either load or throw FormatError, never anything else', async () => {
    const made: Record<string, Tensor> = {
      f32: randn([3, 4], { seed: 21 }),
      f16: randn([5], { seed: 22, dtype: 'float16' }),
      bf16: randn([2, 3], { seed: 23, dtype: 'bfloat16' }),
      i32: tensor(new Int32Array([1, -2, 3])),
      ids: tensor(new Int32Array([4, 5])),
      empty: zeros([0]),
    };
    const src = tempPath('fuzz-src');
    await saveSafetensors(src, made, { note: 'fuzz' }, { int64: ['ids'] });
    for (const t of Object.values(made)) t.dispose();
    const valid = fs.readFileSync(src);
    const headerEnd = 8 + Number(valid.readBigUInt64LE(0));
    const next = rng(2024);
    const pick = (n: number): number => Math.floor(next() * n);
    const interesting = Buffer.from('{}[]",:-.0123456789eE \\u\x00\xff');
    const outcomes = { loaded: 0, rejected: 0 };
    const p = tempPath('fuzz');
    for (let round = 0; round < 400; round++) {
      let bytes = Buffer.from(valid);
      const kind = pick(6);
      // Most mutations hit the header, where the parser and the checks are.
      const at = next() < 0.85 ? pick(headerEnd) : pick(bytes.length);
      if (kind === 0) bytes[at] ^= 1 << pick(8);
      else if (kind === 1) bytes[at] = interesting[pick(interesting.length)];
      else if (kind === 2) bytes = bytes.subarray(0, pick(bytes.length));
      else if (kind === 3) bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([interesting[pick(interesting.length)]]), bytes.subarray(at)]);
      else if (kind === 4) bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + 1 + pick(4)))]);
      else bytes.writeBigUInt64LE(BigInt(Math.max(0, headerEnd - 8 + pick(17) - 8)), 0);
      fs.writeFileSync(p, bytes);
      for (const read of [() => loadSafetensors(p), () => readSafetensorsHeader(p)]) {
        try {
          const result = await read();
          if (result instanceof Map) disposeAll(result);
          outcomes.loaded++;
        } catch (e) {
          if (!(e instanceof FormatError)) throw new Error(`mutation ${round} (kind ${kind} at ${at}) threw ${String(e)} instead of a FormatError`);
          expect(e.file).toBe(p);
          outcomes.rejected++;
        }
      }
    }
    expect(outcomes.loaded).toBeGreaterThan(20);
    expect(outcomes.rejected).toBeGreaterThan(200);
  });
});

describe('bad arguments', () => {
  test('loadSafetensors and readSafetensorsHeader reject bad arguments with typed errors', async () => {
    const p = tempPath('args');
    const t = arange(3);
    await saveSafetensors(p, { t });
    t.dispose();
    const cases: [Promise<unknown>, new (...a: never[]) => Error, string][] = [
      [loadSafetensors(42 as never), ArgumentError, 'path'],
      [loadSafetensors(''), ArgumentError, 'path'],
      [loadSafetensors(p, 'x' as never), ArgumentError, 'options'],
      [loadSafetensors(p, { device: 'tpu' as never }), DeviceError, 'device'],
      [loadSafetensors(p, { dtype: 'float64' as never }), DTypeError, 'dtype'],
      [loadSafetensors(p, { dtype: 'int32' }), DTypeError, 'dtype'],
      [loadSafetensors(p, { names: 't' as never }), ArgumentError, 'names'],
      [loadSafetensors(p, { names: [1 as never] }), ArgumentError, 'names'],
      [readSafetensorsHeader(null as never), ArgumentError, 'path'],
    ];
    for (const [call, cls, arg] of cases) {
      const err = await rejection(call);
      expect(err).toBeInstanceOf(cls);
      expect((err as { arg?: string }).arg).toBe(arg);
    }
    const missing = await rejection(loadSafetensors(path.join(dir, 'does-not-exist.safetensors')));
    expect((missing as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  test('saveSafetensors rejects bad arguments with typed errors and leaves no file', async () => {
    const good = arange(2);
    const ints = tensor(new Int32Array([1]));
    const gone = arange(2);
    gone.dispose();
    const p = tempPath('bad-save');
    const cases: [() => Promise<unknown>, new (...a: never[]) => Error, string][] = [
      [() => saveSafetensors(7 as never, { good }), ArgumentError, 'path'],
      [() => saveSafetensors(p, [good] as never), ArgumentError, 'tensors'],
      [() => saveSafetensors(p, good as never), ArgumentError, 'tensors'],
      [() => saveSafetensors(p, { x: [1, 2] } as never), ArgumentError, 'tensors'],
      [() => saveSafetensors(p, { gone }), DisposedError, 'tensors'],
      [() => saveSafetensors(p, { __metadata__: good }), ArgumentError, 'tensors'],
      [() => saveSafetensors(p, { good }, { step: 3 } as never), ArgumentError, 'metadata'],
      [() => saveSafetensors(p, { good }, 'meta' as never), ArgumentError, 'metadata'],
      [() => saveSafetensors(p, { good }, undefined, { int64: ['good'] }), DTypeError, 'options'],
      [() => saveSafetensors(p, { ints }, undefined, { int64: ['nope'] }), ArgumentError, 'options'],
      [() => saveSafetensors(p, { ints }, undefined, { int64: 'ints' as never }), ArgumentError, 'options'],
    ];
    for (const [call, cls, arg] of cases) {
      const err = await rejection(call());
      expect(err).toBeInstanceOf(cls);
      expect((err as { fn?: string }).fn).toBe('saveSafetensors');
      expect((err as { arg?: string }).arg).toBe(arg);
    }
    expect(fs.existsSync(p)).toBe(false);
    good.dispose();
    ints.dispose();
  });
});

describeNoCuda('without CUDA', () => {
  test("device 'cuda' is refused with a DeviceError and nothing is left allocated", async () => {
    const p = tempPath('nocuda');
    const t = arange(4);
    await saveSafetensors(p, { t });
    t.dispose();
    expect(await rejection(loadSafetensors(p, { device: 'cuda' }))).toBeInstanceOf(DeviceError);
  });
});

describeCuda('CUDA', () => {
  test('tensors load onto the GPU and save from it bit for bit', async () => {
    const x = randn([33, 7], { seed: 5, dtype: 'bfloat16', device: 'cuda' });
    const p = tempPath('cuda');
    await saveSafetensors(p, { x });
    const loaded = await loadSafetensors(p, { device: 'cuda' });
    expect(loaded.get('x')!.device).toBe('cuda');
    expectEqualArrays(await loaded.get('x')!.data(), await x.data());
    disposeAll(loaded);
    x.dispose();
  });
});

// ---- atomic writes ----

/** A require()-able path of lib/io/atomic for a child process (transpiled when the tests run from TypeScript). */
function atomicModule(): string {
  const compiled = path.join(__dirname, '..', '..', 'lib', 'io', 'atomic.js');
  if (fs.existsSync(compiled)) return compiled;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ts = require('typescript') as typeof import('typescript');
  const out = path.join(dir, 'child-lib');
  for (const rel of ['errors', 'io/atomic']) {
    const source = fs.readFileSync(path.join(__dirname, '..', '..', 'lib', `${rel}.ts`), 'utf8');
    const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
    fs.mkdirSync(path.dirname(path.join(out, `${rel}.js`)), { recursive: true });
    fs.writeFileSync(path.join(out, `${rel}.js`), js);
  }
  return path.join(out, 'io', 'atomic.js');
}

// Saves forever: save k is a valid safetensors file whose one F32 tensor is all k, streamed in
// 1 MiB chunks; "k" is printed after each save returns.
const SAVE_LOOP = `
const { writeFileAtomic } = require(process.argv[1]);
const target = process.argv[2];
const n = Number(process.argv[3]);
let header = Buffer.from(JSON.stringify({ x: { dtype: 'F32', shape: [n], data_offsets: [0, 4 * n] } }));
header = Buffer.concat([header, Buffer.alloc((8 - (header.length % 8)) % 8, 32)]);
const length = Buffer.alloc(8);
length.writeBigUInt64LE(BigInt(header.length));
(async () => {
  for (let k = 1; ; k++) {
    const chunk = new Float32Array(1 << 18).fill(k);
    await writeFileAtomic(target, async (out) => {
      await out.write(length);
      await out.write(header);
      for (let done = 0; done < n; done += chunk.length)
        await out.write(new Uint8Array(chunk.buffer, 0, Math.min(chunk.length, n - done) * 4));
    });
    process.stdout.write(k + '\\n');
  }
})();
`;

describe('atomic writes', () => {
  test('writeFileAtomic writes bytes and strings, and replaces an existing file', async () => {
    const p = path.join(dir, 'plain.txt');
    await writeFileAtomic(p, 'first');
    expect(fs.readFileSync(p, 'utf8')).toBe('first');
    await writeFileAtomic(p, new Uint8Array([104, 105]));
    expect(fs.readFileSync(p, 'utf8')).toBe('hi');
    await writeFileAtomic(p, async (out) => {
      await out.write('a');
      await out.write(Buffer.from('bc'));
      expect(out.bytesWritten).toBe(3);
    });
    expect(fs.readFileSync(p, 'utf8')).toBe('abc');
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  test('a failing writer leaves the old file and no temporary file', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'fail-'));
    const p = path.join(sub, 'target.bin');
    await writeFileAtomic(p, 'old');
    const err = await rejection(
      writeFileAtomic(p, async (out) => {
        await out.write('partial new contents');
        throw new Error('writer failed');
      }),
    );
    expect((err as Error).message).toBe('writer failed');
    expect(fs.readFileSync(p, 'utf8')).toBe('old');
    expect(fs.readdirSync(sub)).toEqual(['target.bin']);
    expect(await rejection(writeFileAtomic('', 'x'))).toBeInstanceOf(ArgumentError);
    expect(await rejection(writeFileAtomic(p, 5 as never))).toBeInstanceOf(ArgumentError);
    expect((await rejection(writeFileAtomic(path.join(sub, 'no-such-dir', 'f'), 'x')) as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  test('a failed saveSafetensors leaves the previous checkpoint readable', async () => {
    const p = tempPath('keep-old');
    const a = arange(5);
    await saveSafetensors(p, { a });
    const b = arange(7);
    // b is disposed after the argument checks, while the save is reading tensors back
    const z = b.reshape([7, 1]);
    const save = saveSafetensors(p, { b, z });
    b.dispose();
    expect(await rejection(save)).toBeInstanceOf(DisposedError);
    z.dispose();
    const loaded = await loadSafetensors(p);
    expectEqualArrays(await loaded.get('a')!.data(), [0, 1, 2, 3, 4]);
    disposeAll(loaded);
    a.dispose();
  });

  test('SIGKILL in the middle of repeated saves never leaves an unreadable target', async () => {
    const sub = fs.mkdtempSync(path.join(dir, 'kill-'));
    const target = path.join(sub, 'latest.safetensors');
    const moduleFile = atomicModule();
    const n = 2 * 1024 * 1024;
    const next = rng(99);
    let saves = 0;
    for (let round = 0; round < 5; round++) {
      const child = cp.spawn(process.execPath, ['-e', SAVE_LOOP, moduleFile, target, String(n)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let errText = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (errText += d.toString()));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
      // Wait for the first complete save of this child, then kill it at a random point of a later one.
      const started = Date.now();
      while (!out.includes('\n')) {
        if (Date.now() - started > 10000 || child.exitCode !== null) throw new Error(`the save loop did not start: ${errText}`);
        await new Promise((r) => setTimeout(r, 5));
      }
      await new Promise((r) => setTimeout(r, 10 + next() * 150));
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      const printed = out.trim().split('\n').map(Number);
      const last = printed[printed.length - 1];
      saves += last;
      const loaded = await loadSafetensors(target);
      const values = await loaded.get('x')!.data();
      disposeAll(loaded);
      expect(values.length).toBe(n);
      // The last reported save, or the one after it if the kill came between rename and print.
      const k = values[0];
      expect([last, last + 1]).toContain(k);
      expect(values.every((v) => v === k)).toBe(true);
      // Only the target and temporary files of killed saves may be in the directory.
      for (const f of fs.readdirSync(sub)) expect(f === 'latest.safetensors' || /^\.latest\.safetensors\.\d+\.[0-9a-f]{12}\.tmp$/.test(f)).toBe(true);
    }
    expect(saves).toBeGreaterThanOrEqual(5);
  });
});

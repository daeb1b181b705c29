// Tensor creation, conversion and read-back on the CPU (CI) — the CUDA twin is cuda.test.ts.
import { DType, Tensor, arange, full, ones, tensor, zeros } from '../lib';
import { expectEqualArrays } from './setup';

const FLOATS: DType[] = ['float32', 'float16', 'bfloat16'];

describe('tensor()', () => {
  test('nested arrays infer the shape', () => {
    const t = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    expect(t.device).toBe('cpu');
    expect(t.size).toBe(6);
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(t.arraySync()).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    t.dispose();
  });

  test('a scalar has shape []', () => {
    const t = tensor(3.5);
    expect(t.shape).toEqual([]);
    expect(Array.from(t.dataSync())).toEqual([3.5]);
    t.dispose();
  });

  test('typed arrays with a shape, and empty tensors', () => {
    const t = tensor(new Float64Array([1, 2, 3, 4, 5, 6]), [3, 2]);
    expect(t.shape).toEqual([3, 2]);
    expect(t.arraySync()).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const e = tensor([], [0, 4]);
    expect(e.size).toBe(0);
    expect(e.dataSync().length).toBe(0);
    t.dispose();
    e.dispose();
  });

  test('Int32Array data gives int32; int64 ids (BigInt64Array or bigint[]) become int32', () => {
    const a = tensor(new Int32Array([1, -2, 2147483647]));
    expect(a.dtype).toBe('int32');
    expect(Array.from(a.dataSync())).toEqual([1, -2, 2147483647]);
    const b = tensor(new BigInt64Array([5n, 50276n, 0n]), [1, 3], { dtype: 'int64' });
    expect(b.dtype).toBe('int32');
    expect(Object.prototype.toString.call(b.dataSync())).toBe('[object Int32Array]'); // native arrays come from Node's realm, not jest's
    expect(Array.from(b.dataSync())).toEqual([5, 50276, 0]);
    const c = tensor([[7n, 8n]], undefined, { dtype: 'int64' });
    expect(Array.from(c.dataSync())).toEqual([7, 8]);
    [a, b, c].forEach((t) => t.dispose());
  });

  test.each(FLOATS)('%s stores values rounded to its precision', (dtype) => {
    const t = tensor([1, 1 / 3, -65504, 1e-3], [4], { dtype });
    const v = t.dataSync();
    expect(v[0]).toBe(1);
    const rel = dtype === 'float32' ? 1e-7 : dtype === 'float16' ? 1e-3 : 8e-3;
    expect(Math.abs(v[1] - 1 / 3)).toBeLessThan(rel);
    expect(v[2]).toBeCloseTo(-65504, dtype === 'bfloat16' ? -3 : 5);
    t.dispose();
  });
});

describe('fills and ranges', () => {
  test.each([...FLOATS, 'int32' as DType])('zeros / ones / full in %s', (dtype) => {
    const z = zeros([2, 3], { dtype });
    const o = ones([4], { dtype });
    const f = full([3], -7, { dtype });
    expect(Array.from(z.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
    expect(Array.from(o.dataSync())).toEqual([1, 1, 1, 1]);
    expect(Array.from(f.dataSync())).toEqual([-7, -7, -7]);
    expect(z.dtype).toBe(dtype);
    [z, o, f].forEach((t) => t.dispose());
  });

  test('arange follows PyTorch: [start, stop) by step, negative steps too', () => {
    const a = arange(5);
    const b = arange(1, 2, 0.25);
    const c = arange(10, 0, -3, { dtype: 'int32' });
    const d = arange(3, 3);
    expect(Array.from(a.dataSync())).toEqual([0, 1, 2, 3, 4]);
    expect(Array.from(b.dataSync())).toEqual([1, 1.25, 1.5, 1.75]);
    expect(Array.from(c.dataSync())).toEqual([10, 7, 4, 1]);
    expect(c.dtype).toBe('int32');
    expect(d.shape).toEqual([0]);
    [a, b, c, d].forEach((t) => t.dispose());
  });
});

describe('conversions', () => {
  test('cast between every pair of dtypes keeps exactly representable values', () => {
    const dtypes: DType[] = ['float32', 'float16', 'bfloat16', 'int32'];
    const values = [0, 1, -2, 3, 64, -128, 256];
    for (const from of dtypes)
      for (const to of dtypes) {
        const a = tensor(values, [7], { dtype: from });
        const b = a.cast(to);
        expect(b.dtype).toBe(to);
        expectEqualArrays(b.dataSync(), values);
        a.dispose();
        b.dispose();
      }
  });

  test('float -> int32 truncates toward zero; NaN -> 0; out of range saturates', () => {
    const a = tensor([1.9, -1.9, NaN, 3e9, -3e9]);
    const b = a.cast('int32');
    expect(Array.from(b.dataSync())).toEqual([1, -1, 0, 2147483647, -2147483648]);
    a.dispose();
    b.dispose();
  });

  test('float16 rounds to nearest even, overflows to inf, keeps subnormals', () => {
    const a = tensor([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 2 ** -24, 2 ** -25]);
    const b = a.cast('float16');
    expect(Array.from(b.dataSync())).toEqual([1, 1 + 2 ** -9, Infinity, 2 ** -24, 0]);
    a.dispose();
    b.dispose();
  });

  test('reshape shares storage, infers -1, and rejects bad sizes', () => {
    const a = arange(12);
    const b = a.reshape([3, -1]);
    expect(b.shape).toEqual([3, 4]);
    a.dispose();
    expect(Array.from(b.dataSync()).slice(0, 4)).toEqual([0, 1, 2, 3]); // storage outlives the first handle
    expect(() => b.reshape([5, -1])).toThrow(/cannot infer/);
    expect(() => b.reshape([2, 2])).toThrow(/cannot view 12 elements/);
    b.dispose();
  });

  test('to("cpu") on the CPU shares data and returns a new tensor', () => {
    const a = tensor([1, 2]);
    const b = a.to('cpu');
    expect(b).not.toBe(a);
    a.dispose();
    expect(Array.from(b.dataSync())).toEqual([1, 2]);
    b.dispose();
  });

  test('data() resolves asynchronously with the values and keeps storage alive past dispose()', async () => {
    const a = arange(100000);
    const p = a.data();
    a.dispose();
    let tick = false;
    setImmediate(() => {
      tick = true;
    });
    const v = await p;
    expect(v.length).toBe(100000);
    expect(v[99999]).toBe(99999);
    await new Promise((r) => setImmediate(r));
    expect(tick).toBe(true);
  });

  test('toString and using-declarations', () => {
    {
      using t = zeros([2, 2]);
      expect(String(t)).toBe('Tensor(shape=[2, 2], dtype=float32, device=cpu)');
    }
    const u = zeros([1]);
    u.dispose();
    expect(String(u)).toContain('disposed');
    expect(u).toBeInstanceOf(Tensor);
  });
});

// CUDA tensors: every creation / conversion op against the CPU (bitwise; randn within one float32
// ulp), devices(), the caching allocator, out-of-memory recovery, async read-back, leak counts.
// Skipped only on machines without a CUDA device; describeNoCuda checks the refusal there.
import {
  DType,
  DeviceError,
  OutOfMemoryError,
  arange,
  devices,
  emptyCache,
  full,
  memory,
  rand,
  randn,
  tensor,
  zeros,
} from '../lib';
import { describeCuda, describeNoCuda, expectEqualArrays } from './setup';

const ALL: DType[] = ['float32', 'float16', 'bfloat16', 'int32'];
const FLOATS: DType[] = ['float32', 'float16', 'bfloat16'];
const SIZES = [1, 7, 4099, 1000003];

describeCuda('CUDA tensors', () => {
  test('devices() reports the GPU', () => {
    const d = devices();
    expect(d.length).toBeGreaterThan(0);
    expect(d[0].name.length).toBeGreaterThan(0);
    expect(d[0].totalMemory).toBeGreaterThan(2 ** 30);
    expect(d[0].computeCapability).toMatch(/^\d+\.\d+$/);
    expect(d[0].multiprocessors).toBeGreaterThan(0);
  });

  test.each(ALL)('full / arange in %s match the CPU bitwise', (dtype) => {
    for (const n of SIZES) {
      const pairs = [
        [full([n], -2.75, { dtype: dtype === 'int32' ? 'float32' : dtype }), full([n], -2.75, { dtype: dtype === 'int32' ? 'float32' : dtype, device: 'cuda' })],
        [arange(-3, n - 3, 1, { dtype }), arange(-3, n - 3, 1, { dtype, device: 'cuda' })],
      ];
      for (const [c, g] of pairs) {
        expect(g.device).toBe('cuda');
        expectEqualArrays(g.dataSync(), c.dataSync());
        c.dispose();
        g.dispose();
      }
    }
  });

  test.each(FLOATS)('rand in %s is bitwise equal on CPU and CUDA for one seed', (dtype) => {
    for (const n of SIZES) {
      const c = rand([n], { seed: 123, dtype, low: -1, high: 4 });
      const g = rand([n], { seed: 123, dtype, low: -1, high: 4, device: 'cuda' });
      expectEqualArrays(g.dataSync(), c.dataSync());
      c.dispose();
      g.dispose();
    }
  });

  test.each(FLOATS)('randn in %s on CUDA equals the CPU within one float32 ulp', (dtype) => {
    const c = randn([1 << 20], { seed: 77, dtype });
    const g = randn([1 << 20], { seed: 77, dtype, device: 'cuda' });
    const a = c.dataSync();
    const b = g.dataSync();
    let differ = 0;
    for (let i = 0; i < a.length; i++) {
      if (a[i] !== b[i]) {
        differ++;
        expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(Math.abs(a[i]) * 2 ** -(dtype === 'float32' ? 23 : 7));
      }
    }
    expect(differ).toBeLessThan(a.length / 1000);
    c.dispose();
    g.dispose();
  });

  test('cast between every dtype pair on CUDA equals the CPU cast bitwise', () => {
    const src = randn([100003], { seed: 3, std: 3000 });
    for (const from of ALL)
      for (const to of ALL) {
        const a = src.cast(from);
        const cpu = a.cast(to);
        const ga = a.to('cuda');
        const gpu = ga.cast(to);
        expect(gpu.device).toBe('cuda');
        expectEqualArrays(gpu.dataSync(), cpu.dataSync());
        [a, cpu, ga, gpu].forEach((t) => t.dispose());
      }
    src.dispose();
  });

  test('to() round trips every dtype, including empty and odd sizes', () => {
    for (const dtype of ALL)
      for (const n of [0, 1, 7, 4099]) {
        const c = arange(0, n, 1, { dtype });
        const g = c.to('cuda');
        const back = g.to('cpu');
        expect(back.device).toBe('cpu');
        expectEqualArrays(back.dataSync(), c.dataSync());
        [c, g, back].forEach((t) => t.dispose());
      }
  });

  test('tensor() straight to CUDA, int64 ids included', () => {
    const t = tensor(new BigInt64Array([1n, 50276n]), [2], { dtype: 'int64', device: 'cuda' });
    expect(t.dtype).toBe('int32');
    expect(Array.from(t.dataSync())).toEqual([1, 50276]);
    t.dispose();
  });

  test('data() reads back asynchronously and keeps the storage alive past dispose()', async () => {
    const g = arange(0, 1 << 22, 1, { device: 'cuda' });
    const p = g.data();
    g.dispose();
    const filler = zeros([1 << 22], { device: 'cuda' }); // may reuse the block: stream order protects the copy
    const v = await p;
    expect(v[12345]).toBe(12345);
    expect(v[(1 << 22) - 1]).toBe((1 << 22) - 1);
    filler.dispose();
  });

  test('the caching allocator serves repeated allocations without cudaMalloc', () => {
    const warm = zeros([1 << 20], { device: 'cuda' });
    warm.dispose();
    const before = memory().cuda.deviceAllocs;
    for (let i = 0; i < 200; i++) zeros([(1 << 20) - i], { device: 'cuda' }).dispose();
    expect(memory().cuda.deviceAllocs).toBe(before);
    expect(memory().cuda.reservedBytes).toBeGreaterThanOrEqual(4 << 20);
  });

  test('memory() counts CUDA tensors and bytes', () => {
    const before = memory();
    const t = zeros([1000], { device: 'cuda', dtype: 'float16' });
    expect(memory().cuda.tensors - before.cuda.tensors).toBe(1);
    expect(memory().cuda.bytes - before.cuda.bytes).toBe(2000);
    t.dispose();
    expect(memory().cuda.bytes).toBe(before.cuda.bytes);
  });

  test('allocating more than the device holds throws OutOfMemoryError; the next allocation works', () => {
    const total = devices()[0].totalMemory;
    let caught: unknown;
    try {
      zeros([Math.ceil((total * 1.5) / 4)], { device: 'cuda' }).dispose();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(OutOfMemoryError);
    const t = full([1 << 20], 3, { device: 'cuda' });
    expect(t.dataSync()[1000]).toBe(3);
    t.dispose();
  });

  test('emptyCache() returns cached blocks to the driver', () => {
    zeros([1 << 24], { device: 'cuda' }).dispose();
    expect(memory().cuda.reservedBytes).toBeGreaterThan(memory().cuda.allocatedBytes);
    emptyCache();
    expect(memory().cuda.reservedBytes).toBe(memory().cuda.allocatedBytes);
  });
});

describeNoCuda('without a CUDA device', () => {
  test('CUDA tensors are refused with a DeviceError', () => {
    expect(() => zeros([2], { device: 'cuda' })).toThrow(DeviceError);
    const t = zeros([2]);
    expect(() => t.to('cuda')).toThrow(DeviceError);
    t.dispose();
    expect(devices()).toEqual([]);
  });
});

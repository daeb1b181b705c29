// tidy / keep / dispose / memory(), the allocator's peak statistics (resetPeakMemory), and the GC backstop
// for tensors nobody disposed.
import { Tensor, dispose, emptyCache, keep, memory, ones, resetPeakMemory, tensor, tidy, zeros } from '../lib';
import { collectGarbage, describeCuda, describeNoCuda } from './setup';

test('memory() counts live tensors and bytes per device; shared storage counts once', () => {
  const before = memory();
  const a = zeros([256], { dtype: 'float32' });
  const b = a.reshape([16, 16]);
  const c = ones([100], { dtype: 'bfloat16' });
  const m = memory();
  expect(m.numTensors - before.numTensors).toBe(3);
  expect(m.cpu.tensors - before.cpu.tensors).toBe(3);
  expect(m.numBytes - before.numBytes).toBe(1024 + 200);
  a.dispose();
  expect(memory().numBytes - before.numBytes).toBe(1024 + 200); // b still holds the storage
  b.dispose();
  c.dispose();
  expect(memory().numBytes).toBe(before.numBytes);
  expect(memory().numTensors).toBe(before.numTensors);
});

test('tidy disposes intermediates and keeps what it returns, nested in objects', () => {
  const before = memory().numTensors;
  let inner: Tensor | undefined;
  const out = tidy(() => {
    inner = zeros([3]);
    const x = ones([3]);
    const y = x.cast('float16');
    return { pair: [y, 5], name: 'y' };
  });
  expect(inner?.isDisposed).toBe(true);
  expect((out.pair[0] as Tensor).isDisposed).toBe(false);
  expect(memory().numTensors - before).toBe(1);
  dispose(out);
  expect(memory().numTensors).toBe(before);
});

test('nested tidy moves the inner result to the outer scope; keep() exempts a tensor', () => {
  let kept: Tensor | undefined;
  let innerResult: Tensor | undefined;
  tidy(() => {
    innerResult = tidy(() => {
      zeros([1]);
      return ones([1]);
    });
    expect(innerResult.isDisposed).toBe(false);
    kept = keep(zeros([2]));
  });
  expect(innerResult?.isDisposed).toBe(true);
  expect(kept?.isDisposed).toBe(false);
  kept?.dispose();
});

test('tidy disposes everything when the function throws', () => {
  const before = memory().numTensors;
  expect(() =>
    tidy(() => {
      zeros([4]);
      throw new Error('boom');
    }),
  ).toThrow('boom');
  expect(memory().numTensors).toBe(before);
});

test('dispose() is idempotent and later use throws', () => {
  const t = tensor([1, 2, 3]);
  t.dispose();
  t.dispose();
  expect(t.isDisposed).toBe(true);
  expect(() => t.dataSync()).toThrow(/disposed/);
});

test('the GC backstop releases tensors that were never disposed', async () => {
  await collectGarbage();
  const before = memory();
  (() => {
    for (let i = 0; i < 50; i++) zeros([1000]);
  })();
  expect(memory().numTensors - before.numTensors).toBe(50);
  await collectGarbage();
  const after = memory();
  expect(after.numTensors).toBe(before.numTensors);
  expect(after.numBytes).toBe(before.numBytes);
});

test('memory().cuda reports peak allocated and reserved bytes; resetPeakMemory() brings them to the current ones', () => {
  const m = memory();
  for (const k of ['allocatedBytes', 'reservedBytes', 'peakAllocatedBytes', 'peakReservedBytes'] as const) expect(typeof m.cuda[k]).toBe('number');
  expect(m.cuda.peakAllocatedBytes).toBeGreaterThanOrEqual(m.cuda.allocatedBytes);
  expect(m.cuda.peakReservedBytes).toBeGreaterThanOrEqual(m.cuda.reservedBytes);
  expect(resetPeakMemory()).toBeUndefined();
  const r = memory();
  expect(r.cuda.peakAllocatedBytes).toBe(r.cuda.allocatedBytes);
  expect(r.cuda.peakReservedBytes).toBe(r.cuda.reservedBytes);
});

describeNoCuda('peak memory without a CUDA device', () => {
  test('the peaks are 0, CPU tensors do not count, and a reset is a no-op', () => {
    const t = zeros([1 << 16]);
    expect(memory().cuda.peakAllocatedBytes).toBe(0);
    expect(memory().cuda.peakReservedBytes).toBe(0);
    resetPeakMemory();
    expect(memory().cuda.peakAllocatedBytes).toBe(0);
    expect(memory().cuda.peakReservedBytes).toBe(0);
    t.dispose();
  });
});

describeCuda('peak memory on CUDA', () => {
  const bytes = 64 << 20; // 2^24 float32; a size class of its own (a power of two)

  test('the peaks rise with an allocation, stay after dispose and emptyCache, and reset to the current bytes', async () => {
    await collectGarbage();
    emptyCache();
    resetPeakMemory();
    const base = memory().cuda;
    expect(base.peakAllocatedBytes).toBe(base.allocatedBytes);
    expect(base.peakReservedBytes).toBe(base.reservedBytes);

    const t = zeros([bytes / 4], { device: 'cuda' });
    const during = memory().cuda;
    expect(during.allocatedBytes - base.allocatedBytes).toBe(bytes);
    expect(during.reservedBytes - base.reservedBytes).toBe(bytes); // the cache was empty: a new cudaMalloc
    expect(during.peakAllocatedBytes).toBe(during.allocatedBytes);
    expect(during.peakReservedBytes).toBe(during.reservedBytes);

    t.dispose();
    const after = memory().cuda;
    expect(after.allocatedBytes).toBe(base.allocatedBytes);
    expect(after.reservedBytes).toBe(during.reservedBytes); // cached, still held from the driver
    expect(after.peakAllocatedBytes).toBe(during.peakAllocatedBytes);
    expect(after.peakReservedBytes).toBe(during.peakReservedBytes);

    emptyCache();
    const emptied = memory().cuda;
    expect(emptied.reservedBytes).toBe(base.reservedBytes);
    expect(emptied.peakReservedBytes).toBe(during.peakReservedBytes);

    resetPeakMemory();
    const reset = memory().cuda;
    expect(reset.peakAllocatedBytes).toBe(reset.allocatedBytes);
    expect(reset.peakReservedBytes).toBe(reset.reservedBytes);
    expect(reset.peakAllocatedBytes).toBeLessThan(during.peakAllocatedBytes);
  });

  test('the peak is the high-water mark of the tensors alive together, not the sum of all allocations', () => {
    resetPeakMemory();
    const base = memory().cuda.allocatedBytes;
    for (let i = 0; i < 4; i++) zeros([bytes / 4], { device: 'cuda' }).dispose(); // one block reused four times
    const a = zeros([bytes / 4], { device: 'cuda' });
    const b = zeros([bytes / 4], { device: 'cuda' });
    a.dispose();
    b.dispose();
    expect(memory().cuda.peakAllocatedBytes - base).toBe(2 * bytes);
  });
});

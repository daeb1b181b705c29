// tidy / keep / dispose / memory(), and the GC backstop for tensors nobody disposed.
import { Tensor, dispose, keep, memory, ones, tensor, tidy, zeros } from '../lib';
import { collectGarbage } from './setup';

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

// sumOfSquares (the multi-tensor kernel behind gradNorm on CUDA, cuda/multi_norm.cu): against a float64
// reference on the CPU; on CUDA against the CPU over lists that need several launches (more tensors than one
// launch's table, a tensor longer than one launch's blocks), mixed float dtypes, odd and empty sizes, with
// bitwise repeatability; gradNorm on CUDA against gradNorm of the same gradients on the CPU; bad input.
import { ArgumentError, DeviceError, DisposedError, DTypeError, Tensor, randn, tensor, tidy, zeros } from '../../lib';
import { native } from '../../lib/native';
import { gradNorm, sumOfSquares } from '../../lib/optim';
import { describeCuda, expectTypedError } from '../setup';

function refSq(ts: Tensor[]): number {
  let s = 0;
  for (const t of ts) for (const v of t.dataSync()) s += v * v;
  return s;
}

describe('sumOfSquares', () => {
  test('the float32 sum of squares of every element of a list (CPU)', () =>
    tidy(() => {
      const ts = [randn([70000], { seed: 1 }), randn([3, 5], { seed: 2, dtype: 'bfloat16' }), zeros([0]), randn([131073], { seed: 3, dtype: 'float16' })];
      const s = sumOfSquares(ts);
      expect(s.shape).toEqual([]);
      expect(s.dtype).toBe('float32');
      const want = refSq(ts);
      expect(Math.abs(s.dataSync()[0] - want)).toBeLessThanOrEqual(1e-5 * want);
    }));

  test('bad input', () =>
    tidy(() => {
      const a = tensor([1, 2], [2]);
      const d = tensor([1], [1]);
      d.dispose();
      expectTypedError(() => sumOfSquares([]), ArgumentError, 'sumOfSquares', 'tensors');
      expectTypedError(() => sumOfSquares(a as unknown as Tensor[]), ArgumentError, 'sumOfSquares', 'tensors');
      expectTypedError(() => sumOfSquares([a, 3 as unknown as Tensor]), ArgumentError, 'sumOfSquares', 'tensors');
      expectTypedError(() => sumOfSquares([a, tensor([1], [1], { dtype: 'int32' })]), DTypeError, 'sumOfSquares', 'tensors');
      expectTypedError(() => sumOfSquares([a, d]), DisposedError, 'sumOfSquares', 'tensors');
      // The native second line of checks names the native function.
      const nat = native();
      expectTypedError(() => nat.multiNormSq([]), ArgumentError, 'multiNormSq', 'tensors');
      expectTypedError(() => nat.multiNormSq([a.handle('t'), {} as never]), ArgumentError, 'multiNormSq', 'tensors');
      expectTypedError(() => nat.multiNormSq([tensor([1], [1], { dtype: 'int32' }).handle('t')]), DTypeError, 'multiNormSq', 'tensors');
    }));
});

describeCuda('sumOfSquares on CUDA', () => {
  test('matches the CPU over many tensors, several launches, mixed dtypes; repeats bitwise', () =>
    tidy(() => {
      const dtypes = ['float32', 'bfloat16', 'float16'] as const;
      const ts: Tensor[] = [];
      // 60 tensors (more than one launch's 48 slots), odd sizes, one empty, one of 33M elements (> 480 chunks).
      for (let i = 0; i < 60; i++) ts.push(randn([i === 7 ? 0 : 1 + ((i * 7919) % 100003)], { seed: 100 + i, dtype: dtypes[i % 3], device: 'cuda' }));
      ts.push(randn([33_000_001], { seed: 7, device: 'cuda' }));
      ts.push(randn([4096, 768], { seed: 8, dtype: 'bfloat16', device: 'cuda' }));
      const s = sumOfSquares(ts);
      expect(s.device).toBe('cuda');
      const got = s.dataSync()[0];
      const cpu = sumOfSquares(ts.map((t) => t.to('cpu'))).dataSync()[0];
      expect(Math.abs(got - cpu)).toBeLessThanOrEqual(1e-5 * cpu);
      expect(sumOfSquares(ts).dataSync()[0]).toBe(got);
      expect(Array.from(sumOfSquares([zeros([0], { device: 'cuda' })]).dataSync())).toEqual([0]);
      const inf = sumOfSquares([tensor([1, Infinity], [2], { device: 'cuda' })]).dataSync()[0];
      expect(inf).toBe(Infinity);
      expect(sumOfSquares([tensor([1, NaN], [2], { device: 'cuda' })]).dataSync()[0]).toBeNaN();
    }));

  test('gradNorm on CUDA equals gradNorm of the same gradients on the CPU', () => {
    const make = (device: 'cpu' | 'cuda') =>
      [[768, 3], [50280, 16], [7], [1536, 48]].map((shape, i) => {
        const p = tidy(() => zeros(shape, { device })).requiresGrad_();
        p.setGrad(tidy(() => randn(shape, { seed: 200 + i, device, dtype: i === 2 ? 'bfloat16' : 'float32' })));
        return p;
      });
    const g = make('cuda');
    const c = make('cpu');
    const ng = gradNorm(g);
    const nc = gradNorm(c);
    expect(Math.abs(ng - nc)).toBeLessThanOrEqual(1e-5 * nc);
    [...g, ...c].forEach((p) => p.dispose());
  });

  test('mixed devices are refused', () =>
    tidy(() => {
      const a = tensor([1], [1]);
      const b = tensor([1], [1], { device: 'cuda' });
      expectTypedError(() => sumOfSquares([a, b]), DeviceError, 'sumOfSquares', 'tensors');
      expectTypedError(() => native().multiNormSq([b.handle('t'), a.handle('t')]), DeviceError, 'multiNormSq', 'tensors');
    }));
});

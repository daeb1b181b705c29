// Seeded random tensors: reproducible by seed and by manualSeed(), right moments, every float dtype.
import { manualSeed, rand, randn } from '../lib';

function moments(v: ArrayLike<number>): { mean: number; std: number; min: number; max: number } {
  let s = 0;
  let s2 = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < v.length; i++) {
    s += v[i];
    s2 += v[i] * v[i];
    min = Math.min(min, v[i]);
    max = Math.max(max, v[i]);
  }
  const mean = s / v.length;
  return { mean, std: Math.sqrt(s2 / v.length - mean * mean), min, max };
}

test('the same seed gives the same numbers; another seed differs', () => {
  const a = randn([1000], { seed: 42 });
  const b = randn([1000], { seed: 42 });
  const c = randn([1000], { seed: 43 });
  expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
  expect(Array.from(a.dataSync())).not.toEqual(Array.from(c.dataSync()));
  [a, b, c].forEach((t) => t.dispose());
});

test('element i does not depend on the shape (a prefix of a longer draw)', () => {
  const a = rand([10], { seed: 5n });
  const b = rand([4, 5], { seed: 5n });
  expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()).slice(0, 10));
  a.dispose();
  b.dispose();
});

test('manualSeed makes unseeded draws repeat', () => {
  manualSeed(7);
  const a = randn([16]);
  const b = randn([16]);
  manualSeed(7);
  const c = randn([16]);
  expect(Array.from(a.dataSync())).toEqual(Array.from(c.dataSync()));
  expect(Array.from(a.dataSync())).not.toEqual(Array.from(b.dataSync()));
  [a, b, c].forEach((t) => t.dispose());
});

test('randn has the requested mean and std; rand stays in [low, high)', () => {
  const n = randn([200000], { seed: 1, mean: 2, std: 0.5 });
  const m = moments(n.dataSync());
  expect(Math.abs(m.mean - 2)).toBeLessThan(0.01);
  expect(Math.abs(m.std - 0.5)).toBeLessThan(0.01);
  const u = rand([200000], { seed: 2, low: -3, high: 1 });
  const mu = moments(u.dataSync());
  expect(mu.min).toBeGreaterThanOrEqual(-3);
  expect(mu.max).toBeLessThan(1);
  expect(Math.abs(mu.mean + 1)).toBeLessThan(0.02);
  n.dispose();
  u.dispose();
});

test.each(['float16', 'bfloat16'] as const)('%s draws are the float32 draws rounded', (dtype) => {
  const a = randn([1000], { seed: 9 });
  const b = randn([1000], { seed: 9, dtype });
  const c = a.cast(dtype);
  expect(Array.from(b.dataSync())).toEqual(Array.from(c.dataSync()));
  [a, b, c].forEach((t) => t.dispose());
});

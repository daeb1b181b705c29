// sum / mean on CUDA through every launch path of cuda/elementwise.cu's sum (short rows, a warp per row, a
// block per row, rows split over blocks with unaligned starts, column tiles with and without a split of the
// reduced axis) against a float64 reference of the same (dtype-rounded) values, every float dtype, with a
// tolerance of float32 accumulation (relative to the sum of |x|) plus one rounding to the dtype; and
// bitwise repeatability. The CPU paths are covered by test/ops/elementwise.test.ts.
import { DType, Tensor, ops, randn, tidy } from '../../lib';
import { describeCuda, expectEqualArrays } from '../setup';

const FLOATS: DType[] = ['float32', 'float16', 'bfloat16'];
const ROUND: Record<string, number> = { float32: 1e-7, float16: 1e-3, bfloat16: 8e-3 };

/** Float64 sums of x (outer, r, inner) over r, and the sums of |x|. */
function reference(v: ArrayLike<number>, outer: number, r: number, inner: number): { s: Float64Array; a: Float64Array } {
  const s = new Float64Array(outer * inner);
  const a = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < r; k++)
      for (let i = 0; i < inner; i++) {
        const x = v[(o * r + k) * inner + i];
        s[o * inner + i] += x;
        a[o * inner + i] += Math.abs(x);
      }
  return { s, a };
}

function check(got: ArrayLike<number>, ref: { s: Float64Array; a: Float64Array }, dtype: DType, what: string): void {
  expect(got.length).toBe(ref.s.length);
  for (let i = 0; i < got.length; i++) {
    const tol = 2e-6 * ref.a[i] + ROUND[dtype] * Math.abs(ref.s[i]) + 1e-30;
    if (!(Math.abs(got[i] - ref.s[i]) <= tol)) throw new Error(`${what} ${dtype}: output ${i} is ${got[i]}, expected ${ref.s[i]} (tolerance ${tol})`);
  }
}

describeCuda('sum on CUDA: every launch path', () => {
  // [label, shape, axes, (outer, r, inner) as the kernel sees it]
  const PATHS: [string, number[], number[], [number, number, number]][] = [
    ['short rows (a thread per row)', [1000, 7], [1], [1000, 7, 1]],
    ['a warp per row', [8200, 300], [1], [8200, 300, 1]],
    ['a block per row', [2048, 1500], [1], [2048, 1500, 1]],
    ['1-d, split over blocks, odd length', [1000003], [0], [1, 1000003, 1]],
    ['rows split over blocks, unaligned row starts', [3, 333337], [1], [3, 333337, 1]],
    ['column tiles, no split', [64, 100, 520], [1], [64, 100, 520]],
    ['column tiles, reduced axis split (bias gradient)', [4096, 768], [0], [1, 4096, 768]],
    ['column tiles, few rows', [50, 3, 40], [1], [50, 3, 40]],
    ['leading axes together', [4, 1024, 96], [0, 1], [1, 4096, 96]],
  ];

  test.each(FLOATS)('each path matches a float64 reference and repeats bitwise (%s)', (dtype) => {
    PATHS.forEach(([label, shape, axes, [outer, r, inner]], k) =>
      tidy(() => {
        const x = randn(shape, { seed: 40 + k, dtype, device: 'cuda' });
        const v = x.dataSync();
        const s = ops.sum(x, axes);
        const ref = reference(v, outer, r, inner);
        check(s.dataSync(), ref, dtype, label);
        expectEqualArrays(ops.sum(x, axes).dataSync(), s.dataSync());
        const m = ops.mean(x, axes);
        check(
          Float64Array.from(m.dataSync(), (y) => y * r),
          { s: ref.s, a: ref.a.map((y) => y * (1 + 1e-6)) },
          dtype,
          `${label} (mean x ${r})`,
        );
      }),
    );
  });

  test('the 1-d sum of a large constant is exact in float32', () =>
    tidy(() => {
      const x: Tensor = ops.add(ops.mul(randn([1 << 22], { seed: 1, device: 'cuda' }), 0), 1);
      expect(Array.from(ops.sum(x).dataSync())).toEqual([1 << 22]);
    }));
});

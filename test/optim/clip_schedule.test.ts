// Global gradient-norm clipping (against a float64 norm; non-finite gradients leave everything unchanged)
// and the warmup + cosine schedule (exact values at the ends and the midpoint, monotonic decay).
import { ArgumentError, Tensor, tensor, tidy } from '../../lib';
import { clipGradNorm, clipScale, gradNorm, warmupCosine } from '../../lib/optim';
import { expectClose, expectEqualArrays, expectTypedError } from '../setup';

function withGrad(values: number[], grad: number[] | null, dtype: 'float32' | 'bfloat16' = 'float32'): Tensor {
  const p = tidy(() => tensor(values, [values.length])).requiresGrad_();
  if (grad) p.setGrad(tensor(grad, [grad.length], { dtype }));
  return p;
}

describe('gradNorm / clipGradNorm', () => {
  test('the global L2 norm over all gradients; parameters without one are ignored', () => {
    const ps = [withGrad([0, 0], [3, 4]), withGrad([0], [12]), withGrad([1, 2, 3], null)];
    expect(gradNorm(ps)).toBeCloseTo(13, 5);
    ps.forEach((p) => p.dispose());
  });

  test('16-bit gradients are summed in float32', () => {
    const p = withGrad([0, 0], [300, 400], 'bfloat16');
    expect(gradNorm([p])).toBeCloseTo(500, 3);
    p.dispose();
  });

  test('clips to maxNorm with PyTorch\'s factor and returns the norm before clipping', () => {
    const a = withGrad([0, 0], [3, 4]);
    const b = withGrad([0], [12]);
    const norm = clipGradNorm([a, b], 1);
    expect(norm).toBeCloseTo(13, 5);
    const c = 1 / (13 + 1e-6);
    expectClose(a.grad!.dataSync(), [3 * c, 4 * c], 1e-6, 0);
    expectClose(b.grad!.dataSync(), [12 * c], 1e-6, 0);
    expect(gradNorm([a, b])).toBeCloseTo(1, 5);
    expect(clipGradNorm([a, b], 10)).toBeCloseTo(1, 5);
    expectClose(a.grad!.dataSync(), [3 * c, 4 * c], 1e-6, 0);
    a.dispose();
    b.dispose();
  });

  test('a non-finite gradient gives a non-finite norm and changes nothing', () => {
    const a = withGrad([0, 0], [3, NaN]);
    const b = withGrad([0], [100]);
    expect(clipGradNorm([a, b], 1)).toBeNaN();
    expectEqualArrays(b.grad!.dataSync(), [100]);
    const c = withGrad([0], [Infinity]);
    expect(gradNorm([c])).toBe(Infinity);
    expect(clipScale(Infinity, 1)).toBe(1);
    [a, b, c].forEach((p) => p.dispose());
  });

  test('bad input', () => {
    const a = withGrad([0], [1]);
    expectTypedError(() => clipGradNorm([a], 0), ArgumentError, 'clipGradNorm', 'maxNorm');
    expectTypedError(() => clipGradNorm([a], NaN), ArgumentError, 'clipGradNorm', 'maxNorm');
    expectTypedError(() => clipGradNorm([1 as unknown as Tensor], 1), ArgumentError, 'clipGradNorm', 'params');
    expectTypedError(() => clipScale(1, -1), ArgumentError, 'clipScale', 'maxNorm');
    a.dispose();
  });
});

describe('warmupCosine', () => {
  test('linear warmup, cosine to minRatio, flat after totalSteps', () => {
    const s = warmupCosine({ warmupSteps: 4, totalSteps: 14, minRatio: 0.1 });
    expect([0, 1, 2, 3].map(s)).toEqual([0.25, 0.5, 0.75, 1]);
    expect(s(4)).toBeCloseTo(1, 12);
    expect(s(9)).toBeCloseTo(0.55, 12);
    expect(s(14)).toBeCloseTo(0.1, 12);
    expect(s(100)).toBeCloseTo(0.1, 12);
    for (let i = 4; i < 14; i++) expect(s(i + 1)).toBeLessThan(s(i));
  });

  test('no warmup; minRatio 0', () => {
    const s = warmupCosine({ totalSteps: 10, minRatio: 0 });
    expect(s(0)).toBe(1);
    expect(s(5)).toBeCloseTo(0.5, 12);
    expect(s(10)).toBeCloseTo(0, 12);
  });

  test('bad options', () => {
    expectTypedError(() => warmupCosine({ totalSteps: 0 }), ArgumentError, 'warmupCosine', 'totalSteps');
    expectTypedError(() => warmupCosine({ warmupSteps: 5, totalSteps: 3 }), ArgumentError, 'warmupCosine', 'totalSteps');
    expectTypedError(() => warmupCosine({ warmupSteps: -1, totalSteps: 3 }), ArgumentError, 'warmupCosine', 'warmupSteps');
    expectTypedError(() => warmupCosine({ totalSteps: 3, minRatio: 2 }), ArgumentError, 'warmupCosine', 'minRatio');
  });
});

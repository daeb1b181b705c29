// embedding against a float64 reference: lookup of any id shape, scatter-add backward with repeated ids,
// every float dtype, empty ids, out-of-range ids (ArgumentError on the CPU), the deterministic CUDA backward
// (bitwise repeatable), bad input; CUDA against the reference.
import { DType, Device, ArgumentError, DTypeError, ShapeError, ops, tensor, tidy } from '../../lib';
import { describeCuda, expectClose, expectEqualArrays } from '../setup';
import { FLOATS, gradsOf, make, normal, read, rng } from './fused_helpers';

function check(idsShape: number[], V: number, D: number, dtype: DType, device: Device = 'cpu', deterministic = false, seed = 1): Float64Array {
  return tidy(() => {
    const r = rng(seed);
    const n = idsShape.reduce((a, b) => a * b, 1);
    // Few distinct ids, so rows repeat and the backward really adds.
    const iv = Int32Array.from({ length: n }, () => Math.floor(r() * Math.min(V, 5)) * Math.floor(V / Math.min(V, 5)));
    const ids = tensor(iv, idsShape, { dtype: 'int32', device });
    const [w, wv] = make(normal(r, V * D), [V, D], dtype, device);
    const [dy, dyv] = make(normal(r, n * D), [...idsShape, D], dtype, device);
    w.requiresGrad = true;
    const out = ops.embedding(ids, w, { deterministic });
    expect(out.shape).toEqual([...idsShape, D]);
    const ev = new Float64Array(n * D), edw = new Float64Array(V * D);
    for (let i = 0; i < n; i++)
      for (let c = 0; c < D; c++) {
        ev[i * D + c] = wv[iv[i] * D + c];
        edw[iv[i] * D + c] += dyv[i * D + c];
      }
    expectClose(read(out), ev, 0, 0);
    const [g] = gradsOf([w], [out], [dy]);
    const tol = dtype === 'float32' ? 1e-5 : dtype === 'float16' ? 2e-3 : 1.6e-2;
    expectClose(g!, edw, tol, tol * Math.sqrt(n));
    return g!;
  });
}

describe('embedding', () => {
  test.each(FLOATS)('lookup and scatter-add backward, %s', (dtype) => {
    check([7], 11, 5, dtype);
    check([2, 33], 50, 16, dtype);
    check([3, 4], 1, 3, dtype);
  });

  test('empty ids', () => {
    tidy(() => {
      const [w] = make(normal(rng(1), 12), [3, 4], 'float32');
      expect(ops.embedding(tensor(new Int32Array(0), [0], { dtype: 'int32' }), w).shape).toEqual([0, 4]);
    });
  });

  test('bad input: typed errors naming the function and argument', () => {
    tidy(() => {
      const [w] = make(normal(rng(1), 12), [3, 4], 'float32');
      expect(() => ops.embedding(tensor([0, 3], [2], { dtype: 'int32' }), w)).toThrow(expect.objectContaining({ fn: 'embedding', arg: 'ids' }));
      expect(() => ops.embedding(tensor([-1], [1], { dtype: 'int32' }), w)).toThrow(ArgumentError);
      expect(() => ops.embedding(tensor([0, 1], [2]), w)).toThrow(DTypeError);
      expect(() => ops.embedding(tensor([0], [1], { dtype: 'int32' }), make(new Float64Array(3), [3], 'float32')[0])).toThrow(ShapeError);
    });
  });
});

describeCuda('embedding on CUDA', () => {
  test.each(FLOATS)('matches the float64 reference, %s', (dtype) => {
    check([7], 11, 5, dtype, 'cuda');
    check([4, 129], 50, 768, dtype, 'cuda');
    check([4, 129], 50, 768, dtype, 'cuda', true);
  });

  test('deterministic backward is bitwise repeatable', () => {
    const a = check([8, 512], 20, 64, 'float32', 'cuda', true, 5);
    const b = check([8, 512], 20, 64, 'float32', 'cuda', true, 5);
    expectEqualArrays(a, b);
  });
});

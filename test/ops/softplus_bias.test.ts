// softplusBias against a float64 reference (softplus threshold 20 as in mamba_ssm), forward and backward
// (ddelta, dbias), every float dtype, odd / empty shapes, bias in float32 or delta's dtype, bad input; CUDA.
import { DType, Device, DTypeError, ShapeError, ops, tidy } from '../../lib';
import { describeCuda, expectClose } from '../setup';
import { FLOATS, TOL, gradsOf, make, normal, read, rng } from './fused_helpers';

function check(B: number, D: number, L: number, dtype: DType, device: Device = 'cpu', bdtype: DType = 'float32'): void {
  tidy(() => {
    const r = rng(B * 100 + D * 10 + L);
    const [x, xv] = make(normal(r, B * D * L, 6), [B, D, L], dtype, device);
    const [b, bv] = make(normal(r, D, 8), [D], bdtype, device);
    const [dy, dyv] = make(normal(r, B * D * L), [B, D, L], dtype, device);
    x.requiresGrad = true;
    b.requiresGrad = true;
    const out = ops.softplusBias(x, b);
    const e = new Float64Array(B * D * L), dx = new Float64Array(B * D * L), db = new Float64Array(D);
    for (let i = 0; i < B * D * L; i++) {
      const d = Math.floor(i / L) % D, v = xv[i] + bv[d];
      e[i] = v > 20 ? v : Math.log1p(Math.exp(v));
      dx[i] = dyv[i] / (1 + Math.exp(-v));
      db[d] += dx[i];
    }
    const [rt, at] = TOL[dtype];
    expectClose(read(out), e, rt * 2, at * 2);
    const [gx, gb] = gradsOf([x, b], [out], [dy]);
    expectClose(gx!, dx, rt * 2, at * 2);
    expectClose(gb!, db, rt * 4, at * 4 * Math.sqrt(B * L));
  });
}

describe('softplusBias', () => {
  test.each(FLOATS)('forward and backward, %s', (dtype) => {
    for (const [B, D, L] of [[2, 3, 16], [1, 5, 13], [3, 2, 1], [2, 4, 300]]) check(B, D, L, dtype);
    check(2, 3, 8, dtype, 'cpu', dtype);
  });

  test('empty', () => {
    tidy(() => {
      const [x] = make(new Float64Array(0), [2, 3, 0], 'float32');
      const [b] = make(new Float64Array(3), [3], 'float32');
      expect(ops.softplusBias(x, b).shape).toEqual([2, 3, 0]);
    });
  });

  test('bad input: typed errors naming the function and argument', () => {
    tidy(() => {
      const [x] = make(new Float64Array(24), [2, 3, 4], 'float32');
      const [b2] = make(new Float64Array(2), [2], 'float32');
      const [bh] = make(new Float64Array(3), [3], 'float16');
      const [x2] = make(new Float64Array(6), [2, 3], 'float32');
      expect(() => ops.softplusBias(x, b2)).toThrow(expect.objectContaining({ fn: 'softplusBias', arg: 'bias' }));
      expect(() => ops.softplusBias(x, bh)).toThrow(DTypeError);
      expect(() => ops.softplusBias(x2, b2)).toThrow(ShapeError);
    });
  });
});

describeCuda('softplusBias on CUDA', () => {
  test.each(FLOATS)('matches the float64 reference, %s', (dtype) => {
    for (const [B, D, L] of [[2, 3, 16], [1, 5, 13], [3, 2, 1], [2, 4, 2048]]) check(B, D, L, dtype, 'cuda');
    check(2, 3, 8, dtype, 'cuda', dtype);
  });
});

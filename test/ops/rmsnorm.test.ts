// rmsNorm against a float64 reference: forward (with and without residual, residual in float32 or the input
// dtype, prenorm), backward (dx, dweight, dresidual, with a gradient flowing into the returned residual),
// every float dtype, odd / empty / large shapes, bad input; CUDA against the CPU op.
import { DType, Device, DTypeError, ShapeError, ArgumentError, ops, tidy } from '../../lib';
import { describeCuda, expectClose } from '../setup';
import { FLOATS, TOL, gradsOf, make, normal, read, rng } from './fused_helpers';

interface Ref {
  out: Float64Array;
  r: Float64Array;
  dx: Float64Array;
  dw: Float64Array;
}

// r = x + res; y = r * rstd * w; dr = rstd * (w*dy - rhat * mean(w*dy*rhat)) + dres; dw = sum dy * rhat.
function ref(x: Float64Array, res: Float64Array | null, w: Float64Array, dy: Float64Array, dres: Float64Array | null, C: number, eps: number): Ref {
  const rows = C ? x.length / C : 0;
  const out = new Float64Array(x.length), r = new Float64Array(x.length), dx = new Float64Array(x.length), dw = new Float64Array(C);
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let j = 0; j < C; j++) {
      const v = x[i * C + j] + (res ? res[i * C + j] : 0);
      r[i * C + j] = v;
      ss += v * v;
    }
    const rstd = 1 / Math.sqrt(ss / C + eps);
    let c = 0;
    for (let j = 0; j < C; j++) {
      const k = i * C + j, rh = r[k] * rstd;
      out[k] = rh * w[j];
      c += w[j] * dy[k] * rh;
      dw[j] += dy[k] * rh;
    }
    c /= C;
    for (let j = 0; j < C; j++) {
      const k = i * C + j;
      dx[k] = rstd * (w[j] * dy[k] - r[k] * rstd * c) + (dres ? dres[k] : 0);
    }
  }
  return { out, r, dx, dw };
}

interface Case {
  shape: number[];
  dtype: DType;
  residual?: boolean;
  inFp32?: boolean;
  prenorm?: boolean;
  wdtype?: 'float32' | 'same';
}

function check(c: Case, device: Device = 'cpu', seed = 1): void {
  tidy(() => {
    const r = rng(seed);
    const n = c.shape.reduce((a, b) => a * b, 1);
    const C = c.shape[c.shape.length - 1];
    const inFp32 = c.inFp32 ?? true;
    const prenorm = c.prenorm ?? !!c.residual;
    const rdtype: DType = inFp32 && (c.residual || prenorm) ? 'float32' : c.dtype;
    const [x, xv] = make(normal(r, n), c.shape, c.dtype, device);
    const [w, wv] = make(normal(r, C, 0.5, 1), [C], c.wdtype === 'same' ? c.dtype : 'float32', device);
    const [res, resv] = c.residual ? make(normal(r, n), c.shape, rdtype, device) : [undefined, null];
    const [dy, dyv] = make(normal(r, n), c.shape, c.dtype, device);
    const [dres, dresv] = prenorm ? make(normal(r, n), c.shape, rdtype, device) : [undefined, null];
    x.requiresGrad = true;
    w.requiresGrad = true;
    if (res) res.requiresGrad = true;
    const y = ops.rmsNorm(x, w, { residual: res, residualInFp32: inFp32, prenorm });
    const e = ref(xv, resv, wv, dyv, dresv, C, 1e-5);
    const [rt, at] = TOL[c.dtype];
    expectClose(read(y.out), e.out, rt * 2, at * 2);
    expect(y.out.dtype).toBe(c.dtype);
    if (prenorm) {
      expect(y.residual?.dtype).toBe(rdtype);
      expectClose(read(y.residual!), e.r, TOL[rdtype][0], TOL[rdtype][1]);
    } else {
      expect(y.residual).toBeUndefined();
    }
    const outs = prenorm ? [y.out, y.residual!] : [y.out];
    const seeds = prenorm ? [dy, dres!] : [dy];
    const [gx, gw, gres] = gradsOf(res ? [x, w, res] : [x, w], outs, seeds);
    const gtol = c.dtype === 'float32' ? 1e-4 : c.dtype === 'float16' ? 1e-2 : 5e-2;
    expectClose(gx!, e.dx, gtol, gtol);
    const dwScale = Math.sqrt(n / Math.max(C, 1));
    expectClose(gw!, e.dw, gtol, gtol * dwScale);
    if (res) expectClose(gres!, e.dx, gtol, gtol);
  });
}

describe('rmsNorm', () => {
  test.each(FLOATS)('plain, %s', (dtype) => {
    for (const shape of [[4, 7], [3, 768], [2, 3, 64], [1, 1], [5, 1000]]) check({ shape, dtype });
  });

  test.each(FLOATS)('residual in float32 and in the input dtype, prenorm, %s', (dtype) => {
    check({ shape: [6, 96], dtype, residual: true });
    check({ shape: [6, 96], dtype, residual: true, inFp32: false });
    check({ shape: [5, 33], dtype, residual: true, prenorm: false });
    check({ shape: [2, 4, 40], dtype, prenorm: true });
    check({ shape: [3, 24], dtype, wdtype: 'same' });
  });

  test('large rows (wider than one block of vectors)', () => {
    check({ shape: [3, 9000], dtype: 'float32', residual: true });
  });

  test('empty', () => {
    tidy(() => {
      for (const shape of [[0, 8], [3, 0]]) {
        const [x] = make(new Float64Array(0), shape, 'float32');
        const [w] = make(new Float64Array(shape[1]), [shape[1]], 'float32');
        expect(ops.rmsNorm(x, w).out.shape).toEqual(shape);
      }
    });
  });

  test('a residual of the other float dtype is converted (and so is its gradient)', () => {
    tidy(() => {
      const r = rng(3);
      const [x, xv] = make(normal(r, 32), [4, 8], 'bfloat16');
      const [w, wv] = make(normal(r, 8), [8], 'float32');
      const [res, resv] = make(normal(r, 32), [4, 8], 'bfloat16');
      res.requiresGrad = true;
      const y = ops.rmsNorm(x, w, { residual: res });
      expect(y.residual!.dtype).toBe('float32');
      const e = ref(xv, resv, wv, new Float64Array(32).fill(1), null, 8, 1e-5);
      expectClose(read(y.out), e.out, 3e-2, 3e-2);
      const [g] = gradsOf([res], [y.out], [make(new Float64Array(32).fill(1), [4, 8], 'bfloat16')[0]]);
      expect(g!.length).toBe(32);
    });
  });

  test('bad input: typed errors naming the function and argument', () => {
    tidy(() => {
      const [x] = make(new Float64Array(12), [3, 4], 'float32');
      const [w3] = make(new Float64Array(3), [3], 'float32');
      const [ids] = make(new Float64Array(12), [3, 4], 'int32');
      const [res] = make(new Float64Array(8), [2, 4], 'float32');
      const [w] = make(new Float64Array(4), [4], 'float32');
      expect(() => ops.rmsNorm(x, w3)).toThrow(ShapeError);
      expect(() => ops.rmsNorm(ids, w)).toThrow(DTypeError);
      expect(() => ops.rmsNorm(x, w, { residual: res })).toThrow(expect.objectContaining({ fn: 'rmsNorm', arg: 'residual' }));
      expect(() => ops.rmsNorm(x, w, { eps: 'a' as never })).toThrow(ArgumentError);
      expect(() => ops.rmsNorm(x, 3 as never)).toThrow(expect.objectContaining({ fn: 'rmsNorm', arg: 'weight' }));
    });
  });
});

describeCuda('rmsNorm on CUDA', () => {
  test.each(FLOATS)('matches the float64 reference, %s', (dtype) => {
    for (const shape of [[4, 7], [64, 768], [3, 1000], [2, 5, 96], [2, 9000]]) check({ shape, dtype }, 'cuda');
    check({ shape: [16, 768], dtype, residual: true }, 'cuda');
    check({ shape: [16, 768], dtype, residual: true, inFp32: false }, 'cuda');
    check({ shape: [7, 33], dtype, residual: true }, 'cuda');
    check({ shape: [5, 40], dtype, prenorm: true, wdtype: 'same' }, 'cuda');
  });
});

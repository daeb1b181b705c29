// causalConv1d against a float64 reference (PyTorch Conv1d(groups=dim, padding=width-1)[..., :L]): widths 2-4,
// bias, SiLU, initial/final states (segments), the (dim, 1, width) weight layout, every float dtype, odd and
// short lengths, backward (dx, dweight, dbias, dInitialState, with a gradient on the final state), bad input;
// CUDA against the reference.
import { DType, Device, ShapeError, ArgumentError, DTypeError, Tensor, ops, tensor, tidy } from '../../lib';
import { describeCuda, expectClose } from '../setup';
import { FLOATS, TOL, gradsOf, make, normal, read, rng } from './fused_helpers';

const sig = (v: number) => 1 / (1 + Math.exp(-v));

// Forward and backward in float64 over xp = [h0, x] per (b, d) row.
function ref(B: number, D: number, L: number, W: number, x: Float64Array, w: Float64Array, bias: Float64Array | null, h0: Float64Array | null,
  silu: boolean, dy: Float64Array, dfin: Float64Array | null) {
  const out = new Float64Array(B * D * L), fin = new Float64Array(B * D * (W - 1));
  const dx = new Float64Array(B * D * L), dw = new Float64Array(D * W), db = new Float64Array(D), dh0 = new Float64Array(B * D * (W - 1));
  for (let b = 0; b < B; b++)
    for (let d = 0; d < D; d++) {
      const row = b * D + d;
      const xp = new Float64Array(L + W - 1);
      for (let k = 0; k < W - 1; k++) xp[k] = h0 ? h0[row * (W - 1) + k] : 0;
      for (let t = 0; t < L; t++) xp[W - 1 + t] = x[row * L + t];
      const dxp = new Float64Array(L + W - 1);
      for (let t = 0; t < L; t++) {
        let y = bias ? bias[d] : 0;
        for (let k = 0; k < W; k++) y += w[d * W + k] * xp[t + k];
        out[row * L + t] = silu ? y * sig(y) : y;
        const g = dy[row * L + t] * (silu ? sig(y) * (1 + y * (1 - sig(y))) : 1);
        for (let k = 0; k < W; k++) {
          dw[d * W + k] += g * xp[t + k];
          dxp[t + k] += g * w[d * W + k];
        }
        db[d] += g;
      }
      for (let k = 0; k < W - 1; k++) {
        fin[row * (W - 1) + k] = xp[L + k];
        if (dfin) dxp[L + k] += dfin[row * (W - 1) + k];
      }
      for (let t = 0; t < L; t++) dx[row * L + t] = dxp[W - 1 + t];
      for (let k = 0; k < W - 1; k++) dh0[row * (W - 1) + k] = dxp[k];
    }
  return { out, fin, dx, dw, db, dh0 };
}

interface Case {
  B: number;
  D: number;
  L: number;
  W: number;
  dtype: DType;
  bias?: boolean;
  silu?: boolean;
  h0?: boolean;
  fin?: boolean;
  hf?: boolean;
}

function check(c: Case, device: Device = 'cpu', seed = 1): void {
  tidy(() => {
    const r = rng(seed);
    const { B, D, L, W, dtype } = c;
    const [x, xv] = make(normal(r, B * D * L), [B, D, L], dtype, device);
    const [w, wv] = make(normal(r, D * W, 0.5), c.hf ? [D, 1, W] : [D, W], 'float32', device);
    const [bias, bv] = c.bias ? make(normal(r, D), [D], 'float32', device) : [undefined, null];
    const [h0, hv] = c.h0 ? make(normal(r, B * D * (W - 1)), [B, D, W - 1], dtype, device) : [undefined, null];
    const [dy, dyv] = make(normal(r, B * D * L), [B, D, L], dtype, device);
    const [dfin, dfv] = c.fin ? make(normal(r, B * D * (W - 1)), [B, D, W - 1], dtype, device) : [undefined, null];
    const leaves = [x, w, ...(bias ? [bias] : []), ...(h0 ? [h0] : [])];
    for (const t of leaves) t.requiresGrad = true;
    const y = ops.causalConv1d(x, w, bias, { activation: c.silu ? 'silu' : undefined, initialState: h0, returnFinalState: c.fin });
    const e = ref(B, D, L, W, xv, wv, bv, hv, !!c.silu, dyv, dfv);
    const [rt, at] = TOL[dtype];
    expectClose(read(y.out), e.out, rt * 2, at * 2);
    if (c.fin) expectClose(read(y.finalState!), e.fin, 0, 0);
    const g = gradsOf(leaves, c.fin ? [y.out, y.finalState!] : [y.out], c.fin ? [dy, dfin!] : [dy]);
    const gtol = dtype === 'float32' ? 1e-4 : dtype === 'float16' ? 1e-2 : 4e-2;
    expectClose(g[0]!, e.dx, gtol, gtol);
    const big = gtol * Math.sqrt(B * L);
    expectClose(g[1]!, e.dw, gtol, big);
    let i = 2;
    if (bias) expectClose(g[i++]!, e.db, gtol, big);
    if (h0) expectClose(g[i++]!, e.dh0, gtol, gtol);
  });
}

describe('causalConv1d', () => {
  test.each(FLOATS)('widths 2-4, bias, silu, %s', (dtype) => {
    for (const W of [2, 3, 4])
      for (const [B, D, L] of [[2, 3, 16], [1, 5, 13], [2, 2, 1], [1, 3, 2]]) {
        check({ B, D, L, W, dtype });
        check({ B, D, L, W, dtype, bias: true, silu: true });
      }
  });

  test.each(FLOATS)('initial and final states, HF weight layout, %s', (dtype) => {
    check({ B: 2, D: 3, L: 37, W: 4, dtype, bias: true, silu: true, h0: true, fin: true, hf: true });
    check({ B: 2, D: 2, L: 2, W: 4, dtype, h0: true, fin: true });
    check({ B: 1, D: 4, L: 1, W: 3, dtype, bias: true, h0: true, fin: true });
  });

  test('long rows', () => {
    check({ B: 2, D: 3, L: 2100, W: 4, dtype: 'float32', bias: true, silu: true, h0: true, fin: true });
  });

  test('segments: two halves with the carried state equal the whole', () => {
    tidy(() => {
      const r = rng(9);
      const [B, D, L, cut] = [2, 3, 20, 11];
      const xv = normal(r, B * D * L);
      const part = (t0: number, t1: number) => {
        const v = new Float64Array(B * D * (t1 - t0));
        for (let row = 0; row < B * D; row++) for (let t = t0; t < t1; t++) v[row * (t1 - t0) + t - t0] = xv[row * L + t];
        return make(v, [B, D, t1 - t0], 'float32')[0];
      };
      const [w] = make(normal(r, 12), [3, 4], 'float32');
      const whole = read(ops.causalConv1d(part(0, L), w).out);
      const a = ops.causalConv1d(part(0, cut), w, undefined, { returnFinalState: true });
      const b = ops.causalConv1d(part(cut, L), w, undefined, { initialState: a.finalState });
      const av = read(a.out), bv = read(b.out);
      for (let row = 0; row < B * D; row++)
        for (let t = 0; t < L; t++) {
          const got = t < cut ? av[row * cut + t] : bv[row * (L - cut) + t - cut];
          expect(Math.abs(got - whole[row * L + t])).toBeLessThan(1e-6);
        }
    });
  });

  test('empty sequence passes the state through', () => {
    tidy(() => {
      const [x] = make(new Float64Array(0), [2, 3, 0], 'float32');
      const [w] = make(normal(rng(1), 12), [3, 4], 'float32');
      const [h0, hv] = make(normal(rng(2), 18), [2, 3, 3], 'float32');
      const y = ops.causalConv1d(x, w, undefined, { initialState: h0, returnFinalState: true });
      expect(y.out.shape).toEqual([2, 3, 0]);
      expectClose(read(y.finalState!), hv, 0, 0);
    });
  });

  test('bad input: typed errors naming the function and argument', () => {
    tidy(() => {
      const [x] = make(new Float64Array(24), [2, 3, 4], 'float32');
      const [w5] = make(new Float64Array(15), [3, 5], 'float32');
      const [w] = make(new Float64Array(12), [3, 4], 'float32');
      const [b2] = make(new Float64Array(2), [2], 'float32');
      const [xi] = make(new Float64Array(24), [2, 3, 4], 'int32');
      expect(() => ops.causalConv1d(x, w5)).toThrow(expect.objectContaining({ fn: 'causalConv1d', arg: 'weight' }));
      expect(() => ops.causalConv1d(x, w, b2)).toThrow(expect.objectContaining({ fn: 'causalConv1d', arg: 'bias' }));
      expect(() => ops.causalConv1d(xi, w)).toThrow(DTypeError);
      expect(() => ops.causalConv1d(x, w, undefined, { activation: 'relu' as never })).toThrow(ArgumentError);
      expect(() => ops.causalConv1d(x, w, undefined, { initialState: x })).toThrow(ShapeError);
    });
  });
});

describeCuda('causalConv1d on CUDA', () => {
  test.each(FLOATS)('matches the float64 reference, %s', (dtype) => {
    for (const W of [2, 3, 4]) {
      check({ B: 2, D: 3, L: 64, W, dtype, bias: true, silu: true }, 'cuda');
      check({ B: 2, D: 3, L: 37, W, dtype, h0: true, fin: true, silu: true }, 'cuda');
      check({ B: 1, D: 2, L: 2, W, dtype, bias: true, h0: true, fin: true }, 'cuda');
    }
    check({ B: 2, D: 5, L: 2048, W: 4, dtype, bias: true, silu: true, h0: true, fin: true }, 'cuda');
    check({ B: 1, D: 3, L: 1030, W: 4, dtype, bias: true }, 'cuda');
  });
});

test('a (dim, 1, width) weight gets a gradient whose native shape is its own (usable by other ops)', () => {
  const x = tensor(Float32Array.from({ length: 2 * 3 * 5 }, (_, i) => Math.sin(i)), [2, 3, 5]);
  const w = tensor(Float32Array.from({ length: 3 * 4 }, (_, i) => 0.1 * i - 0.5), [3, 1, 4]).requiresGrad_();
  tidy(() => ops.sum(ops.causalConv1d(x, w).out).backward());
  const g = w.grad as Tensor;
  expect(g.shape).toEqual([3, 1, 4]);
  const s = tidy(() => ops.sum(ops.mul(g, g), [1]));
  expect(s.shape).toEqual([3, 4]);
  [x, w, s].forEach((t) => t.dispose());
});

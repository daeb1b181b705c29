// crossEntropy against a float64 reference of torch.nn.functional.cross_entropy: mean / sum / none, ignoreIndex
// (including every target ignored: NaN mean), label smoothing, (N, V) and (B, L, V) logits, every float dtype,
// large logits (the max shift), odd and large vocabularies, backward, bad input; CUDA against the reference.
import { DType, Device, ArgumentError, DTypeError, ShapeError, ops, tensor, tidy } from '../../lib';
import { describeCuda, expectClose } from '../setup';
import { FLOATS, TOL, gradsOf, make, normal, read, rng } from './fused_helpers';

type Red = 'mean' | 'sum' | 'none';

function ref(x: Float64Array, t: Int32Array, V: number, ignore: number, red: Red, s: number, dloss: Float64Array) {
  const N = t.length;
  const loss = new Float64Array(N), dx = new Float64Array(N * V);
  let count = 0;
  const lse = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    let m = -Infinity, sx = 0;
    for (let c = 0; c < V; c++) m = Math.max(m, x[i * V + c]);
    let se = 0;
    for (let c = 0; c < V; c++) {
      se += Math.exp(x[i * V + c] - m);
      sx += x[i * V + c];
    }
    lse[i] = m + Math.log(se);
    if (t[i] === ignore) continue;
    count++;
    loss[i] = (1 - s) * (lse[i] - x[i * V + t[i]]) + s * (lse[i] - sx / V);
  }
  const total = loss.reduce((a, b) => a + b, 0);
  const value = red === 'none' ? loss : Float64Array.of(red === 'sum' ? total : total / count);
  for (let i = 0; i < N; i++) {
    if (t[i] === ignore) continue;
    const g = red === 'none' ? dloss[i] : red === 'sum' ? dloss[0] : dloss[0] / count;
    for (let c = 0; c < V; c++) dx[i * V + c] = g * (Math.exp(x[i * V + c] - lse[i]) - s / V - (c === t[i] ? 1 - s : 0));
  }
  return { value, dx };
}

interface Case {
  lead: number[];
  V: number;
  dtype: DType;
  red?: Red;
  smoothing?: number;
  ignoreFrac?: number;
  scale?: number;
  shift?: number;
}

function check(c: Case, device: Device = 'cpu', seed = 1): void {
  tidy(() => {
    const r = rng(seed);
    const N = c.lead.reduce((a, b) => a * b, 1);
    const red = c.red ?? 'mean';
    const [x, xv] = make(normal(r, N * c.V, c.scale ?? 2, c.shift ?? 0), [...c.lead, c.V], c.dtype, device);
    const tv = Int32Array.from({ length: N }, () => (r() < (c.ignoreFrac ?? 0.2) ? -100 : Math.floor(r() * c.V)));
    const t = tensor(tv, c.lead, { dtype: 'int32', device });
    const [dl, dlv] = make(normal(r, red === 'none' ? N : 1), red === 'none' ? c.lead : [], c.dtype, device);
    x.requiresGrad = true;
    const loss = ops.crossEntropy(x, t, { reduction: red, labelSmoothing: c.smoothing ?? 0 });
    expect(loss.shape).toEqual(red === 'none' ? c.lead : []);
    expect(loss.dtype).toBe(c.dtype);
    const e = ref(xv, tv, c.V, -100, red, c.smoothing ?? 0, dlv);
    const [rt, at] = TOL[c.dtype];
    expectClose(read(loss), e.value, rt * 4, at * 4);
    const [g] = gradsOf([x], [loss], [dl]);
    const gt = c.dtype === 'float32' ? 1e-5 : c.dtype === 'float16' ? 2e-3 : 1.6e-2;
    expectClose(g!, e.dx, gt * 2, gt * 2e-2);
  });
}

describe('crossEntropy', () => {
  test.each(FLOATS)('reductions, ignoreIndex, label smoothing, %s', (dtype) => {
    for (const red of ['mean', 'sum', 'none'] as Red[])
      for (const smoothing of [0, 0.1]) {
        check({ lead: [7], V: 11, dtype, red, smoothing });
        check({ lead: [2, 5], V: 64, dtype, red, smoothing }, 'cpu', 2);
      }
  });

  test.each(FLOATS)('large logits and a large odd vocabulary, %s', (dtype) => {
    check({ lead: [3], V: 50280, dtype, smoothing: 0.1 });
    check({ lead: [4], V: 1001, dtype, shift: 80, scale: 5 });
  });

  test('every target ignored: mean is NaN (as in PyTorch), sum is 0, gradients are 0', () => {
    tidy(() => {
      const [x] = make(normal(rng(1), 12), [3, 4], 'float32');
      const t = tensor([-100, -100, -100], [3], { dtype: 'int32' });
      expect(Number.isNaN(read(ops.crossEntropy(x, t))[0])).toBe(true);
      x.requiresGrad = true;
      const s = ops.crossEntropy(x, t, { reduction: 'sum' });
      expect(read(s)[0]).toBe(0);
      const [g] = gradsOf([x], [s], [tensor(1)]);
      expect(Array.from(g!).every((v) => v === 0)).toBe(true);
    });
  });

  test('custom ignoreIndex and empty input', () => {
    tidy(() => {
      const [x, xv] = make(normal(rng(4), 8), [2, 4], 'float32');
      const t = tensor([3, 1], [2], { dtype: 'int32' });
      const e = ref(xv, Int32Array.of(3, 1), 4, 1, 'mean', 0, Float64Array.of(1));
      expectClose(read(ops.crossEntropy(x, t, { ignoreIndex: 1 })), e.value, 1e-6, 1e-6);
      const [x0] = make(new Float64Array(0), [0, 5], 'float32');
      const t0 = tensor(new Int32Array(0), [0], { dtype: 'int32' });
      expect(read(ops.crossEntropy(x0, t0, { reduction: 'sum' }))[0]).toBe(0);
      expect(ops.crossEntropy(x0, t0, { reduction: 'none' }).shape).toEqual([0]);
    });
  });

  test('bad input: typed errors naming the function and argument', () => {
    tidy(() => {
      const [x] = make(new Float64Array(12), [3, 4], 'float32');
      const t = tensor([0, 1, 2], [3], { dtype: 'int32' });
      expect(() => ops.crossEntropy(x, tensor([0, 1], [2], { dtype: 'int32' }))).toThrow(ShapeError);
      expect(() => ops.crossEntropy(x, tensor([0, 1, 2], [3]))).toThrow(DTypeError);
      expect(() => ops.crossEntropy(x, tensor([0, 4, 2], [3], { dtype: 'int32' }))).toThrow(expect.objectContaining({ fn: 'crossEntropy', arg: 'targets' }));
      expect(() => ops.crossEntropy(x, tensor([0, -1, 2], [3], { dtype: 'int32' }))).toThrow(ArgumentError);
      expect(() => ops.crossEntropy(x, t, { reduction: 'avg' as never })).toThrow(expect.objectContaining({ arg: 'reduction' }));
      expect(() => ops.crossEntropy(x, t, { labelSmoothing: 2 })).toThrow(expect.objectContaining({ arg: 'labelSmoothing' }));
    });
  });
});

describeCuda('crossEntropy on CUDA', () => {
  test.each(FLOATS)('matches the float64 reference, %s', (dtype) => {
    for (const red of ['mean', 'sum', 'none'] as Red[]) {
      check({ lead: [2, 9], V: 50280, dtype, red, smoothing: 0.1 }, 'cuda');
      check({ lead: [37], V: 1001, dtype, red, shift: 60, scale: 4 }, 'cuda');
      check({ lead: [5], V: 7, dtype, red }, 'cuda');
    }
  });

  test('out-of-range targets give NaN on CUDA (no synchronisation)', () => {
    tidy(() => {
      const [x] = make(normal(rng(1), 12), [3, 4], 'float32', 'cuda');
      const t = tensor([0, 9, 2], [3], { dtype: 'int32', device: 'cuda' });
      expect(Number.isNaN(read(ops.crossEntropy(x, t))[0])).toBe(true);
    });
  });
});

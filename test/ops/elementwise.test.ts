// Elementwise ops and sum/mean: values against float64 JS references over every float dtype, NumPy
// broadcasting, edge shapes, NaN/inf, typed errors; CUDA against the CPU (skipped only without a GPU).
import { ArgumentError, DType, DTypeError, DeviceError, ShapeError, Tensor, ops, randn, tensor, tidy, zeros } from '../../lib';
import { describeCuda, expectClose, expectTypedError } from '../setup';

const FLOATS: DType[] = ['float32', 'float16', 'bfloat16'];
const TOL: Record<string, [number, number]> = { float32: [1e-5, 1e-6], float16: [2e-3, 1e-4], bfloat16: [1.6e-2, 1e-4] };

const erf = (x: number): number => {
  // Abramowitz-Stegun 7.1.26 is too coarse; use a series / continued fraction accurate to ~1e-15.
  const t = Math.abs(x);
  if (t < 2.5) {
    let sum = t;
    let term = t;
    for (let n = 1; n < 60; n++) {
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (t + f);
  return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f));
};
const sig = (x: number) => 1 / (1 + Math.exp(-x));
const UNARY: [string, (t: Tensor) => Tensor, (x: number) => number, boolean][] = [
  ['neg', ops.neg, (x) => -x, false],
  ['exp', ops.exp, Math.exp, false],
  ['log', ops.log, Math.log, true],
  ['sqrt', ops.sqrt, Math.sqrt, true],
  ['rsqrt', ops.rsqrt, (x) => 1 / Math.sqrt(x), true],
  ['abs', ops.abs, Math.abs, false],
  ['square', ops.square, (x) => x * x, false],
  ['silu', ops.silu, (x) => x * sig(x), false],
  ['softplus', ops.softplus, (x) => (x > 20 ? x : Math.log1p(Math.exp(x))), false],
  ['sigmoid', ops.sigmoid, sig, false],
  ['tanh', ops.tanh, Math.tanh, false],
  ['relu', ops.relu, (x) => Math.max(x, 0), false],
  ['gelu', ops.gelu, (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)), false],
  ['clamp', (t) => ops.clamp(t, -0.5, 1), (x) => Math.min(Math.max(x, -0.5), 1), false],
];

function suite(device: 'cpu' | 'cuda'): void {
  describe.each(FLOATS)('%s', (dtype) => {
    const [rtol, atol] = TOL[dtype];
    test.each(UNARY)('%s', (_n, op, ref, positive) =>
      tidy(() => {
      const src = randn([1031], { seed: 3, std: 2 });
      const x0 = positive ? ops.add(ops.abs(src), 0.01) : src;
      const x = x0.cast(dtype).to(device);
      const xs = Array.from(x.dataSync());
      const y = op(x);
      expect(y.dtype).toBe(dtype);
      expect(y.device).toBe(device);
      expectClose(y.dataSync(), xs.map(ref), rtol, atol);
      }),
    );

    test('binary ops broadcast like NumPy', () =>
      tidy(() => {
      const a = randn([4, 1, 5], { seed: 1, dtype, device });
      const b = ops.add(randn([3, 5], { seed: 2, dtype: 'float32' }), 3).cast(dtype).to(device);
      const av = a.dataSync();
      const bv = b.dataSync();
      const refs: [string, (x: Tensor, y: Tensor) => Tensor, (x: number, y: number) => number][] = [
        ['add', ops.add, (x, y) => x + y],
        ['sub', ops.sub, (x, y) => x - y],
        ['mul', ops.mul, (x, y) => x * y],
        ['div', ops.div, (x, y) => x / y],
        ['pow', (x, y) => ops.pow(ops.abs(x), y), (x, y) => Math.pow(Math.abs(x), y)],
      ];
      for (const [, op, ref] of refs) {
        const y = op(a, b);
        expect(y.shape).toEqual([4, 3, 5]);
        const want: number[] = [];
        for (let i = 0; i < 4; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 5; k++) want.push(ref(av[i * 5 + k], bv[j * 5 + k]));
        expectClose(y.dataSync(), want, rtol * 4, atol);
        y.dispose();
      }
      const s = ops.mul(a, 2);
      expectClose(s.dataSync(), Array.from(av, (v) => 2 * v), rtol, atol);
      }),
    );

    test('sum and mean over axes, keepDims, negative axes, empty axes', () => {
      const x = randn([3, 4, 5], { seed: 4, dtype, device });
      const v = x.dataSync();
      const at = (i: number, j: number, k: number) => v[i * 20 + j * 5 + k];
      const s02 = ops.sum(x, [0, -1]);
      expect(s02.shape).toEqual([4]);
      expectClose(s02.dataSync(), [0, 1, 2, 3].map((j) => [0, 1, 2].reduce((a, i) => a + [0, 1, 2, 3, 4].reduce((b, k) => b + at(i, j, k), 0), 0)), rtol * 4, atol * 20);
      const m1 = ops.mean(x, 1, { keepDims: true });
      expect(m1.shape).toEqual([3, 1, 5]);
      const want: number[] = [];
      for (let i = 0; i < 3; i++) for (let k = 0; k < 5; k++) want.push([0, 1, 2, 3].reduce((a, j) => a + at(i, j, k), 0) / 4);
      expectClose(m1.dataSync(), want, rtol * 4, atol * 4);
      const all = ops.sum(x);
      expect(all.shape).toEqual([]);
      const e = zeros([2, 0, 3], { dtype, device });
      const se = ops.sum(e, 1);
      expect(se.shape).toEqual([2, 3]);
      expect(Array.from(se.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
      [x, s02, m1, all, e, se].forEach((t) => t.dispose());
    });

    test('large row sums stay accurate (float32 accumulation)', () =>
      tidy(() => {
      const x = ops.add(zeros([2, 100000], { dtype, device }), 1);
      const s = ops.sum(x, 1);
      expect(Array.from(s.dataSync())).toEqual(dtype === 'float32' ? [100000, 100000] : Array.from(tensor([100000, 100000], [2], { dtype }).dataSync()));
      }),
    );
  });

  test('where broadcasts and accepts numbers; NaN and inf propagate', () => {
    const c = tensor([1, 0, 1], [3, 1], { device });
    const a = tensor([1, 2], [2], { device });
    const w = ops.where(c, a, -1);
    expect(w.shape).toEqual([3, 2]);
    expect(Array.from(w.dataSync())).toEqual([1, 2, -1, -1, 1, 2]);
    const n = tensor([NaN, Infinity, -Infinity], [3], { device });
    const e = ops.exp(n);
    expect(Array.from(e.dataSync())).toEqual([NaN, Infinity, 0]);
    [c, a, w, n, e].forEach((t) => t.dispose());
  });
}

describe('elementwise on the CPU', () => suite('cpu'));
describeCuda('elementwise on CUDA', () => suite('cuda'));

describe('elementwise: bad input gives typed errors', () => {
  const a = zeros([2, 3]);
  const b = zeros([4]);
  const h = zeros([2, 3], { dtype: 'float16' });
  const i = zeros([2, 3], { dtype: 'int32' });
  afterAll(() => [a, b, h, i].forEach((t) => t.dispose()));
  const cases: [string, () => unknown, new (...x: never[]) => Error, string, string][] = [
    ['incompatible shapes', () => ops.add(a, b), ShapeError, 'add', 'shape'],
    ['mixed dtypes', () => ops.mul(a, h), DTypeError, 'mul', 'b'],
    ['int32 operand', () => ops.exp(i), DTypeError, 'unary', 'x'],
    ['not a tensor', () => ops.sub(a, 'x' as never), ArgumentError, 'sub', 'b'],
    ['two numbers', () => ops.div(1 as never, 2 as never), ArgumentError, 'div', 'a'],
    ['clamp min > max', () => ops.clamp(a, 2, 1), ArgumentError, 'clamp', 'min'],
    ['sum axis out of range', () => ops.sum(a, 2), ArgumentError, 'sum', 'axes'],
    ['mean axis not an integer', () => ops.mean(a, 0.5), ArgumentError, 'mean', 'axes'],
    ['broadcastTo a smaller shape', () => ops.broadcastTo(a, [3]), ShapeError, 'broadcastTo', 'shape'],
    ['where cond not a tensor', () => ops.where(1 as never, a, a), ArgumentError, 'where', 'cond'],
  ];
  test.each(cases)('%s', (_n, call, cls, fn, arg) => expectTypedError(call, cls, fn, arg));
  describeCuda('mixed devices', () => {
    test('a CUDA operand with a CPU operand is a DeviceError', () => {
      const g = a.to('cuda');
      expect(() => ops.add(a, g)).toThrow(DeviceError);
      g.dispose();
    });
  });
});

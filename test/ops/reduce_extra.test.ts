// max, min, argmax, argmin, logsumexp, softmax and logSoftmax (lib/ops/reduce_extra.ts) against float64
// JS references: single, adjacent, non-adjacent, negative and all axes, keepDims, odd, large and empty
// shapes, ties, NaN and infinities, every float dtype with per-dtype tolerances; gradients against
// hand-derived references; bad input (typed errors naming the function and argument); and on CUDA every
// kernel path (warp rows, block rows, split rows, column tiles) against the CPU.
import { ArgumentError, DType, DTypeError, DisposedError, ShapeError, Tensor, ops, tensor, tidy } from '../../lib';
import { describeCuda, expectClose, expectEqualArrays, expectTypedError as expectThrows, ravel, rng, unravel } from '../setup';

const FLOATS: DType[] = ['float32', 'float16', 'bfloat16'];
// rtol = atol per dtype: float32 math, one rounding of the result to the dtype.
const TOL: Record<string, number> = { float32: 2e-6, float16: 1.5e-3, bfloat16: 1e-2 };

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A tensor of values in (-scale, scale) and the exact values it holds after rounding to its dtype. */
function make(shape: number[], dtype: DType = 'float32', seed = 1, device: 'cpu' | 'cuda' = 'cpu', scale = 4): { t: Tensor; v: number[] } {
  const r = rng(seed);
  const t = tensor(
    Float32Array.from({ length: size(shape) }, () => (r() * 2 - 1) * scale),
    shape,
    { dtype, device },
  );
  return { t, v: Array.from(t.dataSync()) };
}

const norm = (axes: number[], rank: number) => [...new Set(axes.map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);

/** For each input element, its output position when `axes` are reduced (outputs in row-major order). */
function groups(shape: number[], axes: number[]): { outShape: number[]; outOf: number[] } {
  const kept = shape.map((_, d) => d).filter((d) => !axes.includes(d));
  const outShape = kept.map((d) => shape[d]);
  const outOf = Array.from({ length: size(shape) }, (_, i) => {
    const idx = unravel(i, shape);
    return ravel(
      kept.map((d) => idx[d]),
      outShape,
    );
  });
  return { outShape, outOf };
}

// ---- float64 references ----

/** Max (sign 1) or min (sign -1): values and the first input position (flat) of each result; NaN wins. */
function extremeRef(v: number[], shape: number[], axes: number[], sign: number): { values: number[]; at: number[] } {
  const { outShape, outOf } = groups(shape, axes);
  const values = new Array<number>(size(outShape)).fill(NaN);
  const at = new Array<number>(size(outShape)).fill(-1);
  v.forEach((x, i) => {
    const o = outOf[i];
    const cur = values[o];
    const better = at[o] < 0 || (Number.isNaN(x) && !Number.isNaN(cur)) || (!Number.isNaN(cur) && sign * x > sign * cur);
    if (better) {
      values[o] = x;
      at[o] = i;
    }
  });
  return { values, at };
}

function logsumexpRef(v: number[], shape: number[], axes: number[]): number[] {
  const { outShape, outOf } = groups(shape, axes);
  const m = new Array<number>(size(outShape)).fill(-Infinity);
  v.forEach((x, i) => (m[outOf[i]] = Math.max(m[outOf[i]], x)));
  const s = new Array<number>(size(outShape)).fill(0);
  v.forEach((x, i) => {
    const mm = m[outOf[i]];
    s[outOf[i]] += x === mm ? 1 : Math.exp(x - mm);
  });
  return m.map((mm, o) => mm + Math.log(s[o]));
}

function softmaxRef(v: number[], shape: number[], axis: number, log: boolean): number[] {
  const lse = logsumexpRef(v, shape, [axis]);
  const { outOf } = groups(shape, [axis]);
  return v.map((x, i) => (log ? x - lse[outOf[i]] : Math.exp(x - lse[outOf[i]])));
}

function reducedShape(shape: number[], axes: number[], keepDims: boolean): number[] {
  return shape.flatMap((s, d) => (axes.includes(d) ? (keepDims ? [1] : []) : [s]));
}


// ---- forward ----

const AXES_CASES: [number[], number | number[] | undefined][] = [
  [[3, 5, 7], 1],
  [[3, 5, 7], -1],
  [[3, 5, 7], [0, 1]],
  [[3, 5, 7], [0, -1]],
  [[3, 5, 7], undefined],
  [[3, 5, 7], []],
  [[2, 3, 4, 5], [1, 3]],
  [[1, 9, 1], 1],
  [[0, 4], 1],
  [[], undefined],
];

describe.each(FLOATS)('reductions, %s', (dtype) => {
  test.each(AXES_CASES)('max / min / logsumexp of %j over %j, with and without keepDims', (shape, axes) => {
    tidy(() => {
      const { t, v } = make(shape, dtype);
      const ax = axes === undefined ? shape.map((_, d) => d) : norm(typeof axes === 'number' ? [axes] : axes, shape.length);
      for (const keepDims of [false, true]) {
        const outShape = reducedShape(shape, ax, keepDims);
        for (const [op, sign] of [['max', 1], ['min', -1]] as const) {
          const y = ops[op](t, axes, { keepDims });
          expect([...y.shape]).toEqual(outShape);
          expect(y.dtype).toBe(dtype);
          expectEqualArrays(y.dataSync(), extremeRef(v, shape, ax, sign).values);
        }
        const l = ops.logsumexp(t, axes, { keepDims });
        expect([...l.shape]).toEqual(outShape);
        expectClose(l.dataSync(), logsumexpRef(v, shape, ax), TOL[dtype], TOL[dtype]);
      }
    });
  });

  test('argmax / argmin: per axis, flattened, keepDims; ties go to the first position', () => {
    tidy(() => {
      const shape = [4, 6, 5];
      const { t, v } = make(shape, dtype);
      for (const axis of [0, 1, -1]) {
        const a = axis < 0 ? axis + 3 : axis;
        for (const [op, sign] of [['argmax', 1], ['argmin', -1]] as const) {
          const y = ops[op](t, axis);
          expect(y.dtype).toBe('int32');
          expect([...y.shape]).toEqual(reducedShape(shape, [a], false));
          const ref = extremeRef(v, shape, [a], sign).at.map((i) => unravel(i, shape)[a]);
          expectEqualArrays(y.dataSync(), ref);
        }
      }
      const flat = ops.argmax(t, undefined, { keepDims: true });
      expect([...flat.shape]).toEqual([1, 1, 1]);
      expect(flat.dataSync()[0]).toBe(extremeRef(v, shape, [0, 1, 2], 1).at[0]);
      const ties = tensor([1, 3, 3, -2, -2, 0], [2, 3], { dtype });
      expectEqualArrays(ops.argmax(ties, 1).dataSync(), [1, 2]);
      expectEqualArrays(ops.argmin(ties, 1).dataSync(), [0, 0]);
    });
  });

  test('NaN wins max, min and argmax; infinities in logsumexp', () => {
    tidy(() => {
      const x = tensor([1, NaN, 3, NaN, -Infinity, -Infinity, -Infinity, -Infinity, 2, Infinity, 5, 1], [3, 4], { dtype });
      expectEqualArrays(ops.max(x, 1).dataSync(), [NaN, -Infinity, Infinity]);
      expectEqualArrays(ops.min(x, 1).dataSync(), [NaN, -Infinity, 1]);
      expectEqualArrays(ops.argmax(x, 1).dataSync(), [1, 0, 1]);
      expectEqualArrays(ops.logsumexp(x, 1).dataSync(), [NaN, -Infinity, Infinity]);
      expectEqualArrays(ops.logsumexp(tensor([], [2, 0], { dtype }), 1).dataSync(), [-Infinity, -Infinity]);
      const big = tensor([1000, 1000, -1000], [3], { dtype: 'float32' });
      expectClose(ops.logsumexp(big).dataSync(), [1000 + Math.log(2)], 1e-6, 0);
    });
  });

  test.each([
    [[5, 7], -1],
    [[5, 7], 0],
    [[3, 4, 5], 1],
    [[2, 1300], 1],
    [[1, 3], 1],
    [[4, 0], 1],
  ] as [number[], number][])('softmax / logSoftmax of %j along %d', (shape, axis) => {
    tidy(() => {
      const { t, v } = make(shape, dtype, 3, 'cpu', 6);
      const a = axis < 0 ? axis + shape.length : axis;
      const p = ops.softmax(t, axis);
      expect([...p.shape]).toEqual(shape);
      expectClose(p.dataSync(), softmaxRef(v, shape, a, false), TOL[dtype], TOL[dtype]);
      expectClose(ops.logSoftmax(t, axis).dataSync(), softmaxRef(v, shape, a, true), TOL[dtype], TOL[dtype] * 8);
    });
  });
});

test('softmax: default last axis, rows of only -inf give NaN, large logits stay finite', () => {
  tidy(() => {
    const x = tensor([-Infinity, -Infinity, -Infinity, 0, 999, 1000], [2, 3]);
    const p = Array.from(ops.softmax(x).dataSync());
    expect(p.slice(0, 3).every(Number.isNaN)).toBe(true);
    expectClose(p.slice(3), softmaxRef([0, 999, 1000], [3], 0, false), 1e-6, 1e-7);
    expectClose(Array.from(ops.logSoftmax(x).dataSync()).slice(3), softmaxRef([0, 999, 1000], [3], 0, true), 1e-6, 1e-4);
  });
});

test('long and wide rows (CPU chunked accumulation) against float64', () => {
  tidy(() => {
    const shape = [3, 100003];
    const { t, v } = make(shape, 'float32', 11);
    expectEqualArrays(ops.max(t, 1).dataSync(), extremeRef(v, shape, [1], 1).values);
    expectClose(ops.logsumexp(t, 1).dataSync(), logsumexpRef(v, shape, [1]), 1e-6, 1e-6);
    const cols = [2, 3001, 70];
    const c = make(cols, 'float32', 12);
    expectEqualArrays(ops.argmin(c.t, 1).dataSync(), extremeRef(c.v, cols, [1], -1).at.map((i) => unravel(i, cols)[1]));
    expectClose(ops.softmax(c.t, 1).dataSync(), softmaxRef(c.v, cols, 1, false), 1e-5, 1e-8);
  });
});

// ---- backward ----

/** x.grad after sum(f(x) * w) backward, for w drawn like the inputs; also returns w. */
function gradOf(x: Tensor, f: (x: Tensor) => Tensor, seed = 7): { grad: number[]; w: number[] } {
  return tidy(() => {
    const y = f(x);
    const w = make([...y.shape], y.dtype, seed, y.device);
    ops.sum(ops.mul(y, w.t)).backward();
    return { grad: Array.from((x.grad as Tensor).dataSync()), w: w.v };
  });
}

describe('gradients', () => {
  test.each([
    [[2, 3, 4], [1]],
    [[2, 3, 4], [0, 2]],
    [[2, 3, 4], [-1, -2]],
    [[5, 6], [0, 1]],
  ] as [number[], number[]][])('max / min of %j over %j send the gradient to the first extreme', (shape, axes) => {
    for (const [op, sign] of [['max', 1], ['min', -1]] as const) {
      for (const keepDims of [false, true]) {
        // Few distinct values, so there are ties.
        const x = tensor(
          Array.from({ length: size(shape) }, (_, i) => (i * 7) % 5),
          shape,
        ).requiresGrad_();
        const v = Array.from(x.dataSync());
        const { grad, w } = gradOf(x, (a) => ops[op](a, axes, { keepDims }));
        const { at } = extremeRef(v, shape, norm(axes, shape.length), sign);
        const ref = new Array<number>(v.length).fill(0);
        at.forEach((i, o) => (ref[i] = w[o]));
        expectEqualArrays(grad, ref);
        x.dispose();
      }
    }
  });

  test('logsumexp: g * softmax over the reduced axes', () => {
    const shape = [3, 4, 5];
    const { t, v } = make(shape);
    const x = t.requiresGrad_();
    const { grad, w } = gradOf(x, (a) => ops.logsumexp(a, [0, 2], { keepDims: true }));
    const lse = logsumexpRef(v, shape, [0, 2]);
    const { outOf } = groups(shape, [0, 2]);
    expectClose(
      grad,
      v.map((xi, i) => w[outOf[i]] * Math.exp(xi - lse[outOf[i]])),
      1e-5,
      1e-6,
    );
    x.dispose();
  });

  test.each([false, true])('softmax / logSoftmax (log = %s): analytic gradient along each axis', (log) => {
    const shape = [3, 4, 5];
    for (const axis of [0, 1, 2]) {
      const { t, v } = make(shape, 'float32', 5);
      const x = t.requiresGrad_();
      const { grad, w } = gradOf(x, (a) => (log ? ops.logSoftmax(a, axis) : ops.softmax(a, axis)));
      const y = softmaxRef(v, shape, axis, false);
      const { outOf } = groups(shape, [axis]);
      const dot = new Array<number>(v.length).fill(0);
      y.forEach((yi, i) => (dot[outOf[i]] += log ? w[i] : w[i] * yi));
      const ref = y.map((yi, i) => (log ? w[i] - yi * dot[outOf[i]] : yi * (w[i] - dot[outOf[i]])));
      expectClose(grad, ref, 1e-4, 1e-6);
      x.dispose();
    }
  });

  test('bfloat16 softmax gradient within bfloat16 tolerance', () => {
    const shape = [4, 33];
    const { t, v } = make(shape, 'bfloat16', 5);
    const x = t.requiresGrad_();
    const { grad, w } = gradOf(x, (a) => ops.softmax(a));
    const y = softmaxRef(v, shape, 1, false);
    const dot = [0, 0, 0, 0];
    y.forEach((yi, i) => (dot[Math.floor(i / 33)] += w[i] * yi));
    expectClose(
      grad,
      y.map((yi, i) => yi * (w[i] - dot[Math.floor(i / 33)])),
      3e-2,
      3e-3,
    );
    x.dispose();
  });
});

// ---- bad input ----

describe('bad input', () => {
  test('dtypes, axes, options, empty reductions, disposed tensors', () => {
    const x = make([2, 3]).t;
    const i = tensor([1, 2], [2], { dtype: 'int32' });
    expectThrows(() => ops.max(i), DTypeError, 'max', 'x');
    expectThrows(() => ops.argmin(i, 0), DTypeError, 'argmin', 'x');
    expectThrows(() => ops.softmax(i), DTypeError, 'softmax', 'x');
    expectThrows(() => ops.logsumexp(3 as unknown as Tensor), ArgumentError, 'logsumexp', 'x');
    expectThrows(() => ops.max(x, 2), ArgumentError, 'max', 'axes');
    expectThrows(() => ops.min(x, [0, -3]), ArgumentError, 'min', 'axes');
    expectThrows(() => ops.argmax(x, -3), ArgumentError, 'argmax', 'axis');
    expectThrows(() => ops.logSoftmax(x, 2), ArgumentError, 'logSoftmax', 'axis');
    expectThrows(() => ops.softmax(tensor(1)), ShapeError, 'softmax', 'x');
    expectThrows(() => ops.max(x, 1, { keepDims: 1 as unknown as boolean }), ArgumentError, 'max', 'keepDims');
    expectThrows(() => ops.max(tensor([], [2, 0]), 1), ShapeError, 'max', 'x');
    expectThrows(() => ops.argmax(tensor([], [0])), ShapeError, 'argmax', 'x');
    expect(tidy(() => [...ops.max(tensor([], [0, 2]), 1).shape])).toEqual([0]);
    [x, i].forEach((t) => t.dispose());
    expectThrows(() => ops.softmax(x), DisposedError, 'softmax', 'x');
  });
});

// ---- CUDA against the CPU ----

describeCuda('CUDA', () => {
  // Shapes that reach each launch path of cuda/reduce_extra.cu along axis 1.
  const PATHS: [string, number[]][] = [
    ['warp per row', [300, 700]],
    ['block per row', [1100, 1500]],
    ['rows split over blocks', [3, 200001]],
    ['column tiles of 8', [64, 5, 520]],
    ['column tiles of 32', [2, 3000, 40]],
    ['one element per row', [7, 1]],
  ];

  test.each(FLOATS)('every path matches the CPU (%s)', (dtype) => {
    for (const [, shape] of PATHS) {
      tidy(() => {
        const c = make(shape, dtype, 21);
        const g = c.t.to('cuda');
        for (const op of ['max', 'min'] as const) expectEqualArrays(ops[op](g, 1).dataSync(), ops[op](c.t, 1).dataSync());
        expectEqualArrays(ops.argmax(g, 1).dataSync(), ops.argmax(c.t, 1).dataSync());
        expectEqualArrays(ops.argmin(g, 1).dataSync(), ops.argmin(c.t, 1).dataSync());
        const tol = TOL[dtype] * 2;
        expectClose(ops.logsumexp(g, 1).dataSync(), ops.logsumexp(c.t, 1).dataSync(), tol, tol);
        expectClose(ops.softmax(g, 1).dataSync(), ops.softmax(c.t, 1).dataSync(), tol, tol * 1e-2);
        expectClose(ops.logSoftmax(g, 1).dataSync(), ops.logSoftmax(c.t, 1).dataSync(), tol, tol * 8);
      });
    }
  });

  test('non-adjacent axes, keepDims, NaN and repeatability on CUDA', () => {
    tidy(() => {
      const shape = [6, 7, 8, 9];
      const c = make(shape, 'float32', 4);
      const g = c.t.to('cuda');
      expectEqualArrays(ops.max(g, [0, 2], { keepDims: true }).dataSync(), ops.max(c.t, [0, 2], { keepDims: true }).dataSync());
      expectClose(ops.logsumexp(g, [1, 3]).dataSync(), ops.logsumexp(c.t, [1, 3]).dataSync(), 1e-5, 1e-5);
      const nan = tensor([1, NaN, 2, NaN], [2, 2], { device: 'cuda' });
      expectEqualArrays(ops.argmax(nan, 1).dataSync(), [1, 1]);
      const big = make([5, 300000], 'float32', 8, 'cuda').t;
      expectEqualArrays(ops.logsumexp(big, 1).dataSync(), ops.logsumexp(big, 1).dataSync());
    });
  });

  test('gradients match the CPU', () => {
    for (const f of [(a: Tensor) => ops.max(a, [0, 2]), (a: Tensor) => ops.softmax(a, 1), (a: Tensor) => ops.logSoftmax(a, -1), (a: Tensor) => ops.logsumexp(a, 1)]) {
      const grads = (['cpu', 'cuda'] as const).map((device) => {
        const x = make([4, 37, 6], 'float32', 2, device).t.requiresGrad_();
        const r = gradOf(x, f).grad;
        x.dispose();
        return r;
      });
      expectClose(grads[1], grads[0], 1e-5, 1e-6);
    }
  });
});

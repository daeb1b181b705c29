// The layout ops (lib/ops/shape.ts) against index-by-index JS references: permute, transpose, slice,
// narrow, concat, split, expand and indexSelect over odd, large, empty and 0-d shapes, negative axes and
// every dtype (copies are exact, so results must match bit for bit); their gradients against
// hand-derived references; bad input (typed errors naming the function and argument); and on CUDA the
// same ops against the CPU.
import { DType, DTypeError, DeviceError, ArgumentError, ShapeError, Tensor, ops, tensor, tidy } from '../../lib';
import { describeCuda, expectEqualArrays, expectTypedError as expectThrows, ravel, rng, unravel } from '../setup';

const DTYPES: DType[] = ['float32', 'float16', 'bfloat16', 'int32'];

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

// Values exactly representable in every dtype's read-back (integers for int32).
function values(n: number, dtype: DType, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (dtype === 'int32' ? Math.floor(r() * 2000) - 1000 : (r() - 0.5) * 8));
}

/** A tensor and the exact values it holds (after rounding to its dtype). */
function make(shape: number[], dtype: DType = 'float32', seed = 1, device: 'cpu' | 'cuda' = 'cpu'): { t: Tensor; v: number[] } {
  const t = tensor(values(size(shape), dtype, seed), shape, { dtype, device });
  return { t, v: Array.from(t.dataSync()) };
}

// ---- references ----

function permuteRef(v: number[], shape: number[], perm: number[]): number[] {
  const outShape = perm.map((a) => shape[a]);
  return Array.from({ length: v.length }, (_, i) => {
    const o = unravel(i, outShape);
    const src = new Array<number>(shape.length);
    perm.forEach((a, d) => (src[a] = o[d]));
    return v[ravel(src, shape)];
  });
}

function sliceRef(v: number[], shape: number[], starts: number[], sizes: number[]): number[] {
  return Array.from({ length: size(sizes) }, (_, i) => v[ravel(unravel(i, sizes).map((x, d) => x + starts[d]), shape)]);
}

function concatRef(vs: number[][], shapes: number[][], axis: number): number[] {
  const outShape = [...shapes[0]];
  outShape[axis] = shapes.reduce((n, s) => n + s[axis], 0);
  return Array.from({ length: size(outShape) }, (_, i) => {
    const o = unravel(i, outShape);
    let k = 0;
    while (o[axis] >= shapes[k][axis]) o[axis] -= shapes[k++][axis];
    return vs[k][ravel(o, shapes[k])];
  });
}

function indexSelectRef(v: number[], shape: number[], axis: number, index: number[]): number[] {
  const outShape = shape.map((s, d) => (d === axis ? index.length : s));
  return Array.from({ length: size(outShape) }, (_, i) => {
    const o = unravel(i, outShape);
    o[axis] = index[o[axis]];
    return v[ravel(o, shape)];
  });
}

function expectShape(t: Tensor, shape: number[]): void {
  expect([...t.shape]).toEqual(shape);
}


// ---- forward ----

describe.each(DTYPES)('layout ops, %s', (dtype) => {
  test('permute: every order of a rank-3 tensor, a rank-5 tensor, negative axes, 0-d', () => {
    tidy(() => {
      const shape = [3, 5, 7];
      const { t, v } = make(shape, dtype);
      for (const perm of [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]) {
        const y = ops.permute(t, perm);
        expectShape(y, perm.map((a) => shape[a]));
        expect(y.dtype).toBe(dtype);
        expectEqualArrays(y.dataSync(), permuteRef(v, shape, perm));
      }
      expectEqualArrays(ops.permute(t, [-1, 0, -2]).dataSync(), permuteRef(v, shape, [2, 0, 1]));
      const s5 = [2, 3, 1, 4, 5];
      const x5 = make(s5, dtype, 2);
      expectEqualArrays(ops.permute(x5.t, [4, 2, 0, 3, 1]).dataSync(), permuteRef(x5.v, s5, [4, 2, 0, 3, 1]));
      const s = make([], dtype, 3);
      expectEqualArrays(ops.permute(s.t, []).dataSync(), s.v);
    });
  });

  test('permute of large and empty tensors', () => {
    tidy(() => {
      const shape = [67, 129, 33];
      const { t, v } = make(shape, dtype, 4);
      expectEqualArrays(ops.permute(t, [2, 0, 1]).dataSync(), permuteRef(v, shape, [2, 0, 1]));
      const e = make([0, 3, 2], dtype);
      const y = ops.permute(e.t, [2, 0, 1]);
      expectShape(y, [2, 0, 3]);
      expect(y.dataSync().length).toBe(0);
    });
  });

  test('transpose: default last two axes, explicit and negative axes', () => {
    tidy(() => {
      const shape = [2, 3, 4];
      const { t, v } = make(shape, dtype);
      expectEqualArrays(ops.transpose(t).dataSync(), permuteRef(v, shape, [0, 2, 1]));
      expectEqualArrays(ops.transpose(t, 0, -1).dataSync(), permuteRef(v, shape, [2, 1, 0]));
      expectEqualArrays(ops.transpose(t, 1, 1).dataSync(), v);
    });
  });

  test('slice: Python-style positions (negative, clamped, empty) on each axis', () => {
    tidy(() => {
      const shape = [5, 6, 7];
      const { t, v } = make(shape, dtype);
      const cases: [number, number, number | undefined, number, number][] = [
        // axis, start, end, expected start, expected size
        [0, 1, 4, 1, 3],
        [1, -4, undefined, 2, 4],
        [2, 2, -1, 2, 4],
        [-1, -100, 100, 0, 7],
        [1, 4, 2, 4, 0],
        [0, 5, undefined, 5, 0],
      ];
      for (const [axis, start, end, s, n] of cases) {
        const y = ops.slice(t, axis, start, end);
        const a = axis < 0 ? axis + 3 : axis;
        const starts = shape.map((_, d) => (d === a ? s : 0));
        const sizes = shape.map((x, d) => (d === a ? n : x));
        expectShape(y, sizes);
        expectEqualArrays(y.dataSync(), sliceRef(v, shape, starts, sizes));
      }
      expectEqualArrays(ops.narrow(t, 1, -3, 2).dataSync(), sliceRef(v, shape, [0, 3, 0], [5, 2, 7]));
    });
  });

  test('concat along each axis, with empty pieces and one piece', () => {
    tidy(() => {
      const base = [3, 4, 5];
      for (let axis = 0; axis < 3; axis++) {
        const shapes = [1, 0, 6].map((n) => base.map((s, d) => (d === axis ? n : s)));
        const parts = shapes.map((s, i) => make(s, dtype, 10 + i));
        const y = ops.concat(
          parts.map((p) => p.t),
          axis - 3,
        );
        expectShape(y, base.map((s, d) => (d === axis ? 7 : s)));
        expectEqualArrays(y.dataSync(), concatRef(parts.map((p) => p.v), shapes, axis));
      }
      const one = make([2, 3], dtype);
      expectEqualArrays(ops.concat([one.t]).dataSync(), one.v);
    });
  });

  test('split into sizes and into equal pieces; concat undoes it', () => {
    tidy(() => {
      const shape = [4, 10];
      const { t, v } = make(shape, dtype);
      const parts = ops.split(t, [3, 0, 7], -1);
      expect(parts.map((p) => p.shape[1])).toEqual([3, 0, 7]);
      expectEqualArrays(parts[2].dataSync(), sliceRef(v, shape, [0, 3], [4, 7]));
      const eq = ops.split(t, 4, 1);
      expect(eq.map((p) => p.shape[1])).toEqual([4, 4, 2]);
      expectEqualArrays(ops.concat(eq, 1).dataSync(), v);
      expect(ops.split(t, 9, 0).map((p) => p.shape[0])).toEqual([4]);
    });
  });

  test('expand: -1, new leading axes, size-1 axes, already the right shape', () => {
    tidy(() => {
      const { t, v } = make([3, 1], dtype);
      const y = ops.expand(t, [2, -1, 4]);
      expectShape(y, [2, 3, 4]);
      expectEqualArrays(y.dataSync(), Array.from({ length: 24 }, (_, i) => v[Math.floor(i / 4) % 3]));
      expectEqualArrays(ops.expand(t, [3, 1]).dataSync(), v);
    });
  });

  test('indexSelect along each axis, with repeats, an empty index and an array index', () => {
    tidy(() => {
      const shape = [4, 5, 6];
      const { t, v } = make(shape, dtype);
      for (let axis = 0; axis < 3; axis++) {
        const index = [shape[axis] - 1, 0, 2, 0];
        const y = ops.indexSelect(t, axis, tensor(index, [4], { dtype: 'int32' }));
        expectShape(y, shape.map((s, d) => (d === axis ? 4 : s)));
        expectEqualArrays(y.dataSync(), indexSelectRef(v, shape, axis, index));
      }
      expectEqualArrays(ops.indexSelect(t, -2, [4, 1]).dataSync(), indexSelectRef(v, shape, 1, [4, 1]));
      expectShape(ops.indexSelect(t, 0, []), [0, 5, 6]);
    });
  });
});

test('indexSelect of a large embedding-like table', () => {
  tidy(() => {
    const shape = [1000, 96];
    const { t, v } = make(shape, 'bfloat16');
    const r = rng(5);
    const index = Array.from({ length: 777 }, () => Math.floor(r() * 1000));
    expectEqualArrays(ops.indexSelect(t, 0, index).dataSync(), indexSelectRef(v, shape, 0, index));
  });
});

test('results are new tensors: disposing the input leaves them intact', () => {
  const { t, v } = make([2, 3]);
  const same = ops.slice(t, 0, 0);
  const p = ops.permute(t, [1, 0]);
  t.dispose();
  expectEqualArrays(same.dataSync(), v);
  expectEqualArrays(p.dataSync(), permuteRef(v, [2, 3], [1, 0]));
  same.dispose();
  p.dispose();
});

test('Tensor methods call the ops', () => {
  tidy(() => {
    const { t, v } = make([2, 3, 4]);
    expectEqualArrays(t.permute(2, 0, 1).dataSync(), permuteRef(v, [2, 3, 4], [2, 0, 1]));
    expectEqualArrays(t.permute([2, 0, 1]).dataSync(), permuteRef(v, [2, 3, 4], [2, 0, 1]));
    expectEqualArrays(t.transpose().dataSync(), permuteRef(v, [2, 3, 4], [0, 2, 1]));
    expectEqualArrays(t.slice(-1, 1, 3).dataSync(), sliceRef(v, [2, 3, 4], [0, 0, 1], [2, 3, 2]));
    expectEqualArrays(t.narrow(0, 1, 1).dataSync(), sliceRef(v, [2, 3, 4], [1, 0, 0], [1, 3, 4]));
    expect(t.split(2, -1).map((p) => p.shape[2])).toEqual([2, 2]);
    expectShape(t.slice(1, 0, 1).expand(2, 5, 4), [2, 5, 4]);
    expectShape(t.slice(1, 0, 1).expand([2, -1, 4]), [2, 1, 4]);
    expectEqualArrays(t.indexSelect(1, [2]).dataSync(), indexSelectRef(v, [2, 3, 4], 1, [2]));
    expectShape(t.mean(1), [2, 4]);
    expectShape(t.sum(-1, { keepDims: true }), [2, 3, 1]);
    expectShape(t.max([0, 2]), [3]);
    expectShape(t.min(), []);
    expect(t.argmax(-1).dtype).toBe('int32');
    expectShape(t.argmin(undefined, { keepDims: true }), [1, 1, 1]);
    expectShape(t.logsumexp(0), [3, 4]);
    expectShape(t.softmax(), [2, 3, 4]);
    expectShape(t.logSoftmax(1), [2, 3, 4]);
  });
});

// ---- backward ----

// Runs sum(out * w) backward for a fixed random w and returns x.grad's values, w's values and shape.
function gradOf(x: Tensor, f: (x: Tensor) => Tensor, seed = 7): { grad: number[]; w: number[] } {
  return tidy(() => {
    const y = f(x);
    const w = make([...y.shape], y.dtype, seed, y.device);
    ops.sum(ops.mul(y, w.t)).backward();
    return { grad: Array.from((x.grad as Tensor).dataSync()), w: w.v };
  });
}

describe('gradients', () => {
  test('permute and transpose: the gradient permuted back', () => {
    const x = make([2, 3, 4]).t.requiresGrad_();
    const { grad, w } = gradOf(x, (a) => ops.permute(a, [2, 0, 1]));
    expectEqualArrays(grad, permuteRef(w, [4, 2, 3], [1, 2, 0]));
    x.zeroGrad();
    const t = gradOf(x, (a) => ops.transpose(a, 0, 1));
    expectEqualArrays(t.grad, permuteRef(t.w, [3, 2, 4], [1, 0, 2]));
    x.dispose();
  });

  test('slice and narrow: the gradient in place, zeros elsewhere', () => {
    const x = make([4, 5]).t.requiresGrad_();
    const { grad, w } = gradOf(x, (a) => ops.slice(a, 1, 1, 3));
    expectEqualArrays(
      grad,
      Array.from({ length: 20 }, (_, i) => (i % 5 >= 1 && i % 5 < 3 ? w[Math.floor(i / 5) * 2 + (i % 5) - 1] : 0)),
    );
    x.zeroGrad();
    const n = gradOf(x, (a) => ops.narrow(a, 0, 3, 1));
    expectEqualArrays(n.grad, Array.from({ length: 20 }, (_, i) => (i >= 15 ? n.w[i - 15] : 0)));
    x.dispose();
  });

  test('concat: each input gets its slice; inputs without grad get none', () => {
    const a = make([2, 2], 'float32', 1).t.requiresGrad_();
    const b = make([2, 3], 'float32', 2).t;
    const c = make([2, 1], 'float32', 3).t.requiresGrad_();
    const { grad, w } = gradOf(a, (x) => ops.concat([x, b, c], 1));
    expectEqualArrays(grad, sliceRef(w, [2, 6], [0, 0], [2, 2]));
    expectEqualArrays((c.grad as Tensor).dataSync(), sliceRef(w, [2, 6], [0, 5], [2, 1]));
    expect(b.grad).toBeNull();
    [a, b, c].forEach((t) => t.dispose());
  });

  test('split: the pieces concatenated, zeros for unused pieces', () => {
    const x = make([3, 4]).t.requiresGrad_();
    const grad = tidy(() => {
      const [p, , r] = ops.split(x, [1, 1, 2], 1);
      ops.add(ops.sum(ops.mul(p, 2)), ops.sum(ops.mul(r, 3))).backward();
      return Array.from((x.grad as Tensor).dataSync());
    });
    expectEqualArrays(grad, Array.from({ length: 12 }, (_, i) => [2, 0, 3, 3][i % 4]));
    x.dispose();
  });

  test('expand: the gradient summed over repeated axes', () => {
    const x = make([3, 1]).t.requiresGrad_();
    const { grad, w } = gradOf(x, (a) => ops.expand(a, [2, 3, 4]));
    const ref = [0, 1, 2].map((i) => {
      let s = 0;
      for (let k = 0; k < 2; k++) for (let j = 0; j < 4; j++) s += w[k * 12 + i * 4 + j];
      return s;
    });
    expect(grad.length).toBe(3);
    grad.forEach((g, i) => expect(g).toBeCloseTo(ref[i], 4));
    x.dispose();
  });

  test.each(['float32', 'bfloat16'] as DType[])('indexSelect (%s): repeated rows add up, in order', (dtype) => {
    const x = make([5, 3], dtype).t.requiresGrad_();
    const index = [4, 1, 4, 4, 0];
    const { grad, w } = gradOf(x, (a) => ops.indexSelect(a, 0, index));
    const ref = new Array<number>(15).fill(0);
    index.forEach((row, j) => {
      for (let c = 0; c < 3; c++) ref[row * 3 + c] += w[j * 3 + c];
    });
    const tol = dtype === 'float32' ? 1e-6 : 2e-2;
    grad.forEach((g, i) => expect(Math.abs(g - ref[i])).toBeLessThanOrEqual(tol * (1 + Math.abs(ref[i]))));
    x.dispose();
  });
});

// ---- bad input ----

describe('bad input', () => {
  test('permute / transpose', () => {
    const { t } = make([2, 3]);
    expectThrows(() => ops.permute(t, [0]), ShapeError, 'permute', 'axes');
    expectThrows(() => ops.permute(t, [0, 0]), ArgumentError, 'permute', 'axes');
    expectThrows(() => ops.permute(t, [0, 2]), ArgumentError, 'permute', 'axes');
    expectThrows(() => ops.permute(t, [0, 1.5]), ArgumentError, 'permute', 'axes');
    expectThrows(() => ops.permute(1 as unknown as Tensor, []), ArgumentError, 'permute', 'x');
    expectThrows(() => ops.transpose(t, 0, -3), ArgumentError, 'transpose', 'axis1');
    t.dispose();
    expectThrows(() => ops.permute(t, [1, 0]), Error, 'permute', 'x');
  });

  test('slice / narrow / split / expand', () => {
    const { t } = make([2, 3]);
    expectThrows(() => ops.slice(t, 2, 0), ArgumentError, 'slice', 'axis');
    expectThrows(() => ops.slice(t, 0, 0.5), ArgumentError, 'slice', 'start');
    expectThrows(() => ops.narrow(t, 1, 2, 2), ArgumentError, 'narrow', 'length');
    expectThrows(() => ops.narrow(t, 1, -4, 1), ArgumentError, 'narrow', 'start');
    expectThrows(() => ops.split(t, [1, 1], 1), ShapeError, 'split', 'sizes');
    expectThrows(() => ops.split(t, 0, 1), ArgumentError, 'split', 'sizes');
    expectThrows(() => ops.expand(t, [3]), ShapeError, 'expand', 'shape');
    expectThrows(() => ops.expand(t, [4, 3]), ShapeError, 'expand', 'shape');
    expectThrows(() => ops.expand(t, [-1, -1, 3]), ShapeError, 'expand', 'shape');
    t.dispose();
  });

  test('concat', () => {
    const a = make([2, 3]).t;
    const b = make([2, 4]).t;
    const h = make([2, 3], 'float16').t;
    expectThrows(() => ops.concat([]), ArgumentError, 'concat', 'tensors');
    expectThrows(() => ops.concat([a, 3 as unknown as Tensor]), ArgumentError, 'concat', 'tensors[1]');
    expectThrows(() => ops.concat([a, b], 0), ShapeError, 'concat', 'tensors[1]');
    expectThrows(() => ops.concat([a, h], 0), DTypeError, 'concat', 'tensors[1]');
    expectThrows(() => ops.concat([a, b], 2), ArgumentError, 'concat', 'axis');
    [a, b, h].forEach((t) => t.dispose());
  });

  test('indexSelect', () => {
    const x = make([4, 3]).t;
    expectThrows(() => ops.indexSelect(x, 0, [4]), ArgumentError, 'indexSelect', 'index');
    expectThrows(() => ops.indexSelect(x, 1, [-1]), ArgumentError, 'indexSelect', 'index');
    expectThrows(() => ops.indexSelect(x, 0, tensor([0, 1])), DTypeError, 'indexSelect', 'index');
    expectThrows(() => ops.indexSelect(x, 0, tensor([[0]], [1, 1], { dtype: 'int32' })), ShapeError, 'indexSelect', 'index');
    expectThrows(() => ops.indexSelect(x, 2, [0]), ArgumentError, 'indexSelect', 'axis');
    x.dispose();
  });
});

// ---- CUDA against the CPU ----

describeCuda('CUDA', () => {
  test.each(DTYPES)('every layout op matches the CPU bit for bit (%s)', (dtype) => {
    tidy(() => {
      const shape = [37, 65, 129];
      const c = make(shape, dtype, 3);
      const g = c.t.to('cuda');
      const pairs: [Tensor, Tensor][] = [
        [ops.permute(c.t, [2, 0, 1]), ops.permute(g, [2, 0, 1])],
        [ops.permute(c.t, [1, 0, 2]), ops.permute(g, [1, 0, 2])],
        [ops.transpose(c.t), ops.transpose(g)],
        [ops.slice(c.t, 2, 3, -5), ops.slice(g, 2, 3, -5)],
        [ops.concat([c.t, c.t], 1), ops.concat([g, g], 1)],
        [ops.split(c.t, 50, -1)[2], ops.split(g, 50, -1)[2]],
        [ops.indexSelect(c.t, 1, [64, 0, 3, 3]), ops.indexSelect(g, 1, [64, 0, 3, 3])],
        [ops.expand(ops.slice(c.t, 0, 0, 1), [4, -1, -1]), ops.expand(ops.slice(g, 0, 0, 1), [4, -1, -1])],
      ];
      for (const [a, b] of pairs) {
        expect(b.device).toBe('cuda');
        expectEqualArrays(b.dataSync(), a.dataSync());
      }
    });
  });

  test('indexSelect gradient (scatter-add) matches the CPU bit for bit', () => {
    for (const dtype of ['float32', 'float16', 'bfloat16'] as DType[]) {
      const r = rng(9);
      const index = Array.from({ length: 300 }, () => Math.floor(r() * 50));
      const grads = (['cpu', 'cuda'] as const).map((device) => {
        const x = make([50, 40], dtype, 1, device).t.requiresGrad_();
        const out = gradOf(x, (a) => ops.indexSelect(a, 0, index)).grad;
        x.dispose();
        return out;
      });
      expectEqualArrays(grads[1], grads[0]);
    }
  });

  test('mixed devices and out-of-range indices are typed errors', () => {
    const c = make([2, 3]).t;
    const g = make([2, 3], 'float32', 1, 'cuda').t;
    expectThrows(() => ops.concat([c, g]), DeviceError, 'concat', 'tensors[1]');
    expectThrows(() => ops.indexSelect(g, 0, tensor([0], [1], { dtype: 'int32' })), DeviceError, 'indexSelect', 'index');
    expectThrows(() => ops.indexSelect(g, 1, [0, 3]), ArgumentError, 'indexSelect', 'index');
    c.dispose();
    g.dispose();
  });
});

// matmul and linear against a float64 reference written here: odd sizes (1, 7, 33, 129), every
// transpose combination, batching (equal batch dims, a 2-d b or a 2-d a broadcast), bias, empty dims
// (K = 0 gives zeros, or the bias), all three dtypes with per-dtype tolerances, bad input; gradients of
// every flag and broadcast case by finite differences (MATMUL_GRADCHECK, for the op table too). On CUDA
// the same cases run through cuBLASLt and through the forced fallback kernel and are compared with the CPU.
import {
  ArgumentError,
  DType,
  DTypeError,
  DeviceError,
  DeviceLike,
  ShapeError,
  Tensor,
  cublasAvailable,
  ones,
  ops,
  randn,
  tensor,
  zeros,
} from '../../lib';
import { gradcheck } from '../../lib/autograd';
import { describeCuda, expectClose, rng } from '../setup';

function uniform(r: () => number, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = 2 * r() - 1;
  return out;
}

const prod = (s: readonly number[]) => s.reduce((x, y) => x * y, 1);

/** The tensor and its values after rounding to the dtype (what the kernels see). */
function make(r: () => number, shape: number[], dtype: DType, device: DeviceLike): [Tensor, Float64Array] {
  const t = tensor(uniform(r, prod(shape)), shape, { dtype, device });
  return [t, Float64Array.from(t.dataSync())];
}

interface Case {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  batchA?: number[];
  batchB?: number[];
}

/** float64 reference of matmul with the same broadcasting rules (batch dims equal, or one side 2-d). */
function matmulRef(a: Float64Array, b: Float64Array, c: Case): Float64Array {
  const { M, N, K } = c;
  const ba = c.batchA ?? [];
  const bb = c.batchB ?? [];
  const batch = Math.max(prod(ba), prod(bb));
  const out = new Float64Array(batch * M * N);
  for (let t = 0; t < batch; t++) {
    const ao = ba.length ? t * M * K : 0;
    const bo = bb.length ? t * K * N : 0;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = c.transA ? a[ao + k * M + i] : a[ao + i * K + k];
          const bv = c.transB ? b[bo + j * K + k] : b[bo + k * N + j];
          s += av * bv;
        }
        out[t * M * N + i * N + j] = s;
      }
  }
  return out;
}

// Inputs are rounded to the dtype before the reference sees them, so the error is float32 accumulation
// plus one rounding of the output: float32 ~1e-6 relative, float16 2^-11, bfloat16 2^-8.
const TOL: Record<string, [number, number]> = { float32: [1e-5, 1e-5], float16: [2e-3, 2e-3], bfloat16: [1e-2, 1e-2] };

function shapesOf(c: Case): [number[], number[]] {
  const a = c.transA ? [c.K, c.M] : [c.M, c.K];
  const b = c.transB ? [c.N, c.K] : [c.K, c.N];
  return [[...(c.batchA ?? []), ...a], [...(c.batchB ?? []), ...b]];
}

function describeCase(c: Case, dtype: DType): string {
  const [sa, sb] = shapesOf(c);
  return `${dtype} [${sa}]${c.transA ? 'ᵀ' : ''} @ [${sb}]${c.transB ? 'ᵀ' : ''}`;
}

function checkMatmul(c: Case, dtype: DType, device: DeviceLike, seed: number): void {
  const r = rng(seed);
  const [sa, sb] = shapesOf(c);
  const [a, av] = make(r, sa, dtype, device);
  const [b, bv] = make(r, sb, dtype, device);
  const out = ops.matmul(a, b, { transA: c.transA, transB: c.transB });
  const batch = (c.batchA ?? []).length ? c.batchA ?? [] : c.batchB ?? [];
  expect(out.shape).toEqual([...batch, c.M, c.N]);
  expect(out.dtype).toBe(dtype);
  const [rtol, atol] = TOL[dtype];
  expectClose(out.dataSync(), matmulRef(av, bv, c), rtol, atol);
  out.dispose();
  a.dispose();
  b.dispose();
}

const SIZES = [1, 7, 33, 129];
const FLAGS: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

// Every (M, N, K) triple from SIZES would be 64 x 4 x 3 cases; the diagonal-ish sample below still puts
// each size in every role and crosses the 64 x 256 x 256 CPU tiles with 129.
const MNK: [number, number, number][] = [
  [1, 1, 1],
  [1, 129, 33],
  [7, 1, 129],
  [7, 33, 7],
  [33, 7, 1],
  [33, 129, 129],
  [129, 33, 7],
  [129, 129, 33],
  [70, 300, 260],
];

function grid(): Case[] {
  const cases: Case[] = [];
  for (const [M, N, K] of MNK) for (const [transA, transB] of FLAGS) cases.push({ M, N, K, transA, transB });
  for (const [transA, transB] of FLAGS) {
    cases.push({ M: 7, N: 33, K: 33, transA, transB, batchA: [2, 3], batchB: [2, 3] });
    cases.push({ M: 33, N: 7, K: 129, transA, transB, batchA: [3], batchB: [] });
    cases.push({ M: 7, N: 33, K: 33, transA, transB, batchA: [], batchB: [2, 2] });
  }
  return cases;
}

const DTYPES: DType[] = ['float32', 'float16', 'bfloat16'];

function linearRef(x: Float64Array, w: Float64Array, bias: Float64Array | null, rows: number, inF: number, outF: number): Float64Array {
  const out = matmulRef(x, w, { M: rows, N: outF, K: inF, transB: true });
  if (bias) for (let i = 0; i < rows; i++) for (let j = 0; j < outF; j++) out[i * outF + j] += bias[j];
  return out;
}

function checkLinear(xShape: number[], outF: number, withBias: boolean, dtype: DType, device: DeviceLike, seed: number): void {
  const r = rng(seed);
  const inF = xShape[xShape.length - 1];
  const [x, xv] = make(r, xShape, dtype, device);
  const [w, wv] = make(r, [outF, inF], dtype, device);
  const [bias, biasv] = withBias ? make(r, [outF], dtype, device) : [undefined, null];
  const y = ops.linear(x, w, bias);
  expect(y.shape).toEqual([...xShape.slice(0, -1), outF]);
  const [rtol, atol] = TOL[dtype];
  expectClose(y.dataSync(), linearRef(xv, wv, biasv, prod(xShape.slice(0, -1)), inF, outF), rtol, atol);
  y.dispose();
  x.dispose();
  w.dispose();
  bias?.dispose();
}

const LINEAR: [number[], number, boolean][] = [
  [[33], 7, true],
  [[7, 33], 129, false],
  [[2, 7, 33], 65, true],
  [[3, 1, 129], 1, true],
  [[2, 64, 128], 96, true],
];

describe('matmul (CPU) against the float64 reference', () => {
  for (const dtype of DTYPES) {
    grid().forEach((c, i) => {
      test(describeCase(c, dtype), () => checkMatmul(c, dtype, 'cpu', 100 + i));
    });
  }
});

describe('linear (CPU) against the float64 reference', () => {
  for (const dtype of DTYPES) {
    LINEAR.forEach(([xs, outF, bias], i) => {
      test(`${dtype} x [${xs}] weight [${outF}, ${xs[xs.length - 1]}]${bias ? ' + bias' : ''}`, () => checkLinear(xs, outF, bias, dtype, 'cpu', 500 + i));
    });
  }
});

describe('matmul / linear: empty dims', () => {
  test('K = 0 gives zeros; with a bias, the bias', () => {
    const a = zeros([3, 0]);
    const b = zeros([0, 4]);
    const c = ops.matmul(a, b);
    expect(c.shape).toEqual([3, 4]);
    expect(Array.from(c.dataSync())).toEqual(new Array(12).fill(0));
    const bias = tensor([1, 2, 3, 4]);
    const w = zeros([4, 0]);
    const y = ops.linear(a, w, bias);
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
    [a, b, c, bias, w, y].forEach((t) => t.dispose());
  });

  test('M = 0, N = 0 and an empty batch give empty results', () => {
    const cases: [number[], number[], number[]][] = [
      [[0, 5], [5, 3], [0, 3]],
      [[4, 5], [5, 0], [4, 0]],
      [[0, 4, 5], [5, 3], [0, 4, 3]],
    ];
    for (const [sa, sb, want] of cases) {
      const a = zeros(sa, { dtype: 'bfloat16' });
      const b = zeros(sb, { dtype: 'bfloat16' });
      const c = ops.matmul(a, b);
      expect(c.shape).toEqual(want);
      expect(c.dataSync().length).toBe(0);
      [a, b, c].forEach((t) => t.dispose());
    }
  });
});

describe('matmul / linear: bad input', () => {
  function expectError(f: () => unknown, cls: new (...args: never[]) => Error, fn: string, arg: string): void {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(cls);
    expect((err as { fn?: string }).fn).toBe(fn);
    expect((err as { arg?: string }).arg).toBe(arg);
  }

  test('shape mismatches are ShapeErrors naming the argument', () => {
    const a = zeros([2, 3, 4]);
    const b = zeros([5, 6]);
    const c = zeros([3, 4, 6]);
    const v = zeros([4]);
    const w = zeros([6, 4]);
    const bias = zeros([5]);
    expectError(() => ops.matmul(a, b), ShapeError, 'matmul', 'b');
    expectError(() => ops.matmul(a, c), ShapeError, 'matmul', 'b');
    expectError(() => ops.matmul(v, b), ShapeError, 'matmul', 'a');
    expectError(() => ops.matmul(a, v), ShapeError, 'matmul', 'b');
    expectError(() => ops.linear(a, b), ShapeError, 'linear', 'weight');
    expectError(() => ops.linear(a, w, bias), ShapeError, 'linear', 'bias');
    [a, b, c, v, w, bias].forEach((t) => t.dispose());
  });

  test('mixed or integer dtypes are DTypeErrors', () => {
    const a = zeros([2, 3]);
    const b = zeros([3, 2], { dtype: 'bfloat16' });
    const i = zeros([3, 2], { dtype: 'int32' });
    const w = zeros([2, 3], { dtype: 'float16' });
    expectError(() => ops.matmul(a, b), DTypeError, 'matmul', 'b');
    expectError(() => ops.matmul(i, i), DTypeError, 'matmul', 'a');
    expectError(() => ops.linear(a, w), DTypeError, 'linear', 'weight');
    [a, b, i, w].forEach((t) => t.dispose());
  });

  test('non-tensors and bad options are ArgumentErrors', () => {
    const a = zeros([2, 2]);
    expectError(() => ops.matmul(a, [[1, 2]] as unknown as Tensor), ArgumentError, 'matmul', 'b');
    expectError(() => ops.matmul(a, a, { transA: 1 as unknown as boolean }), ArgumentError, 'matmul', 'transA');
    expectError(() => ops.setMatmulBackend('cublas' as 'auto'), ArgumentError, 'setMatmulBackend', 'backend');
    a.dispose();
  });

  test('the native layer re-checks what TypeScript checks', () => {
    const { native } = jest.requireActual('../../lib/native') as typeof import('../../lib/native');
    const a = zeros([2, 3]);
    const b = zeros([4, 2]);
    expectError(() => native().matmul(a.handle('t'), b.handle('t'), false, false), ShapeError, 'matmul', 'b');
    expectError(() => native().linear(a.handle('t'), b.handle('t'), null), ShapeError, 'linear', 'weight');
    [a, b].forEach((t) => t.dispose());
  });
});

/** Gradient-check rows (name, fn, input shapes), ready to join the op table of test/autograd/gradcheck.test.ts. */
const MATMUL_GRADCHECK: { name: string; fn: (...xs: Tensor[]) => Tensor; inputs: number[][] }[] = [
  { name: 'matmul', fn: (a, b) => ops.matmul(a, b), inputs: [[3, 4], [4, 5]] },
  { name: 'matmul transA', fn: (a, b) => ops.matmul(a, b, { transA: true }), inputs: [[4, 3], [4, 5]] },
  { name: 'matmul transB', fn: (a, b) => ops.matmul(a, b, { transB: true }), inputs: [[3, 4], [5, 4]] },
  { name: 'matmul transA transB', fn: (a, b) => ops.matmul(a, b, { transA: true, transB: true }), inputs: [[4, 3], [5, 4]] },
  { name: 'matmul batched', fn: (a, b) => ops.matmul(a, b), inputs: [[2, 3, 4], [2, 4, 5]] },
  { name: 'matmul broadcast b', fn: (a, b) => ops.matmul(a, b), inputs: [[2, 3, 4], [4, 5]] },
  { name: 'matmul broadcast b, transA transB', fn: (a, b) => ops.matmul(a, b, { transA: true, transB: true }), inputs: [[2, 4, 3], [5, 4]] },
  { name: 'matmul broadcast b, transB', fn: (a, b) => ops.matmul(a, b, { transB: true }), inputs: [[2, 2, 3, 4], [5, 4]] },
  { name: 'matmul broadcast a', fn: (a, b) => ops.matmul(a, b, { transA: true }), inputs: [[4, 3], [2, 4, 5]] },
  { name: 'linear + bias', fn: (x, w, b) => ops.linear(x, w, b), inputs: [[2, 3, 4], [5, 4], [5]] },
  { name: 'linear, 1-d x', fn: (x, w) => ops.linear(x, w), inputs: [[4], [5, 4]] },
];

describe('matmul / linear gradients (finite differences)', () => {
  test.each(MATMUL_GRADCHECK.map((r) => [r.name, r] as const))('%s', (_name, row) => {
    const inputs = row.inputs.map((shape, i) => randn(shape, { seed: 300 + i }).requiresGrad_());
    const r = gradcheck(row.fn, inputs);
    inputs.forEach((t) => t.dispose());
    if (!r.ok) throw new Error(`gradcheck failed: ${JSON.stringify(r.worst)} excess ${r.maxExcess}`);
  });

  test('backward of a bfloat16 linear gives bfloat16 gradients of the right shapes', () => {
    const x = randn([2, 3, 8], { seed: 1, dtype: 'bfloat16' }).requiresGrad_();
    const w = randn([6, 8], { seed: 2, dtype: 'bfloat16' }).requiresGrad_();
    const b = randn([6], { seed: 3, dtype: 'bfloat16' }).requiresGrad_();
    const y = ops.linear(x, w, b);
    const g = ones(y.shape, { dtype: 'bfloat16' });
    y.backward(g);
    expect([x.grad?.shape, w.grad?.shape, b.grad?.shape]).toEqual([[2, 3, 8], [6, 8], [6]]);
    expect([x.grad?.dtype, w.grad?.dtype, b.grad?.dtype]).toEqual(['bfloat16', 'bfloat16', 'bfloat16']);
    // With dy = ones, d bias = the number of rows (2 x 3) for every output feature.
    expect(Array.from(b.grad?.dataSync() ?? [])).toEqual(new Array(6).fill(6));
    [x, w, b, y, g].forEach((t) => t.dispose());
  });
});

describe('cublasAvailable', () => {
  test('is a boolean; without CUDA it is false', () => {
    expect(typeof cublasAvailable()).toBe('boolean');
    if (!require('../../lib').cudaAvailable()) expect(cublasAvailable()).toBe(false);
  });
});

describeCuda('matmul / linear on CUDA against the CPU', () => {
  // cuBLASLt and the CPU sum in different orders; the 16-bit outputs may then round one ulp apart.
  const CUDA_TOL: Record<string, [number, number]> = { float32: [2e-5, 2e-5], float16: [2e-3, 2e-3], bfloat16: [1e-2, 1e-2] };

  function compare(run: (device: DeviceLike) => Tensor, dtype: DType): string {
    const want = run('cpu');
    const got = run('cuda');
    const path = ops.matmulLastPath();
    expect(got.shape).toEqual(want.shape);
    const [rtol, atol] = CUDA_TOL[dtype];
    expectClose(got.dataSync(), want.dataSync(), rtol, atol);
    want.dispose();
    got.dispose();
    return path;
  }

  for (const backend of ['auto', 'fallback'] as const) {
    describe(`backend ${backend}`, () => {
      let previous: 'auto' | 'fallback' = 'auto';
      beforeAll(() => {
        previous = ops.setMatmulBackend(backend);
      });
      afterAll(() => {
        ops.setMatmulBackend(previous);
      });
      const expected = backend === 'auto' && cublasAvailable() ? 'cublasLt' : 'fallback';

      for (const dtype of DTYPES) {
        grid().forEach((c, i) => {
          test(describeCase(c, dtype), () => {
            const r = (device: DeviceLike) => {
              const g = rng(900 + i);
              const [sa, sb] = shapesOf(c);
              const [a] = make(g, sa, dtype, device);
              const [b] = make(g, sb, dtype, device);
              const out = ops.matmul(a, b, { transA: c.transA, transB: c.transB });
              a.dispose();
              b.dispose();
              return out;
            };
            const path = compare(r, dtype);
            // cuBLASLt may decline unaligned odd shapes (the fallback then runs); aligned ones must use it.
            if (c.M % 8 === 0 && c.N % 8 === 0 && c.K % 8 === 0) expect(path).toBe(expected);
          });
        });
        LINEAR.forEach(([xs, outF, withBias], i) => {
          test(`linear ${dtype} x [${xs}] weight [${outF}, ${xs[xs.length - 1]}]${withBias ? ' + bias' : ''}`, () => {
            const r = (device: DeviceLike) => {
              const g = rng(700 + i);
              const [x] = make(g, xs, dtype, device);
              const [w] = make(g, [outF, xs[xs.length - 1]], dtype, device);
              const [bias] = withBias ? make(g, [outF], dtype, device) : [undefined];
              const y = ops.linear(x, w, bias);
              [x, w, bias].forEach((t) => t?.dispose());
              return y;
            };
            const path = compare(r, dtype);
            if (xs[xs.length - 1] % 8 === 0 && outF % 8 === 0) expect(path).toBe(expected);
          });
        });
      }

      test('a large bf16 product (1024 x 1024 x 1024) and K = 0', () => {
        const r = (device: DeviceLike) => {
          const g = rng(42);
          const [a] = make(g, [1024, 1024], 'bfloat16', device);
          const [b] = make(g, [1024, 1024], 'bfloat16', device);
          const out = ops.matmul(a, b, { transB: true });
          a.dispose();
          b.dispose();
          return out;
        };
        expect(compare(r, 'bfloat16')).toBe(expected);
        const bias = tensor([1, 2, 3], [3], { device: 'cuda' });
        const x = zeros([2, 0], { device: 'cuda' });
        const w = zeros([3, 0], { device: 'cuda' });
        const y = ops.linear(x, w, bias);
        expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 1, 2, 3]);
        [bias, x, w, y].forEach((t) => t.dispose());
      });
    });
  }

  test('mixed devices are DeviceErrors naming the argument', () => {
    const a = zeros([2, 3]);
    const b = zeros([3, 2], { device: 'cuda' });
    let err: unknown;
    try {
      ops.matmul(a, b);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DeviceError);
    expect((err as DeviceError).arg).toBe('b');
    [a, b].forEach((t) => t.dispose());
  });
});

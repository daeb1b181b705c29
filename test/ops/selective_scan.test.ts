// The selective scan op against the float64 reference (test/reference/selective_scan.ts), forward and
// backward, on the CPU (CI) and on CUDA (skipped only without a GPU): the mamba_ssm grid of lengths,
// groups, flags, time-invariant B/C, initial states, dstate 1..256 and all three dtypes, with
// mamba_ssm's tolerances; segments; determinism; bad input. The reference itself is checked against
// central finite differences.
import { DType, DeviceLike, DTypeError, DeviceError, ShapeError, ArgumentError, Tensor, ops, tensor, tidy } from '../../lib';
import {
  SelectiveScanRefGrads,
  SelectiveScanRefInputs,
  selectiveScanRef,
  selectiveScanRefBackward,
} from '../reference/selective_scan';
import { describeCuda, expectClose, expectTypedError, rng } from '../setup';

// ---- inputs ----

function normal(r: () => number, n: number, scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

function uniform(r: () => number, n: number, lo: number, hi: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

interface Case {
  batch: number;
  dim: number;
  L: number;
  N: number;
  groups?: number;
  D?: boolean;
  z?: boolean;
  bias?: boolean;
  softplus?: boolean;
  varB?: boolean;
  varC?: boolean;
  h0?: boolean;
  dLast?: boolean;
  dtype?: DType;
}

interface Built {
  ref: SelectiveScanRefInputs;
  dout: Float64Array;
  dLast?: Float64Array;
  tensors: Record<string, Tensor>;
  doutT: Tensor;
  dLastT?: Tensor;
}

// Inputs drawn like mamba_ssm's test (u, B, C, z, D ~ N(0,1); delta ~ 0.5 U(0,1); A ~ -0.5 U(0,1);
// deltaBias ~ 0.5 U(0,1)), rounded to the dtype first so the reference sees exactly the kernel's inputs.
function build(c: Case, device: DeviceLike, seed: number): Built {
  const r = rng(seed);
  const { batch, dim, L, N } = c;
  const G = c.groups ?? 1;
  const dtype = c.dtype ?? 'float32';
  const varB = c.varB ?? true;
  const varC = c.varC ?? true;
  const tensors: Record<string, Tensor> = {};
  const mk = (name: string, data: Float64Array, shape: number[], dt: DType): Float64Array => {
    const t = tensor(data, shape, { dtype: dt, device });
    tensors[name] = t;
    return Float64Array.from(t.dataSync());
  };
  const bcShape = (v: boolean) => (v ? (G === 1 && seed % 2 === 0 ? [batch, N, L] : [batch, G, N, L]) : [dim, N]);
  const bcLen = (v: boolean) => (v ? batch * G * N * L : dim * N);
  const ref: SelectiveScanRefInputs = {
    batch,
    dim,
    seqlen: L,
    dstate: N,
    nGroups: G,
    u: mk('u', normal(r, batch * dim * L), [batch, dim, L], dtype),
    delta: mk('delta', uniform(r, batch * dim * L, 0, 0.5), [batch, dim, L], dtype),
    A: mk('A', uniform(r, dim * N, -0.5, 0), [dim, N], 'float32'),
    B: mk('B', normal(r, bcLen(varB)), bcShape(varB), dtype),
    C: mk('C', normal(r, bcLen(varC)), bcShape(varC), dtype),
    isVariableB: varB,
    isVariableC: varC,
    deltaSoftplus: c.softplus ?? false,
  };
  if (c.D) ref.D = mk('D', normal(r, dim), [dim], 'float32');
  if (c.z) ref.z = mk('z', normal(r, batch * dim * L), [batch, dim, L], dtype);
  if (c.bias) ref.deltaBias = mk('deltaBias', uniform(r, dim, 0, 0.5), [dim], 'float32');
  if (c.h0) ref.initialState = mk('initialState', normal(r, batch * dim * N), [batch, dim, N], 'float32');
  const doutT = tensor(normal(r, batch * dim * L), [batch, dim, L], { dtype, device });
  const dout = Float64Array.from(doutT.dataSync());
  const built: Built = { ref, dout, tensors, doutT };
  if (c.dLast) {
    built.dLastT = tensor(normal(r, batch * dim * N), [batch, dim, N], { device });
    built.dLast = Float64Array.from(built.dLastT.dataSync());
  }
  return built;
}

function disposeBuilt(b: Built): void {
  Object.values(b.tensors).forEach((t) => t.dispose());
  b.doutT.dispose();
  b.dLastT?.dispose();
}

// mamba_ssm's tolerances (rtol, atol) per input dtype.
const TOL: Record<string, [number, number]> = { float32: [6e-4, 2e-3], float16: [3e-3, 5e-3], bfloat16: [3e-2, 5e-2] };

function scanOptions(b: Built, c: Case): ops.SelectiveScanOptions {
  const t = b.tensors;
  return {
    D: t.D,
    z: t.z,
    deltaBias: t.deltaBias,
    initialState: t.initialState,
    deltaSoftplus: c.softplus ?? false,
    returnLastState: true,
  };
}

function checkCase(c: Case, device: DeviceLike, seed: number): void {
  const b = build(c, device, seed);
  const t = b.tensors;
  const dtype = c.dtype ?? 'float32';
  const [rtol, atol] = TOL[dtype];
  const want = selectiveScanRef(b.ref);
  const fwd = ops.selectiveScanForward(t.u, t.delta, t.A, t.B, t.C, scanOptions(b, c));
  expect(fwd.out.dtype).toBe(dtype);
  expectClose(fwd.out.dataSync(), want.out, rtol, atol);
  expectClose((fwd.lastState as Tensor).dataSync(), want.lastState, rtol, atol);

  const g = ops.selectiveScanBackward(fwd.saved, b.doutT, b.dLastT);
  const wantG: SelectiveScanRefGrads = selectiveScanRefBackward(b.ref, b.dout, b.dLast);
  const [rtolw, atolw] = c.z ? [Math.max(1e-3, rtol), Math.max(1e-3, atol)] : [1e-3, 1e-3];
  // Time-invariant B/C are weights in mamba_ssm (float32, weight tolerance); here they share the input
  // dtype, so in 16-bit their own rounding exceeds 1e-3 and they get the input tolerance.
  const inputTolB = (c.varB ?? true) || dtype !== 'float32';
  const inputTolC = (c.varC ?? true) || dtype !== 'float32';
  const checks: [string, Tensor | undefined, Float64Array | undefined, number, number][] = [
    ['du', g.du, wantG.du, rtol * 2, atol * 2],
    ['ddelta', g.ddelta, wantG.ddelta, rtol * 5, atol * 10],
    ['dA', g.dA, wantG.dA, rtolw, atolw * 5],
    ['dB', g.dB, wantG.dB, inputTolB ? rtol : rtolw, inputTolB ? atol : atolw],
    ['dC', g.dC, wantG.dC, inputTolC ? rtol : rtolw, inputTolC ? atol : atolw],
    ['dD', g.dD, wantG.dD, rtolw, atolw],
    ['dz', g.dz, wantG.dz, rtol, atol],
    ['dDeltaBias', g.dDeltaBias, wantG.dDeltaBias, rtolw, atolw],
    ['dInitialState', g.dInitialState, c.h0 ? wantG.dInitialState : undefined, rtol, atol],
  ];
  for (const [name, got, ref, rt, at] of checks) {
    expect([name, got === undefined]).toEqual([name, ref === undefined]);
    if (!got || !ref) continue;
    try {
      expectClose(got.dataSync(), ref, rt, at);
    } catch (e) {
      throw new Error(`${name}: ${(e as Error).message}`);
    }
  }
  fwd.out.dispose();
  fwd.lastState?.dispose();
  fwd.saved.dispose();
  Object.values(g).forEach((x) => (x as Tensor | undefined)?.dispose());
  disposeBuilt(b);
}

function describeCase(c: Case): string {
  const flags = ['D', 'z', 'bias', 'softplus', 'h0', 'dLast'].filter((k) => c[k as keyof Case]).join('+') || 'plain';
  const bc = `${c.varB === false ? 'B fixed' : 'B var'} ${c.varC === false ? 'C fixed' : 'C var'}`;
  return `${c.dtype ?? 'float32'} b${c.batch} d${c.dim} L${c.L} N${c.N} g${c.groups ?? 1} ${bc} ${flags}`;
}

// ---- the grid ----
const LENGTHS = [1, 7, 64, 128, 372, 784, 1134, 2048, 4096];
const ALL_FLAGS: Partial<Case>[] = [];
for (let m = 0; m < 16; m++) ALL_FLAGS.push({ D: !!(m & 1), z: !!(m & 2), bias: !!(m & 4), softplus: !!(m & 8) });

function grid(dtypes: DType[]): Case[] {
  const cases: Case[] = [];
  for (const dtype of dtypes) {
    // every length, groups 1 and 2, the full mamba block flags
    for (const L of LENGTHS)
      for (const groups of [1, 2]) cases.push({ batch: 2, dim: 4, L, N: 16, groups, D: true, z: true, bias: true, softplus: true, dtype });
    // every flag combination at a length that crosses checkpoints
    for (const f of ALL_FLAGS) cases.push({ batch: 2, dim: 3, L: 300, N: 16, ...f, dtype });
    // time-invariant B and/or C, initial state with an incoming state gradient, dstate 1..256
    cases.push({ batch: 2, dim: 4, L: 372, N: 16, varB: false, D: true, z: true, dtype });
    cases.push({ batch: 2, dim: 4, L: 372, N: 16, varC: false, bias: true, softplus: true, dtype });
    cases.push({ batch: 1, dim: 4, L: 784, N: 16, varB: false, varC: false, D: true, dtype });
    cases.push({ batch: 2, dim: 4, L: 1134, N: 16, h0: true, dLast: true, D: true, z: true, softplus: true, dtype });
    for (const N of [1, 64, 256]) cases.push({ batch: 1, dim: 4, L: N === 256 ? 300 : 1134, N, groups: 2, D: true, z: true, softplus: true, bias: true, h0: true, dtype });
  }
  return cases;
}

describe('the float64 reference', () => {
  test('its backward matches central finite differences of its forward', () => {
    const c: Case = { batch: 1, dim: 2, L: 5, N: 3, groups: 2, D: true, z: true, bias: true, softplus: true, h0: true, dLast: true };
    const b = build(c, 'cpu', 11);
    const x = b.ref;
    const g = selectiveScanRefBackward(x, b.dout, b.dLast);
    // loss = <out, dout> + <lastState, dLast>
    const loss = (): number => {
      const r = selectiveScanRef(x);
      let s = 0;
      r.out.forEach((v, i) => (s += v * b.dout[i]));
      r.lastState.forEach((v, i) => (s += v * (b.dLast as Float64Array)[i]));
      return s;
    };
    const fields: [keyof SelectiveScanRefInputs, keyof SelectiveScanRefGrads][] = [
      ['u', 'du'],
      ['delta', 'ddelta'],
      ['A', 'dA'],
      ['B', 'dB'],
      ['C', 'dC'],
      ['D', 'dD'],
      ['z', 'dz'],
      ['deltaBias', 'dDeltaBias'],
      ['initialState', 'dInitialState'],
    ];
    const eps = 1e-6;
    for (const [input, grad] of fields) {
      const arr = x[input] as Float64Array;
      const an = g[grad] as Float64Array;
      for (let i = 0; i < arr.length; i++) {
        const keep = arr[i];
        arr[i] = keep + eps;
        const up = loss();
        arr[i] = keep - eps;
        const down = loss();
        arr[i] = keep;
        const fd = (up - down) / (2 * eps);
        expect(Math.abs(fd - an[i])).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(fd));
      }
    }
    disposeBuilt(b);
  });
});

function suite(device: 'cpu' | 'cuda', dtypes: DType[]): void {
  test.each(grid(dtypes).map((c, i) => [describeCase(c), c, i] as const))('%s', (_name, c, i) => {
    checkCase(c, device, 1000 + i);
  });

  test('scanning [0, L) equals scanning [0, k) then [k, L) from the first lastState, forward and backward', () => {
    const c: Case = { batch: 2, dim: 4, L: 700, N: 16, D: true, z: true, bias: true, softplus: true, h0: true };
    const b = build(c, device, 5);
    const t = b.tensors;
    const k = 300;
    const full = ops.selectiveScanForward(t.u, t.delta, t.A, t.B, t.C, scanOptions(b, c));
    const gFull = ops.selectiveScanBackward(full.saved, b.doutT);
    // split every (batch, dim, L) / (batch, dstate, L) input along L through the host
    const cut = (x: Tensor, from: number, to: number): Tensor => {
      const L = x.shape[x.rank - 1];
      const v = x.dataSync();
      const rows = x.size / L;
      const out = new Float32Array(rows * (to - from));
      for (let r = 0; r < rows; r++) out.set(v.subarray(r * L + from, r * L + to), r * (to - from));
      return tensor(out, [...x.shape.slice(0, -1), to - from], { dtype: x.dtype, device });
    };
    const parts = [
      [0, k],
      [k, c.L],
    ].map(([a, e]) => ({ u: cut(t.u, a, e), delta: cut(t.delta, a, e), B: cut(t.B, a, e), C: cut(t.C, a, e), z: cut(t.z, a, e), dout: cut(b.doutT, a, e) }));
    const s1 = ops.selectiveScanForward(parts[0].u, parts[0].delta, t.A, parts[0].B, parts[0].C, { ...scanOptions(b, c), z: parts[0].z });
    const s2 = ops.selectiveScanForward(parts[1].u, parts[1].delta, t.A, parts[1].B, parts[1].C, {
      ...scanOptions(b, c),
      z: parts[1].z,
      initialState: s1.lastState,
    });
    const tol: [number, number] = [1e-5, 1e-5];
    const joined = (a: Tensor, e: Tensor): Float32Array => {
      const [x, y] = [a.dataSync(), e.dataSync()];
      const la = a.shape[a.rank - 1];
      const le = e.shape[e.rank - 1];
      const rows = a.size / la;
      const out = new Float32Array(rows * (la + le));
      for (let r = 0; r < rows; r++) {
        out.set(x.subarray(r * la, (r + 1) * la), r * (la + le));
        out.set(y.subarray(r * le, (r + 1) * le), r * (la + le) + la);
      }
      return out;
    };
    expectClose(joined(s1.out, s2.out), full.out.dataSync(), ...tol);
    expectClose((s2.lastState as Tensor).dataSync(), (full.lastState as Tensor).dataSync(), ...tol);
    // backward: the second segment first, its dInitialState flows into the first segment's lastState
    const g2 = ops.selectiveScanBackward(s2.saved, parts[1].dout);
    const g1 = ops.selectiveScanBackward(s1.saved, parts[0].dout, g2.dInitialState);
    expectClose(joined(g1.du, g2.du), gFull.du.dataSync(), 1e-4, 1e-4);
    expectClose(joined(g1.ddelta, g2.ddelta), gFull.ddelta.dataSync(), 1e-4, 1e-4);
    expectClose((g1.dInitialState as Tensor).dataSync(), (gFull.dInitialState as Tensor).dataSync(), 1e-4, 1e-4);
    const sum = (a: Tensor, e: Tensor) => Float32Array.from(a.dataSync(), (v, i) => v + e.dataSync()[i]);
    expectClose(sum(g1.dA, g2.dA), gFull.dA.dataSync(), 1e-4, 1e-4);
    expectClose(sum(g1.dD as Tensor, g2.dD as Tensor), (gFull.dD as Tensor).dataSync(), 1e-4, 1e-4);
    for (const x of [full, s1, s2]) {
      x.out.dispose();
      x.lastState?.dispose();
      x.saved.dispose();
    }
    for (const g of [gFull, g1, g2]) Object.values(g).forEach((x) => (x as Tensor | undefined)?.dispose());
    parts.forEach((p) => Object.values(p).forEach((x) => x.dispose()));
    disposeBuilt(b);
  });

  test('deterministic: two backward runs give bitwise equal gradients', () => {
    const c: Case = { batch: 2, dim: 8, L: 1000, N: 16, groups: 2, D: true, z: true, bias: true, softplus: true };
    const b = build(c, device, 9);
    const t = b.tensors;
    const run = () => {
      const f = ops.selectiveScanForward(t.u, t.delta, t.A, t.B, t.C, { ...scanOptions(b, c), deterministic: true });
      const g = ops.selectiveScanBackward(f.saved, b.doutT);
      const values = Object.fromEntries(Object.entries(g).map(([k, v]) => [k, Array.from((v as Tensor).dataSync())]));
      f.out.dispose();
      f.lastState?.dispose();
      f.saved.dispose();
      Object.values(g).forEach((x) => (x as Tensor).dispose());
      return values;
    };
    expect(run()).toEqual(run());
    disposeBuilt(b);
  });

  test('NaN inputs propagate without errors', () => {
    const u = tensor([NaN, 1, 2, 3], [1, 1, 4], { device });
    const d = tensor([0.1, 0.1, 0.1, 0.1], [1, 1, 4], { device });
    const A = tensor([-1], [1, 1], { device });
    const B = tensor([1, 1, 1, 1], [1, 1, 4], { device });
    const r = ops.selectiveScan(u, d, A, B, B, {});
    expect(r.out.dataSync().every((v) => Number.isNaN(v))).toBe(true);
    [u, d, A, B, r.out].forEach((x) => x.dispose());
  });
}

describe('selective scan on the CPU', () => suite('cpu', ['float32', 'float16', 'bfloat16']));

test('autograd: selectiveScan records one node whose backward is the fused backward', () => {
  const c: Case = { batch: 2, dim: 4, L: 300, N: 8, D: true, z: true, bias: true, softplus: true, h0: true };
  const b = build(c, 'cpu', 21);
  const t = b.tensors;
  const want = tidy(() => {
    const f = ops.selectiveScanForward(t.u, t.delta, t.A, t.B, t.C, scanOptions(b, c));
    const g = ops.selectiveScanBackward(f.saved, b.doutT);
    f.saved.dispose();
    return g;
  });
  const leaves = Object.values(t);
  leaves.forEach((x) => (x.requiresGrad = true));
  tidy(() => {
    const r = ops.selectiveScan(t.u, t.delta, t.A, t.B, t.C, { ...scanOptions(b, c), returnLastState: false });
    expect(r.out.gradFn?.name).toBe('selectiveScan');
    r.out.backward(b.doutT);
  });
  const pairs: [Tensor, Tensor | undefined][] = [
    [t.u, want.du], [t.delta, want.ddelta], [t.A, want.dA], [t.B, want.dB], [t.C, want.dC],
    [t.D, want.dD], [t.z, want.dz], [t.deltaBias, want.dDeltaBias], [t.initialState, want.dInitialState],
  ];
  for (const [leaf, g] of pairs) expect(Array.from((leaf.grad as Tensor).dataSync())).toEqual(Array.from((g as Tensor).dataSync()));
  Object.values(want).forEach((x) => (x as Tensor | undefined)?.dispose());
  disposeBuilt(b);
});
test('the saved checkpoints hold one float32 state per 32-step interval, and their shape says so', () => {
  for (const L of [1, 32, 33, 64, 300]) {
    const c: Case = { batch: 2, dim: 3, L, N: 4 };
    const b = build(c, 'cpu', 40 + L);
    const t = b.tensors;
    tidy(() => {
      const f = ops.selectiveScanForward(t.u, t.delta, t.A, t.B, t.C, scanOptions(b, c));
      const ck = f.saved.checkpoints;
      expect(ck.shape).toEqual([2, 3, Math.ceil(L / 32), 4]);
      expect(ck.dataSync().length).toBe(ck.size);
      f.saved.dispose();
    });
    disposeBuilt(b);
  }
});
describeCuda('selective scan on CUDA', () => suite('cuda', ['float32', 'float16', 'bfloat16']));

describe('selective scan: bad input gives typed errors', () => {
  const dev = 'cpu';
  const u = tensor(new Float32Array(2 * 4 * 8), [2, 4, 8], { device: dev });
  const A = tensor(new Float32Array(4 * 16).fill(-1), [4, 16], { device: dev });
  const B = tensor(new Float32Array(2 * 16 * 8), [2, 16, 8], { device: dev });
  const uBf16 = u.cast('bfloat16');
  const uInt = u.cast('int32');
  const B3groups = tensor(new Float32Array(2 * 3 * 16 * 8), [2, 3, 16, 8]);
  afterAll(() => [u, A, B, uBf16, uInt, B3groups].forEach((t) => t.dispose()));
  const cases: [string, () => unknown, new (...a: never[]) => Error, string][] = [
    ['u not a tensor', () => ops.selectiveScan([] as never, u, A, B, B), ArgumentError, 'u'],
    ['u 2-d', () => ops.selectiveScan(A, A, A, B, B), ShapeError, 'u'],
    ['delta shape', () => ops.selectiveScan(u, B, A, B, B), ShapeError, 'delta'],
    ['A wrong dim', () => ops.selectiveScan(u, u, B, B, B), ShapeError, 'A'],
    ['B wrong L', () => ops.selectiveScan(u, u, A, u, B), ShapeError, 'B'],
    ['D wrong size', () => ops.selectiveScan(u, u, A, B, B, { D: A }), ShapeError, 'D'],
    ['z wrong dtype', () => ops.selectiveScan(u, u, A, B, B, { z: uBf16 }), DTypeError, 'z'],
    ['u int32', () => ops.selectiveScan(uInt, u, A, B, B), DTypeError, 'u'],
    ['groups not dividing dim', () => ops.selectiveScan(u, u, A, B3groups, B), ShapeError, 'B'],
    ['bad flag', () => ops.selectiveScan(u, u, A, B, B, { deltaSoftplus: 1 as never }), ArgumentError, 'deltaSoftplus'],
    ['initialState shape', () => ops.selectiveScan(u, u, A, B, B, { initialState: A }), ShapeError, 'initialState'],
  ];
  test.each(cases)('%s', (_n, call, cls, arg) => expectTypedError(call, cls, undefined, arg));
  describeCuda('mixed devices', () => {
    test('a CUDA tensor with CPU tensors is a DeviceError', () => {
      const g = u.to('cuda');
      expect(() => ops.selectiveScan(u, g, A, B, B)).toThrow(DeviceError);
      g.dispose();
    });
  });
});

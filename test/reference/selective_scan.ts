/**
 * Float64 reference of the selective scan (mamba_ssm `selective_scan_fn` semantics) and its hand-written
 * reverse-mode backward, over plain Float64Array data, for the jest tests of the op. No dependencies.
 * Shapes (row-major): u, delta, z, out (batch, dim, seqlen); A (dim, dstate); B, C (batch, nGroups, dstate,
 * seqlen), or (dim, dstate) when not variable; D, deltaBias (dim); initialState, lastState (batch, dim, dstate).
 * The math is spelled out in native/params.h; the C++ twin (checked against finite differences) is in
 * test/native/selective_scan_cpu_test.cc, and the kernels are native/cpu/selective_scan_cpu.cc and cuda/.
 *
 * @example
 * const { out, lastState } = selectiveScanRef({ batch: 1, dim: 1, seqlen: 2, dstate: 1,
 *   u: new Float64Array([1, 2]), delta: new Float64Array([0.5, 0.5]), A: new Float64Array([-1]),
 *   B: new Float64Array([1, 1]), C: new Float64Array([1, 1]) });
 * const grads = selectiveScanRefBackward(inputs, new Float64Array([1, 1]));
 */

/** Inputs of the reference; optional tensors switch their term on (mamba_ssm's has_D, has_z, ...). */
export interface SelectiveScanRefInputs {
  batch: number;
  dim: number;
  seqlen: number;
  dstate: number;
  /** Groups of channels sharing one B/C row; divides dim. Default 1. */
  nGroups?: number;
  /** (batch, dim, seqlen) */
  u: Float64Array;
  /** (batch, dim, seqlen), before delta_bias and softplus */
  delta: Float64Array;
  /** (dim, dstate) */
  A: Float64Array;
  /** (batch, nGroups, dstate, seqlen), or (dim, dstate) when isVariableB is false */
  B: Float64Array;
  /** (batch, nGroups, dstate, seqlen), or (dim, dstate) when isVariableC is false */
  C: Float64Array;
  /** Default true. */
  isVariableB?: boolean;
  /** Default true. */
  isVariableC?: boolean;
  /** (dim) skip connection */
  D?: Float64Array;
  /** (batch, dim, seqlen) gate: out = y * silu(z) */
  z?: Float64Array;
  /** (dim) added to delta before softplus */
  deltaBias?: Float64Array;
  /** delta = softplus(delta) (softplus(x) = x above 20). Default false. */
  deltaSoftplus?: boolean;
  /** (batch, dim, dstate) state before step 0; zeros when absent */
  initialState?: Float64Array;
}

/** Forward results. */
export interface SelectiveScanRefOutputs {
  /** (batch, dim, seqlen) */
  out: Float64Array;
  /** (batch, dim, dstate) state after the last step */
  lastState: Float64Array;
}

/** Gradients; each has the shape of its input. dD, dz, dDeltaBias are present when D, z, deltaBias are. */
export interface SelectiveScanRefGrads {
  du: Float64Array;
  ddelta: Float64Array;
  dA: Float64Array;
  dB: Float64Array;
  dC: Float64Array;
  dD?: Float64Array;
  dz?: Float64Array;
  dDeltaBias?: Float64Array;
  /** (batch, dim, dstate) adjoint of the state before step 0 (whether or not initialState was given) */
  dInitialState: Float64Array;
}

function expectLength(name: string, arr: Float64Array | undefined, n: number): void {
  if (arr !== undefined && arr.length !== n) {
    throw new Error(`Expected ${n} elements for ${name} but received ${arr.length}`);
  }
}

function softplus(x: number): number {
  return x > 20 ? x : Math.log1p(Math.exp(x));
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

interface Layout {
  batch: number;
  dim: number;
  L: number;
  N: number;
  G: number;
  varB: boolean;
  varC: boolean;
  /** index of B or C element (b, d, n, t) */
  bcIndex: (variable: boolean, b: number, d: number, n: number, t: number) => number;
}

function layout(x: SelectiveScanRefInputs): Layout {
  const { batch, dim, seqlen: L, dstate: N } = x;
  const G = x.nGroups ?? 1;
  for (const [name, v] of [['batch', batch], ['dim', dim], ['seqlen', L], ['dstate', N], ['nGroups', G]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`Expected a positive integer for ${name} but received ${v}`);
  }
  if (dim % G !== 0) throw new Error(`Expected nGroups to divide dim (${dim}) but received ${G}`);
  const varB = x.isVariableB ?? true;
  const varC = x.isVariableC ?? true;
  const nx = batch * dim * L;
  expectLength('u', x.u, nx);
  expectLength('delta', x.delta, nx);
  expectLength('z', x.z, nx);
  expectLength('A', x.A, dim * N);
  expectLength('B', x.B, varB ? batch * G * N * L : dim * N);
  expectLength('C', x.C, varC ? batch * G * N * L : dim * N);
  expectLength('D', x.D, dim);
  expectLength('deltaBias', x.deltaBias, dim);
  expectLength('initialState', x.initialState, batch * dim * N);
  const cpg = dim / G;
  const bcIndex = (variable: boolean, b: number, d: number, n: number, t: number): number =>
    variable ? ((b * G + Math.floor(d / cpg)) * N + n) * L + t : d * N + n;
  return { batch, dim, L, N, G, varB, varC, bcIndex };
}

/**
 * Runs one (b, d) row forward, keeping every state: H[(t + 1) * N + n] is the state after step t, H[n] the
 * initial state. Returns the per-step dt, the softplus derivative and y (before the z gate).
 */
function forwardRow(
  x: SelectiveScanRefInputs,
  lay: Layout,
  b: number,
  d: number,
): { H: Float64Array; dt: Float64Array; dsp: Float64Array; y: Float64Array } {
  const { L, N, dim } = lay;
  const row = b * dim + d;
  const H = new Float64Array((L + 1) * N);
  const dt = new Float64Array(L);
  const dsp = new Float64Array(L);
  const y = new Float64Array(L);
  if (x.initialState) for (let n = 0; n < N; n++) H[n] = x.initialState[row * N + n];
  const bias = x.deltaBias ? x.deltaBias[d] : 0;
  const Dd = x.D ? x.D[d] : 0;
  for (let t = 0; t < L; t++) {
    const raw = x.delta[row * L + t] + bias;
    dt[t] = x.deltaSoftplus ? softplus(raw) : raw;
    dsp[t] = x.deltaSoftplus ? (raw > 20 ? 1 : sigmoid(raw)) : 1;
    const ut = x.u[row * L + t];
    let acc = 0;
    for (let n = 0; n < N; n++) {
      const a = Math.exp(dt[t] * x.A[d * N + n]);
      const h = a * H[t * N + n] + dt[t] * x.B[lay.bcIndex(lay.varB, b, d, n, t)] * ut;
      H[(t + 1) * N + n] = h;
      acc += x.C[lay.bcIndex(lay.varC, b, d, n, t)] * h;
    }
    y[t] = acc + Dd * ut;
  }
  return { H, dt, dsp, y };
}

/**
 * Forward selective scan in float64.
 *
 * @example
 * const { out } = selectiveScanRef({ batch: 1, dim: 1, seqlen: 1, dstate: 1, u: new Float64Array([2]),
 *   delta: new Float64Array([1]), A: new Float64Array([-1]), B: new Float64Array([1]), C: new Float64Array([1]) });
 * // out[0] = 1 * 1 * 2 = 2
 */
export function selectiveScanRef(x: SelectiveScanRefInputs): SelectiveScanRefOutputs {
  const lay = layout(x);
  const { batch, dim, L, N } = lay;
  const out = new Float64Array(batch * dim * L);
  const lastState = new Float64Array(batch * dim * N);
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < dim; d++) {
      const row = b * dim + d;
      const { H, y } = forwardRow(x, lay, b, d);
      for (let t = 0; t < L; t++) {
        const i = row * L + t;
        out[i] = x.z ? y[t] * x.z[i] * sigmoid(x.z[i]) : y[t];
      }
      for (let n = 0; n < N; n++) lastState[row * N + n] = H[L * N + n];
    }
  }
  return { out, lastState };
}

/**
 * Gradients of sum(dout * out) + sum(dLastState * lastState) with respect to every input, by reverse-mode
 * differentiation of the forward above (float64).
 *
 * @example
 * const g = selectiveScanRefBackward(inputs, dout);            // dout: (batch, dim, seqlen)
 * const g2 = selectiveScanRefBackward(inputs, dout, dLast);    // dLast: (batch, dim, dstate)
 */
export function selectiveScanRefBackward(
  x: SelectiveScanRefInputs,
  dout: Float64Array,
  dLastState?: Float64Array,
): SelectiveScanRefGrads {
  const lay = layout(x);
  const { batch, dim, L, N } = lay;
  expectLength('dout', dout, batch * dim * L);
  expectLength('dLastState', dLastState, batch * dim * N);
  const g: SelectiveScanRefGrads = {
    du: new Float64Array(batch * dim * L),
    ddelta: new Float64Array(batch * dim * L),
    dA: new Float64Array(dim * N),
    dB: new Float64Array(x.B.length),
    dC: new Float64Array(x.C.length),
    dInitialState: new Float64Array(batch * dim * N),
  };
  if (x.D) g.dD = new Float64Array(dim);
  if (x.z) g.dz = new Float64Array(batch * dim * L);
  if (x.deltaBias) g.dDeltaBias = new Float64Array(dim);
  const adj = new Float64Array(N);
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < dim; d++) {
      const row = b * dim + d;
      const { H, dt, dsp, y } = forwardRow(x, lay, b, d);
      const Dd = x.D ? x.D[d] : 0;
      // adj[n]: adjoint of the state after step t, from steps > t (already times their decay)
      for (let n = 0; n < N; n++) adj[n] = dLastState ? dLastState[row * N + n] : 0;
      for (let t = L - 1; t >= 0; t--) {
        const i = row * L + t;
        const ut = x.u[i];
        let dy = dout[i];
        if (x.z && g.dz) {
          const zt = x.z[i];
          const s = sigmoid(zt);
          g.dz[i] = dy * y[t] * s * (1 + zt * (1 - s));
          dy *= zt * s;
        }
        let du = Dd * dy;
        let ddt = 0;
        if (g.dD) g.dD[d] += dy * ut;
        for (let n = 0; n < N; n++) {
          const A = x.A[d * N + n];
          const a = Math.exp(dt[t] * A);
          const bi = lay.bcIndex(lay.varB, b, d, n, t);
          const ci = lay.bcIndex(lay.varC, b, d, n, t);
          const G = adj[n] + x.C[ci] * dy; // adjoint of h_t
          g.dC[ci] += dy * H[(t + 1) * N + n];
          g.dB[bi] += G * dt[t] * ut;
          du += G * dt[t] * x.B[bi];
          ddt += G * x.B[bi] * ut;
          const da = G * H[t * N + n]; // adjoint of a_t = exp(dt_t * A)
          ddt += da * a * A;
          g.dA[d * N + n] += da * a * dt[t];
          adj[n] = a * G;
        }
        g.du[i] = du;
        g.ddelta[i] = ddt * dsp[t];
        if (g.dDeltaBias) g.dDeltaBias[d] += ddt * dsp[t];
      }
      for (let n = 0; n < N; n++) g.dInitialState[row * N + n] = adj[n];
    }
  }
  return g;
}

/**
 * A float64 reference forward of the Mamba language model, written straight from the math with plain
 * loops (no library op), for the model tests: logits (batch, L, V) from int32 ids (batch, L) and a state
 * dict of Float64Arrays under the transformers keys. Every step follows mamba_ssm's reference path
 * (selective_scan_ref, causal_conv1d_ref, RMSNorm): embedding; per block r = h + r, h = mixer(rmsnorm(r));
 * rmsnorm_f(h + r); logits = x @ embedding^T (tied lm_head).
 */

/** The sizes the reference needs (a subset of nn.MambaConfig). */
export interface RefConfig {
  dModel: number;
  nLayer: number;
  vocabSize: number;
  dState: number;
  dConv: number;
  dInner: number;
  dtRank: number;
  normEps: number;
}

export type RefParams = Record<string, Float64Array>;

const softplus = (v: number) => (v > 20 ? v : Math.log1p(Math.exp(v)));
const silu = (v: number) => v / (1 + Math.exp(-v));

/** rmsnorm over the last dim of x (rows, D): x / sqrt(mean(x^2) + eps) * w. */
function rmsnorm(x: Float64Array, w: Float64Array, D: number, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let ss = 0;
    for (let d = 0; d < D; d++) ss += x[r * D + d] ** 2;
    const s = 1 / Math.sqrt(ss / D + eps);
    for (let d = 0; d < D; d++) out[r * D + d] = x[r * D + d] * s * w[d];
  }
  return out;
}

/** The mixer: hn (batch, L, D) -> (batch, L, D). `p` is keyed by names relative to the mixer. */
function mixer(hn: Float64Array, p: (name: string) => Float64Array, c: RefConfig, batch: number, L: number): Float64Array {
  const { dModel: D, dInner: E, dState: N, dConv: K, dtRank: R } = c;
  const Win = p('in_proj.weight');
  const convW = p('conv1d.weight');
  const convB = p('conv1d.bias');
  const Wx = p('x_proj.weight');
  const Wdt = p('dt_proj.weight');
  const bdt = p('dt_proj.bias');
  const Alog = p('A_log');
  const Dv = p('D');
  const Wout = p('out_proj.weight');
  const out = new Float64Array(batch * L * D);
  for (let b = 0; b < batch; b++) {
    // in_proj: x, z (E, L)
    const x = new Float64Array(E * L);
    const z = new Float64Array(E * L);
    for (let ch = 0; ch < 2 * E; ch++)
      for (let l = 0; l < L; l++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += Win[ch * D + d] * hn[(b * L + l) * D + d];
        if (ch < E) x[ch * L + l] = s;
        else z[(ch - E) * L + l] = s;
      }
    // causal depthwise conv (PyTorch Conv1d, padding K - 1, first L outputs) + bias, SiLU
    const xc = new Float64Array(E * L);
    for (let e = 0; e < E; e++)
      for (let l = 0; l < L; l++) {
        let s = convB[e];
        for (let k = 0; k < K; k++) {
          const t = l - (K - 1) + k;
          if (t >= 0) s += convW[e * K + k] * x[e * L + t];
        }
        xc[e * L + l] = silu(s);
      }
    // x_proj -> dt (R, L), B (N, L), C (N, L)
    const J = R + 2 * N;
    const xdbl = new Float64Array(J * L);
    for (let j = 0; j < J; j++)
      for (let l = 0; l < L; l++) {
        let s = 0;
        for (let e = 0; e < E; e++) s += Wx[j * E + e] * xc[e * L + l];
        xdbl[j * L + l] = s;
      }
    // delta = softplus(dt_proj(dt) + bias), then the scan with D and the silu(z) gate
    const y = new Float64Array(E * L);
    for (let e = 0; e < E; e++) {
      const h = new Float64Array(N);
      for (let l = 0; l < L; l++) {
        let dv = bdt[e];
        for (let r = 0; r < R; r++) dv += Wdt[e * R + r] * xdbl[r * L + l];
        const delta = softplus(dv);
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const A = -Math.exp(Alog[e * N + n]);
          h[n] = Math.exp(delta * A) * h[n] + delta * xdbl[(R + n) * L + l] * xc[e * L + l];
          acc += xdbl[(R + N + n) * L + l] * h[n];
        }
        y[e * L + l] = (acc + Dv[e] * xc[e * L + l]) * silu(z[e * L + l]);
      }
    }
    for (let l = 0; l < L; l++)
      for (let d = 0; d < D; d++) {
        let s = 0;
        for (let e = 0; e < E; e++) s += Wout[d * E + e] * y[e * L + l];
        out[(b * L + l) * D + d] = s;
      }
  }
  return out;
}

/** Logits (batch, L, V) of ids (batch, L) under the parameters `p` (transformers keys). */
export function referenceForward(p: RefParams, c: RefConfig, ids: ArrayLike<number>, batch: number, L: number): Float64Array {
  const { dModel: D, vocabSize: V } = c;
  const emb = p['backbone.embeddings.weight'];
  let h: Float64Array = new Float64Array(batch * L * D);
  for (let t = 0; t < batch * L; t++) for (let d = 0; d < D; d++) h[t * D + d] = emb[ids[t] * D + d];
  let residual: Float64Array = new Float64Array(batch * L * D);
  for (let i = 0; i < c.nLayer; i++) {
    const pre = `backbone.layers.${i}.`;
    residual = residual.map((r, k) => r + h[k]);
    const hn = rmsnorm(residual, p[`${pre}norm.weight`], D, c.normEps);
    h = mixer(hn, (name) => p[`${pre}mixer.${name}`], c, batch, L);
  }
  residual = residual.map((r, k) => r + h[k]);
  const x = rmsnorm(residual, p['backbone.norm_f.weight'], D, c.normEps);
  const logits = new Float64Array(batch * L * V);
  for (let t = 0; t < batch * L; t++)
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += x[t * D + d] * emb[v * D + d];
      logits[t * V + v] = s;
    }
  return logits;
}

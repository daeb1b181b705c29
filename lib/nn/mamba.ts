/**
 * The Mamba (Mamba-1) language model as modules, mirroring transformers' `MambaForCausalLM` attribute by
 * attribute so the state-dict keys are its checkpoint keys (`backbone.embeddings.weight`,
 * `backbone.layers.{i}.norm.weight`, `backbone.layers.{i}.mixer.{in_proj,conv1d,x_proj,dt_proj,out_proj}.*`,
 * `...mixer.A_log`, `...mixer.D`, `backbone.norm_f.weight`, `lm_head.weight` tied to the embedding).
 *
 * Shapes (D = dModel, E = dInner = expand * D, N = dState, R = dtRank, K = dConv, V = padded vocab):
 * ids (batch, L) int32 -> embeddings (batch, L, D) -> per block: r = h + r (float32), h = mixer(rmsnorm(r))
 * -> rmsnorm_f(h + r) -> logits (batch, L, V). Mixer: in_proj (batch, 2E, L) split into x, z; x = silu(causal
 * depthwise conv(x) + b); x_proj(x) (batch, R + 2N, L) split into dt, B, C; delta = dt_proj.weight dt; y =
 * selective scan(x, delta, A = -exp(A_log), B, C, D, z, deltaBias = dt_proj.bias, softplus); out_proj(y)
 * (batch, L, D). The channel-major layout (batch, channels, L) the conv and scan want comes straight out
 * of the matmuls (W @ x^T), as in mamba_ssm, so no transposed copies are made.
 *
 * Initialisation follows mamba_ssm's `Mamba.__init__` and `_init_weights`; every parameter has its own
 * seed derived from the model seed and its name, so a seed gives the same model on every device and in
 * every construction order. Mixed precision: the parameters stay float32 (master weights) and a forward in
 * 'bfloat16' or 'float16' casts each weight to that dtype where it is used (recorded, so gradients return
 * in float32); A_log, D, dt_proj.bias and the norms stay float32, and the residual stream is float32.
 * Reference: the float64 forward in test/nn/mamba_reference.ts. Docs: docs/model.md.
 */
import { rand, full, tensor } from '../creation';
import { DType, Device, checkDType } from '../dtype';
import { ArgumentError, DTypeError, DeviceError, ShapeError } from '../errors';
import { tidy } from '../memory';
import { add, exp, linear, matmul, neg, selectiveScan, split } from '../ops';
import { Tensor } from '../tensor';
import { castRecorded, checkpoint, reshapeRecorded } from './functional';
import { Conv1d, Embedding, Linear, RMSNorm, parameter } from './layers';
import { Module, StateDict, LoadStateDictOptions, LoadStateDictResult } from './module';
import { FromPretrainedOptions, SavePretrainedOptions, loadPretrained, savePretrained } from './pretrained';

/** A resolved Mamba configuration (camelCase; `parseMambaConfig` reads config.json files). */
export interface MambaConfig {
  /** Model width D (HF hidden_size, mamba_ssm d_model). */
  dModel: number;
  /** Number of blocks (num_hidden_layers / n_layer). */
  nLayer: number;
  /** Embedding rows: the vocabulary padded to a multiple of `padVocabSizeMultiple`. */
  vocabSize: number;
  /** SSM state size N (state_size / d_state), default 16. */
  dState: number;
  /** Conv width K (conv_kernel / d_conv), default 4. */
  dConv: number;
  /** E = expand * D, default 2. */
  expand: number;
  /** E, the inner width. */
  dInner: number;
  /** Rank R of the time-step projection (time_step_rank / dt_rank), default ceil(D / 16). */
  dtRank: number;
  /** Biases on in_proj and out_proj (use_bias / bias), default false. */
  bias: boolean;
  /** Bias on the conv (use_conv_bias / conv_bias), default true. */
  convBias: boolean;
  /** RMSNorm epsilon (layer_norm_epsilon), default 1e-5. */
  normEps: number;
  /** Keep the residual stream in float32 (residual_in_fp32), default true. */
  residualInFp32: boolean;
  /** lm_head shares the embedding weight (tie_word_embeddings / tie_embeddings), default true. */
  tieEmbeddings: boolean;
  /** Default 8. */
  padVocabSizeMultiple: number;
  /** softplus(dt_proj.bias) starts log-uniform in [dtMin, dtMax] (time_step_min/max), defaults 0.001, 0.1. */
  dtMin: number;
  dtMax: number;
  /** ... and at least dtInitFloor (time_step_floor), default 1e-4. */
  dtInitFloor: number;
  /** dt_proj.weight: 'random' = uniform(±dtScale / sqrt(R)), 'constant' = dtScale / sqrt(R). Default 'random'. */
  dtInit: 'random' | 'constant';
  /** Default 1. */
  dtScale: number;
  /** Std of the embedding's normal init (initializer_range), default 0.02 as in mamba_ssm. */
  initializerRange: number;
  /** Divide out_proj's init by sqrt(nLayer) (rescale_prenorm_residual), default true. */
  rescalePrenormResidual: boolean;
}

/** What `mambaConfig` takes: the sizes that have no default, the rest optional. */
export type MambaConfigInput = Pick<MambaConfig, 'dModel' | 'nLayer' | 'vocabSize'> & Partial<Omit<MambaConfig, 'dInner'>>;

const fnConfig = 'mambaConfig';

function posInt(v: unknown, arg: string, fn = fnConfig): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
    throw new ArgumentError(`${fn}: expected a positive integer for '${arg}' but received ${JSON.stringify(v)}`, { fn, arg });
  return v;
}

function posNum(v: unknown, arg: string, fn = fnConfig): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new ArgumentError(`${fn}: expected a positive number for '${arg}' but received ${JSON.stringify(v)}`, { fn, arg });
  return v;
}

function bool(v: unknown, arg: string, fn = fnConfig): boolean {
  if (typeof v !== 'boolean') throw new ArgumentError(`${fn}: expected a boolean for '${arg}' but received ${JSON.stringify(v)}`, { fn, arg });
  return v;
}

/**
 * A full configuration from the required sizes and any overrides: defaults as mamba_ssm / transformers,
 * the vocabulary padded up to a multiple of `padVocabSizeMultiple`.
 *
 * @example
 * ```ts
 * const cfg = mambaConfig({ dModel: 768, nLayer: 24, vocabSize: 50277 });   // cfg.vocabSize 50280, dtRank 48
 * ```
 */
export function mambaConfig(input: MambaConfigInput): MambaConfig {
  if (input === null || typeof input !== 'object') throw new ArgumentError(`${fnConfig}: expected a config object`, { fn: fnConfig, arg: 'config' });
  const dModel = posInt(input.dModel, 'dModel');
  const expand = posInt(input.expand ?? 2, 'expand');
  const pad = posInt(input.padVocabSizeMultiple ?? 8, 'padVocabSizeMultiple');
  const vocab = posInt(input.vocabSize, 'vocabSize');
  const dtInit = input.dtInit ?? 'random';
  if (dtInit !== 'random' && dtInit !== 'constant')
    throw new ArgumentError(`${fnConfig}: expected 'random' or 'constant' for 'dtInit' but received ${JSON.stringify(dtInit)}`, { fn: fnConfig, arg: 'dtInit' });
  const dConv = posInt(input.dConv ?? 4, 'dConv');
  if (dConv < 2 || dConv > 4) throw new ArgumentError(`${fnConfig}: 'dConv' must be 2, 3 or 4 (the conv kernel's widths) but is ${dConv}`, { fn: fnConfig, arg: 'dConv' });
  const cfg: MambaConfig = {
    dModel,
    nLayer: posInt(input.nLayer, 'nLayer'),
    vocabSize: Math.ceil(vocab / pad) * pad,
    dState: posInt(input.dState ?? 16, 'dState'),
    dConv,
    expand,
    dInner: expand * dModel,
    dtRank: posInt(input.dtRank ?? Math.ceil(dModel / 16), 'dtRank'),
    bias: bool(input.bias ?? false, 'bias'),
    convBias: bool(input.convBias ?? true, 'convBias'),
    normEps: posNum(input.normEps ?? 1e-5, 'normEps'),
    residualInFp32: bool(input.residualInFp32 ?? true, 'residualInFp32'),
    tieEmbeddings: bool(input.tieEmbeddings ?? true, 'tieEmbeddings'),
    padVocabSizeMultiple: pad,
    dtMin: posNum(input.dtMin ?? 0.001, 'dtMin'),
    dtMax: posNum(input.dtMax ?? 0.1, 'dtMax'),
    dtInitFloor: posNum(input.dtInitFloor ?? 1e-4, 'dtInitFloor'),
    dtInit,
    dtScale: posNum(input.dtScale ?? 1, 'dtScale'),
    initializerRange: posNum(input.initializerRange ?? 0.02, 'initializerRange'),
    rescalePrenormResidual: bool(input.rescalePrenormResidual ?? true, 'rescalePrenormResidual'),
  };
  if (cfg.dtMin > cfg.dtMax) throw new ArgumentError(`${fnConfig}: 'dtMin' ${cfg.dtMin} is above 'dtMax' ${cfg.dtMax}`, { fn: fnConfig, arg: 'dtMin' });
  return cfg;
}

/**
 * A configuration from a parsed config.json: transformers' MambaConfig (hidden_size, num_hidden_layers,
 * state_size, conv_kernel, time_step_rank, use_bias, ...) or mamba_ssm's (d_model, n_layer, ssm_cfg, ...).
 * As in transformers, an HF config's vocab_size is the embedding size as is (its checkpoints store it
 * padded); a mamba_ssm vocab_size is padded to pad_vocab_size_multiple as mamba_ssm does. Fields an HF
 * config leaves out take transformers' MambaConfig defaults, which differ from mamba_ssm's in three places:
 * use_bias true, initializer_range 0.1, rescale_prenorm_residual false.
 *
 * @example
 * ```ts
 * const cfg = parseMambaConfig(JSON.parse(fs.readFileSync('mamba-130m-hf/config.json', 'utf8')));
 * ```
 */
export function parseMambaConfig(json: unknown): MambaConfig {
  const fn = 'parseMambaConfig';
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new ArgumentError(`${fn}: expected a config object`, { fn, arg: 'config' });
  const j = json as Record<string, unknown>;
  const opt = <T>(v: unknown): T | undefined => (v === undefined || v === null ? undefined : (v as T));
  if ('hidden_size' in j) {
    const rank = j.time_step_rank;
    const dModel = posInt(j.hidden_size, 'hidden_size', fn);
    const expand = opt<number>(j.expand) ?? 2;
    if (j.intermediate_size !== undefined && j.intermediate_size !== expand * dModel)
      throw new ArgumentError(`${fn}: intermediate_size ${j.intermediate_size} is not expand * hidden_size = ${expand * dModel}`, { fn, arg: 'intermediate_size' });
    return mambaConfig({
      dModel,
      nLayer: posInt(j.num_hidden_layers, 'num_hidden_layers', fn),
      vocabSize: posInt(j.vocab_size, 'vocab_size', fn),
      padVocabSizeMultiple: 1,
      dState: opt(j.state_size),
      dConv: opt(j.conv_kernel),
      expand,
      dtRank: rank === 'auto' || rank === undefined || rank === null ? undefined : (rank as number),
      bias: opt(j.use_bias) ?? true,
      convBias: opt(j.use_conv_bias),
      normEps: opt(j.layer_norm_epsilon),
      residualInFp32: opt(j.residual_in_fp32),
      tieEmbeddings: opt(j.tie_word_embeddings),
      dtMin: opt(j.time_step_min),
      dtMax: opt(j.time_step_max),
      dtInitFloor: opt(j.time_step_floor),
      dtInit: opt(j.time_step_init_scheme),
      dtScale: opt(j.time_step_scale),
      initializerRange: opt(j.initializer_range) ?? 0.1,
      rescalePrenormResidual: opt(j.rescale_prenorm_residual) ?? false,
    });
  }
  if ('d_model' in j) {
    const ssm = (opt<Record<string, unknown>>(j.ssm_cfg) ?? {}) as Record<string, unknown>;
    if (ssm.layer !== undefined && ssm.layer !== 'Mamba1')
      throw new ArgumentError(`${fn}: ssm_cfg.layer '${String(ssm.layer)}' is not supported (only Mamba1)`, { fn, arg: 'ssm_cfg.layer' });
    if (j.d_intermediate !== undefined && j.d_intermediate !== 0)
      throw new ArgumentError(`${fn}: d_intermediate ${String(j.d_intermediate)} (an MLP per block) is not supported`, { fn, arg: 'd_intermediate' });
    if (j.rms_norm === false) throw new ArgumentError(`${fn}: rms_norm false (LayerNorm) is not supported`, { fn, arg: 'rms_norm' });
    const rank = ssm.dt_rank;
    return mambaConfig({
      dModel: posInt(j.d_model, 'd_model', fn),
      nLayer: posInt(j.n_layer, 'n_layer', fn),
      vocabSize: posInt(j.vocab_size, 'vocab_size', fn),
      padVocabSizeMultiple: opt(j.pad_vocab_size_multiple),
      dState: opt(ssm.d_state),
      dConv: opt(ssm.d_conv),
      expand: opt(ssm.expand),
      dtRank: rank === 'auto' || rank === undefined ? undefined : (rank as number),
      bias: opt(ssm.bias),
      convBias: opt(ssm.conv_bias),
      residualInFp32: opt(j.residual_in_fp32),
      tieEmbeddings: opt(j.tie_embeddings),
      dtMin: opt(ssm.dt_min),
      dtMax: opt(ssm.dt_max),
      dtInitFloor: opt(ssm.dt_init_floor),
      dtInit: opt(ssm.dt_init),
      dtScale: opt(ssm.dt_scale),
    });
  }
  throw new ArgumentError(`${fn}: not a Mamba config: neither 'hidden_size' (transformers) nor 'd_model' (mamba_ssm) is present`, { fn, arg: 'config' });
}

/** The parameter count of a configuration, without building the model. */
export function countMambaParameters(config: MambaConfig): number {
  const { dModel: D, dInner: E, dState: N, dtRank: R, dConv: K, nLayer, vocabSize: V } = config;
  const perLayer =
    D + // norm
    2 * E * D + (config.bias ? 2 * E : 0) + // in_proj
    E * K + (config.convBias ? E : 0) + // conv1d
    (R + 2 * N) * E + // x_proj
    E * R + E + // dt_proj
    E * N + E + // A_log, D
    D * E + (config.bias ? D : 0); // out_proj
  return V * D + nLayer * perLayer + D + (config.tieEmbeddings ? 0 : V * D);
}

// ---- seeds ----

const MASK64 = (1n << 64n) - 1n;

/** A seed for one parameter: SplitMix64 of the model seed mixed with an FNV-1a hash of the name. */
export function parameterSeed(seed: number | bigint, name: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < name.length; i++) h = ((h ^ BigInt(name.charCodeAt(i))) * 0x100000001b3n) & MASK64;
  let z = (BigInt(seed) * 0x9e3779b97f4a7c15n + h) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** Where and how a Mamba model's parameters are created. */
export interface MambaInitOptions {
  /** Default 'cpu'. */
  device?: Device;
  /** Seed of the initialisation, default 0. */
  seed?: number | bigint;
}

/** Options of a Mamba forward. */
export interface MambaForwardOptions {
  /** Compute dtype: weights are cast to it per op (float32 parameters stay the master copy). Default: the model's `computeDtype`, else the embedding's dtype. */
  dtype?: DType;
  /** Recompute each mixer (in_proj, conv, projections, scan) in backward instead of keeping its activations. Default: the model's `checkpoint`. */
  checkpoint?: boolean;
}

type ForwardSettings = { dtype: DType; checkpoint: boolean };

/**
 * The selective-state-space mixer of one block: (batch, L, D) -> (batch, L, D).
 *
 * @example
 * ```ts
 * const mixer = new MambaMixer(mambaConfig({ dModel: 16, nLayer: 1, vocabSize: 32 }));
 * const y = mixer.forward(h);   // h (2, 9, 16) -> (2, 9, 16)
 * ```
 */
export class MambaMixer extends Module {
  in_proj: Linear;
  conv1d: Conv1d;
  x_proj: Linear;
  dt_proj: Linear;
  /** (E, N) float32: A = -exp(A_log). */
  A_log: Tensor;
  /** (E) float32 skip connection. */
  D: Tensor;
  out_proj: Linear;
  readonly #cfg: MambaConfig;

  /** `prefix` names the mixer in the model (e.g. 'backbone.layers.0.mixer'): seeds derive from it. */
  constructor(config: MambaConfig, options: MambaInitOptions = {}, prefix = 'mixer') {
    super();
    const c = (this.#cfg = config);
    const device = options.device ?? 'cpu';
    const seed = options.seed ?? 0;
    const s = (name: string) => parameterSeed(seed, `${prefix}.${name}`);
    const E = c.dInner;
    this.in_proj = new Linear(c.dModel, 2 * E, { bias: c.bias, zeroBias: true, device, seed: s('in_proj') });
    this.conv1d = new Conv1d(E, c.dConv, { bias: c.convBias, device, seed: s('conv1d') });
    this.x_proj = new Linear(E, c.dtRank + 2 * c.dState, { bias: false, device, seed: s('x_proj') });
    const dtStd = c.dtScale / Math.sqrt(c.dtRank);
    this.dt_proj = new Linear(c.dtRank, E, { bias: true, weightBound: dtStd, device, seed: s('dt_proj') });
    if (c.dtInit === 'constant') this.dt_proj.replaceParameter('weight', full([E, c.dtRank], dtStd, { device }));
    this.dt_proj.replaceParameter('bias', dtBiasInit(c, s('dt_proj.bias'), device));
    const aLog = new Float32Array(E * c.dState);
    for (let i = 0; i < aLog.length; i++) aLog[i] = Math.log((i % c.dState) + 1);
    this.A_log = parameter(tensor(aLog, [E, c.dState], { device }));
    this.D = parameter(full([E], 1, { device }));
    // mamba_ssm _init_weights: kaiming_uniform(a=sqrt(5)) = uniform(±1/sqrt(E)), divided by sqrt(n_layer).
    const outBound = 1 / Math.sqrt(E) / (c.rescalePrenormResidual ? Math.sqrt(c.nLayer) : 1);
    this.out_proj = new Linear(E, c.dModel, { bias: c.bias, zeroBias: true, weightBound: outBound, device, seed: s('out_proj') });
  }

  protected override float32Parameters(): readonly string[] {
    return ['A_log', 'D', 'dt_proj.bias'];
  }

  /** h (batch, L, D) -> (batch, L, D), computed in `dtype` (default h's); `checkpoint` recomputes it in backward. */
  forward(h: Tensor, options: MambaForwardOptions = {}): Tensor {
    const dtype = options.dtype ?? h.dtype;
    if (!options.checkpoint) return this.#compute(h, dtype);
    return checkpoint((x) => this.#compute(x, dtype), h, this.parameters());
  }

  #compute(h: Tensor, dtype: DType): Tensor {
    const c = this.#cfg;
    const E = c.dInner;
    const N = c.dState;
    return tidy(() => {
      const w = (t: Tensor) => castRecorded(t, dtype);
      const f32 = (t: Tensor) => castRecorded(t, 'float32');
      const hIn = castRecorded(h, dtype);
      // (2E, D) @ (batch, L, D)^T -> (batch, 2E, L): channel-major without a transposed copy.
      let xz = matmul(w(this.in_proj.weight), hIn, { transB: true });
      if (this.in_proj.bias) xz = add(xz, reshapeRecorded(w(this.in_proj.bias), [2 * E, 1]));
      const [x, z] = split(xz, [E, E], 1);
      const xc = this.conv1d.forward(x, { activation: 'silu' });
      const [dt, B, C] = split(matmul(w(this.x_proj.weight), xc), [c.dtRank, N, N], 1);
      const delta = matmul(w(this.dt_proj.weight), dt);
      const A = neg(exp(f32(this.A_log)));
      const y = selectiveScan(xc, delta, A, B, C, { D: f32(this.D), z, deltaBias: f32(this.dt_proj.bias as Tensor), deltaSoftplus: true }).out;
      // y (batch, E, L) read as (batch, L, E) by transA, times out_proj.weight (D, E)^T -> (batch, L, D).
      const out = matmul(y, w(this.out_proj.weight), { transA: true, transB: true });
      return this.out_proj.bias ? add(out, w(this.out_proj.bias)) : out;
    });
  }
}

/** dt_proj.bias = softplus^-1(dt) with dt log-uniform in [dtMin, dtMax], floored at dtInitFloor (mamba_ssm). */
function dtBiasInit(c: MambaConfig, seed: bigint, device: Device): Tensor {
  const u = rand([c.dInner], { seed });
  const uv = u.dataSync();
  u.dispose();
  const lo = Math.log(c.dtMin);
  const hi = Math.log(c.dtMax);
  const out = new Float32Array(c.dInner);
  for (let i = 0; i < out.length; i++) {
    const dt = Math.max(Math.exp(uv[i] * (hi - lo) + lo), c.dtInitFloor);
    // softplus^-1(dt) = dt + log(1 - exp(-dt)) = dt + log(-expm1(-dt))
    out[i] = dt + Math.log(-Math.expm1(-dt));
  }
  return tensor(out, [c.dInner], { device });
}

/** A block's output: the mixer output and the residual stream (float32 with residualInFp32). */
export interface MambaBlockOutput {
  /** (batch, L, D) in the compute dtype. */
  hidden: Tensor;
  /** (batch, L, D): the sum of the embedding and every earlier mixer output. */
  residual: Tensor;
}

/**
 * One residual block with pre-norm: r = hidden + residual (kept in float32), hidden' = mixer(rmsnorm(r)).
 *
 * @example
 * ```ts
 * const { hidden, residual } = block.forward(h, r);   // (batch, L, D) each; r undefined for the first block
 * ```
 */
export class MambaBlock extends Module {
  norm: RMSNorm;
  mixer: MambaMixer;
  readonly #residualInFp32: boolean;

  constructor(config: MambaConfig, options: MambaInitOptions = {}, prefix = 'layers.0') {
    super();
    this.norm = new RMSNorm(config.dModel, { eps: config.normEps, device: options.device });
    this.mixer = new MambaMixer(config, options, `${prefix}.mixer`);
    this.#residualInFp32 = config.residualInFp32;
  }

  /** hidden (batch, L, D), residual (batch, L, D) or undefined for the first block -> the next pair. */
  forward(hidden: Tensor, residual?: Tensor, options: MambaForwardOptions = {}): MambaBlockOutput {
    const { out, residual: r } = this.norm.withResidual(hidden, residual, this.#residualInFp32);
    const next = this.mixer.forward(out, options);
    out.dispose();
    return { hidden: next, residual: r };
  }
}

/**
 * The Mamba backbone: embeddings, blocks, final norm; ids (batch, L) -> (batch, L, D).
 *
 * @example
 * ```ts
 * const h = model.backbone.forward(ids);   // (2, 9) int32 -> (2, 9, 768)
 * ```
 */
export class MambaBackbone extends Module {
  embeddings: Embedding;
  layers: MambaBlock[];
  norm_f: RMSNorm;

  constructor(config: MambaConfig, options: MambaInitOptions = {}) {
    super();
    const seed = options.seed ?? 0;
    this.embeddings = new Embedding(config.vocabSize, config.dModel, {
      std: config.initializerRange,
      device: options.device,
      seed: parameterSeed(seed, 'backbone.embeddings.weight'),
    });
    this.layers = Array.from({ length: config.nLayer }, (_, i) => new MambaBlock(config, options, `backbone.layers.${i}`));
    this.norm_f = new RMSNorm(config.dModel, { eps: config.normEps, device: options.device });
  }

  /** ids (batch, L) int32 -> the final normed hidden states (batch, L, D) in the compute dtype. */
  forward(ids: Tensor, options: Required<MambaForwardOptions>): Tensor {
    let hidden = this.embeddings.forward(ids, options.dtype);
    let residual: Tensor | undefined;
    for (const layer of this.layers) {
      const next = layer.forward(hidden, residual, options);
      // The graph keeps its own handles; dropping these as soon as they are used bounds inference memory.
      hidden.dispose();
      residual?.dispose();
      ({ hidden, residual } = next);
    }
    const out = this.norm_f.forward(hidden, residual);
    hidden.dispose();
    residual?.dispose();
    return out;
  }
}

/**
 * The Mamba language model (transformers' MambaForCausalLM layout): int32 ids (batch, L) -> logits
 * (batch, L, vocabSize). `lm_head.weight` is the embedding weight itself when `tieEmbeddings`.
 *
 * @example
 * ```ts
 * const model = new MambaLM({ dModel: 768, nLayer: 24, vocabSize: 50277 }, { seed: 0 });
 * const logits = model.forward(ids, { dtype: 'bfloat16' });        // (2, 16) -> (2, 16, 50280)
 * const loss = ops.crossEntropy(logits, targets);
 * loss.backward();                                                 // float32 .grad on every parameter
 * model.dispose();
 * ```
 */
export class MambaLM extends Module {
  /** The resolved configuration. */
  readonly config: MambaConfig;
  backbone: MambaBackbone;
  lm_head: Linear;
  /** The default compute dtype of `forward` (undefined: the embedding weight's dtype). */
  computeDtype: DType | undefined = undefined;
  /** The default of `forward`'s `checkpoint` option. */
  checkpoint = false;

  constructor(config: MambaConfig | MambaConfigInput, options: MambaInitOptions = {}) {
    super();
    this.config = mambaConfig(config);
    const c = this.config;
    this.backbone = new MambaBackbone(c, options);
    this.lm_head = new Linear(c.dModel, c.vocabSize, {
      bias: false,
      device: options.device,
      seed: parameterSeed(options.seed ?? 0, 'lm_head.weight'),
      weight: c.tieEmbeddings ? this.backbone.embeddings.weight : undefined,
    });
  }

  /**
   * ids (batch, L) int32 on the model's device -> logits (batch, L, vocabSize) in the compute dtype.
   */
  forward(ids: Tensor, options: MambaForwardOptions = {}): Tensor {
    const fn = 'MambaLM.forward';
    if (!(ids instanceof Tensor)) throw new ArgumentError(`${fn}: expected an int32 Tensor for argument 'ids'`, { fn, arg: 'ids' });
    if (ids.dtype !== 'int32') throw new DTypeError(`${fn}: expected int32 for argument 'ids' but received ${ids.dtype}`, { fn, arg: 'ids' });
    if (ids.rank !== 2) throw new ShapeError(`${fn}: expected shape (batch, L) for argument 'ids' but received [${ids.shape.join(', ')}]`, { fn, arg: 'ids' });
    const weight = this.backbone.embeddings.weight;
    if (ids.device !== weight.device)
      throw new DeviceError(`${fn}: argument 'ids' is on ${ids.device} but the model is on ${weight.device}`, { fn, arg: 'ids' });
    const dtype = checkDType(options.dtype ?? this.computeDtype ?? weight.dtype, fn, 'dtype');
    if (dtype === 'int32') throw new DTypeError(`${fn}: the compute dtype must be a float dtype`, { fn, arg: 'dtype' });
    const ckpt = options.checkpoint ?? this.checkpoint;
    if (typeof ckpt !== 'boolean') throw new ArgumentError(`${fn}: expected a boolean for option 'checkpoint'`, { fn, arg: 'checkpoint' });
    const settings: ForwardSettings = { dtype, checkpoint: ckpt };
    return tidy(() => {
      const hidden = this.backbone.forward(ids, settings);
      return linear(hidden, castRecorded(this.lm_head.weight, dtype));
    });
  }

  /**
   * Loads a Hugging Face `MambaForCausalLM` directory (config.json + model.safetensors or sharded with
   * model.safetensors.index.json) or a mamba_ssm-style one; see lib/nn/pretrained.ts and docs/model.md.
   *
   * @example
   * ```ts
   * const model = await MambaLM.fromPretrained('mamba-130m-hf', { device: 'cuda', dtype: 'bfloat16' });
   * ```
   */
  static fromPretrained(dir: string, options: FromPretrainedOptions = {}): Promise<MambaLM> {
    return loadPretrained(dir, options);
  }

  /**
   * Writes the model as a transformers `MambaForCausalLM` directory (config.json, model.safetensors or
   * shards + index past `shardSize` bytes), atomically, without a tied lm_head.weight.
   *
   * @example
   * ```ts
   * await model.save('out/my-mamba');   // MambaForCausalLM.from_pretrained('out/my-mamba') reads it
   * ```
   */
  save(dir: string, options: SavePretrainedOptions = {}): Promise<void> {
    return savePretrained(this, dir, options);
  }

  /**
   * Loads a checkpoint's tensors; besides the transformers keys it takes mamba_ssm's
   * `backbone.embedding.weight` for `backbone.embeddings.weight`.
   */
  override loadStateDict(stateDict: StateDict, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const entries = stateDict instanceof Map ? [...stateDict.entries()] : Object.entries(stateDict ?? {});
    if (stateDict !== null && typeof stateDict === 'object' && entries.some(([k]) => k === 'backbone.embedding.weight')) {
      const renamed = new Map(entries.map(([k, t]) => [k === 'backbone.embedding.weight' ? 'backbone.embeddings.weight' : k, t]));
      return super.loadStateDict(renamed, options);
    }
    return super.loadStateDict(stateDict, options);
  }
}

/**
 * The basic layers of a Mamba model, as `Module`s whose attribute names are PyTorch's (`weight`, `bias`),
 * so their state-dict keys match torch.nn: `Linear` (weight (out, in), bias (out)), `Embedding` (weight
 * (vocab, dim)), `RMSNorm` (weight (dim)), and `Conv1d`, the causal depthwise convolution of the mixer
 * (weight (channels, 1, width) as torch.nn.Conv1d with groups = channels, bias (channels)). Each forward
 * calls one fused op of lib/ops; `dtype` casts the weights to a compute dtype for that call (the float32
 * parameters stay the master copy and receive the gradients). Initialisation is PyTorch's default
 * (uniform(±1/sqrt(fan_in)) for Linear and Conv1d, N(0, 1) for Embedding, ones for RMSNorm) from a seed.
 */
import { full, rand, randn } from '../creation';
import { DType, Device } from '../dtype';
import { ArgumentError, ShapeError } from '../errors';
import { keep, tidy } from '../memory';
import { causalConv1d, embedding, linear, rmsNorm } from '../ops';
import type { RmsNormResult } from '../ops';
import { Tensor } from '../tensor';
import { castRecorded } from './functional';
import { Module } from './module';

/** Where and how parameters are created. */
export interface LayerOptions {
  /** Default 'cpu'. */
  device?: Device;
  /** Parameter dtype, default 'float32'. */
  dtype?: DType;
  /** Seed of the random initialisation (default 0): the same seed gives the same values on every device. */
  seed?: number | bigint;
}

/** A parameter: kept out of tidy() scopes, requiring grad. */
export function parameter(t: Tensor): Tensor {
  return keep(t).requiresGrad_(true);
}

function checkSize(v: unknown, fn: string, arg: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
    throw new ArgumentError(`${fn}: expected a positive integer for argument '${arg}' but received ${String(v)}`, { fn, arg });
  return v;
}

function uniform(shape: number[], bound: number, o: LayerOptions): Tensor {
  return parameter(rand(shape, { low: -bound, high: bound, seed: o.seed ?? 0, device: o.device, dtype: o.dtype }));
}

function cast(w: Tensor, dtype: DType | undefined): Tensor {
  return dtype ? castRecorded(w, dtype) : w;
}

/** Options of `Linear`. */
export interface LinearOptions extends LayerOptions {
  /** Whether the layer has a bias. Default true. */
  bias?: boolean;
  /** The weight is uniform in ±weightBound. Default 1/sqrt(inFeatures) (PyTorch's default). */
  weightBound?: number;
  /** Start the bias at zero (mamba_ssm's _init_weights) instead of uniform(±1/sqrt(inFeatures)). */
  zeroBias?: boolean;
  /** Use this (outFeatures, inFeatures) tensor as the weight, shared (tied weights, e.g. lm_head). */
  weight?: Tensor;
}

/**
 * Fully connected layer: x (..., inFeatures) -> x W^T + b (..., outFeatures), W (outFeatures, inFeatures).
 *
 * @example
 * ```ts
 * const fc = new Linear(768, 1536, { bias: false, seed: 1 });
 * const y = fc.forward(x);   // (2, 16, 768) -> (2, 16, 1536)
 * ```
 */
export class Linear extends Module {
  weight: Tensor;
  bias?: Tensor;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    checkSize(inFeatures, 'Linear', 'inFeatures');
    checkSize(outFeatures, 'Linear', 'outFeatures');
    const bound = 1 / Math.sqrt(inFeatures);
    const tied = options.weight;
    if (tied !== undefined && (!(tied instanceof Tensor) || tied.rank !== 2 || tied.shape[0] !== outFeatures || tied.shape[1] !== inFeatures))
      throw new ShapeError(`Linear: expected a tensor of shape [${outFeatures}, ${inFeatures}] for option 'weight'`, { fn: 'Linear', arg: 'weight' });
    this.weight = tied ?? uniform([outFeatures, inFeatures], options.weightBound ?? bound, options);
    if (options.bias ?? true) {
      const seed = BigInt(options.seed ?? 0) ^ 0x5bd1e995n;
      this.bias = options.zeroBias
        ? parameter(full([outFeatures], 0, { device: options.device, dtype: options.dtype }))
        : uniform([outFeatures], bound, { ...options, seed });
    }
  }

  /** x (..., in) -> (..., out), computed in `dtype` (default: x's dtype). */
  forward(x: Tensor, dtype: DType = x.dtype): Tensor {
    // tidy frees the per-call weight casts; the graph keeps its own handles.
    return tidy(() => linear(x, cast(this.weight, dtype), this.bias ? cast(this.bias, dtype) : undefined));
  }
}

/**
 * Lookup table: int32 ids (...) -> rows of weight (vocab, dim), (..., dim).
 *
 * @example
 * ```ts
 * const emb = new Embedding(50280, 768, { seed: 1 });
 * const h = emb.forward(ids);   // (2, 16) int32 -> (2, 16, 768)
 * ```
 */
export class Embedding extends Module {
  weight: Tensor;

  constructor(numEmbeddings: number, dim: number, options: LayerOptions & { std?: number } = {}) {
    super();
    checkSize(numEmbeddings, 'Embedding', 'numEmbeddings');
    checkSize(dim, 'Embedding', 'dim');
    this.weight = parameter(randn([numEmbeddings, dim], { std: options.std ?? 1, seed: options.seed ?? 0, device: options.device, dtype: options.dtype }));
  }

  /** ids (...) int32 -> (..., dim) in `dtype` (default: the weight's). */
  forward(ids: Tensor, dtype?: DType): Tensor {
    return tidy(() => embedding(ids, cast(this.weight, dtype)));
  }
}

/**
 * RMSNorm over the last dim: x / sqrt(mean(x^2) + eps) * weight, in float32; `withResidual` fuses the
 * pre-norm residual add of a Mamba block.
 *
 * @example
 * ```ts
 * const norm = new RMSNorm(768);
 * const y = norm.forward(h);                                        // (2, 16, 768)
 * const { out, residual } = norm.withResidual(h, prevResidual);     // residual in float32
 * ```
 */
export class RMSNorm extends Module {
  weight: Tensor;
  /** Added to the mean square (Mamba's layer_norm_epsilon). */
  readonly eps: number;

  constructor(dim: number, options: LayerOptions & { eps?: number } = {}) {
    super();
    checkSize(dim, 'RMSNorm', 'dim');
    this.eps = options.eps ?? 1e-5;
    this.weight = parameter(full([dim], 1, { device: options.device, dtype: options.dtype }));
  }

  /** rmsnorm(x + residual) (x alone without residual), x and residual (..., dim) -> (..., dim) in x's dtype. */
  forward(x: Tensor, residual?: Tensor): Tensor {
    return rmsNorm(x, this.weight, { eps: this.eps, residual, prenorm: false }).out;
  }

  /**
   * r = x + residual (x alone when residual is absent), kept in float32 when `residualInFp32` (default);
   * returns `{ out: rmsnorm(r) in x's dtype, residual: r }`. Shapes (..., dim).
   */
  withResidual(x: Tensor, residual?: Tensor, residualInFp32 = true): Required<RmsNormResult> {
    return rmsNorm(x, this.weight, { eps: this.eps, residual, prenorm: true, residualInFp32 }) as Required<RmsNormResult>;
  }
}

/**
 * Causal depthwise convolution over time: x (batch, channels, L) -> (batch, channels, L), each channel
 * convolved with its own `width` taps over the current and previous steps (torch.nn.Conv1d with groups =
 * channels and padding = width - 1, cut to the first L outputs). Width 2 to 4.
 *
 * @example
 * ```ts
 * const conv = new Conv1d(1536, 4);
 * const y = conv.forward(x, { activation: 'silu' });   // (2, 1536, 16)
 * ```
 */
export class Conv1d extends Module {
  /** (channels, 1, width), the torch.nn.Conv1d layout. */
  weight: Tensor;
  bias?: Tensor;

  constructor(channels: number, width: number, options: LayerOptions & { bias?: boolean } = {}) {
    super();
    checkSize(channels, 'Conv1d', 'channels');
    checkSize(width, 'Conv1d', 'width');
    // fan_in of a depthwise conv is width (one input channel per group).
    const bound = 1 / Math.sqrt(width);
    this.weight = uniform([channels, 1, width], bound, options);
    if (options.bias ?? true) {
      const seed = BigInt(options.seed ?? 0) ^ 0x5bd1e995n;
      this.bias = uniform([channels], bound, { ...options, seed });
    }
  }

  /** x (batch, channels, L) -> (batch, channels, L) in x's dtype; 'silu' applies SiLU to the result. */
  forward(x: Tensor, options: { activation?: 'silu' } = {}): Tensor {
    return causalConv1d(x, this.weight, this.bias, { activation: options.activation }).out;
  }
}

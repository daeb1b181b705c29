// A tiny model built from ops (embedding -> tanh -> linear head) and a seeded token task for the Trainer
// tests, so they do not depend on lib/nn: the target of each token is (token + shift) mod V.
import { Tensor, keep, ops, randn, tensor, zeros } from '../../lib';
import type { TrainableModel } from '../../lib/train';
import { rng } from '../setup';

export class TinyModel implements TrainableModel {
  emb: Tensor;
  head: Tensor;
  bias: Tensor;
  training = true;

  constructor(
    readonly vocab: number,
    dim: number,
    seed: number,
  ) {
    this.emb = keep(randn([vocab, dim], { seed, std: 0.5 })).requiresGrad_();
    this.head = keep(randn([vocab, dim], { seed: seed + 1, std: 0.5 })).requiresGrad_();
    this.bias = keep(zeros([vocab])).requiresGrad_();
  }

  namedParameters(): [string, Tensor][] {
    return [
      ['emb.weight', this.emb],
      ['head.weight', this.head],
      ['head.bias', this.bias],
    ];
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedParameters());
  }

  // Replaces the tensors (as lib/nn's Module does), so the Trainer must re-point the optimizer.
  loadStateDict(sd: Record<string, Tensor>): void {
    const take = (name: string, old: Tensor) => {
      const t = keep(sd[name].detach()).requiresGrad_();
      old.dispose();
      return t;
    };
    this.emb = take('emb.weight', this.emb);
    this.head = take('head.weight', this.head);
    this.bias = take('head.bias', this.bias);
  }

  train(): void {
    this.training = true;
  }

  eval(): void {
    this.training = false;
  }

  /** ids (B, T) int32 -> logits (B, T, V) */
  forward(ids: Tensor): Tensor {
    return ops.linear(ops.tanh(ops.embedding(ids, this.emb)), this.head, this.bias);
  }

  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }
}

export interface TokenBatch {
  ids: Tensor;
  targets: Tensor;
  /** When true the test's lossFn returns NaN for this batch. */
  poison: boolean;
}

/** Batches `start`, `start + 1`, ...: each a pure function of its index (what exact resume needs). */
export function* tokenBatches(start: number, opts: { vocab: number; batch: number; len: number; shift?: number; poison?: (i: number) => boolean }): Generator<TokenBatch> {
  const { vocab, batch, len, shift = 1 } = opts;
  for (let i = start; ; i++) {
    const r = rng(7919 * (i + 1));
    const ids = new Int32Array(batch * len);
    for (let k = 0; k < ids.length; k++) ids[k] = Math.floor(r() * vocab);
    const targets = ids.map((v) => (v + shift) % vocab);
    yield {
      ids: tensor(ids, [batch, len], { dtype: 'int32' }),
      targets: tensor(targets, [batch, len], { dtype: 'int32' }),
      poison: opts.poison ? opts.poison(i) : false,
    };
  }
}

/** Mean cross-entropy of the tiny model on a batch; NaN for poisoned batches. */
export function tinyLoss(model: TinyModel, b: TokenBatch): Tensor {
  const loss = ops.crossEntropy(model.forward(b.ids), b.targets);
  return b.poison ? ops.mul(loss, NaN) : loss;
}

export function snapshot(model: TinyModel): Float32Array[] {
  return model.parameters().map((p) => Float32Array.from(p.dataSync() as Float32Array));
}

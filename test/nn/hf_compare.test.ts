/**
 * MambaLM against transformers' MambaForCausalLM: for each fixture directory written by
 * scripts/make_hf_fixtures.py (test/fixtures/hf/README.md), `MambaLM.fromPretrained(dir)` in float32, the
 * forward on `input_ids` (2, 12) gives `logits` (2, 12, 64); the loss computed as transformers does (mean
 * cross entropy of logits[:, :-1] against labels[:, 1:]) gives `loss`; the backward gives every
 * `grad.<name>`, and the parameter names match transformers' `named_parameters()` exactly (a tied lm_head
 * once, as backbone.embeddings.weight). On the CPU against the CPU entries; on CUDA (float32) against the
 * `cuda.*` entries, or the CPU ones when the fixtures were made without a GPU. transformers ran its
 * pure-PyTorch sequential scan in float32 on both devices, with TF32 off. MAMBA_HF_FIXTURES=DIR runs
 * the comparison on fixtures elsewhere (a fresh run of the script, before they are copied in).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Device, Tensor, loadSafetensors, nn, noGrad, ops, readSafetensorsHeader, tensor, tidy } from '../../lib';
import { describeCuda, expectClose } from '../setup';

const ROOT = process.env.MAMBA_HF_FIXTURES ?? path.join(__dirname, '..', 'fixtures', 'hf');
const MODELS = ['tiny', 'tiny-untied-bias'];

interface Tolerance {
  rtol: number;
  atol: number;
}

// Both sides compute in float32 (our matmuls accumulate in float32 without TF32 on CUDA as well), so the
// differences are summation order only: logits and gradients at rtol 1e-4 / atol 1e-5, the loss (about 4.5),
// one scalar, at rtol 1e-5. Gradients of x_proj, dt_proj and A_log are only 1e-5..1e-3 in these models,
// where atol 1e-5 would pass almost anything (even zeros), so each parameter's atol is at most 1e-4 of its
// largest reference gradient (1e-5 caps it). Measured 2026-11-29 (fixtures of transformers 5.17): the worst
// element of every comparison used at most 3.2% of its tolerance on the CPU (absolute: logits 7e-7, loss
// 5e-7, gradients 9e-8) and at most 2.6% on an H200 against the cuda.* entries (logits 6e-7, loss 1e-6).
const CPU_TOLERANCES = {
  logits: { rtol: 1e-4, atol: 1e-5 },
  loss: { rtol: 1e-5, atol: 1e-6 },
  grad: { rtol: 1e-4, atol: 1e-5, atolOfMax: 1e-4 },
};
// The same on CUDA: the fixture's CUDA results come from the same float32 math (they differ from its CPU
// results by at most 6e-7 in logits), and our CUDA kernels use float32 throughout.
const CUDA_TOLERANCES = CPU_TOLERANCES;

/**
 * Our parameter name -> transformers' name. lib/nn names its parameters by their transformers keys, so
 * this is the identity; a tied lm_head is the embedding tensor, which `namedParameters()` lists once,
 * under backbone.embeddings.weight, as torch's named_parameters() does.
 */
const hfName = (name: string): string => name;

interface Fixture {
  ids: Int32Array;
  labels: Int32Array;
  /** (batch, L) of input_ids and labels. */
  shape: number[];
  logits: Float32Array;
  logitsShape: number[];
  loss: number;
  /** transformers name -> gradient. */
  grads: Map<string, { shape: number[]; data: Float32Array }>;
  /** Whether the results are the `cuda.*` entries. */
  fromCuda: boolean;
}

function fixtureFile(name: string): string {
  return path.join(ROOT, name, 'fixtures.safetensors');
}

/** The fixture's inputs and the results of `device` ('cuda': the cuda.* entries when present). */
async function loadFixture(name: string, device: Device): Promise<Fixture> {
  const file = fixtureFile(name);
  const { tensors, metadata } = await readSafetensorsHeader(file);
  expect(metadata.dtype).toBe('float32');
  const fromCuda = device === 'cuda' && 'cuda.logits' in tensors;
  const prefix = fromCuda ? 'cuda.' : '';
  const all = await loadSafetensors(file);
  const host = (key: string) => {
    const t = all.get(key);
    if (!t) throw new Error(`${file} has no '${key}'`);
    return { shape: [...t.shape], data: t.dtype === 'int32' ? Int32Array.from(t.dataSync() as Int32Array) : Float32Array.from(t.dataSync() as Float32Array) };
  };
  try {
    const ids = host('input_ids');
    const labels = host('labels');
    const logits = host(`${prefix}logits`);
    const loss = host(`${prefix}loss`);
    expect(loss.shape).toEqual([]);
    const grads = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const key of all.keys()) {
      if (!key.startsWith(`${prefix}grad.`)) continue;
      const g = host(key);
      grads.set(key.slice(`${prefix}grad.`.length), { shape: g.shape, data: g.data as Float32Array });
    }
    return {
      ids: ids.data as Int32Array,
      labels: labels.data as Int32Array,
      shape: ids.shape,
      logits: logits.data as Float32Array,
      logitsShape: logits.shape,
      loss: loss.data[0],
      grads,
      fromCuda,
    };
  } finally {
    for (const t of all.values()) t.dispose();
  }
}

/** A float32 host copy of `t` (any device, any float dtype). */
function hostFloat32(t: Tensor): Float32Array {
  return noGrad(() =>
    tidy(() => {
      const h = t.device === 'cpu' && t.dtype === 'float32' ? t : t.to('cpu').cast('float32');
      return Float32Array.from(h.dataSync() as Float32Array);
    }),
  );
}

/** expectClose whose message names what was compared. */
function close(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): void {
  try {
    expectClose(actual, expected, tol.rtol, tol.atol);
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message}`);
  }
}

async function compare(name: string, device: Device, tol: typeof CPU_TOLERANCES): Promise<void> {
  const fx = await loadFixture(name, device);
  const model = await nn.MambaLM.fromPretrained(path.join(ROOT, name), { device, dtype: 'float32' });
  const made: Tensor[] = [];
  const keep = <T extends Tensor>(t: T): T => {
    made.push(t);
    return t;
  };
  try {
    const [B, L] = fx.shape;
    const ids = keep(tensor(fx.ids, fx.shape, { dtype: 'int32', device }));
    const labels = keep(tensor(fx.labels, fx.shape, { dtype: 'int32', device }));
    const logits = keep(model.forward(ids));
    expect(logits.shape).toEqual(fx.logitsShape);
    expect(logits.dtype).toBe('float32');
    close(`${name} logits`, hostFloat32(logits), fx.logits, tol.logits);

    // transformers' loss: position t predicts label t + 1, mean over the B * (L - 1) positions.
    const loss = keep(ops.crossEntropy(keep(ops.narrow(logits, 1, 0, L - 1)), keep(ops.narrow(labels, 1, 1, L - 1))));
    expect(B * (L - 1)).toBeGreaterThan(0);
    close(`${name} loss`, hostFloat32(loss), [fx.loss], tol.loss);

    loss.backward();
    const params = new Map(model.namedParameters().map(([n, p]) => [hfName(n), p] as const));
    // Every parameter is covered, and nothing in the fixture is left unchecked.
    expect([...params.keys()].sort()).toEqual([...fx.grads.keys()].sort());
    for (const [hf, p] of params) {
      const want = fx.grads.get(hf)!;
      expect(p.shape).toEqual(want.shape);
      const grad = p.grad;
      if (!grad) throw new Error(`${name}: ${hf} got no gradient`);
      const largest = want.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      // A reference gradient of zeros would make the comparison say nothing.
      expect(largest).toBeGreaterThan(0);
      close(`${name} grad of ${hf}`, hostFloat32(grad), want.data, { rtol: tol.grad.rtol, atol: Math.min(tol.grad.atol, tol.grad.atolOfMax * largest) });
    }
  } finally {
    for (const t of made) t.dispose();
    model.dispose();
  }
}

const present = MODELS.filter((m) => fs.existsSync(fixtureFile(m)));

describe('MambaLM vs transformers MambaForCausalLM (test/fixtures/hf)', () => {
  test('the fixture directories are present', () => {
    expect(present).toEqual(MODELS);
  });

  for (const name of present)
    test(`${name}: CPU float32 logits, loss and every parameter gradient`, async () => {
      await compare(name, 'cpu', CPU_TOLERANCES);
    });
});

describeCuda('MambaLM vs transformers on CUDA (float32)', () => {
  for (const name of present)
    test(`${name}: CUDA float32 logits, loss and every parameter gradient`, async () => {
      await compare(name, 'cuda', CUDA_TOLERANCES);
    });
});

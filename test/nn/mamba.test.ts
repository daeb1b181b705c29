/**
 * The Mamba language model: transformers key names and shapes, the 130M parameter count, config parsing
 * (transformers and mamba_ssm config.json), mamba_ssm initialisation statistics, seeded reproducibility,
 * forward against the float64 reference (test/nn/mamba_reference.ts), gradients against its finite
 * differences, checkpointed and bfloat16 forwards, state-dict round trips, hooks and argument errors.
 */
import { ArgumentError, DTypeError, ShapeError, Tensor, nn, noGrad, ops, randn, tensor } from '../../lib';
import { expectClose, expectTypedError, rng } from '../setup';
import { RefParams, referenceForward } from './mamba_reference';

const TINY = { dModel: 16, nLayer: 2, vocabSize: 32, dState: 4 };
const BATCH = 2;
const L = 9;

function idsData(): Int32Array {
  const r = rng(11);
  return Int32Array.from({ length: BATCH * L }, () => Math.floor(r() * TINY.vocabSize));
}

/** A tiny model whose parameters are moved off their init (so every one of them matters), and its float64 copy. */
function tinyModel(seed = 1): { model: nn.MambaLM; params: RefParams } {
  const model = new nn.MambaLM(TINY, { seed });
  const r = rng(seed + 100);
  const params: RefParams = {};
  const sd: Record<string, Tensor> = {};
  for (const [name, p] of model.namedParameters()) {
    const v = Float64Array.from(p.dataSync());
    const scale = name.endsWith('embeddings.weight') ? 0 : name.endsWith('A_log') ? 0.1 : 0.2;
    for (let i = 0; i < v.length; i++) v[i] = name.endsWith('embeddings.weight') ? (r() - 0.5) * 1.5 : v[i] + scale * (2 * r() - 1);
    const f = Float32Array.from(v);
    params[name] = Float64Array.from(f);
    sd[name] = tensor(f, p.shape);
  }
  model.loadStateDict(sd);
  for (const t of Object.values(sd)) t.dispose();
  return { model, params };
}

describe('MambaLM structure', () => {
  test('parameter names and shapes are the transformers MambaForCausalLM keys', () => {
    const m = new nn.MambaLM(TINY);
    const E = 32;
    const expected: Record<string, number[]> = { 'backbone.embeddings.weight': [32, 16], 'backbone.norm_f.weight': [16] };
    for (let i = 0; i < 2; i++) {
      const p = `backbone.layers.${i}.`;
      Object.assign(expected, {
        [`${p}norm.weight`]: [16],
        [`${p}mixer.in_proj.weight`]: [2 * E, 16],
        [`${p}mixer.conv1d.weight`]: [E, 1, 4],
        [`${p}mixer.conv1d.bias`]: [E],
        [`${p}mixer.x_proj.weight`]: [1 + 2 * 4, E],
        [`${p}mixer.dt_proj.weight`]: [E, 1],
        [`${p}mixer.dt_proj.bias`]: [E],
        [`${p}mixer.A_log`]: [E, 4],
        [`${p}mixer.D`]: [E],
        [`${p}mixer.out_proj.weight`]: [16, E],
      });
    }
    const sd = m.stateDict();
    expect(Object.fromEntries(Object.entries(sd).map(([k, t]) => [k, t.shape]))).toEqual(expected);
    // The tied head is the embedding tensor itself, not a separate parameter.
    expect(m.lm_head.weight).toBe(m.backbone.embeddings.weight);
    expect(m.numParameters()).toBe(nn.countMambaParameters(m.config));
    m.dispose();
  });

  test('130M: 129,135,360 parameters, built and counted', () => {
    const cfg = nn.mambaConfig({ dModel: 768, nLayer: 24, vocabSize: 50277 });
    expect(cfg.vocabSize).toBe(50280);
    expect(cfg.dtRank).toBe(48);
    expect(nn.countMambaParameters(cfg)).toBe(129135360);
    const m = new nn.MambaLM(cfg);
    expect(m.numParameters()).toBe(129135360);
    m.dispose();
  });

  test('untied head and biases add their parameters', () => {
    const m = new nn.MambaLM({ ...TINY, tieEmbeddings: false, bias: true });
    expect(m.lm_head.weight).not.toBe(m.backbone.embeddings.weight);
    expect(Object.keys(m.stateDict())).toContain('lm_head.weight');
    expect(Object.keys(m.stateDict())).toContain('backbone.layers.1.mixer.out_proj.bias');
    expect(m.numParameters()).toBe(nn.countMambaParameters(m.config));
    m.dispose();
  });

  test('parseMambaConfig reads transformers and mamba_ssm config.json', () => {
    const hf = nn.parseMambaConfig({
      architectures: ['MambaForCausalLM'],
      hidden_size: 768,
      num_hidden_layers: 24,
      vocab_size: 50280,
      state_size: 16,
      expand: 2,
      intermediate_size: 1536,
      conv_kernel: 4,
      time_step_rank: 'auto',
      use_bias: false,
      use_conv_bias: true,
      layer_norm_epsilon: 1e-5,
      residual_in_fp32: true,
      pad_vocab_size_multiple: 8,
      tie_word_embeddings: true,
      time_step_min: 0.001,
      time_step_max: 0.1,
      time_step_init_scheme: 'random',
      time_step_floor: 1e-4,
      initializer_range: 0.1,
    });
    expect(nn.countMambaParameters(hf)).toBe(129135360);
    expect(hf).toMatchObject({ dInner: 1536, dtRank: 48, dConv: 4, dState: 16, initializerRange: 0.1 });
    const ssm = nn.parseMambaConfig({
      d_model: 768,
      n_layer: 24,
      vocab_size: 50277,
      ssm_cfg: {},
      rms_norm: true,
      residual_in_fp32: true,
      fused_add_norm: true,
      pad_vocab_size_multiple: 8,
    });
    expect(ssm.vocabSize).toBe(50280);
    expect(nn.countMambaParameters(ssm)).toBe(129135360);
    const small = nn.parseMambaConfig({ d_model: 64, n_layer: 2, vocab_size: 100, ssm_cfg: { d_state: 8, d_conv: 3, expand: 3, dt_rank: 5 }, pad_vocab_size_multiple: 16 });
    expect(small).toMatchObject({ dState: 8, dConv: 3, expand: 3, dInner: 192, dtRank: 5, vocabSize: 112 });
    expectTypedError(() => nn.parseMambaConfig({ n_embd: 3 }), ArgumentError, 'parseMambaConfig', 'config');
    expectTypedError(() => nn.parseMambaConfig({ d_model: 8, n_layer: 1, vocab_size: 8, ssm_cfg: { layer: 'Mamba2' } }), ArgumentError, 'parseMambaConfig', 'ssm_cfg.layer');
    expectTypedError(() => nn.mambaConfig({ dModel: 8, nLayer: 0, vocabSize: 8 }), ArgumentError, 'mambaConfig', 'nLayer');
    expectTypedError(() => nn.mambaConfig({ dModel: 8, nLayer: 1, vocabSize: 8, dConv: 5 }), ArgumentError, 'mambaConfig', 'dConv');
  });
});

describe('MambaLM initialisation', () => {
  test('mamba_ssm statistics: A_log = log(1..N), D = 1, softplus(dt bias) in [dtMin, dtMax], init ranges', () => {
    const m = new nn.MambaLM({ dModel: 64, nLayer: 4, vocabSize: 512 }, { seed: 3 });
    const c = m.config;
    const E = c.dInner;
    const N = c.dState;
    const emb = Float64Array.from(m.backbone.embeddings.weight.dataSync());
    const std = Math.sqrt(emb.reduce((s, v) => s + v * v, 0) / emb.length);
    expect(Math.abs(std - 0.02)).toBeLessThan(0.001);
    for (const layer of m.backbone.layers) {
      const mx = layer.mixer;
      const aLog = mx.A_log.dataSync();
      for (let e = 0; e < E; e += 17) for (let n = 0; n < N; n++) expect(aLog[e * N + n]).toBeCloseTo(Math.log(n + 1), 6);
      expect(mx.D.dataSync().every((v) => v === 1)).toBe(true);
      expect(layer.norm.weight.dataSync().every((v) => v === 1)).toBe(true);
      const bias = mx.dt_proj.bias?.dataSync() as Float32Array;
      const dt = Array.from(bias, (b) => Math.log1p(Math.exp(b)));
      expect(Math.min(...dt)).toBeGreaterThanOrEqual(c.dtMin * (1 - 1e-4));
      expect(Math.max(...dt)).toBeLessThanOrEqual(c.dtMax * (1 + 1e-4));
      // log-uniform: the mean of log(dt) is the midpoint of [log dtMin, log dtMax] (128 draws: within 0.4).
      const meanLog = dt.reduce((s, v) => s + Math.log(v), 0) / dt.length;
      expect(Math.abs(meanLog - (Math.log(c.dtMin) + Math.log(c.dtMax)) / 2)).toBeLessThan(0.4);
      const maxAbs = (t: Tensor) => Math.max(...Array.from(t.dataSync(), Math.abs));
      expect(maxAbs(mx.dt_proj.weight)).toBeLessThanOrEqual(1 / Math.sqrt(c.dtRank));
      expect(maxAbs(mx.in_proj.weight)).toBeLessThanOrEqual(1 / Math.sqrt(c.dModel));
      expect(maxAbs(mx.x_proj.weight)).toBeLessThanOrEqual(1 / Math.sqrt(E));
      const outBound = 1 / Math.sqrt(E) / Math.sqrt(c.nLayer);
      expect(maxAbs(mx.out_proj.weight)).toBeLessThanOrEqual(outBound);
      expect(maxAbs(mx.out_proj.weight)).toBeGreaterThan(0.9 * outBound);
      expect(maxAbs(mx.conv1d.weight)).toBeLessThanOrEqual(0.5);
    }
    m.dispose();
  });

  test('a seed gives the same parameters; another seed different ones; layers differ from each other', () => {
    const [a, b, c] = [new nn.MambaLM(TINY, { seed: 5 }), new nn.MambaLM(TINY, { seed: 5 }), new nn.MambaLM(TINY, { seed: 6 })];
    const pa = a.stateDict();
    const pb = b.stateDict();
    const pc = c.stateDict();
    for (const k of Object.keys(pa)) expect(Array.from(pb[k].dataSync())).toEqual(Array.from(pa[k].dataSync()));
    const k = 'backbone.layers.0.mixer.in_proj.weight';
    expect(Array.from(pc[k].dataSync())).not.toEqual(Array.from(pa[k].dataSync()));
    expect(Array.from(pa['backbone.layers.1.mixer.in_proj.weight'].dataSync())).not.toEqual(Array.from(pa[k].dataSync()));
    [a, b, c].forEach((m) => m.dispose());
  });
});

describe('MambaLM forward and backward', () => {
  test('forward matches the float64 reference (float32, within 1e-4)', () => {
    const { model, params } = tinyModel();
    const idv = idsData();
    const ids = tensor(idv, [BATCH, L], { dtype: 'int32' });
    const logits = noGrad(() => model.forward(ids));
    expect(logits.shape).toEqual([BATCH, L, 32]);
    expect(logits.dtype).toBe('float32');
    const ref = referenceForward(params, model.config, idv, BATCH, L);
    expect(Math.max(...ref.map(Math.abs))).toBeGreaterThan(0.5);
    expectClose(logits.dataSync(), ref, 1e-4, 1e-4);
    ids.dispose();
    logits.dispose();
    model.dispose();
  });

  test('gradients: finite on every parameter, equal to finite differences of the reference, same with checkpoint', () => {
    const { model, params } = tinyModel(2);
    const idv = idsData();
    const ids = tensor(idv, [BATCH, L], { dtype: 'int32' });
    const r = rng(7);
    const projData = Float64Array.from({ length: BATCH * L * 32 }, () => r() - 0.5);
    const proj = tensor(Float32Array.from(projData), [BATCH, L, 32]);
    const run = (checkpoint: boolean) => {
      model.zeroGrad();
      const logits = model.forward(ids, { checkpoint });
      const prod = ops.mul(logits, proj);
      const loss = ops.sum(prod);
      loss.backward();
      [logits, prod, loss].forEach((t) => t.dispose());
      return new Map(model.namedParameters().map(([n, p]) => [n, Float64Array.from((p.grad as Tensor).dataSync())]));
    };
    const grads = run(false);
    for (const g of grads.values()) {
      expect(g.every(Number.isFinite)).toBe(true);
      expect(g.some((v) => v !== 0)).toBe(true);
    }
    const objective = (p: RefParams) => referenceForward(p, model.config, idv, BATCH, L).reduce((s, v, i) => s + v * projData[i], 0);
    const eps = 1e-5;
    const pick = rng(3);
    for (const name of Object.keys(params)) {
      for (let k = 0; k < 2; k++) {
        const v = params[name];
        const i = Math.floor(pick() * v.length);
        const keep = v[i];
        v[i] = keep + eps;
        const up = objective(params);
        v[i] = keep - eps;
        const down = objective(params);
        v[i] = keep;
        const fd = (up - down) / (2 * eps);
        const got = (grads.get(name) as Float64Array)[i];
        if (!(Math.abs(got - fd) <= 2e-3 * Math.abs(fd) + 2e-4)) throw new Error(`${name}[${i}]: gradient ${got}, finite difference ${fd}`);
      }
    }
    const ckpt = run(true);
    for (const [name, g] of grads) expectClose(ckpt.get(name) as Float64Array, g, 1e-5, 1e-6);
    [ids, proj].forEach((t) => t.dispose());
    model.dispose();
  });

  test('bfloat16 compute: bfloat16 logits near the float32 ones, float32 master weights and gradients', () => {
    const { model } = tinyModel(4);
    const ids = tensor(idsData(), [BATCH, L], { dtype: 'int32' });
    const ref = noGrad(() => model.forward(ids));
    model.computeDtype = 'bfloat16';
    const logits = model.forward(ids);
    expect(logits.dtype).toBe('bfloat16');
    const scale = Math.max(...Array.from(ref.dataSync(), Math.abs));
    expectClose(logits.dataSync(), ref.dataSync(), 0, 0.05 * scale);
    const loss = ops.mean(logits);
    loss.backward();
    for (const p of model.parameters()) {
      expect(p.dtype).toBe('float32');
      expect(p.grad?.dtype).toBe('float32');
      expect((p.grad as Tensor).dataSync().every(Number.isFinite)).toBe(true);
    }
    [ids, ref, logits, loss].forEach((t) => t.dispose());
    model.dispose();
  });

  test("to('bfloat16') keeps A_log, D and dt_proj.bias in float32 and the head tied; the forward runs", () => {
    const m = new nn.MambaLM(TINY).to('bfloat16');
    const dtypes = Object.fromEntries(m.namedParameters().map(([n, p]) => [n, p.dtype]));
    expect(dtypes['backbone.layers.0.mixer.A_log']).toBe('float32');
    expect(dtypes['backbone.layers.1.mixer.D']).toBe('float32');
    expect(dtypes['backbone.layers.1.mixer.dt_proj.bias']).toBe('float32');
    expect(dtypes['backbone.layers.1.mixer.in_proj.weight']).toBe('bfloat16');
    expect(dtypes['backbone.embeddings.weight']).toBe('bfloat16');
    expect(m.lm_head.weight).toBe(m.backbone.embeddings.weight);
    const ids = tensor(idsData(), [BATCH, L], { dtype: 'int32' });
    const logits = noGrad(() => m.forward(ids));
    expect(logits.dtype).toBe('bfloat16');
    expect(logits.shape).toEqual([BATCH, L, 32]);
    [ids, logits].forEach((t) => t.dispose());
    m.dispose();
  });

  test('state dict round trip (with lm_head.weight and mamba_ssm key names) reproduces the logits', () => {
    const { model } = tinyModel(5);
    const ids = tensor(idsData(), [BATCH, L], { dtype: 'int32' });
    const other = new nn.MambaLM(TINY, { seed: 9 });
    const sd = { ...model.stateDict(), 'lm_head.weight': model.backbone.embeddings.weight };
    expect(other.loadStateDict(sd)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    const [a, b] = noGrad(() => [model.forward(ids), other.forward(ids)]);
    expectClose(b.dataSync(), a.dataSync(), 0, 0);
    const ssm: Record<string, Tensor> = { ...model.stateDict() };
    ssm['backbone.embedding.weight'] = ssm['backbone.embeddings.weight'];
    delete ssm['backbone.embeddings.weight'];
    const third = new nn.MambaLM(TINY, { seed: 10 });
    third.loadStateDict(ssm);
    const c = noGrad(() => third.forward(ids));
    expectClose(c.dataSync(), a.dataSync(), 0, 0);
    const wrong = randn([31, 16]);
    expectTypedError(() => third.loadStateDict({ ...ssm, 'lm_head.weight': wrong }), ShapeError, 'loadStateDict', 'lm_head.weight');
    [ids, a, b, c, wrong].forEach((t) => t.dispose());
    [model, other, third].forEach((m) => m.dispose());
  });

  test('hooks on blocks see (hidden, residual); eval/train; argument errors', () => {
    const m = new nn.MambaLM(TINY);
    const ids = tensor(idsData(), [BATCH, L], { dtype: 'int32' });
    const seen: string[] = [];
    const handles = m.backbone.layers.map((layer, i) =>
      layer.registerForwardHook((_mod, _inputs, out) => {
        const o = out as nn.MambaBlockOutput;
        seen.push(`${i}: ${o.hidden.shape} ${o.hidden.dtype} / ${o.residual.dtype}`);
      }),
    );
    m.eval();
    expect(m.backbone.layers[1].mixer.training).toBe(false);
    const y = noGrad(() => m.forward(ids, { dtype: 'bfloat16' }));
    expect(seen).toEqual(['0: 2,9,16 bfloat16 / float32', '1: 2,9,16 bfloat16 / float32']);
    handles.forEach((h) => h.remove());
    m.train();
    const f = tensor([[1, 2]]);
    expectTypedError(() => m.forward(f), DTypeError, 'MambaLM.forward', 'ids');
    const flat = tensor([1, 2], undefined, { dtype: 'int32' });
    expectTypedError(() => m.forward(flat), ShapeError, 'MambaLM.forward', 'ids');
    expectTypedError(() => m.forward(ids, { dtype: 'int32' }), DTypeError, 'MambaLM.forward', 'dtype');
    [ids, y, f, flat].forEach((t) => t.dispose());
    m.dispose();
  });
});

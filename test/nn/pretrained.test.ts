/**
 * Hugging Face checkpoint directories: `model.save` -> `MambaLM.fromPretrained` round trips (bitwise
 * parameters, equal logits, tied and untied heads, bfloat16 loading), sharded saves with an index, a
 * mamba_ssm-style directory built here (d_model / ssm_cfg config, `backbone.embedding.weight`, padded
 * vocabulary), and the typed errors for pickle-only, missing and inconsistent directories. The comparison
 * against transformers' MambaForCausalLM uses test/fixtures/hf/ once scripts/make_hf_fixtures.py has run.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { ArgumentError, FormatError, MambaError, ShapeError, Tensor, memory, nn, noGrad, readSafetensorsHeader, saveSafetensors, tensor } from '../../lib';

const TINY = { dModel: 16, nLayer: 2, vocabSize: 32, dState: 4 };

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'mamba-pretrained-'));
});
afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

let counter = 0;
const freshDir = (name: string) => path.join(root, `${name}-${counter++}`);

function ids(): Tensor {
  return tensor([[1, 5, 9, 2, 31, 0, 7], [3, 3, 8, 30, 12, 4, 6]], undefined, { dtype: 'int32' });
}

function logitsOf(model: nn.MambaLM): Float32Array {
  const x = ids();
  const out = noGrad(() => model.forward(x));
  const v = out.dataSync() as Float32Array;
  out.dispose();
  x.dispose();
  return v;
}

/** Every parameter's float32 bits, by name. */
function bits(model: nn.MambaLM): Record<string, Uint32Array> {
  return Object.fromEntries(
    model.namedParameters().map(([n, t]) => {
      const f = t.cast('float32');
      const v = new Uint32Array(Float32Array.from(f.dataSync() as Float32Array).buffer);
      f.dispose();
      return [n, v];
    }),
  );
}

/** Awaits `p`, expects it to reject with `cls`, and returns the error. */
async function rejection<T extends Error>(p: Promise<unknown>, cls: new (...a: never[]) => T): Promise<T> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(cls);
  return caught as T;
}

describe('MambaLM.save / fromPretrained', () => {
  test('a save round-trips bitwise with equal logits; the directory has the transformers layout', async () => {
    const dir = freshDir('roundtrip');
    const model = new nn.MambaLM(TINY, { seed: 3 });
    await model.save(dir);
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      model_type: 'mamba',
      architectures: ['MambaForCausalLM'],
      hidden_size: 16,
      num_hidden_layers: 2,
      vocab_size: 32,
      state_size: 4,
      intermediate_size: 32,
      time_step_rank: 1,
      conv_kernel: 4,
      tie_word_embeddings: true,
    });
    const { tensors, metadata } = await readSafetensorsHeader(path.join(dir, 'model.safetensors'));
    expect(metadata).toEqual({ format: 'pt' });
    expect(Object.keys(tensors)).not.toContain('lm_head.weight');
    expect(Object.keys(tensors).sort()).toEqual(Object.keys(model.stateDict()).sort());

    const loaded = await nn.MambaLM.fromPretrained(dir);
    expect(loaded.config).toEqual({ ...model.config, padVocabSizeMultiple: 1 });
    expect(loaded.lm_head.weight).toBe(loaded.backbone.embeddings.weight);
    expect(bits(loaded)).toEqual(bits(model));
    expect(logitsOf(loaded)).toEqual(logitsOf(model));
    model.dispose();
    loaded.dispose();
  });

  test('an untied head is saved and loaded as lm_head.weight', async () => {
    const dir = freshDir('untied');
    const model = new nn.MambaLM({ ...TINY, tieEmbeddings: false, bias: true, convBias: false }, { seed: 4 });
    await model.save(dir);
    const { tensors } = await readSafetensorsHeader(path.join(dir, 'model.safetensors'));
    expect(tensors['lm_head.weight'].shape).toEqual([32, 16]);
    const loaded = await nn.MambaLM.fromPretrained(dir);
    expect(loaded.lm_head.weight).not.toBe(loaded.backbone.embeddings.weight);
    expect(bits(loaded)).toEqual(bits(model));
    expect(logitsOf(loaded)).toEqual(logitsOf(model));
    model.dispose();
    loaded.dispose();
  });

  test('sharded: shards + index past shardSize, loaded back bitwise; a later single-file save removes them', async () => {
    const dir = freshDir('sharded');
    const model = new nn.MambaLM(TINY, { seed: 5 });
    await model.save(dir, { shardSize: 4096 });
    const files = fs.readdirSync(dir).sort();
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThan(1);
    expect(files).toContain('model.safetensors.index.json');
    expect(files).not.toContain('model.safetensors');
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(index.weight_map).sort()).toEqual(Object.keys(model.stateDict()).sort());
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards));
    const bytes = model.parameters().reduce((n, t) => n + 4 * t.size, 0);
    expect(index.metadata.total_size).toBe(bytes);

    const loaded = await nn.MambaLM.fromPretrained(dir);
    expect(bits(loaded)).toEqual(bits(model));
    loaded.dispose();

    await model.save(dir);
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']);
    model.dispose();
  });

  test('dtype and device options: bfloat16 parameters except A_log, D, dt_proj.bias', async () => {
    const dir = freshDir('bf16');
    const model = new nn.MambaLM(TINY, { seed: 6 });
    await model.save(dir);
    const loaded = await nn.MambaLM.fromPretrained(dir, { dtype: 'bfloat16', device: 'cpu' });
    const dtypes = Object.fromEntries(loaded.namedParameters().map(([n, t]) => [n, t.dtype]));
    expect(dtypes['backbone.embeddings.weight']).toBe('bfloat16');
    expect(dtypes['backbone.layers.0.mixer.in_proj.weight']).toBe('bfloat16');
    expect(dtypes['backbone.layers.1.mixer.A_log']).toBe('float32');
    expect(dtypes['backbone.layers.1.mixer.dt_proj.bias']).toBe('float32');
    // A bfloat16 model saves BF16 tensors and says so in config.json.
    const dir2 = freshDir('bf16-save');
    await loaded.save(dir2);
    expect(JSON.parse(fs.readFileSync(path.join(dir2, 'config.json'), 'utf8')).dtype).toBe('bfloat16');
    const { tensors } = await readSafetensorsHeader(path.join(dir2, 'model.safetensors'));
    expect(tensors['backbone.embeddings.weight'].dtype).toBe('BF16');
    expect(tensors['backbone.layers.0.mixer.D'].dtype).toBe('F32');
    model.dispose();
    loaded.dispose();
  });

  test('a mamba_ssm-style directory (d_model / ssm_cfg, backbone.embedding.weight, padded vocab, tied lm_head stored) loads', async () => {
    const dir = freshDir('mamba-ssm');
    fs.mkdirSync(dir);
    // vocab 30 padded to 32 by pad_vocab_size_multiple 8, as mamba_ssm does.
    const cfg = { d_model: 16, n_layer: 2, vocab_size: 30, ssm_cfg: { d_state: 4, d_conv: 3 }, rms_norm: true, residual_in_fp32: true, fused_add_norm: true, pad_vocab_size_multiple: 8, tie_embeddings: true };
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    const source = new nn.MambaLM({ ...TINY, vocabSize: 30, dConv: 3 }, { seed: 7 });
    const sd = new Map<string, Tensor>(Object.entries(source.stateDict()).map(([k, t]) => [k === 'backbone.embeddings.weight' ? 'backbone.embedding.weight' : k, t]));
    // mamba_ssm's torch.save keeps the tied head as its own entry; the loader skips it.
    sd.set('lm_head.weight', source.backbone.embeddings.weight);
    await saveSafetensors(path.join(dir, 'model.safetensors'), sd, { format: 'pt' });
    const loaded = await nn.MambaLM.fromPretrained(dir);
    expect(loaded.config.vocabSize).toBe(32);
    expect(loaded.config.dConv).toBe(3);
    expect(bits(loaded)).toEqual(bits(source));
    expect(logitsOf(loaded)).toEqual(logitsOf(source));
    source.dispose();
    loaded.dispose();
  });

  test("fields an HF config leaves out take transformers' MambaConfig defaults (use_bias true)", async () => {
    const dir = freshDir('hf-defaults');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'mamba', hidden_size: 16, num_hidden_layers: 2, vocab_size: 32, state_size: 4 }));
    const source = new nn.MambaLM({ ...TINY, bias: true }, { seed: 10 });
    await saveSafetensors(path.join(dir, 'model.safetensors'), source.stateDict(), { format: 'pt' });
    const loaded = await nn.MambaLM.fromPretrained(dir);
    expect(loaded.config).toMatchObject({ bias: true, initializerRange: 0.1, rescalePrenormResidual: false });
    expect(bits(loaded)).toEqual(bits(source));
    source.dispose();
    loaded.dispose();
  });

  test('a tied lm_head.weight of another shape is a ShapeError naming the key', async () => {
    const dir = freshDir('bad-head');
    const model = new nn.MambaLM(TINY, { seed: 8 });
    await model.save(dir);
    const sd = new Map<string, Tensor>(Object.entries(model.stateDict()));
    const head = tensor(new Float32Array(31 * 16), [31, 16]);
    sd.set('lm_head.weight', head);
    await saveSafetensors(path.join(dir, 'model.safetensors'), sd, { format: 'pt' });
    const e = await rejection(nn.MambaLM.fromPretrained(dir), ShapeError);
    expect(e.arg).toBe('lm_head.weight');
    head.dispose();
    model.dispose();
  });
});

describe('MambaLM.fromPretrained errors', () => {
  let base: string;
  let model: nn.MambaLM;
  beforeAll(async () => {
    model = new nn.MambaLM(TINY, { seed: 9 });
    base = freshDir('base');
    await model.save(base, { shardSize: 4096 });
  });
  afterAll(() => model.dispose());

  /** A copy of the sharded save to break. */
  function copy(): string {
    const dir = freshDir('broken');
    fs.cpSync(base, dir, { recursive: true });
    return dir;
  }
  const indexOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
  const writeIndex = (dir: string, index: unknown) => fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index));

  test('a directory with only pytorch_model.bin: FormatError saying how to convert', async () => {
    const dir = freshDir('pickle');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(base, 'config.json'), path.join(dir, 'config.json'));
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'PK\u0003\u0004 not really a zip');
    const e = await rejection(nn.MambaLM.fromPretrained(dir), FormatError);
    expect(e.file).toBe(path.join(dir, 'pytorch_model.bin'));
    expect(e.message).toMatch(/pytorch_model\.bin/);
    expect(e.message).toMatch(/save_pretrained\(.*safe_serialization=True\)/);
    expect(e.message).toMatch(/safetensors\.torch import save_file/);
  });

  test('a missing directory, a file instead of one, a missing or bad config.json, no weights', async () => {
    const missing = path.join(root, 'does-not-exist');
    let e: MambaError = await rejection(nn.MambaLM.fromPretrained(missing), ArgumentError);
    expect(e.message).toContain(missing);
    expect(e.arg).toBe('dir');
    e = await rejection(nn.MambaLM.fromPretrained(path.join(base, 'config.json')), ArgumentError);
    expect(e.message).toContain('not a directory');

    const noConfig = copy();
    fs.rmSync(path.join(noConfig, 'config.json'));
    const f = await rejection(nn.MambaLM.fromPretrained(noConfig), FormatError);
    expect(f.file).toBe(path.join(noConfig, 'config.json'));

    const badConfig = copy();
    fs.writeFileSync(path.join(badConfig, 'config.json'), '{"hidden_size": 16,');
    expect((await rejection(nn.MambaLM.fromPretrained(badConfig), FormatError)).message).toMatch(/not valid JSON/);
    fs.writeFileSync(path.join(badConfig, 'config.json'), '{"model_type": "llama"}');
    expect((await rejection(nn.MambaLM.fromPretrained(badConfig), FormatError)).message).toMatch(/not a Mamba config/);

    const empty = freshDir('empty');
    fs.mkdirSync(empty);
    fs.copyFileSync(path.join(base, 'config.json'), path.join(empty, 'config.json'));
    expect((await rejection(nn.MambaLM.fromPretrained(empty), FormatError)).message).toMatch(/neither model\.safetensors nor model\.safetensors\.index\.json/);
  });

  test('a missing shard: FormatError naming the file', async () => {
    const dir = copy();
    const shard = indexOf(dir).weight_map['backbone.norm_f.weight'];
    fs.rmSync(path.join(dir, shard));
    const e = await rejection(nn.MambaLM.fromPretrained(dir), FormatError);
    expect(e.file).toBe(path.join(dir, shard));
  });

  test('a weight_map entry its shard does not hold, and a shard tensor the weight_map leaves out: FormatError naming the key', async () => {
    const dir = copy();
    const index = indexOf(dir);
    const key = 'backbone.layers.1.mixer.D';
    const other = Object.values(index.weight_map).find((f) => f !== index.weight_map[key]) as string;
    index.weight_map[key] = other;
    writeIndex(dir, index);
    const e = await rejection(nn.MambaLM.fromPretrained(dir), FormatError);
    expect(e.tensor).toBe(key);
    expect(e.file).toBe(path.join(dir, other));

    const dir2 = copy();
    const index2 = indexOf(dir2);
    const file = index2.weight_map[key];
    delete index2.weight_map[key];
    writeIndex(dir2, index2);
    const e2 = await rejection(nn.MambaLM.fromPretrained(dir2), FormatError);
    expect(e2.tensor).toBe(key);
    expect(e2.file).toBe(path.join(dir2, file));
  });

  test('shard names that leave the directory are refused', async () => {
    const dir = copy();
    const index = indexOf(dir);
    index.weight_map['backbone.norm_f.weight'] = '../model.safetensors';
    writeIndex(dir, index);
    const e = await rejection(nn.MambaLM.fromPretrained(dir), FormatError);
    expect(e.tensor).toBe('backbone.norm_f.weight');
  });

  test('a shape mismatch is a ShapeError naming the key; keys the model lacks or misses follow strict', async () => {
    const dir = freshDir('shape');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(base, 'config.json'), path.join(dir, 'config.json'));
    const sd = new Map<string, Tensor>(Object.entries(model.stateDict()));
    const wrong = tensor(new Float32Array(17), [17]);
    sd.set('backbone.norm_f.weight', wrong);
    await saveSafetensors(path.join(dir, 'model.safetensors'), sd, { format: 'pt' });
    const e = await rejection(nn.MambaLM.fromPretrained(dir), ShapeError);
    expect(e.arg).toBe('backbone.norm_f.weight');
    expect(e.message).toContain('[17]');
    wrong.dispose();

    const extra = tensor(new Float32Array(2), [2]);
    const sd2 = new Map<string, Tensor>(Object.entries(model.stateDict()));
    sd2.delete('backbone.layers.0.mixer.D');
    sd2.set('backbone.extra', extra);
    await saveSafetensors(path.join(dir, 'model.safetensors'), sd2, { format: 'pt' });
    const e2 = await rejection(nn.MambaLM.fromPretrained(dir), ArgumentError);
    expect(e2.message).toMatch(/missing keys: backbone\.layers\.0\.mixer\.D; unexpected keys: backbone\.extra/);
    const loose = await nn.MambaLM.fromPretrained(dir, { strict: false });
    const a = loose.backbone.layers[1].mixer.in_proj.weight.dataSync();
    expect(a).toEqual(model.backbone.layers[1].mixer.in_proj.weight.dataSync());
    loose.dispose();
    extra.dispose();
  });

  test('bad arguments are typed errors', async () => {
    await rejection(nn.MambaLM.fromPretrained(''), ArgumentError);
    await rejection(nn.MambaLM.fromPretrained(base, { dtype: 'int32' }), MambaError);
    await rejection(nn.MambaLM.fromPretrained(base, { strict: 'yes' as unknown as boolean }), ArgumentError);
    await rejection(model.save(freshDir('x'), { shardSize: 0 }), ArgumentError);
  });

  test('no tensor outlives a load, a failed load or a save', async () => {
    const before = memory().numTensors;
    const loaded = await nn.MambaLM.fromPretrained(base);
    expect(memory().numTensors).toBe(before + loaded.parameters().length);
    await loaded.save(freshDir('leak'), { shardSize: 2048 });
    loaded.dispose();
    const dir = copy();
    fs.writeFileSync(path.join(dir, indexOf(dir).weight_map['backbone.norm_f.weight']), 'truncated');
    await rejection(nn.MambaLM.fromPretrained(dir), FormatError);
    expect(memory().numTensors).toBe(before);
  });
});

/**
 * Hugging Face checkpoint directories for `MambaLM`: `loadPretrained` reads a transformers
 * `MambaForCausalLM` directory (config.json + model.safetensors, or shards listed by
 * model.safetensors.index.json) or a mamba_ssm-style one (config.json with d_model / n_layer / ssm_cfg,
 * `backbone.embedding.weight`), and `savePretrained` writes the transformers layout, which
 * `MambaForCausalLM.from_pretrained` reads back. `MambaLM.fromPretrained` and `model.save` call these.
 *
 * Directories are untrusted input, so every header is read and checked against the model (each
 * weight_map entry in its shard, no key left unmapped, shapes, float dtypes, shard names that stay inside
 * the directory) before any tensor data is read; the first problem is a typed error naming the file and
 * the key. Tensor data is then read one shard at a time, so memory stays bounded by the largest shard's
 * tensors on top of the model. pytorch_model.bin (a pickle, which can run code when loaded) is refused
 * with a message that says how to convert it. Docs: docs/model.md.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

import { DType, Device, checkDType, checkDevice, dtypeSize } from '../dtype';
import { ArgumentError, DTypeError, FormatError, ShapeError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from '../io/safetensors';
import { Tensor } from '../tensor';
import { MambaConfig, MambaLM, parseMambaConfig } from './mamba';

/** Options of `MambaLM.fromPretrained`. */
export interface FromPretrainedOptions {
  /** Where the parameters live (default 'cpu'). */
  device?: Device;
  /** Parameter dtype (default float32); A_log, D and dt_proj.bias stay float32 as with `model.to(dtype)`. */
  dtype?: DType;
  /** Throw on checkpoint keys the model lacks and model keys the checkpoint lacks (default true). */
  strict?: boolean;
}

/** Options of `model.save`. */
export interface SavePretrainedOptions {
  /** Largest shard in bytes before the weights are split into model-0000i-of-0000n.safetensors files (default 5 GB, as transformers). */
  shardSize?: number;
}

const CONFIG = 'config.json';
const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';
const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;
const DEFAULT_SHARD_SIZE = 5_000_000_000;

const CONVERT_HINT =
  'convert it to safetensors in Python, e.g.\n' +
  '  from transformers import MambaForCausalLM; MambaForCausalLM.from_pretrained(src).save_pretrained(dst, safe_serialization=True)\n' +
  'or, for a mamba_ssm checkpoint:\n' +
  "  import torch; from safetensors.torch import save_file; save_file(torch.load(f'{src}/pytorch_model.bin', map_location='cpu'), f'{dst}/model.safetensors')\n" +
  'and copy config.json next to it';

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

async function readJson(file: string, fn: string): Promise<unknown> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new FormatError(`${fn}: ${file} does not exist`, { fn, file });
    throw e;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(`${fn}: ${file} is not valid JSON (${(e as Error).message})`, { fn, file });
  }
}

/** The shard files of a directory and the keys each holds, from model.safetensors or the index. */
async function findWeights(dir: string, fn: string): Promise<Map<string, string[] | undefined>> {
  const single = path.join(dir, SINGLE);
  if (await exists(single)) return new Map([[single, undefined]]);
  const indexFile = path.join(dir, INDEX);
  if (!(await exists(indexFile))) {
    const bin = path.join(dir, 'pytorch_model.bin');
    if (await exists(bin) || (await exists(path.join(dir, 'pytorch_model.bin.index.json'))))
      throw new FormatError(`${fn}: ${dir} has only PyTorch pickle weights (pytorch_model.bin), which mamba-node does not read (unpickling can run code); ${CONVERT_HINT}`, { fn, file: bin });
    throw new FormatError(`${fn}: ${dir} has neither ${SINGLE} nor ${INDEX}`, { fn, file: single });
  }
  const index = await readJson(indexFile, fn);
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (index === null || typeof index !== 'object' || Array.isArray(index) || map === null || typeof map !== 'object' || Array.isArray(map))
    throw new FormatError(`${fn}: ${indexFile} has no 'weight_map' object`, { fn, file: indexFile });
  const shards = new Map<string, string[]>();
  for (const [key, name] of Object.entries(map as Record<string, unknown>)) {
    // Shard names come from an untrusted file: only plain names in the directory itself.
    if (typeof name !== 'string' || name !== path.basename(name) || name === '.' || name === '..' || !name.endsWith('.safetensors'))
      throw new FormatError(`${fn}: ${indexFile} maps '${key}' to ${JSON.stringify(name)}, not a .safetensors file name in the directory`, { fn, file: indexFile, tensor: key });
    const file = path.join(dir, name);
    const list = shards.get(file);
    if (list) list.push(key);
    else shards.set(file, [key]);
  }
  if (shards.size === 0) throw new FormatError(`${fn}: ${indexFile} has an empty 'weight_map'`, { fn, file: indexFile });
  for (const file of shards.keys())
    if (!(await exists(file))) throw new FormatError(`${fn}: shard ${file} named in ${indexFile} does not exist`, { fn, file });
  return shards;
}

/** The model's name for a checkpoint key (mamba_ssm's embedding key renamed). */
function modelKey(key: string): string {
  return key === 'backbone.embedding.weight' ? 'backbone.embeddings.weight' : key;
}

/**
 * Loads a Hugging Face or mamba_ssm Mamba checkpoint directory (see the file comment). The model is built
 * from config.json, checked against every header, then filled shard by shard.
 *
 * @example
 * ```ts
 * const model = await loadPretrained('mamba-130m-hf', { device: 'cuda', dtype: 'bfloat16' });
 * ```
 */
export async function loadPretrained(dir: string, options: FromPretrainedOptions = {}): Promise<MambaLM> {
  const fn = 'MambaLM.fromPretrained';
  if (typeof dir !== 'string' || dir.length === 0) throw new ArgumentError(`${fn}: expected a directory path for argument 'dir'`, { fn, arg: 'dir' });
  if (options === null || typeof options !== 'object') throw new ArgumentError(`${fn}: expected an object for argument 'options'`, { fn, arg: 'options' });
  const device = checkDevice(options.device ?? 'cpu', fn, 'device');
  const dtype = options.dtype === undefined ? undefined : checkDType(options.dtype, fn, 'dtype');
  if (dtype === 'int32') throw new DTypeError(`${fn}: parameters must have a float dtype, not int32`, { fn, arg: 'dtype' });
  const strict = options.strict ?? true;
  if (typeof strict !== 'boolean') throw new ArgumentError(`${fn}: expected a boolean for option 'strict'`, { fn, arg: 'strict' });

  let stat;
  try {
    stat = await fsp.stat(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ArgumentError(`${fn}: directory ${dir} does not exist`, { fn, arg: 'dir' });
    throw e;
  }
  if (!stat.isDirectory()) throw new ArgumentError(`${fn}: ${dir} is not a directory`, { fn, arg: 'dir' });

  const configFile = path.join(dir, CONFIG);
  const json = await readJson(configFile, fn);
  let config: MambaConfig;
  try {
    config = parseMambaConfig(json);
  } catch (e) {
    if (e instanceof ArgumentError) throw new FormatError(`${fn}: ${configFile}: ${e.message}`, { fn, file: configFile });
    throw e;
  }
  const shards = await findWeights(dir, fn);

  const model = new MambaLM(config, { device });
  try {
    if (dtype) model.to(dtype);
    const params = new Map(model.namedParameters().map(([n, t]) => [n, t.shape]));
    const tiedHead = config.tieEmbeddings ? [config.vocabSize, config.dModel] : undefined;
    const seen = new Map<string, string>();
    const unexpected: string[] = [];
    const plan: [string, string[]][] = [];
    // Every header first: a bad key or shape is reported before any tensor data is read.
    for (const [file, listed] of shards) {
      const { tensors } = await readSafetensorsHeader(file);
      const names = Object.keys(tensors);
      if (listed) {
        for (const key of listed)
          if (!(key in tensors)) throw new FormatError(`${fn}: ${INDEX} maps '${key}' to ${file}, which does not hold it`, { fn, file, tensor: key });
        const inIndex = new Set(listed);
        for (const key of names)
          if (!inIndex.has(key)) throw new FormatError(`${fn}: '${key}' in ${file} is not in the weight_map of ${INDEX}`, { fn, file, tensor: key });
      }
      const load: string[] = [];
      for (const key of names) {
        const info = tensors[key];
        const name = modelKey(key);
        const want = params.get(name) ?? (name === 'lm_head.weight' ? tiedHead : undefined);
        if (!want) {
          unexpected.push(key);
          continue;
        }
        if (info.shape.length !== want.length || info.shape.some((s, i) => s !== want[i]))
          throw new ShapeError(`${fn}: expected shape [${want.join(', ')}] for '${key}' but ${file} has [${info.shape.join(', ')}]`, { fn, arg: key });
        if (info.dtype === 'I32' || info.dtype === 'I64')
          throw new FormatError(`${fn}: '${key}' in ${file} is ${info.dtype}; parameters must be floats`, { fn, file, tensor: key });
        const other = seen.get(name);
        if (other !== undefined) throw new FormatError(`${fn}: '${key}' in ${file} repeats a tensor already in ${other}`, { fn, file, tensor: key });
        seen.set(name, file);
        load.push(key);
      }
      plan.push([file, load]);
    }
    // A tied head duplicates the embedding: read it only when the embedding itself is absent.
    const skipHead = tiedHead !== undefined && seen.has('backbone.embeddings.weight');
    const missing = [...params.keys()].filter((k) => !seen.has(k) && !(k === 'backbone.embeddings.weight' && seen.has('lm_head.weight')));
    if (strict && (missing.length || unexpected.length)) {
      const parts = [];
      if (missing.length) parts.push(`missing keys: ${missing.join(', ')}`);
      if (unexpected.length) parts.push(`unexpected keys: ${unexpected.join(', ')}`);
      throw new ArgumentError(`${fn}: the checkpoint in ${dir} does not match its config (${parts.join('; ')})`, { fn, arg: 'dir' });
    }
    for (const [file, keys] of plan) {
      const names = keys.filter((k) => !(skipHead && k === 'lm_head.weight'));
      if (names.length === 0) continue;
      const loaded = await loadSafetensors(file, { device, names });
      try {
        model.loadStateDict(new Map([...loaded].map(([k, t]) => [modelKey(k), t])), { strict: false });
      } finally {
        for (const t of loaded.values()) t.dispose();
      }
    }
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** transformers' MambaConfig (config.json) for a configuration: every field `parseMambaConfig` reads. */
export function toHfConfig(config: MambaConfig, dtype: DType = 'float32'): Record<string, unknown> {
  return {
    architectures: ['MambaForCausalLM'],
    model_type: 'mamba',
    vocab_size: config.vocabSize,
    hidden_size: config.dModel,
    intermediate_size: config.dInner,
    num_hidden_layers: config.nLayer,
    state_size: config.dState,
    expand: config.expand,
    conv_kernel: config.dConv,
    time_step_rank: config.dtRank,
    use_bias: config.bias,
    use_conv_bias: config.convBias,
    hidden_act: 'silu',
    layer_norm_epsilon: config.normEps,
    residual_in_fp32: config.residualInFp32,
    tie_word_embeddings: config.tieEmbeddings,
    initializer_range: config.initializerRange,
    rescale_prenorm_residual: config.rescalePrenormResidual,
    time_step_min: config.dtMin,
    time_step_max: config.dtMax,
    time_step_floor: config.dtInitFloor,
    time_step_init_scheme: config.dtInit,
    time_step_scale: config.dtScale,
    bos_token_id: 0,
    eos_token_id: 0,
    pad_token_id: 0,
    use_cache: true,
    use_mambapy: false,
    dtype,
  };
}

/**
 * Writes `model` as a transformers `MambaForCausalLM` directory: config.json and model.safetensors, or
 * model-0000i-of-0000n.safetensors shards plus model.safetensors.index.json when the weights exceed
 * `shardSize`. Keys are the transformers keys; a tied lm_head.weight is left out, as transformers does.
 * Every file is written atomically; the index (or the single file) is written last, and files of an
 * earlier save in the other layout are removed afterwards so they cannot shadow the new one.
 *
 * @example
 * ```ts
 * await savePretrained(model, 'out/my-mamba', { shardSize: 2_000_000_000 });
 * ```
 */
export async function savePretrained(model: MambaLM, dir: string, options: SavePretrainedOptions = {}): Promise<void> {
  const fn = 'MambaLM.save';
  if (!(model instanceof MambaLM)) throw new ArgumentError(`${fn}: expected a MambaLM`, { fn, arg: 'model' });
  if (typeof dir !== 'string' || dir.length === 0) throw new ArgumentError(`${fn}: expected a directory path for argument 'dir'`, { fn, arg: 'dir' });
  if (options === null || typeof options !== 'object') throw new ArgumentError(`${fn}: expected an object for argument 'options'`, { fn, arg: 'options' });
  const shardSize = options.shardSize ?? DEFAULT_SHARD_SIZE;
  if (typeof shardSize !== 'number' || !Number.isFinite(shardSize) || shardSize <= 0)
    throw new ArgumentError(`${fn}: expected a positive number of bytes for option 'shardSize' but received ${JSON.stringify(shardSize)}`, { fn, arg: 'shardSize' });
  await fsp.mkdir(dir, { recursive: true });

  const params = model.namedParameters();
  const sizeOf = (t: Tensor) => t.size * dtypeSize(t.dtype);
  const total = params.reduce((n, [, t]) => n + sizeOf(t), 0);
  const groups: [string, Tensor][][] = [[]];
  let current = 0;
  for (const entry of params) {
    const size = sizeOf(entry[1]);
    // Greedy in parameter order, as transformers splits: a tensor larger than shardSize gets a shard of its own.
    if (current > 0 && current + size > shardSize) {
      groups.push([]);
      current = 0;
    }
    groups[groups.length - 1].push(entry);
    current += size;
  }
  const embedDtype = model.backbone.embeddings.weight.dtype;
  await writeFileAtomic(path.join(dir, CONFIG), JSON.stringify(toHfConfig(model.config, embedDtype), null, 2) + '\n');

  const written = new Set<string>();
  if (groups.length === 1) {
    await saveSafetensors(path.join(dir, SINGLE), new Map(groups[0]), { format: 'pt' });
    written.add(SINGLE);
  } else {
    const n = String(groups.length).padStart(5, '0');
    const weightMap: Record<string, string> = {};
    for (let i = 0; i < groups.length; i++) {
      const name = `model-${String(i + 1).padStart(5, '0')}-of-${n}.safetensors`;
      await saveSafetensors(path.join(dir, name), new Map(groups[i]), { format: 'pt' });
      for (const [key] of groups[i]) weightMap[key] = name;
      written.add(name);
    }
    const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
    await writeFileAtomic(path.join(dir, INDEX), JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2) + '\n');
    written.add(INDEX);
  }
  for (const name of await fsp.readdir(dir))
    if ((name === SINGLE || name === INDEX || SHARD_NAME.test(name)) && !written.has(name)) await fsp.rm(path.join(dir, name), { force: true });
}

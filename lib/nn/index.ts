/**
 * Modules (exported from the package as `nn`): the `Module` base class, the layers (Linear, Embedding,
 * RMSNorm, Conv1d), the Mamba mixer, block, backbone and language model with its configuration, and the
 * differentiable helpers they use (recorded cast and reshape, activation checkpointing). See docs/model.md.
 *
 * @example
 * ```ts
 * import { nn, tensor } from 'mamba-node';
 * const model = new nn.MambaLM(nn.mambaConfig({ dModel: 64, nLayer: 2, vocabSize: 256 }), { seed: 1 });
 * const logits = model.forward(tensor([[1, 2, 3]], undefined, { dtype: 'int32' }));   // (1, 3, 256)
 * ```
 */
export { Module } from './module';
export type { ForwardHook, HookHandle, LoadStateDictOptions, LoadStateDictResult, StateDict } from './module';
export { Linear, Embedding, RMSNorm, Conv1d, parameter } from './layers';
export type { LayerOptions, LinearOptions } from './layers';
export { castRecorded, reshapeRecorded, checkpoint } from './functional';
export {
  MambaLM,
  MambaBackbone,
  MambaBlock,
  MambaMixer,
  mambaConfig,
  parseMambaConfig,
  countMambaParameters,
  parameterSeed,
} from './mamba';
export type { MambaConfig, MambaConfigInput, MambaInitOptions, MambaForwardOptions, MambaBlockOutput } from './mamba';
export { loadPretrained, savePretrained, toHfConfig } from './pretrained';
export type { FromPretrainedOptions, SavePretrainedOptions } from './pretrained';

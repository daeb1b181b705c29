/** Autograd: grad mode, the graph (recordOp), the backward engine, custom functions and gradcheck. */
export { isGradEnabled, noGrad, enableGrad } from './grad_mode';
export { recordOp, Node } from './node';
export type { BackwardFn, Edge } from './node';
export { backward } from './engine';
export type { BackwardOptions } from './engine';
export { defineFunction } from './function';
export type { FunctionContext, FunctionDefinition } from './function';
export { gradcheck } from './gradcheck';
export type { GradcheckOptions, GradcheckResult } from './gradcheck';

/**
 * Custom differentiable ops defined in TypeScript: `defineFunction({ forward, backward })` returns a
 * function whose forward runs with grad recording off and whose backward is recorded as one autograd
 * node — the way users add their own fused kernels (the selective scan op uses the same path).
 *
 * @example
 * ```ts
 * const cube = defineFunction({
 *   forward(ctx, x: Tensor) { ctx.saveForBackward(x); return ops.mul(ops.square(x), x); },
 *   backward(ctx, g) { const [x] = ctx.saved; return [ops.mul(ops.mul(g, ops.square(x)), 3)]; },
 * });
 * const y = cube(x);
 * ```
 */
import { ArgumentError } from '../errors';
import { Tensor } from '../tensor';
import { noGrad } from './grad_mode';
import { recordOp } from './node';

/** Per-call state shared by forward and backward. Extra fields may hold non-tensor values. */
export interface FunctionContext {
  /** Keeps tensors for backward (as separate handles, released after backward). */
  saveForBackward(...tensors: Tensor[]): void;
  /** The saved tensors, in backward. */
  readonly saved: Tensor[];
  [key: string]: unknown;
}

export interface FunctionDefinition<I extends unknown[], O extends Tensor | Tensor[]> {
  /** Computes the outputs (grad recording is off here). */
  forward(ctx: FunctionContext, ...inputs: I): O;
  /**
   * Gradients of each input (null/undefined for inputs without one, e.g. numbers), given the gradient of
   * each output (null where none flows). Runs with grad recording off; must not dispose its arguments.
   */
  backward(ctx: FunctionContext, ...grads: (Tensor | null)[]): (Tensor | null | undefined)[];
  /** Name shown in errors. */
  name?: string;
}

/** Builds a differentiable function from a forward and a backward. */
export function defineFunction<I extends unknown[], O extends Tensor | Tensor[]>(def: FunctionDefinition<I, O>): (...inputs: I) => O {
  if (!def || typeof def.forward !== 'function' || typeof def.backward !== 'function')
    throw new ArgumentError("defineFunction: expected an object with 'forward' and 'backward' functions", { fn: 'defineFunction', arg: 'definition' });
  const name = def.name ?? 'customFunction';
  return (...inputs: I): O => {
    const toSave: Tensor[] = [];
    let saved: Tensor[] = [];
    const ctx: FunctionContext = {
      saveForBackward: (...ts: Tensor[]) => {
        for (const t of ts) {
          if (!(t instanceof Tensor)) throw new ArgumentError(`${name}: saveForBackward takes tensors`, { fn: name, arg: 'saveForBackward' });
          toSave.push(t);
        }
      },
      get saved() {
        return saved;
      },
    };
    const result = noGrad(() => def.forward(ctx, ...inputs));
    const outputs: Tensor[] = Array.isArray(result) ? result : [result as Tensor];
    if (!outputs.every((o) => o instanceof Tensor))
      throw new ArgumentError(`${name}: forward must return a Tensor or an array of Tensors`, { fn: name, arg: 'forward' });
    const tensorInputs = inputs.map((x) => (x instanceof Tensor ? x : null));
    recordOp(
      name,
      tensorInputs,
      outputs,
      (grads, savedHandles) => {
        saved = savedHandles;
        try {
          return def.backward(ctx, ...grads);
        } finally {
          saved = [];
        }
      },
      toSave,
    );
    return result;
  };
}

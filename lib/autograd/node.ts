/**
 * The autograd graph: a `Node` per recorded op holding, for each input, where its gradient goes (the
 * producing node and output slot, or the leaf tensor), the tensors saved for backward (separate handles
 * over the same storage, so callers may dispose theirs), and the backward closure. Outputs point back at
 * their node (`tensor.gradFn`, `tensor.outputIndex`). `recordOp` is the one entry point ops use.
 */
import { AutogradError } from '../errors';
import { Tensor } from '../tensor';
import { isGradEnabled } from './grad_mode';

/**
 * backward(grads of the outputs (null where no gradient flows), saved tensors) -> one gradient per input
 * (null/undefined where none). Runs with grad mode off; must not dispose its arguments.
 */
export type BackwardFn = (grads: (Tensor | null)[], saved: Tensor[]) => (Tensor | null | undefined)[];

/** Where an input's gradient goes. */
export interface Edge {
  /** The node that produced the input (non-leaf), with its output slot. */
  node: Node | null;
  index: number;
  /** The input itself when it is a leaf that requires grad. */
  leaf: Tensor | null;
  shape: readonly number[];
  dtype: Tensor['dtype'];
}

export class Node {
  released = false;
  /** Outputs, weakly: for their hooks and retainGrad; the graph does not keep them alive. */
  readonly outputs: WeakRef<Tensor>[];
  readonly outputShapes: (readonly number[])[];

  constructor(
    readonly name: string,
    readonly edges: (Edge | null)[],
    outputs: Tensor[],
    private backwardFn: BackwardFn | null,
    private saved: Tensor[],
  ) {
    this.outputs = outputs.map((t) => new WeakRef(t));
    this.outputShapes = outputs.map((t) => t.shape);
  }

  /** Calls the op's backward. Throws AutogradError after release (graph freed by an earlier backward). */
  apply(grads: (Tensor | null)[]): (Tensor | null | undefined)[] {
    if (this.released || !this.backwardFn)
      throw new AutogradError(
        `backward: the graph through '${this.name}' was freed by an earlier backward; pass { retainGraph: true } to the first backward to run it twice`,
        { fn: 'backward' },
      );
    return this.backwardFn(grads, this.saved);
  }

  /** Frees what the node saved; a later backward through it throws. */
  release(): void {
    if (this.released) return;
    this.released = true;
    for (const t of this.saved) t.dispose();
    this.saved = [];
    this.backwardFn = null;
  }
}

/**
 * Records one op in the graph when grad mode is on and any input requires grad; otherwise does nothing.
 * Marks float `outputs` as requiring grad with this node as their `gradFn`. `saved` tensors are kept as
 * separate handles until the node is released after backward.
 */
export function recordOp(
  name: string,
  inputs: readonly (Tensor | null | undefined)[],
  outputs: Tensor[],
  backward: BackwardFn,
  saved: readonly Tensor[] = [],
): void {
  if (!isGradEnabled()) return;
  if (!inputs.some((t) => t instanceof Tensor && t.requiresGrad)) return;
  const edges = inputs.map((t): Edge | null => {
    if (!(t instanceof Tensor) || !t.requiresGrad) return null;
    return { node: t.gradFn, index: t.outputIndex, leaf: t.gradFn ? null : t, shape: t.shape, dtype: t.dtype };
  });
  const node = new Node(name, edges, outputs, backward, saved.map((t) => t.share()));
  outputs.forEach((o, i) => {
    if (o.dtype === 'int32') return;
    o.setGradFn(node, i);
  });
}

/**
 * The backward pass: seeds the roots' gradients, walks the graph in reverse topological order (every
 * consumer of a node's outputs before the node), runs tensor hooks, calls each node's backward with grad
 * mode off, accumulates into producing nodes' output slots and into leaves' `.grad`, and releases each
 * node's saved tensors unless `retainGraph`. Intermediate gradients are disposed as soon as they are used;
 * leaf and retained gradients are kept out of any `tidy()` scope.
 */
import { AutogradError, ShapeError } from '../errors';
import { full } from '../creation';
import { add } from '../ops/elementwise';
import { Tensor } from '../tensor';
import { noGrad } from './grad_mode';
import { Node } from './node';

export interface BackwardOptions {
  /** Keep saved tensors so the graph can be run backward again. Default false. */
  retainGraph?: boolean;
}

/** a + b where either may be absent; consumes neither argument. */
function sum(a: Tensor | null, b: Tensor): Tensor {
  return a ? add(a, b) : b.share();
}

function runHooks(t: Tensor, g: Tensor): Tensor {
  let cur = g;
  for (const hook of t.hooks()) {
    const r = hook(cur);
    if (r instanceof Tensor && r !== cur) {
      if (!r.shape.every((s, i) => s === cur.shape[i]) || r.rank !== cur.rank)
        throw new ShapeError(`backward: a hook returned shape [${r.shape.join(', ')}] for a gradient of shape [${cur.shape.join(', ')}]`, {
          fn: 'registerHook',
        });
      if (cur !== g) cur.dispose();
      cur = r.share();
    }
  }
  return cur;
}

function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  const hooked = runHooks(leaf, g);
  const next = sum(leaf.grad, hooked);
  if (hooked !== g) hooked.dispose();
  leaf.setGrad(next);
}

/** Nodes reachable from `roots`, consumers before producers. */
function topoOrder(roots: Node[]): Node[] {
  const visited = new Set<Node>();
  const post: Node[] = [];
  for (const root of roots) {
    if (visited.has(root)) continue;
    visited.add(root);
    const stack: [Node, number][] = [[root, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [node, i] = top;
      if (i < node.edges.length) {
        top[1] = i + 1;
        const next = node.edges[i]?.node;
        if (next && !visited.has(next)) {
          visited.add(next);
          stack.push([next, 0]);
        }
      } else {
        post.push(node);
        stack.pop();
      }
    }
  }
  return post.reverse();
}

/**
 * Backpropagates from `roots`. `grads[i]` is the gradient of `roots[i]` (default: ones for a
 * single-element root). Leaves that require grad receive `.grad` (accumulated across calls).
 */
export function backward(roots: Tensor[], grads: (Tensor | undefined)[] = [], options: BackwardOptions = {}): void {
  const fn = 'backward';
  noGrad(() => {
    const slots = new Map<Node, (Tensor | null)[]>();
    const slotOf = (node: Node) => {
      let s = slots.get(node);
      if (!s) {
        s = node.outputShapes.map(() => null);
        slots.set(node, s);
      }
      return s;
    };
    const rootNodes: Node[] = [];
    roots.forEach((r, i) => {
      if (!r.requiresGrad) throw new AutogradError(`${fn}: the tensor does not require grad and has no grad_fn`, { fn, arg: 'tensor' });
      let g = grads[i];
      if (g === undefined) {
        if (r.size !== 1)
          throw new AutogradError(`${fn}: a gradient can be created implicitly only for single-element outputs (shape [${r.shape.join(', ')}])`, {
            fn,
            arg: 'grad',
          });
        g = full(r.shape, 1, { dtype: r.dtype, device: r.device });
      } else {
        if (!(g instanceof Tensor)) throw new AutogradError(`${fn}: expected a Tensor for argument 'grad'`, { fn, arg: 'grad' });
        if (g.rank !== r.rank || !g.shape.every((s, k) => s === r.shape[k]))
          throw new ShapeError(`${fn}: argument 'grad' has shape [${g.shape.join(', ')}] but the tensor has [${r.shape.join(', ')}]`, {
            fn,
            arg: 'grad',
          });
        g = g.share();
      }
      if (!r.gradFn) {
        accumulateLeaf(r, g);
        g.dispose();
        return;
      }
      const s = slotOf(r.gradFn);
      const prev = s[r.outputIndex];
      s[r.outputIndex] = sum(prev, g);
      prev?.dispose();
      g.dispose();
      rootNodes.push(r.gradFn);
    });

    try {
      for (const node of topoOrder(rootNodes)) {
        const gradsIn = slotOf(node);
        slots.delete(node);
        // Hooks and retainGrad of the outputs, now that their gradients are complete.
        node.outputs.forEach((ref, i) => {
          const t = ref.deref();
          const g = gradsIn[i];
          if (!t || !g) return;
          const hooked = runHooks(t, g);
          if (hooked !== g) {
            g.dispose();
            gradsIn[i] = hooked;
          }
          if (t.retainsGrad) t.setGrad(sum(t.grad, hooked));
        });
        let out: (Tensor | null | undefined)[] = [];
        try {
          if (gradsIn.some((g) => g)) out = node.apply(gradsIn);
          node.edges.forEach((edge, j) => {
            const g = out[j];
            if (!edge || !g) return;
            if (g.rank !== edge.shape.length || !g.shape.every((s, k) => s === edge.shape[k]))
              throw new AutogradError(
                `${fn}: '${node.name}' returned a gradient of shape [${g.shape.join(', ')}] for an input of shape [${edge.shape.join(', ')}]`,
                { fn },
              );
            const typed = g.dtype === edge.dtype ? g.share() : g.cast(edge.dtype);
            if (edge.node) {
              const s = slotOf(edge.node);
              const prev = s[edge.index];
              s[edge.index] = sum(prev, typed);
              prev?.dispose();
            } else if (edge.leaf) {
              accumulateLeaf(edge.leaf, typed);
            }
            typed.dispose();
          });
        } finally {
          // A backward may hand back its incoming gradient itself; each tensor is disposed once.
          new Set([...gradsIn, ...out].filter((g): g is Tensor => g instanceof Tensor)).forEach((g) => g.dispose());
        }
        if (!options.retainGraph) node.release();
      }
    } finally {
      // After an error, gradients still waiting in slots would leak.
      for (const s of slots.values()) s.forEach((g) => g?.dispose());
    }
  });
}

// The autograd engine: accumulation across uses, retainGraph, hooks, retainGrad, detach, noGrad,
// zeroGrad, defineFunction, typed errors, and no leaked tensors after backward.
import { AutogradError, DTypeError, Tensor, defineFunction, memory, noGrad, ops, tensor, tidy } from '../../lib';

const vals = (t: Tensor | null) => Array.from((t as Tensor).dataSync());

test('gradients accumulate across uses of a tensor and across backward calls', () => {
  const x = tensor([1, 2, 3]).requiresGrad_();
  tidy(() => ops.sum(ops.add(ops.mul(x, x), x)).backward()); // d/dx (x^2 + x) = 2x + 1
  expect(vals(x.grad)).toEqual([3, 5, 7]);
  tidy(() => ops.sum(ops.mul(x, 2)).backward());
  expect(vals(x.grad)).toEqual([5, 7, 9]);
  x.zeroGrad();
  expect(x.grad).toBeNull();
  x.dispose();
});

test('a second backward through a freed graph throws AutogradError; retainGraph allows it', () => {
  const x = tensor([1, 2]).requiresGrad_();
  const y = tidy(() => ops.sum(ops.exp(x)));
  y.backward(undefined, { retainGraph: true });
  y.backward();
  expect(vals(x.grad).map((v) => +v.toFixed(4))).toEqual([2 * Math.E, 2 * Math.exp(2)].map((v) => +v.toFixed(4)));
  expect(() => y.backward()).toThrow(AutogradError);
  x.dispose();
  y.dispose();
});

test('the graph frees what it saved once backward has run', () => {
  const x = tensor(new Float32Array(100).fill(0.5), [100]).requiresGrad_();
  const before = memory().numTensors;
  const y = tidy(() => ops.sum(ops.tanh(ops.mul(ops.silu(x), x))));
  const withGraph = memory().numTensors;
  expect(withGraph).toBeGreaterThan(before + 1); // saved inputs are held by the graph
  y.backward();
  y.dispose();
  expect(memory().numTensors).toBe(before + 1); // only x.grad remains
  x.dispose();
});

test('hooks see and may replace gradients; remove() unregisters', () => {
  const x = tensor([1, 2, 3]).requiresGrad_();
  const seen: number[][] = [];
  const h = x.registerHook((g) => {
    seen.push(vals(g));
    return ops.mul(g, 10);
  });
  tidy(() => ops.sum(ops.mul(x, 3)).backward());
  expect(seen).toEqual([[3, 3, 3]]);
  expect(vals(x.grad)).toEqual([30, 30, 30]);
  h.remove();
  x.zeroGrad();
  tidy(() => ops.sum(x).backward());
  expect(vals(x.grad)).toEqual([1, 1, 1]);
  // a hook on an intermediate tensor changes what flows further back
  x.zeroGrad();
  tidy(() => {
    const y = ops.mul(x, 2);
    y.registerHook((g) => ops.neg(g));
    ops.sum(y).backward();
  });
  expect(vals(x.grad)).toEqual([-2, -2, -2]);
  x.dispose();
});

test('retainGrad keeps the gradient of a non-leaf tensor', () => {
  const x = tensor([1, -2]).requiresGrad_();
  let yGrad: number[] = [];
  tidy(() => {
    const y = ops.mul(x, x).retainGrad();
    ops.sum(ops.mul(y, 4)).backward();
    yGrad = vals(y.grad);
  });
  expect(yGrad).toEqual([4, 4]);
  expect(vals(x.grad)).toEqual([8, -16]);
  x.dispose();
});

test('detach and noGrad cut the graph', () => {
  const x = tensor([1, 2]).requiresGrad_();
  const d = x.detach();
  expect(d.requiresGrad).toBe(false);
  const y = noGrad(() => ops.mul(x, 3));
  expect(y.requiresGrad).toBe(false);
  expect(y.gradFn).toBeNull();
  expect(() => y.backward()).toThrow(AutogradError);
  [x, d, y].forEach((t) => t.dispose());
});

test('grad for a non-scalar root must be given; shapes are checked', () => {
  const x = tensor([1, 2]).requiresGrad_();
  const y = ops.mul(x, 2);
  expect(() => y.backward()).toThrow(AutogradError);
  const wrong = tensor([1, 2, 3]);
  expect(() => y.backward(wrong)).toThrow(/shape/);
  const g = tensor([1, 10]);
  y.backward(g);
  expect(vals(x.grad)).toEqual([2, 20]);
  [x, y, wrong, g].forEach((t) => t.dispose());
});

test('int32 tensors cannot require grad', () => {
  const t = tensor([1, 2], [2], { dtype: 'int32' });
  expect(() => (t.requiresGrad = true)).toThrow(DTypeError);
  t.dispose();
});

test('defineFunction records one node with a user backward', () => {
  const cube = defineFunction({
    name: 'cube',
    forward(ctx, x: Tensor) {
      ctx.saveForBackward(x);
      return tidy(() => ops.mul(ops.square(x), x));
    },
    backward(ctx, g) {
      const [x] = ctx.saved;
      const sq = ops.square(x);
      const t = ops.mul(g as Tensor, sq);
      const r = ops.mul(t, 3);
      sq.dispose();
      t.dispose();
      return [r];
    },
  });
  const x = tensor([1, 2, -1]).requiresGrad_();
  const y = cube(x);
  expect(y.gradFn?.name).toBe('cube');
  tidy(() => ops.sum(y).backward());
  expect(vals(x.grad)).toEqual([3, 12, 3]);
  x.dispose();
  y.dispose();
});

test('backward inside tidy keeps leaf gradients', () => {
  const w = tensor([0.5, -0.5]).requiresGrad_();
  tidy(() => {
    const loss = ops.sum(ops.square(w));
    loss.backward();
  });
  expect(w.grad?.isDisposed).toBe(false);
  expect(vals(w.grad)).toEqual([1, -1]);
  w.dispose();
  expect(w.grad).toBeNull();
});

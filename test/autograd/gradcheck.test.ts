// Every differentiable op passes a central finite-difference gradient check (float32 evaluation on the
// CPU, float64 differences; see lib/autograd/gradcheck.ts). One row per op: the function, the inputs'
// shapes and how to draw them (positive where the op needs it).
import { Tensor, gradcheck, ops, rand, randn, tensor } from '../../lib';

type Draw = 'normal' | 'positive';
interface Row {
  name: string;
  fn: (...xs: Tensor[]) => Tensor | Tensor[];
  inputs: [number[], Draw][];
  tol?: { atol?: number; rtol?: number; eps?: number };
}

export const GRADCHECK_TABLE: Row[] = [
  { name: 'add (broadcast)', fn: (a, b) => ops.add(a, b), inputs: [[[3, 1, 4], 'normal'], [[2, 4], 'normal']] },
  { name: 'sub (broadcast)', fn: (a, b) => ops.sub(a, b), inputs: [[[3, 4], 'normal'], [[4], 'normal']] },
  { name: 'mul (broadcast)', fn: (a, b) => ops.mul(a, b), inputs: [[[2, 3], 'normal'], [[2, 1], 'normal']] },
  { name: 'div', fn: (a, b) => ops.div(a, b), inputs: [[[2, 3], 'normal'], [[3], 'positive']] },
  { name: 'pow (tensor, tensor)', fn: (a, b) => ops.pow(a, b), inputs: [[[5], 'positive'], [[5], 'normal']] },
  { name: 'pow (scalar exponent)', fn: (a) => ops.pow(a, 3), inputs: [[[5], 'normal']] },
  { name: 'scalar ops', fn: (a) => ops.div(ops.sub(2, ops.mul(ops.add(a, 1), 3)), 4), inputs: [[[6], 'normal']] },
  { name: 'rdiv scalar', fn: (a) => ops.div(2, a), inputs: [[[4], 'positive']] },
  { name: 'neg', fn: (a) => ops.neg(a), inputs: [[[4], 'normal']] },
  { name: 'exp', fn: (a) => ops.exp(a), inputs: [[[4], 'normal']] },
  { name: 'log', fn: (a) => ops.log(a), inputs: [[[4], 'positive']] },
  { name: 'sqrt', fn: (a) => ops.sqrt(a), inputs: [[[4], 'positive']] },
  { name: 'rsqrt', fn: (a) => ops.rsqrt(a), inputs: [[[4], 'positive']] },
  { name: 'abs', fn: (a) => ops.abs(a), inputs: [[[6], 'normal']] },
  { name: 'square', fn: (a) => ops.square(a), inputs: [[[6], 'normal']] },
  { name: 'silu', fn: (a) => ops.silu(a), inputs: [[[8], 'normal']] },
  { name: 'softplus', fn: (a) => ops.softplus(a), inputs: [[[8], 'normal']] },
  { name: 'sigmoid', fn: (a) => ops.sigmoid(a), inputs: [[[8], 'normal']] },
  { name: 'tanh', fn: (a) => ops.tanh(a), inputs: [[[8], 'normal']] },
  { name: 'relu', fn: (a) => ops.relu(a), inputs: [[[8], 'normal']] },
  { name: 'gelu', fn: (a) => ops.gelu(a), inputs: [[[8], 'normal']] },
  { name: 'clamp', fn: (a) => ops.clamp(a, -0.5, 0.7), inputs: [[[8], 'normal']] },
  { name: 'where', fn: (c, a, b) => ops.where(ops.sub(c, 0.5), a, b), inputs: [[[4, 1], 'positive'], [[4, 3], 'normal'], [[3], 'normal']] },
  { name: 'broadcastTo', fn: (a) => ops.broadcastTo(a, [2, 3, 4]), inputs: [[[3, 1], 'normal']] },
  { name: 'sum (axes)', fn: (a) => ops.sum(a, [0, 2]), inputs: [[[2, 3, 4], 'normal']] },
  { name: 'sum (keepDims, negative axis)', fn: (a) => ops.sum(a, -1, { keepDims: true }), inputs: [[[3, 5], 'normal']] },
  { name: 'mean', fn: (a) => ops.mean(a, [1]), inputs: [[[3, 4, 2], 'normal']] },
  // matmul / linear
  { name: 'matmul', fn: (a, b) => ops.matmul(a, b), inputs: [[[3, 4], 'normal'], [[4, 5], 'normal']] },
  { name: 'matmul transA transB', fn: (a, b) => ops.matmul(a, b, { transA: true, transB: true }), inputs: [[[4, 3], 'normal'], [[5, 4], 'normal']] },
  { name: 'matmul batched, broadcast b', fn: (a, b) => ops.matmul(a, b), inputs: [[[2, 3, 4], 'normal'], [[4, 5], 'normal']] },
  { name: 'linear with bias', fn: (x, w, b) => ops.linear(x, w, b), inputs: [[[2, 3, 4], 'normal'], [[5, 4], 'normal'], [[5], 'normal']] },
  // shape ops
  { name: 'permute', fn: (a) => ops.permute(a, [2, 0, 1]), inputs: [[[2, 3, 4], 'normal']] },
  { name: 'transpose', fn: (a) => ops.transpose(a, 0, -1), inputs: [[[2, 3, 4], 'normal']] },
  { name: 'slice', fn: (a) => ops.slice(a, -1, 1, 3), inputs: [[[3, 5], 'normal']] },
  { name: 'narrow', fn: (a) => ops.narrow(a, 0, 1, 2), inputs: [[[4, 3], 'normal']] },
  { name: 'concat', fn: (a, b) => ops.concat([a, b], 1), inputs: [[[2, 3], 'normal'], [[2, 2], 'normal']] },
  { name: 'split', fn: (a) => ops.split(a, [1, 3], -1), inputs: [[[2, 4], 'normal']] },
  { name: 'expand', fn: (a) => ops.expand(a, [2, 3, 4]), inputs: [[[3, 1], 'normal']] },
  { name: 'indexSelect', fn: (a) => ops.indexSelect(a, 0, [2, 0, 2, 1]), inputs: [[[3, 4], 'normal']] },
  // reductions
  { name: 'max (axes)', fn: (a) => ops.max(a, [0, 2]), inputs: [[[2, 3, 4], 'normal']] },
  { name: 'min keepDims', fn: (a) => ops.min(a, -1, { keepDims: true }), inputs: [[[3, 5], 'normal']] },
  { name: 'logsumexp', fn: (a) => ops.logsumexp(a, [0, 2]), inputs: [[[2, 3, 4], 'normal']] },
  { name: 'softmax', fn: (a) => ops.softmax(a, 1), inputs: [[[2, 5, 3], 'normal']] },
  { name: 'logSoftmax', fn: (a) => ops.logSoftmax(a), inputs: [[[3, 6], 'normal']] },
  // fused ops
  {
    name: 'rmsNorm with residual (prenorm)',
    fn: (x, w, r) => {
      const o = ops.rmsNorm(x, w, { residual: r });
      return [o.out, o.residual as Tensor];
    },
    inputs: [[[3, 8], 'normal'], [[8], 'normal'], [[3, 8], 'normal']],
  },
  {
    name: 'causalConv1d (bias, silu, initial and final state)',
    fn: (x, w, b, s) => {
      const o = ops.causalConv1d(x, w, b, { activation: 'silu', initialState: s, returnFinalState: true });
      return [o.out, o.finalState as Tensor];
    },
    inputs: [[[2, 3, 6], 'normal'], [[3, 4], 'normal'], [[3], 'normal'], [[2, 3, 3], 'normal']],
  },
  {
    name: 'embedding (weight)',
    fn: (w) => {
      const ids = tensor([3, 0, 3, 1, 4], [5], { dtype: 'int32' });
      const out = ops.embedding(ids, w);
      ids.dispose();
      return out;
    },
    inputs: [[[5, 3], 'normal']],
  },
  {
    name: 'crossEntropy (label smoothing, ignoreIndex, mean)',
    fn: (logits) => {
      const t = tensor([1, -100, 4, 0], [4], { dtype: 'int32' });
      const out = ops.crossEntropy(logits, t, { labelSmoothing: 0.1 });
      t.dispose();
      return out;
    },
    inputs: [[[4, 5], 'normal']],
  },
  { name: 'softplusBias', fn: (d, b) => ops.softplusBias(d, b), inputs: [[[2, 3, 4], 'normal'], [[3], 'normal']] },
  {
    name: 'selectiveScan (D, z, deltaBias, softplus, initial state, last state)',
    fn: (u, delta, negA, B, C, D, z, bias, h0) => {
      const A = ops.neg(negA);
      const r = ops.selectiveScan(u, delta, A, B, C, { D, z, deltaBias: bias, initialState: h0, deltaSoftplus: true, returnLastState: true });
      A.dispose();
      return [r.out, r.lastState as Tensor];
    },
    inputs: [
      [[1, 2, 5], 'normal'],
      [[1, 2, 5], 'normal'],
      [[2, 3], 'positive'],
      [[1, 3, 5], 'normal'],
      [[1, 3, 5], 'normal'],
      [[2], 'normal'],
      [[1, 2, 5], 'normal'],
      [[2], 'normal'],
      [[1, 2, 3], 'normal'],
    ],
  },
];

describe('gradcheck over the op table', () => {
  test.each(GRADCHECK_TABLE.map((r) => [r.name, r] as const))('%s', (_name, row) => {
    const inputs = row.inputs.map(([shape, draw], i) => {
      // Keep |x| away from kinks (abs, relu, clamp at 0 / bounds) by drawing positives in [0.2, 1.2].
      const t = draw === 'positive' ? rand(shape, { seed: 100 + i, low: 0.2, high: 1.2 }) : randn(shape, { seed: 100 + i });
      t.requiresGrad = true;
      return t;
    });
    const r = gradcheck(row.fn, inputs, row.tol);
    inputs.forEach((t) => t.dispose());
    if (!r.ok) throw new Error(`gradcheck failed: ${JSON.stringify(r.worst)} excess ${r.maxExcess}`);
  });
});

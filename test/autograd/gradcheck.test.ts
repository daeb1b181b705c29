// Every differentiable op passes a central finite-difference gradient check (float32 evaluation on the
// CPU, float64 differences; see lib/autograd/gradcheck.ts). One row per op: the function, the inputs'
// shapes and how to draw them (positive where the op needs it).
import { Tensor, gradcheck, ops, rand, randn } from '../../lib';

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

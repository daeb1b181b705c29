/**
 * Elementwise ops with NumPy broadcasting, on CPU and CUDA, for float32 / float16 / bfloat16 (math in
 * float32). Binary ops take two tensors of one dtype and device, or a tensor and a JS number. Each op
 * records an autograd node; activations and other unary ops differentiate with one fused kernel
 * (`g * f'(x)`). Formulas: native/elementwise_ops.h.
 *
 * @example
 * ```ts
 * const y = ops.mul(ops.silu(x), 0.5);          // x: any float tensor
 * const z = ops.add(a, b);                       // a (4, 1, 8) + b (3, 8) -> (4, 3, 8)
 * ```
 */
import { recordOp } from '../autograd/node';
import { full } from '../creation';
import { describeValue } from '../dtype';
import { ArgumentError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';
import { sumTo } from './reduce';

// Op codes of native/elementwise_ops.h.
const UNARY = {
  neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, abs: 5, silu: 6, softplus: 7, sigmoid: 8, tanh: 9, relu: 10, gelu: 11,
  clamp: 12, powScalar: 13, addScalar: 14, mulScalar: 15, rsubScalar: 16, rdivScalar: 17, square: 18,
} as const;
const BINARY = { add: 0, sub: 1, mul: 2, div: 3, pow: 4 } as const;
type UnaryName = keyof typeof UNARY;
type BinaryName = keyof typeof BINARY;

function checkTensor(x: unknown, fn: string, arg: string): Tensor {
  if (!(x instanceof Tensor)) throw new ArgumentError(`${fn}: expected a Tensor for argument '${arg}' but received ${describeValue(x)}`, { fn, arg });
  return x;
}

function checkNumber(x: unknown, fn: string, arg: string): number {
  if (typeof x !== 'number') throw new ArgumentError(`${fn}: expected a number for argument '${arg}' but received ${describeValue(x)}`, { fn, arg });
  return x;
}

function unaryRaw(op: UnaryName, x: Tensor, fn: string, alpha = 0, beta = 0): Tensor {
  const h = native().unary(UNARY[op], x.handle(fn, 'x'), alpha, beta);
  return new Tensor(h, x.shape, x.dtype, x.device);
}

/** @internal x * alpha, recording nothing (for backward functions and composite ops). */
export function scaleRaw(x: Tensor, alpha: number, fn: string): Tensor {
  return unaryRaw('mulScalar', x, fn, alpha);
}

/** A unary op with its fused backward (grad * f'(x) from the saved input). */
function unary(op: UnaryName, x: Tensor, fn: string, alpha = 0, beta = 0): Tensor {
  checkTensor(x, fn, 'x');
  const out = unaryRaw(op, x, fn, alpha, beta);
  recordOp(fn, [x], [out], ([g], [sx]) => [g && new Tensor(native().unaryBackward(UNARY[op], sx.handle(fn), g.handle(fn, 'grad'), alpha, beta), sx.shape, sx.dtype, sx.device)], [x]);
  return out;
}

function binaryRaw(op: BinaryName, a: Tensor, b: Tensor, fn: string): Tensor {
  const h = native().binary(BINARY[op], a.handle(fn, 'a'), b.handle(fn, 'b'), fn);
  return new Tensor(h, broadcastShapes(a.shape, b.shape), a.dtype, a.device);
}

/** The broadcast of two shapes (native code re-checks and names the function on a mismatch). */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    out.push(x === 1 ? y : x);
  }
  return out;
}

type Operand = Tensor | number;

/** Runs a binary op where one side may be a JS number (mapped to the scalar unary forms). */
function binary(op: BinaryName, a: Operand, b: Operand, fn: string): Tensor {
  if (typeof a === 'number' && typeof b === 'number')
    throw new ArgumentError(`${fn}: at least one of 'a' and 'b' must be a Tensor`, { fn, arg: 'a' });
  if (typeof b === 'number') {
    const x = checkTensor(a, fn, 'a');
    switch (op) {
      case 'add': return unary('addScalar', x, fn, b);
      case 'sub': return unary('addScalar', x, fn, -b);
      case 'mul': return unary('mulScalar', x, fn, b);
      case 'div': return unary('mulScalar', x, fn, 1 / b);
      case 'pow': return unary('powScalar', x, fn, b);
    }
  }
  if (typeof a === 'number') {
    const y = checkTensor(b, fn, 'b');
    switch (op) {
      case 'add': return unary('addScalar', y, fn, a);
      case 'sub': return unary('rsubScalar', y, fn, a);
      case 'mul': return unary('mulScalar', y, fn, a);
      case 'div': return unary('rdivScalar', y, fn, a);
      case 'pow': {
        const base = full([], a, { dtype: y.dtype, device: y.device });
        const r = binaryTensors('pow', base, y, fn);
        base.dispose();
        return r;
      }
    }
  }
  return binaryTensors(op, checkTensor(a, fn, 'a'), checkTensor(b, fn, 'b'), fn);
}

function binaryTensors(op: BinaryName, a: Tensor, b: Tensor, fn: string): Tensor {
  const out = binaryRaw(op, a, b, fn);
  const [shapeA, shapeB] = [a.shape, b.shape];
  // add and sub need only the shapes; the others keep their operands.
  const saved = op === 'add' || op === 'sub' ? [] : [a, b];
  recordOp(
    fn,
    [a, b],
    [out],
    ([g], [sa, sb]) => {
      if (!g) return [];
      switch (op) {
        case 'add':
          return [sumTo(g, shapeA), sumTo(g, shapeB)];
        case 'sub':
          return [sumTo(g, shapeA), consumeSum(unaryRaw('neg', g, fn), shapeB)];
        case 'mul':
          return [consumeSum(binaryRaw('mul', g, sb, fn), shapeA), consumeSum(binaryRaw('mul', g, sa, fn), shapeB)];
        case 'div': {
          const ga = binaryRaw('div', g, sb, fn);
          // d(a/b)/db = -a / b^2 = -(a/b) / b
          const q = binaryRaw('div', sa, sb, fn);
          const t = binaryRaw('mul', g, q, fn);
          const u = binaryRaw('div', t, sb, fn);
          const gb = unaryRaw('neg', u, fn);
          [q, t, u].forEach((x) => x.dispose());
          return [consumeSum(ga, shapeA), consumeSum(gb, shapeB)];
        }
        case 'pow': {
          // d(a^b)/da = b a^(b-1); d(a^b)/db = a^b log(a)
          const bm1 = unaryRaw('addScalar', sb, fn, -1);
          const p1 = binaryRaw('pow', sa, bm1, fn);
          const t1 = binaryRaw('mul', p1, sb, fn);
          const ga = binaryRaw('mul', g, t1, fn);
          const p = binaryRaw('pow', sa, sb, fn);
          const la = unaryRaw('log', sa, fn);
          const t2 = binaryRaw('mul', p, la, fn);
          const gb = binaryRaw('mul', g, t2, fn);
          [bm1, p1, t1, p, la, t2].forEach((x) => x.dispose());
          return [consumeSum(ga, shapeA), consumeSum(gb, shapeB)];
        }
      }
      return [];
    },
    saved,
  );
  return out;
}

function consumeSum(x: Tensor, shape: readonly number[]): Tensor {
  const r = sumTo(x, shape);
  x.dispose();
  return r;
}

/** a + b (broadcast). */
export const add = (a: Operand, b: Operand): Tensor => binary('add', a, b, 'add');
/** a - b (broadcast). */
export const sub = (a: Operand, b: Operand): Tensor => binary('sub', a, b, 'sub');
/** a * b (broadcast). */
export const mul = (a: Operand, b: Operand): Tensor => binary('mul', a, b, 'mul');
/** a / b (broadcast). */
export const div = (a: Operand, b: Operand): Tensor => binary('div', a, b, 'div');
/** a ^ b (broadcast). */
export const pow = (a: Operand, b: Operand): Tensor => binary('pow', a, b, 'pow');

/** -x */
export const neg = (x: Tensor): Tensor => unary('neg', x, 'neg');
/** e^x */
export const exp = (x: Tensor): Tensor => unary('exp', x, 'exp');
/** natural log */
export const log = (x: Tensor): Tensor => unary('log', x, 'log');
/** square root */
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x, 'sqrt');
/** 1 / sqrt(x) */
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x, 'rsqrt');
/** |x| */
export const abs = (x: Tensor): Tensor => unary('abs', x, 'abs');
/** x^2 */
export const square = (x: Tensor): Tensor => unary('square', x, 'square');
/** x * sigmoid(x) */
export const silu = (x: Tensor): Tensor => unary('silu', x, 'silu');
/** log(1 + e^x), linear above 20 (as PyTorch and mamba_ssm) */
export const softplus = (x: Tensor): Tensor => unary('softplus', x, 'softplus');
/** 1 / (1 + e^-x) */
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x, 'sigmoid');
/** tanh(x) */
export const tanh = (x: Tensor): Tensor => unary('tanh', x, 'tanh');
/** max(x, 0) */
export const relu = (x: Tensor): Tensor => unary('relu', x, 'relu');
/** x * Phi(x) (exact, erf-based, as PyTorch's default) */
export const gelu = (x: Tensor): Tensor => unary('gelu', x, 'gelu');

/** Clamps into [min, max] (either bound may be omitted); NaN stays NaN; the gradient passes inside the range. */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  const fn = 'clamp';
  const lo = min === undefined ? -Infinity : checkNumber(min, fn, 'min');
  const hi = max === undefined ? Infinity : checkNumber(max, fn, 'max');
  if (lo > hi) throw new ArgumentError(`${fn}: min ${lo} is greater than max ${hi}`, { fn, arg: 'min' });
  return unary('clamp', x, fn, lo, hi);
}

/**
 * `cond ? a : b` elementwise with broadcasting over all three; `cond` may have any dtype (non-zero is
 * true), `a` and `b` may be numbers. Gradients flow to `a` where cond holds and to `b` elsewhere.
 */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const fn = 'where';
  checkTensor(cond, fn, 'cond');
  const ref = a instanceof Tensor ? a : b instanceof Tensor ? b : null;
  const dtype = ref ? ref.dtype : 'float32';
  const device = cond.device;
  const ta = a instanceof Tensor ? a : full([], checkNumber(a, fn, 'a'), { dtype, device });
  const tb = b instanceof Tensor ? b : full([], checkNumber(b, fn, 'b'), { dtype, device });
  const shape = broadcastShapes(broadcastShapes(cond.shape, ta.shape), tb.shape);
  const out = new Tensor(native().where(cond.handle(fn, 'cond'), ta.handle(fn, 'a'), tb.handle(fn, 'b')), shape, ta.dtype, device);
  if (!(a instanceof Tensor)) ta.dispose();
  if (!(b instanceof Tensor)) tb.dispose();
  const shapeA = a instanceof Tensor ? a.shape : null;
  const shapeB = b instanceof Tensor ? b.shape : null;
  recordOp(
    fn,
    [cond, a instanceof Tensor ? a : null, b instanceof Tensor ? b : null],
    [out],
    ([g], [sc]) => {
      if (!g) return [];
      const zero = full([], 0, { dtype: g.dtype, device: g.device });
      const pick = (onTrue: Tensor, onFalse: Tensor, shape: readonly number[]) =>
        consumeSum(new Tensor(native().where(sc.handle(fn), onTrue.handle(fn), onFalse.handle(fn)), g.shape, g.dtype, g.device), shape);
      const ga = shapeA ? pick(g, zero, shapeA) : null;
      const gb = shapeB ? pick(zero, g, shapeB) : null;
      zero.dispose();
      return [null, ga, gb];
    },
    [cond],
  );
  return out;
}

/**
 * `x` repeated along broadcast dimensions to `shape` (NumPy broadcast rules). The gradient sums back.
 */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  const fn = 'broadcastTo';
  checkTensor(x, fn, 'x');
  const out = new Tensor(native().broadcastTo(x.handle(fn, 'x'), [...shape]), shape, x.dtype, x.device);
  const shape0 = x.shape;
  recordOp(fn, [x], [out], ([g]) => [g && sumTo(g, shape0)]);
  return out;
}

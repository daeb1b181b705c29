/**
 * Matrix products: `matmul(a, b, { transA, transB })` for a (..., M, K) @ b (..., K, N) and
 * `linear(x, weight, bias?)` = x @ weight^T + bias with weight (out, in), as `torch.nn.functional.linear`.
 * float32, float16 and bfloat16, both operands of one dtype and device; float32 accumulation, the result
 * in the input dtype. Batch dims of a and b must be equal, or one operand is 2-d and is broadcast.
 * Transposes are flags (the data is never copied): transA means a is stored (..., K, M).
 *
 * CPU: blocked, multithreaded, deterministic. CUDA: cuBLASLt, loaded at run time when the machine has
 * libcublasLt.so.13 (or .12); otherwise a hand-written tiled kernel (correct, much slower).
 * `cublasAvailable()` says which one CUDA matmuls use. Reference: the float64 one in test/ops/matmul.test.ts.
 *
 * Autograd: with C = op(A) op(B), dop(A) = dC op(B)^T and dop(B) = op(A)^T dC, each written as one matmul
 * with transpose flags (no transposed copies); a broadcast operand's gradient is summed over the batch,
 * by folding the batch into the GEMM's K when the layout allows (the linear case), else with sumTo.
 *
 * @example
 * ```ts
 * const y = ops.matmul(a, b);                              // (2, 3, 4) @ (4, 5) -> (2, 3, 5)
 * const z = ops.matmul(a, c, { transB: true });            // (2, 3, 4) @ (5, 4)^T -> (2, 3, 5)
 * const h = ops.linear(x, weight, bias);                   // (8, 16, 768) x (1536, 768) -> (8, 16, 1536)
 * ```
 */
import { recordOp } from '../autograd';
import { ArgumentError, DTypeError, DeviceError, ShapeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';
import { sumTo } from './reduce';

/** Options of `matmul`. */
export interface MatmulOptions {
  /** a is stored (..., K, M): use its transpose. Default false. */
  transA?: boolean;
  /** b is stored (..., N, K): use its transpose. Default false. */
  transB?: boolean;
}

const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;
const sameShape = (x: readonly number[], y: readonly number[]) => x.length === y.length && x.every((v, i) => v === y[i]);

function checkTensor(t: unknown, fn: string, arg: string): Tensor {
  if (!(t instanceof Tensor)) throw new ArgumentError(`${fn}: expected a Tensor for argument '${arg}' but received ${typeof t}`, { fn, arg });
  return t;
}

function checkFloat(t: Tensor, fn: string, arg: string): void {
  if (t.dtype === 'int32')
    throw new DTypeError(`${fn}: expected dtype float32, float16 or bfloat16 for argument '${arg}' but received ${t.dtype}`, { fn, arg });
}

// `t` must match `ref` (named refArg) in dtype and device.
function checkLike(t: Tensor, ref: Tensor, fn: string, arg: string, refArg: string): void {
  if (t.dtype !== ref.dtype)
    throw new DTypeError(`${fn}: expected dtype ${ref.dtype} (that of '${refArg}') for argument '${arg}' but received ${t.dtype}`, { fn, arg });
  if (t.device !== ref.device)
    throw new DeviceError(`${fn}: expected device ${ref.device} (that of '${refArg}') for argument '${arg}' but received ${t.device}`, { fn, arg });
}

function checkFlag(v: unknown, fn: string, name: string): boolean {
  if (v !== undefined && typeof v !== 'boolean') throw new ArgumentError(`${fn}: expected a boolean for option '${name}' but received ${typeof v}`, { fn, arg: name });
  return v === true;
}

/** The output shape of matmul(a, b) with the flags; throws ShapeError naming fn and the argument. */
export function matmulShape(a: readonly number[], b: readonly number[], transA: boolean, transB: boolean, fn = 'matmul'): number[] {
  if (a.length < 2) throw new ShapeError(`${fn}: expected at least 2 dimensions for argument 'a' but received ${shapeStr(a)}`, { fn, arg: 'a' });
  if (b.length < 2) throw new ShapeError(`${fn}: expected at least 2 dimensions for argument 'b' but received ${shapeStr(b)}`, { fn, arg: 'b' });
  const [ra, rb] = [a.length, b.length];
  const M = transA ? a[ra - 1] : a[ra - 2];
  const K = transA ? a[ra - 2] : a[ra - 1];
  const Kb = transB ? b[rb - 1] : b[rb - 2];
  const N = transB ? b[rb - 2] : b[rb - 1];
  if (Kb !== K)
    throw new ShapeError(
      `${fn}: expected ${K} rows (the columns of 'a'${transA ? ' after transA' : ''}) for argument 'b'${transB ? ' after transB' : ''} but received ${Kb}: shapes ${shapeStr(a)} and ${shapeStr(b)}`,
      { fn, arg: 'b' },
    );
  const batchA = a.slice(0, ra - 2);
  const batchB = b.slice(0, rb - 2);
  let batch: number[];
  if (sameShape(batchA, batchB) || rb === 2) batch = batchA;
  else if (ra === 2) batch = batchB;
  else
    throw new ShapeError(
      `${fn}: expected batch dims ${shapeStr(batchA)} (those of 'a') or a 2-d matrix for argument 'b' but received batch dims ${shapeStr(batchB)}`,
      { fn, arg: 'b' },
    );
  return [...batch, M, N];
}

/**
 * Matrix product of the last two dims, batched over the leading ones: a (..., M, K) @ b (..., K, N) ->
 * (..., M, N). With `transA`, a is stored (..., K, M); with `transB`, b is stored (..., N, K). The batch
 * dims of a and b must be equal, or one of them is 2-d (broadcast over the other's batch).
 *
 * @example
 * ```ts
 * const c = ops.matmul(randn([4, 8, 16]), randn([16, 32]));   // [4, 8, 32]
 * ```
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const fn = 'matmul';
  checkTensor(a, fn, 'a');
  checkTensor(b, fn, 'b');
  if (options === null || typeof options !== 'object') throw new ArgumentError(`${fn}: expected an options object for argument 'options'`, { fn, arg: 'options' });
  const transA = checkFlag(options.transA, fn, 'transA');
  const transB = checkFlag(options.transB, fn, 'transB');
  checkFloat(a, fn, 'a');
  checkLike(b, a, fn, 'b', 'a');
  const shape = matmulShape(a.shape, b.shape, transA, transB, fn);
  const out = new Tensor(native().matmul(a.handle(fn, 'a'), b.handle(fn, 'b'), transA, transB), shape, a.dtype, a.device);
  const [needA, needB] = [a.requiresGrad, b.requiresGrad];
  recordOp('matmul', [a, b], [out], ([g], [sa, sb]) => (g ? matmulBackward(g, sa, sb, transA, transB, needA, needB) : [null, null]), [a, b]);
  return out;
}

// The result of `make`, summed down to `shape` when a broadcast made it larger; `make`'s tensor is consumed.
function reduced(make: () => Tensor, shape: readonly number[]): Tensor {
  const full = make();
  if (sameShape(full.shape, shape)) return full;
  const r = sumTo(full, shape);
  full.dispose();
  return r;
}

// (rows, cols) view of a tensor whose leading dims fold into the rows (sizes explicit: cols may be 0).
function flat2d(t: Tensor): Tensor {
  return t.reshape([t.shape.slice(0, -1).reduce((x, y) => x * y, 1), t.shape[t.rank - 1]]);
}

/**
 * Gradients of C = op(A) @ op(B) (the flags of the forward) given dC = g; null for an input that does not
 * need one. dA is (dC op(B)^T) stored as A, dB is (op(A)^T dC) stored as B.
 */
function matmulBackward(g: Tensor, a: Tensor, b: Tensor, transA: boolean, transB: boolean, needA: boolean, needB: boolean): (Tensor | null)[] {
  let dA: Tensor | null = null;
  let dB: Tensor | null = null;
  if (needA) {
    dA = reduced(() => (transA ? matmul(b, g, { transA: transB, transB: true }) : matmul(g, b, { transB: !transB })), a.shape);
  }
  if (needB) {
    if (b.rank === 2 && a.rank > 2 && !transA) {
      // b was broadcast over a's batch and a (batch..., M, K) is (batch * M, K): the batch sum is the GEMM's K.
      const [a2, g2] = [flat2d(a), flat2d(g)];
      dB = transB ? matmul(g2, a2, { transA: true }) : matmul(a2, g2, { transA: true });
      a2.dispose();
      g2.dispose();
    } else {
      dB = reduced(() => (transB ? matmul(g, a, { transA: true, transB: transA }) : matmul(a, g, { transA: !transA })), b.shape);
    }
  }
  return [dA, dB];
}

/**
 * Fully connected layer as in PyTorch: x (..., in) @ weight^T + bias, weight (out, in), bias (out) ->
 * (..., out). On CUDA the bias is fused into the cuBLASLt epilogue.
 *
 * @example
 * ```ts
 * const y = ops.linear(randn([2, 10, 64]), randn([128, 64]), zeros([128]));   // [2, 10, 128]
 * ```
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const fn = 'linear';
  checkTensor(x, fn, 'x');
  checkTensor(weight, fn, 'weight');
  if (bias !== undefined && bias !== null) checkTensor(bias, fn, 'bias');
  checkFloat(x, fn, 'x');
  checkLike(weight, x, fn, 'weight', 'x');
  if (x.rank < 1) throw new ShapeError(`${fn}: expected at least 1 dimension (..., in) for argument 'x' but received []`, { fn, arg: 'x' });
  const inF = x.shape[x.rank - 1];
  if (weight.rank !== 2 || weight.shape[1] !== inF)
    throw new ShapeError(`${fn}: expected shape (out, in=${inF}) for argument 'weight' but received ${shapeStr(weight.shape)}`, { fn, arg: 'weight' });
  const outF = weight.shape[0];
  if (bias) {
    checkLike(bias, x, fn, 'bias', 'x');
    if (!sameShape(bias.shape, [outF]))
      throw new ShapeError(`${fn}: expected shape [${outF}] for argument 'bias' but received ${shapeStr(bias.shape)}`, { fn, arg: 'bias' });
  }
  const shape = [...x.shape.slice(0, -1), outF];
  const h = native().linear(x.handle(fn, 'x'), weight.handle(fn, 'weight'), bias ? bias.handle(fn, 'bias') : null);
  const out = new Tensor(h, shape, x.dtype, x.device);
  const need = [x.requiresGrad, weight.requiresGrad, bias ? bias.requiresGrad : false];
  recordOp('linear', [x, weight, bias], [out], ([g], [sx, sw]) => (g ? linearBackward(g, sx, sw, need) : [null, null, null]), [x, weight]);
  return out;
}

/** dx = dy @ W, dW = dy^T @ x, dbias = the sum of dy over rows; dy and x seen as (rows, out) / (rows, in). */
function linearBackward(g: Tensor, x: Tensor, w: Tensor, [needX, needW, needBias]: boolean[]): (Tensor | null)[] {
  const g2 = flat2d(g);
  let dx: Tensor | null = null;
  if (needX) {
    const dx2 = matmul(g2, w);
    dx = dx2.reshape(x.shape);
    dx2.dispose();
  }
  let dw: Tensor | null = null;
  if (needW) {
    const x2 = flat2d(x);
    dw = matmul(g2, x2, { transA: true });
    x2.dispose();
  }
  const dbias = needBias ? sumTo(g2, [w.shape[0]]) : null;
  g2.dispose();
  return [dx, dw, dbias];
}

/**
 * Whether CUDA matmuls run on cuBLASLt (found and loaded at run time). False without CUDA, or when no
 * libcublasLt.so.13 / .so.12 is found: CUDA matmuls then use the hand-written fallback kernel.
 * `cublasInfo()` gives the library file and version, or the reason.
 */
export function cublasAvailable(): boolean {
  return native().cublasAvailable();
}

/** The cuBLASLt library file and version in use, or why CUDA matmuls run the fallback kernel. */
export function cublasInfo(): string {
  return native().cublasInfo();
}

/**
 * Chooses the CUDA matmul implementation: 'auto' (cuBLASLt when available, the default) or 'fallback'
 * (always the hand-written kernel; also set by the environment variable MAMBA_MATMUL_FALLBACK=1).
 * Returns the previous setting. For tests and comparisons.
 */
export function setMatmulBackend(backend: 'auto' | 'fallback'): 'auto' | 'fallback' {
  if (backend !== 'auto' && backend !== 'fallback')
    throw new ArgumentError(`setMatmulBackend: expected 'auto' or 'fallback' for argument 'backend' but received ${String(backend)}`, {
      fn: 'setMatmulBackend',
      arg: 'backend',
    });
  return native().setMatmulBackend(backend);
}

/** What the last CUDA matmul or linear ran: 'cublasLt', 'fallback', or '' before the first. */
export function matmulLastPath(): '' | 'cublasLt' | 'fallback' {
  return native().matmulLastPath();
}

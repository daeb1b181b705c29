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
 * @example
 * ```ts
 * const y = ops.matmul(a, b);                              // (2, 3, 4) @ (4, 5) -> (2, 3, 5)
 * const z = ops.matmul(a, c, { transB: true });            // (2, 3, 4) @ (5, 4)^T -> (2, 3, 5)
 * const h = ops.linear(x, weight, bias);                   // (8, 16, 768) x (1536, 768) -> (8, 16, 1536)
 * ```
 */
import { ArgumentError, DTypeError, DeviceError, ShapeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';

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
  return new Tensor(native().matmul(a.handle(fn, 'a'), b.handle(fn, 'b'), transA, transB), shape, a.dtype, a.device);
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
  return new Tensor(h, shape, x.dtype, x.device);
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

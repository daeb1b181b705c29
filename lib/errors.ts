/**
 * Typed errors thrown by every public function of mamba-node. Native code throws the same classes
 * (lib/native.ts registers them with the addon), so a caller can always `catch (e) { if (e instanceof
 * ShapeError) ... }`. Each error names the function (`fn`) and, when one argument is at fault, the
 * argument (`arg`).
 *
 * @example
 * ```ts
 * try { zeros([2, -1]); } catch (e) { if (e instanceof ShapeError) console.log(e.fn, e.arg); }
 * ```
 */

/** Where an error came from: the public function and the argument at fault. */
export interface ErrorSource {
  fn?: string;
  arg?: string;
}

/** Base class of every error mamba-node throws on purpose. */
export class MambaError extends Error {
  /** The public function that rejected its input or failed. */
  readonly fn?: string;
  /** The argument at fault, when one is. */
  readonly arg?: string;
  constructor(message: string, source: ErrorSource = {}) {
    super(message);
    this.name = new.target.name;
    this.fn = source.fn;
    this.arg = source.arg;
  }
}

/** An argument of the wrong kind or out of range (not a shape, dtype or device problem). */
export class ArgumentError extends MambaError {}
/** Shapes that are invalid or do not fit together. */
export class ShapeError extends MambaError {}
/** A dtype that is unknown or not allowed here. */
export class DTypeError extends MambaError {}
/** A device that is unknown, unavailable, or mixed with another; also CUDA runtime failures. */
export class DeviceError extends MambaError {}
/** The device (or host) has no room for the allocation; the next allocation may still succeed. */
export class OutOfMemoryError extends MambaError {}
/** A tensor was used after `dispose()`. */
export class DisposedError extends MambaError {}
/** Misuse of autograd: backward through a freed graph, on a tensor that does not require grad, ... */
export class AutogradError extends MambaError {}
/** Training cannot go on: too many non-finite losses in a row, a checkpoint that does not fit the model, ... */
export class TrainingError extends MambaError {}
/** Where a file-format error was found: the file and, when one entry is at fault, the tensor. */
export interface FormatErrorSource extends ErrorSource {
  file?: string;
  tensor?: string;
}

/** A file that is not a valid checkpoint: truncated, inconsistent or crafted (see docs/checkpoints.md). */
export class FormatError extends MambaError {
  /** The file that was rejected. */
  readonly file?: string;
  /** The tensor whose entry or bytes are at fault, when one is. */
  readonly tensor?: string;
  constructor(message: string, source: FormatErrorSource = {}) {
    super(message, source);
    this.file = source.file;
    this.tensor = source.tensor;
  }
}
/** A bug in mamba-node itself: please report it. */
export class InternalError extends MambaError {}

/** Error classes in the order of native/error.h's ErrorKind. */
export const ERROR_KINDS = [
  ArgumentError,
  ShapeError,
  DTypeError,
  DeviceError,
  OutOfMemoryError,
  DisposedError,
  InternalError,
] as const;

/** Shape validation shared by the creation functions and tensor methods. */
import { ShapeError } from './errors';

/** Validates a shape: an array of non-negative safe integers whose product is a safe integer. */
export function checkShape(shape: unknown, fn: string, arg = 'shape'): number[] {
  if (!Array.isArray(shape))
    throw new ShapeError(`${fn}: expected an array of sizes for argument '${arg}' but received ${typeof shape}`, { fn, arg });
  let total = 1;
  for (const s of shape) {
    if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0)
      throw new ShapeError(`${fn}: expected non-negative integer sizes for argument '${arg}' but received [${shape.join(', ')}]`, {
        fn,
        arg,
      });
    total *= s;
  }
  if (!Number.isSafeInteger(total))
    throw new ShapeError(`${fn}: shape [${shape.join(', ')}] in argument '${arg}' has too many elements`, { fn, arg });
  return [...shape] as number[];
}

export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

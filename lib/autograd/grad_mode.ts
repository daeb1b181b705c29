/**
 * Grad mode: whether ops record autograd nodes. `noGrad(fn)` runs fn recording nothing (inference,
 * optimizer steps, backward functions themselves); `enableGrad(fn)` turns recording back on inside it.
 *
 * @example
 * ```ts
 * const y = noGrad(() => model.forward(x));   // no graph, nothing saved
 * ```
 */
let enabled = true;

export function isGradEnabled(): boolean {
  return enabled;
}

function withMode<T>(mode: boolean, fn: () => T): T {
  const prev = enabled;
  enabled = mode;
  try {
    return fn();
  } finally {
    enabled = prev;
  }
}

/** Runs `fn` with autograd recording off. */
export function noGrad<T>(fn: () => T): T {
  return withMode(false, fn);
}

/** Runs `fn` with autograd recording on (inside a `noGrad`). */
export function enableGrad<T>(fn: () => T): T {
  return withMode(true, fn);
}

/**
 * Tracking of tensors created inside `tidy()` scopes. Kept apart from tensor.ts so that tensor.ts and
 * memory.ts can both use it without importing each other.
 */

/** What a scope needs of a tensor. */
export interface Tracked {
  dispose(): void;
  readonly isDisposed: boolean;
}

const scopes: Set<Tracked>[] = [];

/** Called by every new tensor: the innermost open scope owns it. */
export function track(t: Tracked): void {
  if (scopes.length) scopes[scopes.length - 1].add(t);
}

/** Removes a tensor from every open scope, so no tidy() disposes it. */
export function untrack(t: Tracked): void {
  for (const s of scopes) s.delete(t);
}

export function openScope(): void {
  scopes.push(new Set());
}

/** Closes the innermost scope: disposes what it owns except `survivors`, which move to the parent. */
export function closeScope(survivors: Set<Tracked>): void {
  const s = scopes.pop();
  if (!s) return;
  const parent = scopes.length ? scopes[scopes.length - 1] : undefined;
  for (const t of s) {
    if (survivors.has(t)) parent?.add(t);
    else if (!t.isDisposed) t.dispose();
  }
}

/**
 * mulberry32: a small seeded 32-bit generator for task data, gradcheck directions and test inputs that must be
 * identical on every machine and every run. Not the tensor generator (`rand`/`randn` use Philox in native code).
 *
 * @example
 * ```ts
 * const next = uniforms(7);
 * next(); // a float in [0, 1), the same sequence for seed 7 everywhere
 * ```
 */

/** The raw stream: uint32 values in [0, 2^32). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/**
 * Murmur3's finaliser over 32-bit words: folds `v` into the hash `h`, so independent streams can be seeded from
 * (seed, split, index) tuples.
 */
export function mix32(h: number, v: number): number {
  h = Math.imul(h ^ (v >>> 0), 0x9e3779b1) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Uniforms in [0, 1) with 32 random bits each. */
export function uniforms(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}

/**
 * Seeded pseudo-random numbers for simulations and tests. Nothing here reads a clock or
 * global state: the same seed gives the same stream on every platform.
 */

/** A source of uniform numbers in [0, 1). */
export type Rng = () => number;

/**
 * mulberry32 (Tommy Ettinger's 32-bit generator): tiny, fast and good enough for
 * simulations of a few million draws; not for cryptography.
 *
 * @example const rng = mulberry32(42); rng(); // 0.6011037519201636
 */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A sampler of normal variates by the Box–Muller transform. It keeps the second variate of
 * each pair, so it is a stateful closure over `rng`.
 */
export function normalSampler(rng: Rng): (mean?: number, sd?: number) => number {
  let spare: number | undefined;
  return (mean = 0, sd = 1) => {
    if (spare !== undefined) {
      const z = spare;
      spare = undefined;
      return mean + sd * z;
    }
    // 1 - rng() lies in (0, 1], so the logarithm is finite.
    const r = Math.sqrt(-2 * Math.log(1 - rng()));
    const theta = 2 * Math.PI * rng();
    spare = r * Math.sin(theta);
    return mean + sd * r * Math.cos(theta);
  };
}

/**
 * One Binomial(n, p) draw, exact, by the waiting-time method: geometric gaps between
 * successes are drawn by inversion until they pass n. Expected cost O(n·min(p, 1-p) + 1), so
 * it suits the moderate n·p of simulations; it never underflows as pmf-inversion does.
 */
export function binomialSample(rng: Rng, n: number, p: number): number {
  if (!Number.isInteger(n) || n < 0)
    throw new RangeError(`n must be a non-negative integer, got ${n}`);
  if (!(p >= 0 && p <= 1)) throw new RangeError(`p must be in [0, 1], got ${p}`);
  if (p === 0 || n === 0) return 0;
  if (p === 1) return n;
  if (p > 0.5) return n - binomialSample(rng, n, 1 - p);
  const logQ = Math.log1p(-p);
  let successes = 0;
  let position = 0;
  for (;;) {
    // Trials up to and including the next success: 1 + floor(log(U) / log(1 - p)).
    position += 1 + Math.floor(Math.log(1 - rng()) / logQ);
    if (position > n) return successes;
    successes++;
  }
}

/** A Fisher–Yates shuffled copy of `values`. */
export function shuffled<T>(rng: Rng, values: readonly T[]): T[] {
  const out = values.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = out[i]!;
    out[i] = out[j]!;
    out[j] = tmp;
  }
  return out;
}

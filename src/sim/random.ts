/**
 * Random numbers for the simulator: one seeded stream per simulated rollout, and latency
 * distributions to draw from it. Pure: no clock, no global state.
 *
 * Why not `mulberry32` (core/stats/random.ts) directly: its period is 2^32, and one simulated
 * rollout draws ~150,000 numbers (10 minutes at 100 requests/s). Thousands of seeds would then
 * share stretches of the same stream (a birthday problem: ~n²·L / 2^32 overlapping pairs for n
 * seeds of L draws, dozens at n = 1,000), so neighbouring seeds would not be independent runs.
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, from PractRand) has 128 bits of
 * state and a counter that guarantees a period of at least 2^32 from every seed, with an
 * expected period near 2^127; it is seeded here from mulberry32 and warmed up.
 */
import { mulberry32, type Rng } from "../core/stats/random.js";

export type { Rng };

/**
 * A seeded stream of uniform numbers in [0, 1) for one simulation.
 *
 * @example const rng = simulationRng(42); rng(); // same number on every platform
 */
export function simulationRng(seed: number): Rng {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  // Two mulberry32 words from the low and high 32 bits of the seed fill the state.
  const lo = mulberry32(seed >>> 0);
  const hi = mulberry32(Math.floor(seed / 2 ** 32) ^ 0x5bd1e995);
  let a = (lo() * 2 ** 32) >>> 0;
  let b = (hi() * 2 ** 32) >>> 0;
  let c = (lo() * 2 ** 32) >>> 0;
  let d = 1; // the counter
  const next = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  // The first outputs of a freshly seeded sfc32 are poorly mixed; PractRand's seeding skips 12.
  for (let i = 0; i < 12; i++) next();
  return next;
}

/**
 * A log-normal latency sampler: `medianMs · exp(sigma · Z)` with Z standard normal (Box–Muller,
 * two uniforms per draw; the second variate is dropped so the sampler keeps no state between
 * streams and one sampler can be shared by every seed).
 *
 * @example const latency = lognormalLatency(50, 0.5); latency(rng); // ms; p99 ≈ 160 ms
 */
export function lognormalLatency(medianMs: number, sigma: number): (rng: Rng) => number {
  if (!(medianMs > 0)) throw new RangeError(`medianMs must be > 0, got ${medianMs}`);
  if (!(sigma >= 0)) throw new RangeError(`sigma must be >= 0, got ${sigma}`);
  return (rng) => {
    // 1 - rng() lies in (0, 1], so the logarithm is finite.
    const z = Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
    return medianMs * Math.exp(sigma * z);
  };
}

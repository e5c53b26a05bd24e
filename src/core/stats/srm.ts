/**
 * Sample-ratio-mismatch (SRM) check: are the arms' observed counts consistent with the
 * configured split? A mismatch means assignment or logging is broken (bots, redirects,
 * crashes in one arm) and the experiment's results cannot be trusted, whatever they say.
 * Fabijan et al., "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments"
 * (KDD 2019) recommend a chi-square goodness-of-fit test flagged at p < 0.0005..0.001.
 *
 * Assumptions: units are assigned independently with the configured probabilities; counts
 * are of units (users), not of events, which are not independent.
 */
import { chiSquareSf } from "./distributions.js";

export const DEFAULT_SRM_THRESHOLD = 0.001;

export interface SrmOptions {
  /** Flag a mismatch when pValue < threshold; default 0.001. */
  threshold?: number;
}

export interface SrmResult {
  test: "srm-chi-square";
  observed: number[];
  /** Expected counts: total × weight / Σ weights. */
  expected: number[];
  /** Pearson's Σ (observed − expected)² / expected over arms with positive weight. */
  statistic: number;
  /** Arms with positive weight − 1. */
  df: number;
  pValue: number;
  threshold: number;
  /** pValue < threshold. */
  mismatch: boolean;
}

/**
 * Chi-square goodness-of-fit SRM test for k ≥ 2 arms. `weights` are relative (need not sum to
 * 1; default equal). An arm with weight 0 but observations makes the statistic infinite; an
 * arm with weight 0 and none is left out. With no observations at all the result is p = 1 (no
 * evidence of a mismatch yet). Matches `scipy.stats.chisquare(observed, expected)`.
 *
 * @example sampleRatioMismatch([5012, 4988]).mismatch // false
 */
export function sampleRatioMismatch(
  observed: readonly number[],
  weights?: readonly number[],
  options: SrmOptions = {},
): SrmResult {
  const threshold = options.threshold ?? DEFAULT_SRM_THRESHOLD;
  if (!(threshold > 0 && threshold < 1)) {
    throw new RangeError(`threshold must be in (0, 1), got ${threshold}`);
  }
  const k = observed.length;
  const w = weights ?? observed.map(() => 1);
  if (w.length !== k) {
    throw new RangeError(`weights: expected ${k} weights (one per arm), got ${w.length}`);
  }
  let total = 0;
  let weightSum = 0;
  let positiveArms = 0;
  for (let i = 0; i < k; i++) {
    const o = observed[i]!;
    const wi = w[i]!;
    if (!(Number.isInteger(o) && o >= 0)) {
      throw new RangeError(`observed[${i}]: must be a non-negative integer, got ${o}`);
    }
    if (!(Number.isFinite(wi) && wi >= 0)) {
      throw new RangeError(`weights[${i}]: must be a finite number >= 0, got ${wi}`);
    }
    total += o;
    weightSum += wi;
    if (wi > 0) positiveArms++;
  }
  if (positiveArms < 2)
    throw new RangeError("sampleRatioMismatch: need at least two arms with positive weight");
  const expected = w.map((wi) => (total * wi) / weightSum);
  let statistic = 0;
  for (let i = 0; i < k; i++) {
    const e = expected[i]!;
    const o = observed[i]!;
    if (w[i] === 0) {
      if (o > 0) statistic = Number.POSITIVE_INFINITY;
      continue;
    }
    if (e > 0) statistic += ((o - e) * (o - e)) / e;
  }
  const df = positiveArms - 1;
  const pValue = total === 0 ? 1 : chiSquareSf(statistic, df);
  return {
    test: "srm-chi-square",
    observed: [...observed],
    expected,
    statistic,
    df,
    pValue,
    threshold,
    mismatch: pValue < threshold,
  };
}

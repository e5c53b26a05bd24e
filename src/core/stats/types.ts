/** Shared result and input types of the statistics core. */

/**
 * Direction of the alternative hypothesis, always stated for *treatment minus control*
 * (or candidate minus baseline): "greater" means the treatment's value is larger.
 */
export type Alternative = "two-sided" | "greater" | "less";

/**
 * A two-sided interval at confidence `level` (= 1 - alpha). Bounds may be ±Infinity for
 * one-sided intervals; JSON turns those into null, so persist with care.
 */
export interface Interval {
  lower: number;
  upper: number;
  level: number;
}

/** Successes out of trials for one arm (conversions of users, errors of requests). */
export interface BinomialCounts {
  successes: number;
  trials: number;
}

/**
 * Summary of one arm's samples: count, mean and *unbiased* sample variance (ddof = 1), as
 * a metrics store can keep them incrementally (see `summarize`).
 */
export interface SampleSummary {
  n: number;
  mean: number;
  variance: number;
}

/** @internal Throws a RangeError unless 0 < alpha < 1. */
export function checkAlpha(alpha: number, name = "alpha"): void {
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`${name} must be in (0, 1), got ${alpha}`);
}

/** @internal Throws unless the counts are integers with 0 ≤ successes ≤ trials. */
export function checkCounts(c: BinomialCounts, name: string): void {
  const { successes, trials } = c;
  if (
    !Number.isInteger(successes) ||
    !Number.isInteger(trials) ||
    successes < 0 ||
    successes > trials
  ) {
    throw new RangeError(
      `${name}: successes and trials must be integers with 0 <= successes <= trials, got ${successes}/${trials}`,
    );
  }
}

/** @internal Throws unless n ≥ minN, mean is finite and variance ≥ 0. */
export function checkSummary(s: SampleSummary, name: string, minN = 2): void {
  if (!(s.n >= minN) || !Number.isFinite(s.mean) || !(s.variance >= 0)) {
    throw new RangeError(
      `${name}: need n >= ${minN}, a finite mean and variance >= 0, got n=${s.n} mean=${s.mean} variance=${s.variance}`,
    );
  }
}

/** @internal Throws unless every value is a finite number. */
export function checkFinite(values: readonly number[], name: string): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new RangeError(`${name}[${i}]: must be a finite number, got ${values[i]}`);
    }
  }
}

/** @internal Upper-tail-accurate p-value from a standardized statistic and a survival function. */
export function pFromStatistic(
  stat: number,
  alternative: Alternative,
  sf: (x: number) => number,
): number {
  if (Number.isNaN(stat)) return Number.NaN;
  switch (alternative) {
    case "greater":
      return sf(stat);
    case "less":
      return sf(-stat);
    case "two-sided":
      return Math.min(1, 2 * sf(Math.abs(stat)));
  }
}

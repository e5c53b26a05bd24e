/**
 * Ratio metrics (revenue per session, clicks per page view) and CUPED, from the per-arm sums a
 * store can aggregate in SQL, without keeping the samples.
 *
 * Ratio metrics: each unit (user) contributes a numerator x_i and a denominator y_i; the arm's
 * metric is R = Σx / Σy = x̄ / ȳ. Units are the independent draws, not the events, so the
 * variance of R comes from the delta method over the unit-level pairs (Deng, Knoblich & Lu,
 * "Applying the Delta Method in Metric Analytics", KDD 2018, eq. 3; GrowthBook's
 * `RatioStatistic`):
 *
 *   Var(R) ≈ (1/n) · ( σ²_x / ȳ² − 2 x̄ σ_xy / ȳ³ + x̄² σ²_y / ȳ⁴ )
 *
 * with σ² and σ_xy the unbiased sample (co)variances (ddof = 1). Comparing two arms then uses
 * the normal approximation on R_t − R_c (arms independent), and `relativeLiftDelta` for R_t/R_c − 1.
 *
 * CUPED (Deng, Xu, Kohavi & Walker, "Improving the Sensitivity of Online Controlled Experiments
 * by Utilizing Pre-Experiment Data", WSDM 2013): with a pre-period covariate x of each unit,
 * Y_adj = Y − θ (X − μ_x), θ = Cov(X, Y) / Var(X) pooled over both arms, shrinks the variance
 * by the factor 1 − ρ² and leaves the difference of means unbiased (randomization makes X
 * balanced in expectation).
 */
import { normalQuantile, normalSf } from "./distributions.js";
import { fiellerRelativeLiftInterval, relativeLiftDelta } from "./proportions.js";
import {
  type Alternative,
  checkAlpha,
  type Interval,
  pFromStatistic,
  type SampleSummary,
} from "./types.js";

/**
 * Sums over the units of one arm, as SQL can aggregate them: n units, Σx, Σx², Σy, Σy², Σxy.
 * For a ratio metric x is the numerator and y the denominator; for CUPED y is the metric and x
 * the pre-period covariate.
 */
export interface PairSums {
  n: number;
  sumX: number;
  sumX2: number;
  sumY: number;
  sumY2: number;
  sumXY: number;
}

/** Means, unbiased variances and covariance (ddof = 1) of a pair of per-unit values. */
export interface PairMoments {
  n: number;
  meanX: number;
  meanY: number;
  varX: number;
  varY: number;
  covXY: number;
}

/** Moments from sums; needs n ≥ 2. */
export function pairMoments(s: PairSums): PairMoments {
  if (!(s.n >= 2)) throw new RangeError(`need n >= 2 units, got ${s.n}`);
  const n = s.n;
  const meanX = s.sumX / n;
  const meanY = s.sumY / n;
  // Clamped at 0: catastrophic cancellation can leave -1e-17 for a constant column.
  return {
    n,
    meanX,
    meanY,
    varX: Math.max(0, (s.sumX2 - n * meanX * meanX) / (n - 1)),
    varY: Math.max(0, (s.sumY2 - n * meanY * meanY) / (n - 1)),
    covXY: (s.sumXY - n * meanX * meanY) / (n - 1),
  };
}

/** The ratio x̄/ȳ of one arm and the delta-method variance of that estimate. */
export interface RatioEstimate {
  n: number;
  ratio: number;
  /** Var(R) of the estimate (not of a unit). */
  variance: number;
}

/** Delta-method ratio estimate of one arm; throws when the denominator's mean is 0. */
export function ratioEstimate(s: PairSums): RatioEstimate {
  const m = pairMoments(s);
  if (m.meanY === 0) throw new RangeError("ratio: the denominator's mean is 0");
  const y = m.meanY;
  const r = m.meanX / y;
  const variance =
    (m.varX / (y * y) -
      (2 * m.meanX * m.covXY) / (y * y * y) +
      (m.meanX * m.meanX * m.varY) / (y * y * y * y)) /
    m.n;
  return { n: m.n, ratio: r, variance: Math.max(0, variance) };
}

export interface RatioTestOptions {
  /** 1 − confidence level of the intervals; default 0.05. */
  alpha?: number;
  alternative?: Alternative;
}

export interface RatioTestResult {
  test: "ratio-delta-z";
  alternative: Alternative;
  alpha: number;
  control: RatioEstimate;
  treatment: RatioEstimate;
  /** R_t − R_c. */
  difference: number;
  standardError: number;
  z: number;
  pValue: number;
  /** Two-sided interval for the difference at level 1 − alpha. */
  interval: Interval;
  relativeLift: number | null;
  relativeLiftStandardError: number | null;
  /** Fieller's interval: excludes 0 exactly when `interval` does; null when unbounded. */
  relativeLiftInterval: Interval | null;
}

/**
 * Fixed-horizon z-test of two ratio metrics (delta method), with absolute and relative intervals.
 *
 * @example ratioTest(sumsOf(control), sumsOf(treatment)).pValue
 */
export function ratioTest(
  control: PairSums,
  treatment: PairSums,
  options: RatioTestOptions = {},
): RatioTestResult {
  const alpha = options.alpha ?? 0.05;
  const alternative = options.alternative ?? "two-sided";
  checkAlpha(alpha);
  const c = ratioEstimate(control);
  const t = ratioEstimate(treatment);
  const difference = t.ratio - c.ratio;
  const se = Math.sqrt(c.variance + t.variance);
  const z = se > 0 ? difference / se : 0;
  const pValue =
    se > 0 ? pFromStatistic(z, alternative, (x) => normalSf(x)) : difference === 0 ? 1 : 0;
  const zc = normalQuantile(1 - alpha / 2);
  const level = 1 - alpha;
  const rel = relativeLiftDelta(c.ratio, c.variance, t.ratio, t.variance);
  return {
    test: "ratio-delta-z",
    alternative,
    alpha,
    control: c,
    treatment: t,
    difference,
    standardError: se,
    z,
    pValue,
    interval: { lower: difference - zc * se, upper: difference + zc * se, level },
    relativeLift: rel?.lift ?? null,
    relativeLiftStandardError: rel?.standardError ?? null,
    relativeLiftInterval: fiellerRelativeLiftInterval(
      c.ratio,
      c.variance,
      t.ratio,
      t.variance,
      zc,
      level,
    ),
  };
}

/**
 * A ratio estimate as a `SampleSummary` whose `variance / n` is the delta-method variance, so
 * that the mean-based tests (asymptotic confidence sequence, Bayesian normal) take ratio
 * metrics unchanged.
 */
export function ratioSummary(s: PairSums): SampleSummary {
  const r = ratioEstimate(s);
  return { n: r.n, mean: r.ratio, variance: r.variance * r.n };
}

export interface CupedResult {
  /** θ = Cov(X, Y) / Var(X), pooled over both arms (0 when X does not vary). */
  theta: number;
  /** Adjusted summaries of the metric Y per arm: means shifted, variances reduced. */
  control: SampleSummary;
  treatment: SampleSummary;
  /** 1 − Var(Y_adj)/Var(Y), pooled: the share of variance removed. */
  varianceReduction: number;
}

/**
 * CUPED adjustment from per-arm sums with x = pre-period covariate, y = metric. The adjusted
 * summaries go into any mean test (Welch, the confidence sequence, Bayes).
 */
export function cuped(control: PairSums, treatment: PairSums): CupedResult {
  const pooled: PairSums = {
    n: control.n + treatment.n,
    sumX: control.sumX + treatment.sumX,
    sumX2: control.sumX2 + treatment.sumX2,
    sumY: control.sumY + treatment.sumY,
    sumY2: control.sumY2 + treatment.sumY2,
    sumXY: control.sumXY + treatment.sumXY,
  };
  const p = pairMoments(pooled);
  const theta = p.varX > 0 ? p.covXY / p.varX : 0;
  const adjust = (s: PairSums): SampleSummary => {
    const m = pairMoments(s);
    return {
      n: m.n,
      mean: m.meanY - theta * (m.meanX - p.meanX),
      variance: Math.max(0, m.varY - 2 * theta * m.covXY + theta * theta * m.varX),
    };
  };
  const pooledAdj = Math.max(0, p.varY - 2 * theta * p.covXY + theta * theta * p.varX);
  return {
    theta,
    control: adjust(control),
    treatment: adjust(treatment),
    varianceReduction: p.varY > 0 ? 1 - pooledAdj / p.varY : 0,
  };
}

/** Sums of paired per-unit values (tests, the simulator). */
export function pairSums(x: readonly number[], y: readonly number[]): PairSums {
  if (x.length !== y.length) throw new RangeError("pairSums: x and y differ in length");
  const s: PairSums = { n: x.length, sumX: 0, sumX2: 0, sumY: 0, sumY2: 0, sumXY: 0 };
  for (let i = 0; i < x.length; i++) {
    const a = x[i]!;
    const b = y[i]!;
    s.sumX += a;
    s.sumX2 += a * a;
    s.sumY += b;
    s.sumY2 += b * b;
    s.sumXY += a * b;
  }
  return s;
}

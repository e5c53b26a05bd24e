/**
 * Welch's unequal-variance t-test on the difference of two means, from samples or from
 * summary statistics (what a metrics store keeps), with intervals for the absolute and the
 * relative lift.
 *
 * Assumptions: independent observations, arms independent, a sample size fixed in advance
 * (one look); the t reference distribution with Welch–Satterthwaite degrees of freedom is
 * exact for normal data and an approximation (by the CLT) otherwise, so heavy-tailed metrics
 * need large samples.
 */
import { studentTQuantile, studentTSf } from "./distributions.js";
import { fiellerRelativeLiftInterval, relativeLiftDelta } from "./proportions.js";
import {
  type Alternative,
  checkAlpha,
  checkFinite,
  checkSummary,
  type Interval,
  pFromStatistic,
  type SampleSummary,
} from "./types.js";

export interface WelchOptions {
  /** 1 − confidence level of the intervals; default 0.05. */
  alpha?: number;
  /** For the p-value; "greater" means treatment mean > control mean. Default "two-sided". */
  alternative?: Alternative;
}

export interface WelchResult {
  test: "welch-t";
  alternative: Alternative;
  alpha: number;
  control: SampleSummary;
  treatment: SampleSummary;
  /** treatment.mean − control.mean. */
  difference: number;
  /** sqrt(s_c²/n_c + s_t²/n_t). */
  standardError: number;
  /** difference / standardError (0 when both variances are 0 and the means are equal). */
  t: number;
  /** Welch–Satterthwaite degrees of freedom. */
  df: number;
  pValue: number;
  /** Two-sided interval for the difference at level 1 − alpha, whatever `alternative` is. */
  interval: Interval;
  /** treatment.mean / control.mean − 1; null when the control mean is 0. */
  relativeLift: number | null;
  /** Delta-method standard error of the relative lift. */
  relativeLiftStandardError: number | null;
  /**
   * Fieller's interval with t(1 − alpha/2, df): excludes 0 exactly when `interval` does (the
   * delta-method lift ± t·SE did not); null when unbounded.
   */
  relativeLiftInterval: Interval | null;
}

/** Count, mean and unbiased variance of the values (Welford's one-pass algorithm). */
export function summarize(values: readonly number[]): SampleSummary {
  checkFinite(values, "values");
  let mean = 0;
  let m2 = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    const delta = x - mean;
    mean += delta / (i + 1);
    m2 += delta * (x - mean);
  }
  const n = values.length;
  return { n, mean: n > 0 ? mean : Number.NaN, variance: n > 1 ? m2 / (n - 1) : Number.NaN };
}

/**
 * Welch's t-test from summary statistics (each arm: n ≥ 2, mean, unbiased variance).
 * Matches `scipy.stats.ttest_ind_from_stats(..., equal_var=False)` with treatment first.
 */
export function welchTTest(
  control: SampleSummary,
  treatment: SampleSummary,
  options: WelchOptions = {},
): WelchResult {
  const alpha = options.alpha ?? 0.05;
  const alternative = options.alternative ?? "two-sided";
  checkAlpha(alpha);
  checkSummary(control, "control");
  checkSummary(treatment, "treatment");
  const vc = control.variance / control.n;
  const vt = treatment.variance / treatment.n;
  const se2 = vc + vt;
  const standardError = Math.sqrt(se2);
  const difference = treatment.mean - control.mean;
  // Welch–Satterthwaite; with both variances 0 the t statistic is undefined anyway.
  const df =
    se2 > 0
      ? (se2 * se2) / ((vc * vc) / (control.n - 1) + (vt * vt) / (treatment.n - 1))
      : control.n + treatment.n - 2;
  let t: number;
  let pValue: number;
  if (standardError > 0) {
    t = difference / standardError;
    pValue = pFromStatistic(t, alternative, (x) => studentTSf(x, df));
  } else {
    // No variation at all: identical means are no evidence; different ones are certain.
    t = difference === 0 ? 0 : Math.sign(difference) * Number.POSITIVE_INFINITY;
    pValue =
      difference === 0
        ? 1
        : alternative === "two-sided" ||
            (alternative === "greater" && difference > 0) ||
            (alternative === "less" && difference < 0)
          ? 0
          : 1;
  }
  const tCrit = studentTQuantile(1 - alpha / 2, df);
  const level = 1 - alpha;
  const rel = relativeLiftDelta(control.mean, vc, treatment.mean, vt);
  return {
    test: "welch-t",
    alternative,
    alpha,
    control: { ...control },
    treatment: { ...treatment },
    difference,
    standardError,
    t,
    df,
    pValue,
    interval: {
      lower: difference - tCrit * standardError,
      upper: difference + tCrit * standardError,
      level,
    },
    relativeLift: rel?.lift ?? null,
    relativeLiftStandardError: rel?.standardError ?? null,
    relativeLiftInterval: fiellerRelativeLiftInterval(
      control.mean,
      vc,
      treatment.mean,
      vt,
      tCrit,
      level,
    ),
  };
}

/**
 * Welch's t-test from raw samples. Matches `scipy.stats.ttest_ind(treatment, control,
 * equal_var=False)`.
 */
export function welchTTestSamples(
  control: readonly number[],
  treatment: readonly number[],
  options: WelchOptions = {},
): WelchResult {
  return welchTTest(summarize(control), summarize(treatment), options);
}

/**
 * Fixed-horizon comparison of two proportions (conversion rates, error rates): the pooled
 * two-proportion z-test, intervals for the absolute difference and a delta-method interval
 * for the relative lift.
 *
 * Assumptions: independent Bernoulli trials within each arm, arms independent, one look at
 * a sample size fixed in advance (peeking invalidates the p-value: use `sequential.ts`).
 * The normal approximation wants roughly ≥ 5 successes and failures per arm.
 */
import { normalQuantile, normalSf } from "./distributions.js";
import {
  type Alternative,
  type BinomialCounts,
  checkAlpha,
  checkCounts,
  type Interval,
  pFromStatistic,
} from "./types.js";

export interface TwoProportionOptions {
  /** 1 − confidence level of the intervals; default 0.05. */
  alpha?: number;
  /** For the p-value; "greater" means treatment rate > control rate. Default "two-sided". */
  alternative?: Alternative;
}

export interface ArmRate extends BinomialCounts {
  rate: number;
}

export interface TwoProportionResult {
  test: "two-proportion-z";
  alternative: Alternative;
  alpha: number;
  control: ArmRate;
  treatment: ArmRate;
  /** treatment.rate − control.rate. */
  difference: number;
  /** sqrt(p̄(1−p̄)(1/n_c + 1/n_t)) with the pooled rate p̄: the standard error under H0. */
  pooledStandardError: number;
  /** sqrt(p_c q_c / n_c + p_t q_t / n_t), used by the Wald interval. */
  unpooledStandardError: number;
  /** difference / pooledStandardError; 0 when the pooled rate is 0 or 1 (no variation). */
  z: number;
  pValue: number;
  /** Two-sided intervals at level 1 − alpha for the difference, whatever `alternative` is. */
  intervals: {
    /** difference ± z·unpooledStandardError; poor with few successes. */
    wald: Interval;
    /** Newcombe's hybrid score interval (method 10, from Wilson intervals); the default to show. */
    newcombe: Interval;
    /** Agresti–Caffo: Wald after adding one success and one failure to each arm. */
    agrestiCaffo: Interval;
  };
  /** treatment.rate / control.rate − 1; null when the control rate is 0. */
  relativeLift: number | null;
  /** Delta-method standard error of the relative lift; null when undefined. */
  relativeLiftStandardError: number | null;
  /**
   * The relative lift's interval at level 1 − alpha, by MOVER-R from the same Wilson intervals
   * as the Newcombe interval, so it excludes 0 exactly when `intervals.newcombe` does; null
   * when undefined or unbounded (see `relativeLiftInterval`).
   */
  relativeLiftInterval: Interval | null;
}

/**
 * Two-proportion z-test (pooled variance under H0: equal rates) with intervals.
 *
 * @example
 * twoProportionZTest({ successes: 120, trials: 2400 }, { successes: 151, trials: 2380 }).pValue
 */
export function twoProportionZTest(
  control: BinomialCounts,
  treatment: BinomialCounts,
  options: TwoProportionOptions = {},
): TwoProportionResult {
  const alpha = options.alpha ?? 0.05;
  const alternative = options.alternative ?? "two-sided";
  checkAlpha(alpha);
  checkCounts(control, "control");
  checkCounts(treatment, "treatment");
  if (control.trials === 0 || treatment.trials === 0) {
    throw new RangeError("twoProportionZTest: each arm needs at least one trial");
  }
  const nc = control.trials;
  const nt = treatment.trials;
  const pc = control.successes / nc;
  const pt = treatment.successes / nt;
  const difference = pt - pc;
  const pooled = (control.successes + treatment.successes) / (nc + nt);
  const pooledStandardError = Math.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / nt));
  const z = pooledStandardError > 0 ? difference / pooledStandardError : 0;
  const pValue = pooledStandardError > 0 ? pFromStatistic(z, alternative, (x) => normalSf(x)) : 1;
  const zCrit = normalQuantile(1 - alpha / 2);
  const level = 1 - alpha;
  const unpooledStandardError = Math.sqrt((pc * (1 - pc)) / nc + (pt * (1 - pt)) / nt);

  const wald: Interval = {
    lower: difference - zCrit * unpooledStandardError,
    upper: difference + zCrit * unpooledStandardError,
    level,
  };
  const wc = wilsonInterval(control.successes, nc, zCrit);
  const wt = wilsonInterval(treatment.successes, nt, zCrit);
  // Clamped because rounding can push a bound a few ulps past ±1.
  const newcombe: Interval = {
    lower: Math.max(-1, difference - Math.sqrt((pt - wt.lower) ** 2 + (wc.upper - pc) ** 2)),
    upper: Math.min(1, difference + Math.sqrt((wt.upper - pt) ** 2 + (pc - wc.lower) ** 2)),
    level,
  };
  const pcA = (control.successes + 1) / (nc + 2);
  const ptA = (treatment.successes + 1) / (nt + 2);
  const seA = Math.sqrt((pcA * (1 - pcA)) / (nc + 2) + (ptA * (1 - ptA)) / (nt + 2));
  const agrestiCaffo: Interval = {
    lower: ptA - pcA - zCrit * seA,
    upper: ptA - pcA + zCrit * seA,
    level,
  };

  const rel = relativeLiftDelta(pc, (pc * (1 - pc)) / nc, pt, (pt * (1 - pt)) / nt);
  return {
    test: "two-proportion-z",
    alternative,
    alpha,
    control: { ...control, rate: pc },
    treatment: { ...treatment, rate: pt },
    difference,
    pooledStandardError,
    unpooledStandardError,
    z,
    pValue,
    intervals: { wald, newcombe, agrestiCaffo },
    relativeLift: rel?.lift ?? null,
    relativeLiftStandardError: rel?.standardError ?? null,
    relativeLiftInterval: relativeLiftInterval(
      { estimate: pc, lower: wc.lower, upper: wc.upper },
      { estimate: pt, lower: wt.lower, upper: wt.upper },
      level,
    ),
  };
}

/** Wilson score interval for one proportion, with critical value z (no continuity correction). */
export function wilsonInterval(
  successes: number,
  trials: number,
  z: number,
): { lower: number; upper: number } {
  const p = successes / trials;
  const z2 = z * z;
  const denom = 1 + z2 / trials;
  const centre = (p + z2 / (2 * trials)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials))) / denom;
  return { lower: centre - half, upper: centre + half };
}

/**
 * Relative lift mt/mc − 1 and its delta-method standard error from the two estimates and
 * the variances of the estimates (not of the observations):
 * Var ≈ vt / mc² + mt² · vc / mc⁴ (arms independent). Null when mc is 0.
 */
export function relativeLiftDelta(
  mc: number,
  varMc: number,
  mt: number,
  varMt: number,
): { lift: number; standardError: number } | null {
  if (mc === 0) return null;
  const mc2 = mc * mc;
  return {
    lift: mt / mc - 1,
    standardError: Math.sqrt(varMt / mc2 + (mt * mt * varMc) / (mc2 * mc2)),
  };
}

/** An estimate with the two-sided interval it was reported with. */
export interface EstimateWithInterval {
  estimate: number;
  lower: number;
  upper: number;
}

/**
 * The interval of the relative lift mt/mc − 1 built from the same per-arm intervals (the same
 * critical value, the same standard errors) as the absolute difference's interval, by MOVER-R
 * (Donner & Zou 2012, "Closed-form confidence intervals for functions of the normal mean and
 * standard deviation"; for symmetric per-arm intervals it is exactly Fieller's interval). Its
 * bounds are the roots of (mt − θ·mc)² = Lt² + θ²·Uc² (lower) and (mt − θ·mc)² = Ut² + θ²·Lc²
 * (upper), with L and U the per-arm half-widths below and above the estimate. At θ = 1 (no
 * lift) these equations are the ones that put the absolute interval's bound at 0
 * (d² = Lt² + Uc², Newcombe's hybrid construction, or d² = z²(vt + vc) for a Wald interval),
 * which is why the two intervals exclude 0 in the same cases: the delta-method interval
 * lift ± z·SE does not have that property (it can contain 0 next to an absolute interval that
 * does not, seen in `turnout experiment results` next to a "win").
 *
 * Null when the control's interval contains 0: the ratio is then unbounded (Fieller's set is
 * the whole line or two rays) and no finite relative interval is honest.
 */
export function relativeLiftInterval(
  control: EstimateWithInterval,
  treatment: EstimateWithInterval,
  level: number,
): Interval | null {
  // Work with a positive control: mt/mc = (−mt)/(−mc), with each interval mirrored.
  const flip = (e: EstimateWithInterval): EstimateWithInterval => ({
    estimate: -e.estimate,
    lower: -e.upper,
    upper: -e.lower,
  });
  const c = control.estimate < 0 ? flip(control) : control;
  const t = control.estimate < 0 ? flip(treatment) : treatment;
  const mc = c.estimate;
  const mt = t.estimate;
  if (!(mc > 0) || !(c.lower > 0)) return null;
  const lc = mc - c.lower; // half-width below the control's estimate
  const uc = c.upper - mc; // above
  const lt = mt - t.lower;
  const ut = t.upper - mt;
  const denLower = mc * mc - uc * uc;
  const denUpper = mc * mc - lc * lc;
  if (!(denLower > 0) || !(denUpper > 0)) return null;
  const p = mt * mc;
  // Discriminants, rewritten as sums of non-negative terms (see the doc comment's equations).
  const dLower = mt * mt * uc * uc + lt * lt * denLower;
  const dUpper = mt * mt * lc * lc + ut * ut * denUpper;
  return {
    lower: (p - Math.sqrt(dLower)) / denLower - 1,
    upper: (p + Math.sqrt(dUpper)) / denUpper - 1,
    level,
  };
}

/**
 * Fieller's interval of the relative lift mt/mc − 1 for symmetric intervals m ± crit·sqrt(v):
 * it contains 0 exactly when mt − mc ± crit·sqrt(vt + vc) does. Null when unbounded.
 */
export function fiellerRelativeLiftInterval(
  mc: number,
  varMc: number,
  mt: number,
  varMt: number,
  crit: number,
  level: number,
): Interval | null {
  const hc = crit * Math.sqrt(varMc);
  const ht = crit * Math.sqrt(varMt);
  return relativeLiftInterval(
    { estimate: mc, lower: mc - hc, upper: mc + hc },
    { estimate: mt, lower: mt - ht, upper: mt + ht },
    level,
  );
}

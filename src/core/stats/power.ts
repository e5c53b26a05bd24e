/**
 * Power and sample-size planning for fixed-horizon two-arm tests (normal approximation), so
 * an experiment's duration can be estimated before it starts.
 *
 * Conventions: "ratio" is n_treatment / n_control (1 for an even split); `mde` is the minimum
 * detectable effect, relative to the baseline (0.05 = +5 %) or absolute; two-sided power
 * ignores the (negligible) chance of rejecting in the wrong direction, as the textbook
 * formulas (Fleiss, Levin & Paik, "Statistical Methods for Rates and Proportions", without
 * continuity correction; Chow, Shao & Wang, "Sample Size Calculations in Clinical Research")
 * and statsmodels' `samplesize_proportions_2indep_onetail`. Sequential tests need more
 * samples than these for the same power.
 */
import { normalCdf, normalQuantile } from "./distributions.js";
import { checkAlpha } from "./types.js";

export interface PlanCommon {
  /** Significance level; default 0.05. */
  alpha?: number;
  /** Target power 1 − β; default 0.8. */
  power?: number;
  /** Default "two-sided" (alpha split over both tails). */
  alternative?: "two-sided" | "one-sided";
  /** n_treatment / n_control; default 1. */
  ratio?: number;
  /** Whether `mde` is relative to the baseline (default) or absolute. */
  mdeType?: "relative" | "absolute";
  /** Minimum detectable effect (sign ignored). */
  mde: number;
}

export interface ProportionPlan extends PlanCommon {
  /** Control (baseline) rate, in (0, 1). */
  baseline: number;
}

export interface MeanPlan extends PlanCommon {
  /** Standard deviation of one observation, assumed equal in both arms. */
  sd: number;
  /** Control mean; needed when mdeType is "relative". */
  baselineMean?: number;
}

export interface SampleSizeResult {
  /** Users (units) needed in the control arm, rounded up. */
  control: number;
  /** Users needed in the treatment arm, rounded up. */
  treatment: number;
  total: number;
  /** Unrounded control size from the formula. */
  exactControl: number;
  /** Absolute effect planned for (treatment − control). */
  effect: number;
  alpha: number;
  power: number;
  zAlpha: number;
  zBeta: number;
}

function common(plan: PlanCommon) {
  const alpha = plan.alpha ?? 0.05;
  const power = plan.power ?? 0.8;
  const ratio = plan.ratio ?? 1;
  checkAlpha(alpha);
  if (!(power > 0 && power < 1)) throw new RangeError(`power must be in (0, 1), got ${power}`);
  if (!(ratio > 0 && Number.isFinite(ratio)))
    throw new RangeError(`ratio must be > 0, got ${ratio}`);
  if (!(Number.isFinite(plan.mde) && plan.mde !== 0)) {
    throw new RangeError(`mde must be a nonzero number, got ${plan.mde}`);
  }
  const zAlpha = normalQuantile(plan.alternative === "one-sided" ? 1 - alpha : 1 - alpha / 2);
  const zBeta = normalQuantile(power);
  return { alpha, power, ratio, zAlpha, zBeta };
}

function proportionRates(plan: ProportionPlan): { p1: number; p2: number; effect: number } {
  const p1 = plan.baseline;
  if (!(p1 > 0 && p1 < 1)) throw new RangeError(`baseline must be in (0, 1), got ${p1}`);
  const effect =
    (plan.mdeType ?? "relative") === "relative" ? p1 * Math.abs(plan.mde) : Math.abs(plan.mde);
  const p2 = p1 + effect;
  if (!(p2 < 1)) throw new RangeError(`baseline + effect must stay below 1, got ${p2}`);
  return { p1, p2, effect };
}

/**
 * Sample size per arm for the pooled two-proportion z-test:
 *
 *   n_c = ( z_α · sqrt(p̄ q̄ (1 + 1/r)) + z_β · sqrt(p₁q₁ + p₂q₂/r) )² / δ²,  n_t = r · n_c,
 *
 * with p₁ the baseline, p₂ = p₁ + δ, p̄ = (p₁ + r p₂)/(1 + r), q = 1 − p.
 *
 * @example sampleSizeTwoProportions({ baseline: 0.05, mde: 0.1 }).control // ≈ 31 234
 */
export function sampleSizeTwoProportions(plan: ProportionPlan): SampleSizeResult {
  const { alpha, power, ratio: r, zAlpha, zBeta } = common(plan);
  const { p1, p2, effect } = proportionRates(plan);
  const pBar = (p1 + r * p2) / (1 + r);
  const a = zAlpha * Math.sqrt(pBar * (1 - pBar) * (1 + 1 / r));
  const b = zBeta * Math.sqrt(p1 * (1 - p1) + (p2 * (1 - p2)) / r);
  const exactControl = ((a + b) * (a + b)) / (effect * effect);
  return result(exactControl, r, effect, alpha, power, zAlpha, zBeta);
}

/**
 * Sample size per arm for the two-sample z-test on means:
 *
 *   n_c = (z_α + z_β)² σ² (1 + 1/r) / δ²,  n_t = r · n_c.
 */
export function sampleSizeTwoMeans(plan: MeanPlan): SampleSizeResult {
  const { alpha, power, ratio: r, zAlpha, zBeta } = common(plan);
  const effect = meanEffect(plan);
  const z = zAlpha + zBeta;
  const exactControl = (z * z * plan.sd * plan.sd * (1 + 1 / r)) / (effect * effect);
  return result(exactControl, r, effect, alpha, power, zAlpha, zBeta);
}

/**
 * Power of the pooled two-proportion z-test with `control` users in the control arm (and
 * ratio × control in the treatment arm):
 *   Φ( (δ − z_α sqrt(p̄q̄(1/n_c + 1/n_t))) / sqrt(p₁q₁/n_c + p₂q₂/n_t) ).
 */
export function powerTwoProportions(plan: Omit<ProportionPlan, "power">, control: number): number {
  const { ratio: r, zAlpha } = common({ ...plan, power: 0.5 });
  const { p1, p2, effect } = proportionRates(plan);
  const nc = control;
  const nt = r * control;
  if (!(nc > 0)) throw new RangeError(`control must be > 0, got ${control}`);
  const pBar = (nc * p1 + nt * p2) / (nc + nt);
  const se0 = Math.sqrt(pBar * (1 - pBar) * (1 / nc + 1 / nt));
  const se1 = Math.sqrt((p1 * (1 - p1)) / nc + (p2 * (1 - p2)) / nt);
  return normalCdf((effect - zAlpha * se0) / se1);
}

/** Power of the two-sample z-test on means: Φ( δ / (σ sqrt(1/n_c + 1/n_t)) − z_α ). */
export function powerTwoMeans(plan: Omit<MeanPlan, "power">, control: number): number {
  const { ratio: r, zAlpha } = common({ ...plan, power: 0.5 });
  const effect = meanEffect(plan);
  if (!(control > 0)) throw new RangeError(`control must be > 0, got ${control}`);
  return normalCdf(effect / (plan.sd * Math.sqrt(1 / control + 1 / (r * control))) - zAlpha);
}

function meanEffect(plan: MeanPlan): number {
  if (!(plan.sd > 0 && Number.isFinite(plan.sd)))
    throw new RangeError(`sd must be > 0, got ${plan.sd}`);
  if ((plan.mdeType ?? "relative") === "absolute") return Math.abs(plan.mde);
  const m = plan.baselineMean;
  if (m === undefined || !Number.isFinite(m) || m === 0) {
    throw new RangeError('baselineMean: a nonzero number is needed when mdeType is "relative"');
  }
  return Math.abs(plan.mde * m);
}

function result(
  exactControl: number,
  ratio: number,
  effect: number,
  alpha: number,
  power: number,
  zAlpha: number,
  zBeta: number,
): SampleSizeResult {
  // Guard the ceiling against a result like 31234.000000000004 from rounding.
  const control = Math.ceil(exactControl - 1e-9);
  const treatment = Math.ceil(exactControl * ratio - 1e-9);
  return {
    control,
    treatment,
    total: control + treatment,
    exactControl,
    effect,
    alpha,
    power,
    zAlpha,
    zBeta,
  };
}

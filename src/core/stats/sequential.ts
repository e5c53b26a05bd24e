/**
 * Sequential tests that stay valid under continuous monitoring: look after every request
 * or every minute, stop the first time the evidence suffices, and the probability of ever
 * rejecting a true null stays ≤ alpha (Ville's inequality applied to a nonnegative
 * (super)martingale). The price is wider intervals than a fixed-horizon test at the same n.
 *
 * Two families:
 * (a) the mixture sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis &
 *     Walsh, "Always valid inference: continuous monitoring of A/B tests" (Operations
 *     Research 70(3), 2022; arXiv:1512.04922): a normal mixture, variance tau², over the
 *     effect of the Gaussian likelihood ratio of the difference estimate. Suited to the
 *     canary's error-rate judge: one-sided versions (a half-normal mixture) detect "worse
 *     than baseline" only.
 * (b) the asymptotic confidence sequence of Waudby-Smith, Arnold, Wu, Wang & Ramdas,
 *     "Time-uniform central limit theory and asymptotic confidence sequences" (Annals of
 *     Statistics 52(6), 2024; arXiv:2103.06476), in the parameterization GrowthBook uses for
 *     its sequential testing (tuning parameter N* = "sequentialTuningParameter", default
 *     5000). Related exact nonasymptotic bounds: Howard, Ramdas, McAuliffe & Sekhon,
 *     "Time-uniform, nonparametric, nonasymptotic confidence sequences" (Annals of
 *     Statistics 49(2), 2021), whose normal-mixture boundaries include the one behind (a).
 *
 * Equation numbers below refer to arXiv:2103.06476v7, as GrowthBook's code cites them.
 *
 * Both plug in estimated variances, so validity is asymptotic (it holds as the sample grows;
 * with a handful of events the normal approximation is poor): callers must treat small
 * samples as inconclusive. The seeded A/A simulation in sequential.test.ts checks the
 * false-positive rate under peeking.
 */
import { normalCdf } from "./distributions.js";
import { relativeLiftDelta } from "./proportions.js";
import {
  type Alternative,
  type BinomialCounts,
  checkAlpha,
  checkCounts,
  checkSummary,
  type Interval,
  type SampleSummary,
} from "./types.js";

// ---------------------------------------------------------------------------------------
// (a) mSPRT

export interface MsprtOptions {
  /** Type I error bound over the whole (unbounded) monitoring; default 0.05. */
  alpha?: number;
  /**
   * Variance tau² of the normal mixing distribution over the effect (on the scale of the
   * difference). The test has most power for effects of size about tau, so choose it as the
   * smallest effect worth catching squared, e.g. 0.01² for one percentage point of error
   * rate. Required: there is no data-free default that suits every metric.
   */
  tau2: number;
  /** The difference under H0 (treatment − control); default 0. */
  nullDifference?: number;
  /**
   * "two-sided" (normal mixture), or "greater"/"less": a half-normal mixture on the side of
   * the alternative, testing H0: difference ≤ null (resp. ≥ null). Default "two-sided".
   */
  alternative?: Alternative;
  /**
   * The always-valid p-value reported at the previous look, if any. The always-valid p-value
   * is the running minimum of 1/Λ, so pass it back in to carry the minimum forward.
   */
  previousPValue?: number;
}

export interface MsprtResult {
  test: "msprt";
  alternative: Alternative;
  alpha: number;
  tau2: number;
  nullDifference: number;
  /** Estimate of the difference, treatment − control. */
  estimate: number;
  /** Plug-in variance V of the estimate (not of one observation). */
  variance: number;
  /** (estimate − nullDifference) / sqrt(V): the fixed-horizon z, for display only. */
  z: number;
  /**
   * log Λ, the log mixture likelihood ratio against H0: finite where Λ itself overflows;
   * −Infinity for a one-sided test when the evidence points overwhelmingly the other way.
   */
  logLikelihoodRatio: number;
  /** Λ = exp(logLikelihoodRatio); H0 is rejected once Λ ≥ 1/alpha. */
  likelihoodRatio: number;
  /** Always-valid p-value: min(previousPValue, 1/Λ, 1). */
  pValue: number;
  /** pValue ≤ alpha. */
  rejected: boolean;
  /**
   * Two-sided confidence sequence at level 1 − alpha from the normal mixture:
   * {θ : Λ_two-sided(θ) < 1/alpha}. Valid at every look simultaneously (whatever
   * `alternative` is); the intersection over past looks is valid too.
   */
  confidenceSequence: Interval;
}

/**
 * mSPRT from a difference estimate and its variance (the general form; see
 * `msprtTwoProportions` and `msprtTwoMeans`). With s = estimate − null and V the variance:
 *
 *   two-sided:  Λ = sqrt(V / (V + τ²)) · exp( τ² s² / (2 V (V + τ²)) )
 *   greater:    Λ = 2 sqrt(V / (V + τ²)) · exp( τ² s² / (2 V (V + τ²)) ) · Φ( τ s / sqrt(V (V + τ²)) )
 *   less:       as greater with Φ(−τ s / sqrt(V (V + τ²)))
 *
 * The one-sided forms integrate the likelihood ratio exp(δ s / V − δ² / (2V)) against a
 * half-normal density 2·φ(δ/τ)/τ on δ > 0 (resp. < 0); for a true difference on the null side
 * each component is a supermartingale, so H0 is composite. V = σ²/n for n paired
 * observations makes Λ_n a martingale under H0 exactly for Gaussian data with known σ².
 *
 * Degenerate V = 0 carries no usable information: Λ = 1.
 */
export function msprtNormal(
  estimate: number,
  variance: number,
  options: MsprtOptions,
): MsprtResult {
  const alpha = options.alpha ?? 0.05;
  const alternative = options.alternative ?? "two-sided";
  const nullDifference = options.nullDifference ?? 0;
  const { tau2 } = options;
  checkAlpha(alpha);
  if (!(tau2 > 0 && Number.isFinite(tau2))) throw new RangeError(`tau2 must be > 0, got ${tau2}`);
  if (!Number.isFinite(estimate) || !(variance >= 0) || !Number.isFinite(variance)) {
    throw new RangeError(
      `msprt: need a finite estimate and variance >= 0, got ${estimate}, ${variance}`,
    );
  }
  const prev = options.previousPValue ?? 1;
  if (!(prev >= 0 && prev <= 1))
    throw new RangeError(`previousPValue must be in [0, 1], got ${prev}`);

  const s = estimate - nullDifference;
  let logLr = 0;
  let z = 0;
  let csHalfWidth = Number.POSITIVE_INFINITY;
  if (variance > 0) {
    const vPlusT = variance + tau2;
    z = s / Math.sqrt(variance);
    logLr = 0.5 * Math.log(variance / vPlusT) + (tau2 * s * s) / (2 * variance * vPlusT);
    if (alternative !== "two-sided") {
      const arg = (Math.sqrt(tau2) * s) / Math.sqrt(variance * vPlusT);
      logLr += Math.LN2 + Math.log(normalCdf(alternative === "greater" ? arg : -arg));
    }
    // Inverting the two-sided Λ(θ) < 1/alpha for θ.
    csHalfWidth = Math.sqrt(
      ((variance * vPlusT) / tau2) * (2 * Math.log(1 / alpha) + Math.log(vPlusT / variance)),
    );
  }
  const likelihoodRatio = Math.exp(logLr);
  const pValue = Math.min(prev, Math.exp(-logLr), 1);
  return {
    test: "msprt",
    alternative,
    alpha,
    tau2,
    nullDifference,
    estimate,
    variance,
    z,
    logLikelihoodRatio: logLr,
    likelihoodRatio,
    pValue,
    rejected: pValue <= alpha,
    confidenceSequence: {
      lower: estimate - csHalfWidth,
      upper: estimate + csHalfWidth,
      level: 1 - alpha,
    },
  };
}

export interface MsprtProportionsOptions extends MsprtOptions {
  /**
   * The variance of the difference that the test uses (see `twoProportionVariances`):
   * "unpooled" (default), from each arm's own rate; or "null", the variance the difference
   * would have at the null, both arms' events pooled as if treatment = control + null
   * difference (the score test's choice; Farrington & Manning 1990 for a nonzero null).
   * The mSPRT's likelihood ratio is a martingale under H0 when V is the variance under H0,
   * so "null" is the calibrated choice; it is also much more powerful when the treatment's
   * rate is well above the control's, because the unpooled variance then grows with the very
   * effect being tested (errors 1% → 5% on 300 vs 2,700 requests: V is 3 times smaller).
   */
  variance?: "unpooled" | "null";
  /**
   * Continuity correction: the estimate is moved ½(1/n_c + 1/n_t) towards the null (never
   * past it) before the likelihood ratio is computed; `estimate` in the result stays the raw
   * difference. Rare events make the difference of rates lumpy and its upper tail heavier than
   * the normal one, most at the first looks: in seeded A/A runs at a 1% error rate (10
   * requests/s on the candidate, a look every 10 s for 10 minutes) the "null" variance without
   * it rejected 1.1% of 10,000 runs at alpha 1%, with it 0.7%. `z`, the likelihood ratio and
   * the p-value are the corrected estimate's; the confidence sequence keeps its width but is
   * centred on the raw estimate. Default false.
   */
  continuity?: boolean;
}

/**
 * mSPRT on the difference of two proportions, treatment − control (e.g. candidate minus
 * baseline error rate). The estimate is the raw difference of rates; the variance is
 * `twoProportionVariances`' unpooled or null one (option `variance`), never 0.
 *
 * @example
 * // Fail the canary once its error rate is credibly above the baseline's.
 * msprtTwoProportions(baselineErrors, canaryErrors, { tau2: 0.03 ** 2, alpha: 0.01, alternative: "greater", variance: "null" })
 */
export function msprtTwoProportions(
  control: BinomialCounts,
  treatment: BinomialCounts,
  options: MsprtProportionsOptions,
): MsprtResult {
  const v = twoProportionVariances(control, treatment, options.nullDifference ?? 0);
  const estimate = treatment.successes / treatment.trials - control.successes / control.trials;
  const variance = options.variance === "null" ? v.atNull : v.unpooled;
  if (!options.continuity) return msprtNormal(estimate, variance, options);
  // Half an event on each arm, taken off the estimate's distance from the null (never past
  // it), as Yates's correction does for the fixed-sample test of two proportions.
  const nul = options.nullDifference ?? 0;
  const cc = 0.5 * (1 / treatment.trials + 1 / control.trials);
  const toward = estimate > nul ? Math.max(nul, estimate - cc) : Math.min(nul, estimate + cc);
  const r = msprtNormal(toward, variance, options);
  const half = (r.confidenceSequence.upper - r.confidenceSequence.lower) / 2;
  return {
    ...r,
    estimate,
    confidenceSequence: { lower: estimate - half, upper: estimate + half, level: 1 - r.alpha },
  };
}

/**
 * Two plug-in variances of the difference of rates treatment − control, each with the rates
 * shrunk by half an event and half a non-event so that neither is ever 0 (a canary failing
 * every request against a baseline failing none must still be rejected):
 *
 * - unpooled: p̃_c(1 − p̃_c)/n_c + p̃_t(1 − p̃_t)/n_t with p̃ = (x + ½)/(n + 1) per arm;
 *   consistent under any difference.
 * - atNull: the same formula at rates that satisfy the null, p*_t = p*_c + δ, with p*_c
 *   estimated from both arms' events, p*_c = (x_c + x_t − n_t·δ + ½)/(n_c + n_t + 1) (clamped
 *   so that both rates stay inside (0, 1)); for δ = 0 it is the pooled variance
 *   p̃(1 − p̃)(1/n_c + 1/n_t). Consistent when the null holds, which is what a test needs;
 *   a moment estimator rather than Farrington & Manning's restricted maximum likelihood (a
 *   cubic), to which it is asymptotically equivalent at the null.
 */
export function twoProportionVariances(
  control: BinomialCounts,
  treatment: BinomialCounts,
  nullDifference: number,
): { unpooled: number; atNull: number } {
  checkCounts(control, "control");
  checkCounts(treatment, "treatment");
  if (control.trials === 0 || treatment.trials === 0) {
    throw new RangeError("msprtTwoProportions: each arm needs at least one trial");
  }
  const shrunkVar = (c: BinomialCounts) => {
    const p = (c.successes + 0.5) / (c.trials + 1);
    return (p * (1 - p)) / c.trials;
  };
  const unpooled = shrunkVar(control) + shrunkVar(treatment);
  const nc = control.trials;
  const nt = treatment.trials;
  const eps = 0.5 / (nc + nt + 1);
  const lowest = Math.max(eps, eps - nullDifference);
  const highest = Math.min(1 - eps, 1 - eps - nullDifference);
  if (!(lowest <= highest)) return { unpooled, atNull: unpooled };
  const raw = (control.successes + treatment.successes - nt * nullDifference + 0.5) / (nc + nt + 1);
  const pc = Math.min(highest, Math.max(lowest, raw));
  const pt = pc + nullDifference;
  return { unpooled, atNull: (pc * (1 - pc)) / nc + (pt * (1 - pt)) / nt };
}

/**
 * mSPRT on the difference of two means from summaries (plug-in V = s_c²/n_c + s_t²/n_t, as
 * Johari et al. suggest for unknown variances).
 */
export function msprtTwoMeans(
  control: SampleSummary,
  treatment: SampleSummary,
  options: MsprtOptions,
): MsprtResult {
  checkSummary(control, "control");
  checkSummary(treatment, "treatment");
  return msprtNormal(
    treatment.mean - control.mean,
    control.variance / control.n + treatment.variance / treatment.n,
    options,
  );
}

// ---------------------------------------------------------------------------------------
// (b) Asymptotic confidence sequence

/** GrowthBook's default `sequentialTuningParameter`: the CS is tightest near this total N. */
export const DEFAULT_SEQUENTIAL_TUNING = 5000;

export interface AsymptoticCsOptions {
  /** Miscoverage over all looks; default 0.05. */
  alpha?: number;
  /**
   * N*, the total sample size (both arms) at which the sequence is tightest; it fixes ρ
   * (see `sequentialRho`). Default 5000, as GrowthBook.
   */
  tuning?: number;
  /** Relative lift (treatment / control − 1, delta-method variance) instead of the difference. */
  relative?: boolean;
  /** The always-valid p-value of the previous look, to carry the running minimum forward. */
  previousPValue?: number;
}

export interface AsymptoticCsResult {
  test: "asymptotic-cs";
  alpha: number;
  tuning: number;
  rho: number;
  relative: boolean;
  /** N = n_control + n_treatment. */
  n: number;
  /** Difference treatment − control, or the relative lift. */
  estimate: number;
  /** Fixed-horizon standard error of the estimate. */
  standardError: number;
  /** Half-width of the confidence sequence at this N. */
  halfWidth: number;
  /** The confidence sequence at this look, level 1 − alpha uniformly over all looks. */
  interval: Interval;
  /**
   * Always-valid p-value for H0: effect 0 at this ρ (Waudby-Smith et al. eq. 155, as used by
   * GrowthBook), running minimum with previousPValue. pValue ≤ alpha ⇔ the interval excludes 0
   * (absent previousPValue).
   */
  pValue: number;
  /** pValue ≤ alpha. */
  rejected: boolean;
}

/**
 * ρ that makes the two-sided asymptotic CS tightest at total sample size N* (Waudby-Smith et
 * al. 2024, eq. 161; GrowthBook `sequentialRho`):
 *
 *   ρ = sqrt( (−2 ln α + ln(−2 ln α + 1)) / N* )
 */
export function sequentialRho(alpha: number, tuning: number = DEFAULT_SEQUENTIAL_TUNING): number {
  checkAlpha(alpha);
  if (!(tuning > 0)) throw new RangeError(`tuning must be > 0, got ${tuning}`);
  const l = -2 * Math.log(alpha);
  return Math.sqrt((l + Math.log(l + 1)) / tuning);
}

/**
 * Half-width of the two-sided asymptotic confidence sequence (Waudby-Smith et al. 2024,
 * eq. 9; GrowthBook `sequentialIntervalHalfwidth`):
 *
 *   halfWidth = σ̂ · sqrt( 2(Nρ² + 1) / (N²ρ²) · ln( sqrt(Nρ² + 1) / α ) )
 *
 * where σ̂² is the variance of one observation's contribution, here σ̂² = SE² · N with SE the
 * standard error of the estimate at total sample size N.
 */
export function asymptoticCsHalfWidth(
  sigma: number,
  n: number,
  rho: number,
  alpha: number,
): number {
  const nr2 = n * rho * rho;
  return (
    sigma *
    Math.sqrt(((2 * (nr2 + 1)) / (n * n * rho * rho)) * Math.log(Math.sqrt(nr2 + 1) / alpha))
  );
}

/**
 * Asymptotic confidence sequence on the difference of means (or the relative lift) of two
 * arms, from summaries. For proportions use `binomialSummary` to turn counts into
 * summaries.
 *
 * @example
 * const cs = asymptoticConfidenceSequence(summarize(control), summarize(treatment), { alpha: 0.05 });
 * if (cs.interval.lower > 0) shipTreatment();
 */
export function asymptoticConfidenceSequence(
  control: SampleSummary,
  treatment: SampleSummary,
  options: AsymptoticCsOptions = {},
): AsymptoticCsResult {
  const alpha = options.alpha ?? 0.05;
  const tuning = options.tuning ?? DEFAULT_SEQUENTIAL_TUNING;
  const relative = options.relative ?? false;
  const prev = options.previousPValue ?? 1;
  if (!(prev >= 0 && prev <= 1))
    throw new RangeError(`previousPValue must be in [0, 1], got ${prev}`);
  checkSummary(control, "control");
  checkSummary(treatment, "treatment");
  const rho = sequentialRho(alpha, tuning);
  const n = control.n + treatment.n;
  const vc = control.variance / control.n;
  const vt = treatment.variance / treatment.n;
  let estimate: number;
  let se: number;
  if (relative) {
    const rel = relativeLiftDelta(control.mean, vc, treatment.mean, vt);
    if (!rel)
      throw new RangeError(
        "asymptoticConfidenceSequence: relative lift needs a nonzero control mean",
      );
    estimate = rel.lift;
    se = rel.standardError;
  } else {
    estimate = treatment.mean - control.mean;
    se = Math.sqrt(vc + vt);
  }
  const sigma = se * Math.sqrt(n);
  const nr2 = n * rho * rho;
  const halfWidth = asymptoticCsHalfWidth(sigma, n, rho, alpha);
  // p = sqrt(Nρ²+1) · exp(−ρ² N Δ² / (2 SE² (Nρ²+1))): the α at which |Δ| = halfWidth.
  const p =
    se > 0
      ? Math.sqrt(nr2 + 1) *
        Math.exp(-(rho * rho * n * estimate * estimate) / (2 * se * se * (nr2 + 1)))
      : estimate === 0
        ? 1
        : 0;
  const pValue = Math.min(prev, p, 1);
  return {
    test: "asymptotic-cs",
    alpha,
    tuning,
    rho,
    relative,
    n,
    estimate,
    standardError: se,
    halfWidth,
    interval: { lower: estimate - halfWidth, upper: estimate + halfWidth, level: 1 - alpha },
    pValue,
    rejected: pValue <= alpha,
  };
}

/**
 * Counts as a summary for mean-based tests: mean = rate, variance = rate·(1 − rate) (the
 * Bernoulli variance with divisor n, as GrowthBook's proportion statistic).
 */
export function binomialSummary(c: BinomialCounts): SampleSummary {
  checkCounts(c, "counts");
  const p = c.trials > 0 ? c.successes / c.trials : Number.NaN;
  return { n: c.trials, mean: p, variance: p * (1 - p) };
}

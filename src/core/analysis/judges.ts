/**
 * Judges: one measurement of one metric in, one explained verdict out. Pure (no I/O, no clock,
 * no logging); the only state is `JudgeMemory`, which the caller carries from one measurement
 * of a metric to the next (the analysis run keeps it).
 *
 * Principles, each answering a complaint about Flagger and Argo Rollouts:
 * - Too little data is inconclusive, never a pass (and never a fail: "noData" is inconclusive).
 * - The statistical judges compare the candidate with the baseline over the same window,
 *   rather than with a fixed number.
 * - Every verdict carries its inputs, the test, the statistic, the p-value or bound, the effect
 *   and a one-line explanation with the numbers, for `turnout status` and `turnout history`.
 * - A judge never throws on bad data: a measurement it cannot use is an "error" verdict saying
 *   why (the run counts those towards consecutiveErrorLimit).
 *
 * The four judges:
 * - threshold {min?, max?}: the candidate's value against fixed bounds.
 * - relative {mode, maxIncrease?, maxDecrease?}: candidate against baseline. "ratio": the
 *   relative change candidate/baseline − 1 must lie in [−maxDecrease, +maxIncrease] (0.2 means
 *   +20 %); "difference": candidate − baseline must lie in [−maxDecrease, +maxIncrease], in the
 *   metric's unit.
 * - sequential {maxIncrease, detect?, alpha}: a one-sided mixture SPRT on error counts, always
 *   valid under continuous monitoring (see `judgeSequential`).
 * - mannWhitney {maxRelativeIncrease, alpha}: a one-sided rank test on latency samples or
 *   histogram bins with a Hodges–Lehmann shift as the effect, as Kayenta's judge, its alpha
 *   split over the looks of a run (see `judgeMannWhitney`).
 */
import type { JudgeSpec } from "../model.js";
import {
  type MannWhitneyResult,
  mannWhitneyBinned,
  mannWhitneyU,
  msprtNormal,
  msprtTwoProportions,
  twoProportionVariances,
  type ValueBin,
} from "../stats/index.js";
import type { Observation, ObservedSide, ObservedValues } from "./observation.js";

export type JudgeKind = "threshold" | "relative" | "sequential" | "mannWhitney";
export type Outcome = "pass" | "fail" | "inconclusive" | "error";

/** A stable code for why a verdict is inconclusive or an error (for UIs and for counting). */
export type VerdictReason =
  /** The source had nothing for the window (a FailedMeasurement with errorKind "noData"). */
  | "noData"
  /** A sample size below minSamples on the candidate or the baseline. */
  | "tooFewSamples"
  /** No baseline measurement (a first rollout, or a baseline without data in the window). */
  | "noBaseline"
  /** The effect is undefined: a ratio to a baseline of 0, a relative shift from a median of 0. */
  | "undefinedEffect"
  /** The sequential judge has enough samples but neither rejection nor a tight enough bound. */
  | "notEnoughEvidence"
  /** The measurement failed (timeout, unreachable, aborted...): an "error" verdict. */
  | "measurementFailed"
  /** The measurement lacks what this judge needs, or its numbers are invalid: "error". */
  | "badInput";

/** One side's numbers as the judge used them (never the raw samples, to keep records small). */
export interface SideInputs {
  version?: string;
  value?: number;
  sampleSize?: number;
  events?: number;
  trials?: number;
  /** Observations the rank test used (samples, or the total count of the bins). */
  rankSamples?: number;
  /** Present when the rank test used histogram bins: how many. */
  bins?: number;
  median?: number;
}

/** What went into a verdict. */
export interface VerdictInputs {
  /** The judge and its parameters (alpha defaults applied by the schema). */
  judge: JudgeSpec;
  minSamples: number;
  /** The number a threshold judge compared, and its sample size when known. */
  value?: number;
  sampleSize?: number;
  candidate?: SideInputs;
  baseline?: SideInputs;
  /** Sequential judge: the number of this look (1 for the first measurement judged). */
  look?: number;
  /** A failed measurement's message and kind. */
  error?: string;
  errorKind?: string;
}

/** The size of the difference the verdict is about. */
export interface Effect {
  /**
   * "difference": candidate − baseline (rates as fractions, e.g. 0.032 = +3.2 points);
   * "ratio": candidate / baseline; "relativeShift": Hodges–Lehmann shift / baseline median.
   */
  measure: "difference" | "ratio" | "relativeShift";
  value: number;
  /** Further named numbers: rates, medians, shift, probability of superiority... */
  details?: Record<string, number>;
}

/**
 * What a judge carries from one measurement of a metric to the next. The sequential judge: the
 * always-valid p-value is the running minimum over looks, so a rejection stays a rejection.
 * The Mann-Whitney judge: how many tests it has made, which sets the share of alpha the next
 * one may spend. Only meaningful while the window keeps its start (one analysis run).
 */
export interface JudgeMemory {
  /** Looks taken so far (measurements with usable counts on both sides / tests made). */
  looks: number;
  /** Sequential judge: running minimum of the always-valid p-value. */
  minPValue?: number;
  /** The look at which minPValue first fell to alpha or below. */
  rejectedAtLook?: number;
}

export interface Verdict {
  judge: JudgeKind;
  outcome: Outcome;
  /** Set for "inconclusive" and "error" verdicts. */
  reason?: VerdictReason;
  /**
   * True when more data in the same (growing) window may settle it: the sequential judge's
   * "not enough evidence yet" and "too few samples yet". An analysis run does not count such an
   * inconclusive verdict towards inconclusiveLimit, except at a metric's last measurement.
   */
  provisional?: boolean;
  /** One line with the numbers, for `turnout status` and `turnout history`. */
  explanation: string;
  inputs: VerdictInputs;
  /** The test used, e.g. "mSPRT (one-sided)", "Mann-Whitney U (one-sided)". */
  test?: string;
  /** The test statistic (log Λ for the mSPRT, U for Mann-Whitney); finite when present. */
  statistic?: number;
  /** Always-valid p-value (sequential) or fixed-sample p-value (Mann-Whitney). */
  pValue?: number;
  /**
   * sequential: the always-valid confidence sequence of the rate difference, level 1 − alpha;
   * mannWhitney: the confidence interval of the Hodges–Lehmann shift, level 1 − alpha.
   */
  bound?: { lower: number; upper: number };
  effect?: Effect;
  /** Pass back as `previous` with the next measurement of the same metric. */
  memory?: JudgeMemory;
}

export interface JudgeContext {
  /** Below it (on either side, when a sample size is known): inconclusive, never pass. */
  minSamples: number;
  /** The metric's name: the subject of the explanation. */
  metric: string;
  /** The memory of the previous verdict of this metric in this run. */
  previous?: JudgeMemory;
  /** This is the metric's last measurement (changes the wording of "not enough evidence"). */
  final?: boolean;
  /**
   * The metric's `count`, at most this many measurements, or null when unbounded (an analysis
   * run always says). The Mann-Whitney judge splits its alpha over them (see
   * `mannWhitneyLookAlpha`); absent, a judgment stands alone and gets the whole alpha.
   */
  plannedLooks?: number | null;
}

/**
 * The share of alpha the Mann-Whitney judge's `look`-th test (1-based) may spend, so that the
 * chance of failing an identical candidate at ANY look of a run stays ≤ alpha (the union bound,
 * whatever the dependence between looks on a growing window):
 * - a judgment outside a run (`plannedLooks` absent): the whole alpha;
 * - with a known number of looks N (the metric's count): alpha / N at each (Bonferroni);
 * - unbounded (a background metric without count): alpha / (k(k + 1)) at the k-th, which
 *   sums to alpha over k = 1, 2, ...: half at the first look, a sixth at the second, a
 *   twelfth at the third; front-loaded, because a canary is bad from its first requests.
 * The Mann-Whitney p-value is a fixed-sample one; tested against the full alpha at every look
 * of a growing window, its false-failure rate would grow with the number of looks.
 */
export function mannWhitneyLookAlpha(
  alpha: number,
  look: number,
  plannedLooks?: number | null,
): number {
  if (plannedLooks === undefined) return alpha;
  if (plannedLooks !== null && plannedLooks >= 1) return alpha / plannedLooks;
  return alpha / (look * (look + 1));
}

/**
 * The sequential judge's default `detect`: the excess of the candidate's error rate over
 * baseline + maxIncrease that its mSPRT is tuned to catch fastest (the mixing scale tau). The
 * mixture's likelihood ratio against an excess s is largest for tau ≈ s. 2 points suits
 * canaries that fail a few points more than allowed; in bench:decisions' settings study, 2, 4
 * and 8 points rolled back a 4-point excess equally fast at 10-s looks (the looks set the pace
 * there). A service that cares about excesses of a tenth of a point sets a smaller one.
 */
export const DEFAULT_SEQUENTIAL_DETECT = 0.02;

/** The judge kind of a spec. */
export function judgeKind(spec: JudgeSpec): JudgeKind {
  if ("threshold" in spec) return "threshold";
  if ("relative" in spec) return "relative";
  if ("sequential" in spec) return "sequential";
  return "mannWhitney";
}

/**
 * Judges one observation.
 *
 * @example
 * judge({ sequential: { maxIncrease: 0.01, alpha: 0.01 } }, measurement,
 *       { metric: "errors", minSamples: 200, previous: last?.memory })
 */
export function judge(spec: JudgeSpec, obs: Observation, ctx: JudgeContext): Verdict {
  const kind = judgeKind(spec);
  const base: Base = { kind, inputs: { judge: spec, minSamples: ctx.minSamples } };
  // 1. A failed measurement: no data is inconclusive, anything else an error.
  if (obs.error !== undefined) {
    base.inputs.error = obs.error;
    base.inputs.errorKind = obs.errorKind;
    return obs.errorKind === "noData"
      ? inconclusive(base, "noData", `${ctx.metric}: ${obs.error}`)
      : error(
          base,
          "measurementFailed",
          `${ctx.metric}: measurement ${obs.errorKind}: ${obs.error}`,
        );
  }
  // 2. The judge proper. Stats functions throw RangeError on invalid numbers: an error verdict.
  try {
    if ("threshold" in spec) return judgeThreshold(spec.threshold, obs, ctx, base);
    if ("relative" in spec) return judgeRelative(spec.relative, obs, ctx, base);
    if ("sequential" in spec) return judgeSequential(spec.sequential, obs, ctx, base);
    return judgeMannWhitney(spec.mannWhitney, obs, ctx, base);
  } catch (e) {
    return error(base, "badInput", `${ctx.metric}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

// ---------------------------------------------------------------------------------------
// threshold

/**
 * The candidate's value (`value`, else the candidate side's, else the last of `values`, which
 * for a range query is the latest point) against min and max.
 */
function judgeThreshold(
  t: { min?: number; max?: number },
  obs: ObservedValues,
  ctx: JudgeContext,
  base: Base,
): Verdict {
  // 1. The value and its sample size.
  const value = obs.value ?? obs.candidate?.value ?? obs.values?.[obs.values.length - 1];
  const n = obs.sampleSize ?? obs.candidate?.sampleSize;
  if (value !== undefined) base.inputs.value = value;
  if (n !== undefined) base.inputs.sampleSize = n;
  if (value === undefined || !Number.isFinite(value)) {
    return error(base, "badInput", `${ctx.metric}: no finite value to compare (got ${value})`);
  }
  const bounds = describeBounds(t.min, t.max);
  // 2. Too little data.
  if (n !== undefined && n < ctx.minSamples) {
    return inconclusive(
      base,
      "tooFewSamples",
      `${ctx.metric} ${num(value)} from ${n} samples < minSamples ${ctx.minSamples}: too little data to judge (${bounds})`,
    );
  }
  // 3. Compare.
  const ofN = n !== undefined ? ` (n=${n})` : "";
  const common = { ...base, statistic: value };
  if (t.min !== undefined && value < t.min) {
    const [v, min] = apart(value, t.min, num);
    return verdict(common, "fail", `${ctx.metric} ${v} < min ${min}${ofN}`);
  }
  if (t.max !== undefined && value > t.max) {
    const [v, max] = apart(value, t.max, num);
    return verdict(common, "fail", `${ctx.metric} ${v} > max ${max}${ofN}`);
  }
  const near = t.max ?? t.min!;
  return verdict(
    common,
    "pass",
    `${ctx.metric} ${apart(value, near, num)[0]} within ${bounds}${ofN}`,
  );
}

function describeBounds(min?: number, max?: number): string {
  if (min !== undefined && max !== undefined) return `[${num(min)}, ${num(max)}]`;
  return min !== undefined ? `min ${num(min)}` : `max ${num(max!)}`;
}

// ---------------------------------------------------------------------------------------
// relative

function judgeRelative(
  r: { mode: "ratio" | "difference"; maxIncrease?: number; maxDecrease?: number },
  obs: ObservedValues,
  ctx: JudgeContext,
  base: Base,
): Verdict {
  // 1. Both sides' values and sample sizes.
  const c = obs.candidate?.value ?? obs.value;
  const cN = obs.candidate?.sampleSize ?? obs.sampleSize;
  base.inputs.candidate = sideInputs(obs.candidate, c, cN);
  if (c === undefined || !Number.isFinite(c)) {
    return error(base, "badInput", `${ctx.metric}: no finite candidate value (got ${c})`);
  }
  const b = obs.baseline;
  if (!b) {
    return inconclusive(
      base,
      "noBaseline",
      `${ctx.metric} ${num(c)}: no baseline to compare with (no baseline version, or it had no data in the window)`,
    );
  }
  base.inputs.baseline = sideInputs(b, b.value, b.sampleSize);
  if (!Number.isFinite(b.value)) {
    return error(base, "badInput", `${ctx.metric}: baseline value is not finite (${b.value})`);
  }
  const head = `${ctx.metric} ${num(c)} vs baseline ${num(b.value)}`;
  // 2. Too little data on either side.
  const short = shortSide(cN, b.sampleSize, ctx.minSamples);
  if (short) return inconclusive(base, "tooFewSamples", `${head}: ${short}: too little data`);
  // 3. The change, as a relative change (ratio) or a difference, against the allowed band.
  const allowed = describeBand(r.maxIncrease, r.maxDecrease, r.mode === "ratio");
  if (r.mode === "ratio") {
    if (!(b.value > 0)) {
      return inconclusive(
        base,
        "undefinedEffect",
        `${head}: ratio undefined for a baseline of ${num(b.value)} (mode "difference" suits rates that can be 0)`,
      );
    }
    const ratio = c / b.value;
    const change = ratio - 1;
    const common = {
      ...base,
      statistic: ratio,
      effect: { measure: "ratio" as const, value: ratio, details: { relativeChange: change } },
    };
    const said = (limit: number) => {
      const [x, y] = apart(change, limit, signedPct);
      return [`${head}: ratio ${num(ratio)} (${x})`, y] as const;
    };
    if (r.maxIncrease !== undefined && change > r.maxIncrease) {
      const [text, limit] = said(r.maxIncrease);
      return verdict(common, "fail", `${text} > ${limit} allowed`);
    }
    if (r.maxDecrease !== undefined && change < -r.maxDecrease) {
      const [text, limit] = said(-r.maxDecrease);
      return verdict(common, "fail", `${text} < ${limit} allowed`);
    }
    return verdict(
      common,
      "pass",
      `${said(r.maxIncrease ?? -r.maxDecrease!)[0]} within ${allowed}`,
    );
  }
  const diff = c - b.value;
  const common = {
    ...base,
    statistic: diff,
    effect: { measure: "difference" as const, value: diff },
  };
  const said = (limit: number) => {
    const [x, y] = apart(diff, limit, signed);
    return [`${head}: ${x}`, y] as const;
  };
  if (r.maxIncrease !== undefined && diff > r.maxIncrease) {
    const [text, limit] = said(r.maxIncrease);
    return verdict(common, "fail", `${text} > ${limit} allowed`);
  }
  if (r.maxDecrease !== undefined && diff < -r.maxDecrease) {
    const [text, limit] = said(-r.maxDecrease);
    return verdict(common, "fail", `${text} < ${limit} allowed`);
  }
  return verdict(common, "pass", `${said(r.maxIncrease ?? -r.maxDecrease!)[0]} within ${allowed}`);
}

function describeBand(inc: number | undefined, dec: number | undefined, relative: boolean): string {
  const f = relative ? signedPct : signed;
  const parts: string[] = [];
  if (inc !== undefined) parts.push(f(inc));
  if (dec !== undefined) parts.push(f(-dec));
  return `${parts.join(" / ")} allowed`;
}

// ---------------------------------------------------------------------------------------
// sequential

/**
 * Error rates of candidate vs baseline over the window so far, tested for
 * H0: candidate rate − baseline rate ≤ maxIncrease with the one-sided mixture SPRT
 * (`msprtTwoProportions`, half-normal mixture of scale tau = `detect`, default
 * DEFAULT_SEQUENTIAL_DETECT; nullDifference = maxIncrease; the variance at the null, with a
 * continuity correction). Its p-value is always valid: the run may look after every
 * measurement and stop at the first rejection while the chance of ever rejecting a true H0
 * stays ≤ alpha. The running minimum is carried in `memory`, so a rejection stays one.
 *
 * 1. FAIL as soon as the always-valid p ≤ alpha, whatever the sample size: the mixture and
 *    the continuity correction make that need real evidence at small counts (seeded A/A and
 *    boundary runs in judges.test.ts and bench:decisions measure it), and stopping a bad
 *    canary early is the point of the test.
 * 2. Otherwise INCONCLUSIVE (provisional) while either side has fewer than minSamples requests.
 * 3. PASS when the upper end of the always-valid confidence sequence for the difference (the
 *    normal-mixture one, level 1 − alpha, same tau; the unpooled variance, or the one at the boundary when
 *    that is larger, see below) is below maxIncrease: positive evidence that the canary is not
 *    worse by more than allowed, valid at whichever look it happens.
 * 4. Otherwise INCONCLUSIVE (provisional): not enough evidence yet.
 *
 * Why not "pass at the last measurement if never rejected": no rejection after little traffic
 * is absence of evidence, the "pass on no data" that users of Flagger and Argo complain of.
 * The price: a count too small for the traffic ends the run inconclusive, and the explanation
 * says how far the bound still is from the allowance. With maxIncrease 0 the bound can never
 * go below 0 for an identical canary, so such a metric can fail but not pass.
 */
function judgeSequential(
  s: { maxIncrease: number; detect?: number; alpha: number },
  obs: ObservedValues,
  ctx: JudgeContext,
  base: Base,
): Verdict {
  // 1. Counts on both sides.
  const c = obs.candidate;
  if (!c?.proportion) {
    return error(
      base,
      "badInput",
      `${ctx.metric}: the sequential judge needs candidate error counts (events/trials), as the builtin error_rate gives; the measurement has none`,
    );
  }
  base.inputs.candidate = sideInputs(c, c.value, c.sampleSize);
  const b = obs.baseline;
  if (!b) {
    return inconclusive(
      base,
      "noBaseline",
      `${ctx.metric} ${rate(c.proportion)}: no baseline to compare with (no baseline version, or it had no requests in the window)`,
    );
  }
  base.inputs.baseline = sideInputs(b, b.value, b.sampleSize);
  if (!b.proportion) {
    return error(
      base,
      "badInput",
      `${ctx.metric}: the baseline has no error counts (events/trials)`,
    );
  }
  const cc = { successes: c.proportion.events, trials: c.proportion.trials };
  const bc = { successes: b.proportion.events, trials: b.proportion.trials };
  const head = `${ctx.metric} ${rate(c.proportion)} vs baseline ${rate(b.proportion)}`;
  if (cc.trials === 0 || bc.trials === 0) {
    return inconclusive(
      base,
      "tooFewSamples",
      `${head}: no requests yet on the ${cc.trials === 0 ? "candidate" : "baseline"}: not enough evidence yet`,
      true,
    );
  }
  // 2. The mSPRT at this look, carrying the running minimum p-value. Its variance is the one
  //    at the null (both sides' errors pooled as if the candidate were exactly maxIncrease
  //    worse): the likelihood ratio is a martingale under H0 with H0's variance, and the
  //    candidate's own (inflated) rate would blunt the test against the very excess it seeks.
  //    The continuity correction keeps the first looks, where a few errors decide and their
  //    tail is heavier than the normal one, within alpha (sequential.test.ts measures both).
  const tau = s.detect ?? DEFAULT_SEQUENTIAL_DETECT;
  const prev = ctx.previous;
  const prevP = prev?.minPValue ?? 1;
  const m = msprtTwoProportions(bc, cc, {
    alpha: s.alpha,
    tau2: tau * tau,
    nullDifference: s.maxIncrease,
    alternative: "greater",
    variance: "null",
    continuity: true,
    ...(prev ? { previousPValue: Math.min(1, Math.max(0, prevP)) } : {}),
  });
  const look = (prev?.looks ?? 0) + 1;
  base.inputs.look = look;
  const rejected = m.pValue <= s.alpha;
  const rejectedAtLook = prev?.rejectedAtLook ?? (rejected ? look : undefined);
  const memory: JudgeMemory = {
    looks: look,
    minPValue: m.pValue,
    ...(rejectedAtLook !== undefined ? { rejectedAtLook } : {}),
  };
  // The bound for passing uses the larger of the plug-in variance and the variance at the
  // boundary of "not worse by more than allowed" (candidate rate = baseline rate + maxIncrease),
  // as non-inferiority tests do (Farrington & Manning 1990): with few errors the plug-in
  // variance of a side that happens to show none is too small, and the bound too tight.
  const cs = msprtNormal(
    m.estimate,
    Math.max(twoProportionVariances(bc, cc, 0).unpooled, boundaryVariance(bc, cc, s.maxIncrease)),
    {
      alpha: s.alpha,
      tau2: m.tau2,
    },
  ).confidenceSequence;
  const common: Base & Partial<Verdict> = {
    ...base,
    test: "mSPRT (one-sided)",
    pValue: m.pValue,
    memory,
    effect: {
      measure: "difference",
      value: m.estimate,
      details: {
        candidateRate: cc.successes / cc.trials,
        baselineRate: bc.successes / bc.trials,
        nullDifference: s.maxIncrease,
        tau2: m.tau2,
        z: m.z,
      },
    },
  };
  if (Number.isFinite(m.logLikelihoodRatio)) common.statistic = m.logLikelihoodRatio;
  if (Number.isFinite(cs.lower) && Number.isFinite(cs.upper)) {
    common.bound = { lower: cs.lower, upper: cs.upper };
  }
  const [est, lim] = apart(m.estimate, s.maxIncrease, signedPoints, 2);
  const diff = `${est} points`;
  const allowed = `${signedPoints(s.maxIncrease)} allowed`;
  const p = `mSPRT p=${pval(m.pValue)}`;
  // 3. Fail on rejection (which, once reached, the running minimum keeps).
  if (rejected) {
    const test = `${p} ${m.pValue < s.alpha ? "<" : "≤"} alpha ${num(s.alpha)}`;
    const earlier = rejectedAtLook !== undefined && rejectedAtLook < look;
    if (m.estimate > s.maxIncrease) {
      const since = earlier ? `, since look ${rejectedAtLook}` : "";
      return verdict(common, "fail", `${head}: ${diff} > ${lim} allowed (${test}${since})`);
    }
    return verdict(
      common,
      "fail",
      `${head}: ${diff} now, but shown above ${allowed} at look ${rejectedAtLook} (${test}; a rejection stands)`,
    );
  }
  // 4. Too few requests to pass.
  const short = shortSide(cc.trials, bc.trials, ctx.minSamples, "requests");
  const yet = ctx.final ? "not enough evidence by the last measurement" : "not enough evidence yet";
  if (short)
    return inconclusive(common, "tooFewSamples", `${head}: ${diff}; ${short}: ${yet} (${p})`, true);
  // 5. Pass on a bound below the allowance; else wait.
  const [up, upLim] = apart(cs.upper, s.maxIncrease, signedPoints, 2);
  const upper = `always-valid upper bound ${up}`;
  if (cs.upper < s.maxIncrease) {
    return verdict(common, "pass", `${head}: ${diff}, ${upper} < ${upLim} allowed (${p})`);
  }
  return inconclusive(
    common,
    "notEnoughEvidence",
    `${head}: ${diff}, ${upper} not below ${upLim} allowed: ${yet} (${p} ≥ alpha ${num(s.alpha)})`,
    true,
  );
}

/**
 * Variance of the rate difference if the candidate's rate were the baseline's plus `margin`,
 * with the same shrinkage as `msprtTwoProportions` ((x + ½)/(n + 1)).
 */
function boundaryVariance(
  baseline: { successes: number; trials: number },
  candidate: { successes: number; trials: number },
  margin: number,
): number {
  const pb = (baseline.successes + 0.5) / (baseline.trials + 1);
  const pc = Math.min(1 - 0.5 / (candidate.trials + 1), pb + margin);
  return (pb * (1 - pb)) / baseline.trials + (pc * (1 - pc)) / candidate.trials;
}

// ---------------------------------------------------------------------------------------
// mannWhitney

/**
 * Latency of candidate vs baseline: Mann–Whitney U, one-sided (the candidate is slower), with
 * the Hodges–Lehmann shift as the effect. With histogram `bins` on a side the binned test is
 * used (exact for the binned data, on the full request count); with `values` on both,
 * `mannWhitneyU`.
 *
 * 1. INCONCLUSIVE below minSamples on either side (the side's `sampleSize`, else its count of
 *    samples), or with no baseline.
 * 2. FAIL when p < this look's alpha AND the relative shift (HL shift / baseline median)
 *    exceeds maxRelativeIncrease: the slowdown is both credible and larger than allowed. The
 *    point estimate is compared, not the interval's lower end: p < alpha already guards
 *    against noise, and requiring both would miss real regressions at moderate sample sizes.
 *    The interval (at this look's level) is kept in `bound` for people to read.
 * 3. PASS otherwise: enough samples, and no credible slowdown beyond the allowance.
 *
 * "This look's alpha": the p-value is a fixed-sample one, and a run tests a growing window
 * again and again, so alpha is split over the tests a run makes (`mannWhitneyLookAlpha`):
 * the chance that an identical candidate fails at any look stays ≤ alpha. Looks that stop at
 * step 1 spend nothing.
 */
function judgeMannWhitney(
  w: { maxRelativeIncrease: number; alpha: number },
  obs: ObservedValues,
  ctx: JudgeContext,
  base: Base,
): Verdict {
  // 1. Samples on both sides.
  const c: ObservedSide | undefined =
    obs.candidate ??
    (obs.values
      ? { value: obs.value ?? Number.NaN, values: obs.values, ...sizeOf(obs) }
      : undefined);
  const cs = c && rankSamples(c);
  if (!c || !cs) {
    return error(
      base,
      "badInput",
      `${ctx.metric}: the Mann-Whitney judge needs latency samples (values or bins) on the candidate; the measurement has none`,
    );
  }
  base.inputs.candidate = { ...sideInputs(c, c.value, c.sampleSize), ...cs.inputs };
  const b = obs.baseline;
  if (!b) {
    return inconclusive(
      base,
      "noBaseline",
      `${ctx.metric}: no baseline to compare with (no baseline version, or it had no data in the window)`,
    );
  }
  const bs = rankSamples(b);
  if (!bs) {
    return error(
      base,
      "badInput",
      `${ctx.metric}: the baseline has no latency samples (values or bins)`,
    );
  }
  base.inputs.baseline = { ...sideInputs(b, b.value, b.sampleSize), ...bs.inputs };
  // 2. Enough samples on both sides.
  const short = shortSide(
    c.sampleSize ?? cs.count,
    b.sampleSize ?? bs.count,
    ctx.minSamples,
    "samples",
  );
  if (cs.count === 0 || bs.count === 0 || short) {
    return inconclusive(
      base,
      "tooFewSamples",
      `${ctx.metric}: ${short ?? "no samples on one side"}: too little data to judge`,
    );
  }
  // 3. The test, against this look's share of alpha (its interval at that level too): binned
  //    when either side has bins, else on the samples.
  const look = (ctx.previous?.looks ?? 0) + 1;
  base.inputs.look = look;
  const alpha = mannWhitneyLookAlpha(w.alpha, look, ctx.plannedLooks);
  const options = { alternative: "greater" as const, alpha };
  const r: MannWhitneyResult =
    cs.bins || bs.bins
      ? mannWhitneyBinned(cs.bins ?? unitBins(c.values!), bs.bins ?? unitBins(b.values!), options)
      : mannWhitneyU(c.values!, b.values!, options);
  const e = r.effect;
  base.inputs.candidate.median = e.candidateMedian;
  base.inputs.baseline.median = e.baselineMedian;
  const common: Base & Partial<Verdict> = {
    ...base,
    test: `Mann-Whitney U (one-sided${cs.bins || bs.bins ? ", binned" : ""})`,
    statistic: r.u,
    pValue: r.pValue,
    memory: { looks: look },
  };
  if (e.shiftInterval)
    common.bound = { lower: e.shiftInterval.lower, upper: e.shiftInterval.upper };
  const details: Record<string, number> = {
    hodgesLehmannShift: e.hodgesLehmannShift,
    probabilityOfSuperiority: e.probabilityOfSuperiority,
    candidateMedian: e.candidateMedian,
    baselineMedian: e.baselineMedian,
    z: r.z,
  };
  if (e.relativeShift !== null) {
    common.effect = { measure: "relativeShift", value: e.relativeShift, details };
  }
  const head = `${ctx.metric} median ${num(e.candidateMedian)} vs baseline ${num(e.baselineMedian)} (n=${r.nCandidate}/${r.nBaseline})`;
  const [rel, lim] =
    e.relativeShift !== null
      ? apart(e.relativeShift, w.maxRelativeIncrease, signedPct)
      : ["", signedPct(w.maxRelativeIncrease)];
  const shift = `shift ${signed(e.hodgesLehmannShift)}${e.relativeShift !== null ? ` (${rel})` : ""}`;
  const allowed = `${lim} allowed`;
  const p = `Mann-Whitney p=${pval(r.pValue)}`;
  const spent =
    alpha === w.alpha
      ? `alpha ${num(alpha)}`
      : `alpha ${num(alpha)}, look ${look}'s share of ${num(w.alpha)}`;
  // 4. Classify.
  if (r.pValue < alpha) {
    if (e.relativeShift === null) {
      return inconclusive(
        common,
        "undefinedEffect",
        `${head}: ${shift}; relative shift undefined for a baseline median of 0 (${p} < ${spent})`,
      );
    }
    if (e.relativeShift > w.maxRelativeIncrease) {
      return verdict(common, "fail", `${head}: ${shift} > ${allowed} (${p} < ${spent})`);
    }
    return verdict(
      common,
      "pass",
      `${head}: ${shift} ≤ ${allowed} (${p} < ${spent}: slower, but within the allowance)`,
    );
  }
  return verdict(
    common,
    "pass",
    `${head}: ${shift}, no credible slowdown beyond ${allowed} (${p} ≥ ${spent})`,
  );
}

function sizeOf(obs: ObservedValues): { sampleSize?: number } {
  return obs.sampleSize !== undefined ? { sampleSize: obs.sampleSize } : {};
}

/** The samples a side offers a rank test: bins if it has any, else values. */
function rankSamples(
  side: ObservedSide,
): { count: number; bins?: readonly ValueBin[]; inputs: SideInputs } | undefined {
  if (side.bins && side.bins.length > 0) {
    let count = 0;
    for (const x of side.bins) count += x.count;
    return { count, bins: side.bins, inputs: { rankSamples: count, bins: side.bins.length } };
  }
  if (side.values)
    return { count: side.values.length, inputs: { rankSamples: side.values.length } };
  return undefined;
}

function unitBins(values: readonly number[]): ValueBin[] {
  return values.map((value) => ({ value, count: 1 }));
}

// ---------------------------------------------------------------------------------------
// Helpers

interface Base {
  kind: JudgeKind;
  inputs: VerdictInputs;
}

function verdict(
  b: Base & Partial<Verdict>,
  outcome: Outcome,
  explanation: string,
  reason?: VerdictReason,
  provisional?: boolean,
): Verdict {
  // Built field by field: simulations call judges tens of thousands of times.
  const v: Verdict = { judge: b.kind, outcome, explanation, inputs: b.inputs };
  if (reason) v.reason = reason;
  if (provisional) v.provisional = true;
  if (b.test !== undefined) v.test = b.test;
  if (b.statistic !== undefined) v.statistic = b.statistic;
  if (b.pValue !== undefined) v.pValue = b.pValue;
  if (b.bound) v.bound = b.bound;
  if (b.effect) v.effect = b.effect;
  if (b.memory) v.memory = b.memory;
  return v;
}

function inconclusive(
  b: Base & Partial<Verdict>,
  reason: VerdictReason,
  explanation: string,
  provisional = false,
): Verdict {
  return verdict(b, "inconclusive", explanation, reason, provisional);
}

function error(b: Base, reason: VerdictReason, explanation: string): Verdict {
  return verdict(b, "error", explanation, reason);
}

function sideInputs(
  side: ObservedSide | undefined,
  value?: number,
  sampleSize?: number,
): SideInputs {
  const out: SideInputs = {};
  if (side?.version !== undefined) out.version = side.version;
  if (value !== undefined && Number.isFinite(value)) out.value = value;
  if (sampleSize !== undefined) out.sampleSize = sampleSize;
  if (side?.proportion) {
    out.events = side.proportion.events;
    out.trials = side.proportion.trials;
  }
  return out;
}

/** "500 requests < minSamples 1000 on the candidate", or undefined when both have enough. */
function shortSide(
  candidate: number | undefined,
  baseline: number | undefined,
  minSamples: number,
  unit = "samples",
): string | undefined {
  const parts: string[] = [];
  if (candidate !== undefined && candidate < minSamples)
    parts.push(`${candidate} on the candidate`);
  if (baseline !== undefined && baseline < minSamples) parts.push(`${baseline} on the baseline`);
  if (parts.length === 0) return undefined;
  return `${unit} ${parts.join(" and ")} < minSamples ${minSamples}`;
}

/** A number for people: 3 significant digits, no exponent below 1e6, no trailing zeros. */
export function num(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 10 ** digits) return String(Math.round(v));
  if (a !== 0 && a < 1e-4) return v.toExponential(digits - 1).replace(/\.?0+e/, "e");
  return String(Number(v.toPrecision(digits)));
}

function signed(v: number, digits = 3): string {
  return `${v >= 0 ? "+" : ""}${num(v, digits)}`;
}

function signedPct(v: number, digits = 3): string {
  return `${v >= 0 ? "+" : ""}${num(v * 100, digits)}%`;
}

/** A difference of rates in percentage points: 0.032 -> "+3.2". */
function signedPoints(v: number, digits = 2): string {
  return `${v >= 0 ? "+" : ""}${num(v * 100, digits)}`;
}

/**
 * `a` and `b` formatted with `f` at the fewest significant digits (from `digits` on) that tell
 * them apart, so that an explanation never reads "0.01 > max 0.01".
 */
function apart(
  a: number,
  b: number,
  f: (v: number, digits: number) => string,
  digits = 3,
): [string, string] {
  for (let d = digits; d < 15; d++) {
    const x = f(a, d);
    const y = f(b, d);
    if (x !== y || a === b) return [x, y];
  }
  return [f(a, 15), f(b, 15)];
}

/** "4.1% (41/1000)". */
function rate(p: { events: number; trials: number }): string {
  return p.trials > 0
    ? `${num((100 * p.events) / p.trials)}% (${p.events}/${p.trials})`
    : `(${p.events}/0)`;
}

function pval(p: number): string {
  return num(p, 2);
}

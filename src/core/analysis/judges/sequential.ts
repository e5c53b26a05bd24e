/**
 * sequential {maxIncrease, detect?, alpha}: a one-sided mixture SPRT on error counts, always
 * valid under continuous monitoring (see `judgeSequential`).
 */
import { msprtNormal, msprtTwoProportions, twoProportionVariances } from "../../stats/index.js";
import type { ObservedValues } from "../observation.js";
import {
  apart,
  error,
  inconclusive,
  num,
  pval,
  rate,
  shortSide,
  sideInputs,
  signedPoints,
  verdict,
} from "./explain.js";
import type { Base, Judge, JudgeBody, JudgeContext, JudgeMemory, Verdict } from "./types.js";

/**
 * The sequential judge's default `detect`: the excess of the candidate's error rate over
 * baseline + maxIncrease that its mSPRT is tuned to catch fastest (the mixing scale tau). The
 * mixture's likelihood ratio against an excess s is largest for tau ≈ s. 2 points suits
 * canaries that fail a few points more than allowed; in bench:decisions' settings study, 2, 4
 * and 8 points rolled back a 4-point excess equally fast at 10-s looks (the looks set the pace
 * there). A service that cares about excesses of a tenth of a point sets a smaller one.
 */
export const DEFAULT_SEQUENTIAL_DETECT = 0.02;

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

/** The sequential judge. */
export const sequential: Judge<JudgeBody<"sequential">> = {
  key: "sequential",
  defaultMinSamples: 100,
  judge: judgeSequential,
};

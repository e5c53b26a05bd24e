/**
 * mannWhitney {maxRelativeIncrease, alpha}: a one-sided rank test on latency samples or
 * histogram bins with a Hodges–Lehmann shift as the effect, as Kayenta's judge, its alpha
 * split over the looks of a run (see `judgeMannWhitney`).
 */
import {
  type MannWhitneyResult,
  mannWhitneyBinned,
  mannWhitneyU,
  type ValueBin,
} from "../../stats/index.js";
import type { ObservedSide, ObservedValues } from "../observation.js";
import {
  apart,
  error,
  inconclusive,
  num,
  pval,
  shortSide,
  sideInputs,
  signed,
  signedPct,
  verdict,
} from "./explain.js";
import type { Base, Judge, JudgeBody, JudgeContext, SideInputs, Verdict } from "./types.js";

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
  // Units on every value, and the direction in words: "shift -0.931 (-2.06%)" next to medians
  // 24.3 vs 45.2 read as a contradiction (#18 item 9). The Hodges–Lehmann shift is the median
  // of the pairwise differences, the typical slowdown of a request, not the medians' gap.
  const u = ctx.unit ? ` ${ctx.unit}` : "";
  const head = `${ctx.metric} median ${num(e.candidateMedian)}${u} vs baseline ${num(e.baselineMedian)}${u} (n=${r.nCandidate}/${r.nBaseline})`;
  const [rel, lim] =
    e.relativeShift !== null
      ? apart(e.relativeShift, w.maxRelativeIncrease, signedPct)
      : ["", signedPct(w.maxRelativeIncrease)];
  const hl = e.hodgesLehmannShift;
  const way = hl > 0 ? "candidate slower" : hl < 0 ? "candidate faster" : "no shift";
  const shift = `${way}, typical (Hodges-Lehmann) shift ${signed(hl)}${u}${e.relativeShift !== null ? ` (${rel})` : ""}`;
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
    `${head}: ${shift}; no credible slowdown beyond ${allowed} (${p} ≥ ${spent})`,
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

/** The Mann-Whitney judge. */
export const mannWhitney: Judge<JudgeBody<"mannWhitney">> = {
  key: "mannWhitney",
  defaultMinSamples: 50,
  judge: judgeMannWhitney,
};

/**
 * The analysis of an A/B experiment from aggregated data: per metric and arm the value, the
 * absolute and relative lift over the control arm with intervals, a p-value (frequentist) or a
 * chance to win (Bayesian), the multiple-testing correction across goal metrics, the
 * sample-ratio-mismatch check, and a verdict. Pure: `turnout experiment results`, the API and
 * the `experiment` step all call this one function, so what people read is what decided.
 *
 * The verdict, in order (the first that applies):
 *   1. "running": an arm has no units yet;
 *   2. "srm": the units per arm do not fit the configured split (chi-square p < 0.001): the
 *      assignment or the logging is broken, so no result can be trusted; decisions are blocked;
 *   3. "running": an arm has fewer than `minSamples` units (for fixedHorizon: the horizon);
 *   4. "lose": a guardrail is significantly worse in some treatment arm (no correction, on
 *      purpose: more guardrail alarms is the safe side), or a goal metric is significantly
 *      worse (after correction);
 *   5. "win": a goal metric is significantly better (after correction) and none is worse;
 *   6. "inconclusive" for fixedHorizon (its one look is spent), else "running".
 */

import { plural } from "../plural.js";
import {
  type AdjustmentMethod,
  adjustPValues,
  asymptoticConfidenceSequence,
  bayesBinomial,
  bayesNormal,
  binomialSummary,
  cuped,
  fiellerRelativeLiftInterval,
  type Interval,
  normalQuantile,
  ratioSummary,
  ratioTest,
  type SampleSummary,
  sampleRatioMismatch,
  twoProportionZTest,
  welchTTest,
} from "../stats/index.js";
import type {
  CovariateSums,
  ExperimentData,
  ExperimentSpec,
  MeanSums,
  MetricArmData,
  MetricSpec,
} from "./types.js";

export interface ArmResult {
  name: string;
  version: string;
  weight: number;
  units: number;
}

/** One treatment arm against the control for one metric. */
export interface Comparison {
  arm: string;
  /** Treatment − control, in the metric's units. */
  difference: number;
  interval: Interval | null;
  /** Treatment / control − 1. */
  relative: number | null;
  /**
   * From the same per-arm intervals as `interval` (Fieller / MOVER-R): excludes 0 exactly when
   * `interval` does; null when unbounded (the control's own interval reaches 0).
   */
  relativeInterval: Interval | null;
  /** Two-sided p-value (always-valid for sequential); null for bayesian. */
  pValue: number | null;
  /** After Holm / BH across goal metrics and arms; guardrails are not adjusted. */
  adjustedPValue: number | null;
  /** Bayesian: P(treatment better than control), in the metric's better direction. */
  chanceToWin: number | null;
  /** Bayesian: expected loss of shipping the treatment, in the metric's units. */
  expectedLoss: number | null;
  /** "better" / "worse" when significant (or decisive for bayesian), else "none". */
  outcome: "better" | "worse" | "none";
}

export interface MetricResult {
  name: string;
  kind: MetricSpec["kind"];
  role: MetricSpec["role"];
  better: "increase" | "decrease";
  /** The test that produced the numbers, e.g. "asymptotic-cs", "two-proportion-z". */
  test: string;
  /** Per arm: units (or requests, for builtin metrics) and the metric's value. */
  arms: { arm: string; n: number; value: number | null }[];
  comparisons: Comparison[];
  /** CUPED, when the metric has a covariate: θ and the share of variance it removed. */
  cuped?: { theta: number; varianceReduction: number };
  /** Why there are no comparisons (too little data), when there are none. */
  note?: string;
}

export type Verdict = "running" | "srm" | "lose" | "win" | "inconclusive";

export interface ExperimentResults {
  name: string;
  method: ExperimentSpec["method"];
  alpha: number;
  correction: ExperimentSpec["correction"];
  control: string;
  arms: ArmResult[];
  srm: {
    pValue: number;
    statistic: number;
    mismatch: boolean;
    threshold: number;
    expected: number[];
  };
  metrics: MetricResult[];
  verdict: Verdict;
  /** One line per reason behind the verdict, with the numbers. */
  reasons: string[];
}

/** The experiment's arms with their versions resolved. */
export type ResolvedArm = { name: string; version: string; weight: number };

/** Summary statistics of one arm's metric for mean-based tests; null when undefined. */
function summaryOf(d: MetricArmData): SampleSummary | null {
  if (d.kind === "ratio") {
    if (d.n < 2 || d.sumY === 0) return null;
    return ratioSummary(d);
  }
  if (d.kind === "requests") {
    if (d.requests < 2) return null;
    return { n: d.requests, mean: d.mean, variance: d.variance };
  }
  if (d.n < 2) return null;
  const mean = d.sum / d.n;
  return { n: d.n, mean, variance: Math.max(0, (d.sumSquares - d.n * mean * mean) / (d.n - 1)) };
}

/** Binomial counts of one arm (conversions of units, 5xx of requests). */
function countsOf(d: MetricArmData): { successes: number; trials: number } | null {
  if (d.kind === "sums") return { successes: d.converted, trials: d.n };
  if (d.kind === "requests") return { successes: d.errors, trials: d.requests };
  return null;
}

function nOf(d: MetricArmData): number {
  return d.kind === "requests" ? d.requests : d.n;
}

function metricValue(m: MetricSpec, d: MetricArmData): number | null {
  const n = nOf(d);
  if (n === 0) return null;
  if (m.kind === "binomial") {
    const c = countsOf(d);
    return c && c.trials > 0 ? c.successes / c.trials : null;
  }
  if (d.kind === "ratio") return d.sumY === 0 ? null : d.sumX / d.sumY;
  if (d.kind === "requests") return d.mean;
  return d.sum / d.n;
}

const EMPTY: Record<string, MetricArmData> = {};

/** Compares one treatment arm with the control for one metric, by the experiment's method. */
/** CUPED-adjusted summaries when both arms carry covariate sums (mean metrics). */
function cupedOf(
  c: MetricArmData,
  t: MetricArmData,
): {
  control: SampleSummary;
  treatment: SampleSummary;
  theta: number;
  varianceReduction: number;
} | null {
  if (c.kind !== "sums" || t.kind !== "sums" || !c.covariate || !t.covariate) return null;
  if (c.n < 2 || t.n < 2) return null;
  const pair = (d: MeanSums & { covariate: CovariateSums }) => ({
    n: d.n,
    sumX: d.covariate.sumX,
    sumX2: d.covariate.sumX2,
    sumY: d.sum,
    sumY2: d.sumSquares,
    sumXY: d.covariate.sumXY,
  });
  return cuped(
    pair(c as MeanSums & { covariate: CovariateSums }),
    pair(t as MeanSums & { covariate: CovariateSums }),
  );
}

function compare(
  spec: ExperimentSpec,
  m: MetricSpec,
  c: MetricArmData,
  t: MetricArmData,
  arm: string,
):
  | { test: string; cmp: Comparison; cuped?: { theta: number; varianceReduction: number } }
  | { note: string } {
  const binomial = m.kind === "binomial";
  const cc = binomial ? countsOf(c) : null;
  const tc = binomial ? countsOf(t) : null;
  if (binomial && (!cc || !tc || cc.trials < 2 || tc.trials < 2))
    return { note: "too few units for a comparison" };
  const adj = !binomial && m.covariate ? cupedOf(c, t) : null;
  const cs = binomial ? binomialSummary(cc!) : (adj?.control ?? summaryOf(c));
  const ts = binomial ? binomialSummary(tc!) : (adj?.treatment ?? summaryOf(t));
  if (!cs || !ts) return { note: "too few units (or a zero denominator) for a comparison" };
  const r = compareSummaries(spec, m, c, t, arm, cs, ts, cc, tc);
  if (!adj || "note" in r) return r;
  return {
    ...r,
    test: `${r.test}+cuped`,
    cuped: { theta: adj.theta, varianceReduction: adj.varianceReduction },
  };
}

function compareSummaries(
  spec: ExperimentSpec,
  m: MetricSpec,
  c: MetricArmData,
  t: MetricArmData,
  arm: string,
  cs: SampleSummary,
  ts: SampleSummary,
  cc: { successes: number; trials: number } | null,
  tc: { successes: number; trials: number } | null,
): { test: string; cmp: Comparison } | { note: string } {
  const alpha = spec.alpha;
  const zc = normalQuantile(1 - alpha / 2);
  const binomial = m.kind === "binomial";
  const base: Comparison = {
    arm,
    difference: ts.mean - cs.mean,
    interval: null,
    relative: null,
    relativeInterval: null,
    pValue: null,
    adjustedPValue: null,
    chanceToWin: null,
    expectedLoss: null,
    outcome: "none",
  };
  if (spec.method === "sequential") {
    // A metric with no variation in either arm has no interval (a zero standard error).
    if (cs.variance === 0 && ts.variance === 0) return { note: "no variation yet" };
    const abs = asymptoticConfidenceSequence(cs, ts, { alpha, tuning: spec.sequentialTuning });
    // The relative interval by Fieller with the absolute sequence's own multiplier, so that
    // both exclude 0 at the same looks (a separate relative sequence did not).
    const crit = abs.standardError > 0 ? abs.halfWidth / abs.standardError : 0;
    return {
      test: "asymptotic-cs",
      cmp: {
        ...base,
        interval: abs.interval,
        relative: cs.mean !== 0 ? ts.mean / cs.mean - 1 : null,
        relativeInterval: fiellerRelativeLiftInterval(
          cs.mean,
          cs.variance / cs.n,
          ts.mean,
          ts.variance / ts.n,
          crit,
          1 - alpha,
        ),
        pValue: abs.pValue,
      },
    };
  }
  if (spec.method === "fixedHorizon") {
    if (binomial) {
      const r = twoProportionZTest(cc!, tc!, { alpha });
      return {
        test: "two-proportion-z",
        cmp: {
          ...base,
          interval: r.intervals.newcombe,
          relative: r.relativeLift,
          relativeInterval: r.relativeLiftInterval,
          pValue: r.pValue,
        },
      };
    }
    if (c.kind === "ratio" && t.kind === "ratio") {
      const r = ratioTest(c, t, { alpha });
      return {
        test: "ratio-delta-z",
        cmp: {
          ...base,
          interval: r.interval,
          relative: r.relativeLift,
          relativeInterval: r.relativeLiftInterval,
          pValue: r.pValue,
        },
      };
    }
    const r = welchTTest(cs, ts, { alpha });
    return {
      test: "welch-t",
      cmp: {
        ...base,
        interval: r.interval,
        relative: r.relativeLift,
        relativeInterval: r.relativeLiftInterval,
        pValue: r.pValue,
      },
    };
  }
  // Bayesian: P(treatment > control) and the loss of shipping it, turned to "better".
  const r = binomial ? bayesBinomial(cc!, tc!, { alpha }) : bayesNormal(cs, ts, { alpha });
  const up = betterOf(m) === "increase";
  // Fieller on the same normal approximation as the credible interval (posterior means and
  // variances for binomial metrics), so both exclude 0 in the same cases.
  const post = r.posterior;
  const pm = (p: { alpha: number; beta: number }) => p.alpha / (p.alpha + p.beta);
  const pv = (p: { alpha: number; beta: number }) =>
    (p.alpha * p.beta) / ((p.alpha + p.beta) ** 2 * (p.alpha + p.beta + 1));
  return {
    test: r.test,
    cmp: {
      ...base,
      interval: r.credibleInterval,
      relative: cs.mean !== 0 ? ts.mean / cs.mean - 1 : null,
      relativeInterval: post
        ? fiellerRelativeLiftInterval(
            pm(post.control),
            pv(post.control),
            pm(post.treatment),
            pv(post.treatment),
            zc,
            1 - alpha,
          )
        : fiellerRelativeLiftInterval(
            cs.mean,
            cs.variance / cs.n,
            ts.mean,
            ts.variance / ts.n,
            zc,
            1 - alpha,
          ),
      chanceToWin: up ? r.chanceToBeatControl : 1 - r.chanceToBeatControl,
      expectedLoss: up ? r.expectedLoss.treatment : r.expectedLoss.control,
    },
  };
}

/** Which way is better: as declared, else "decrease" for builtin metrics, "increase" otherwise. */
export function betterOf(m: MetricSpec): "increase" | "decrease" {
  return m.better ?? ("builtin" in m.source ? "decrease" : "increase");
}

function adjustment(c: ExperimentSpec["correction"]): AdjustmentMethod {
  return c === "bh" ? "benjamini-hochberg" : "holm";
}

/** "+1.2 pts", "+4.1%" and such for reasons. */
function pct(x: number | null): string {
  if (x === null) return "n/a";
  return `${x >= 0 ? "+" : ""}${(x * 100).toFixed(2)}%`;
}

function fmtP(p: number | null): string {
  if (p === null) return "n/a";
  return p < 0.0001 ? p.toExponential(1) : p.toFixed(4);
}

/**
 * Analyzes an experiment. `arms[0]`... in declared order; the control is the first arm whose
 * version is the stable one (A), every other arm is compared with it.
 *
 * @example analyzeExperiment("shop-v2", spec, arms, data).verdict // "win"
 */
export function analyzeExperiment(
  name: string,
  spec: ExperimentSpec,
  arms: readonly ResolvedArm[],
  data: ExperimentData,
  controlName: string = arms[0]!.name,
): ExperimentResults {
  // 1. Units per arm and the SRM check on them.
  const armResults: ArmResult[] = arms.map((a) => ({ ...a, units: data.units[a.name] ?? 0 }));
  const observed = armResults.map((a) => a.units);
  const srmTest = sampleRatioMismatch(
    observed,
    arms.map((a) => a.weight),
  );
  const srm = {
    pValue: srmTest.pValue,
    statistic: srmTest.statistic,
    mismatch: srmTest.mismatch,
    threshold: srmTest.threshold,
    expected: srmTest.expected,
  };
  const treatments = arms.filter((a) => a.name !== controlName);

  // 2. Every metric: values per arm and a comparison per treatment arm.
  const metrics: MetricResult[] = spec.metrics.map((m) => {
    const per = data.metrics[m.name] ?? EMPTY;
    const armsOut = arms.map((a) => {
      const d = per[a.name];
      return { arm: a.name, n: d ? nOf(d) : 0, value: d ? metricValue(m, d) : null };
    });
    const out: MetricResult = {
      name: m.name,
      kind: m.kind,
      role: m.role,
      better: betterOf(m),
      test: "",
      arms: armsOut,
      comparisons: [],
    };
    const c = per[controlName];
    for (const t of treatments) {
      const td = per[t.name];
      if (!c || !td) {
        out.note = "no data yet";
        continue;
      }
      const r = compare(spec, m, c, td, t.name);
      if ("note" in r) {
        out.note = r.note;
        continue;
      }
      out.test = r.test;
      out.comparisons.push(r.cmp);
      if (r.cuped) out.cuped = r.cuped;
    }
    return out;
  });

  // 3. Correction across goal metrics × treatment arms (frequentist methods).
  const goalCmps = metrics
    .filter((m) => m.role === "goal")
    .flatMap((m) => m.comparisons.filter((c) => c.pValue !== null));
  if (spec.method !== "bayesian" && goalCmps.length > 0) {
    const adjusted = adjustPValues(
      goalCmps.map((c) => c.pValue as number),
      adjustment(spec.correction),
    );
    goalCmps.forEach((c, i) => {
      c.adjustedPValue = adjusted[i]!;
    });
  }
  for (const m of metrics) {
    for (const c of m.comparisons) {
      if (m.role === "guardrail" && c.pValue !== null) c.adjustedPValue = c.pValue;
      const goodSign = m.better === "increase" ? 1 : -1;
      const signed = Math.sign(c.difference) * goodSign;
      if (spec.method === "bayesian") {
        const p = c.chanceToWin ?? 0.5;
        if (p >= spec.chanceToWin) c.outcome = "better";
        else if (p <= 1 - spec.chanceToWin) c.outcome = "worse";
      } else if (c.adjustedPValue !== null && c.adjustedPValue <= spec.alpha && signed !== 0) {
        c.outcome = signed > 0 ? "better" : "worse";
      }
    }
  }

  // 4. The verdict (see the module comment for the order).
  const reasons: string[] = [];
  const result = (verdict: Verdict): ExperimentResults => ({
    name,
    method: spec.method,
    alpha: spec.alpha,
    correction: spec.correction,
    control: controlName,
    arms: armResults,
    srm,
    metrics,
    verdict,
    reasons,
  });
  const fewest = Math.min(...observed);
  if (fewest === 0) {
    reasons.push(`waiting for units in every arm (${describeUnits(armResults)})`);
    return result("running");
  }
  if (srm.mismatch) {
    reasons.push(
      `sample ratio mismatch: units ${describeUnits(armResults)} do not fit weights ${arms.map((a) => a.weight).join("/")} (chi-square p=${fmtP(srm.pValue)} < ${srm.threshold}); decisions are blocked until the assignment or logging is fixed`,
    );
    return result("srm");
  }
  if (fewest < spec.minSamples) {
    reasons.push(
      `${plural(fewest, "unit")} in the smallest arm, fewer than minSamples ${spec.minSamples}${spec.method === "fixedHorizon" ? " (the planned horizon)" : ""}`,
    );
    return result("running");
  }
  const describe = (m: MetricResult, c: Comparison) =>
    `${m.name} (${m.role}) ${c.arm} vs ${controlName}: ${m.kind === "binomial" ? pct(c.difference).replace("%", " pts") : c.difference.toPrecision(4)} (relative ${pct(c.relative)}), ${
      spec.method === "bayesian"
        ? `chance to win ${((c.chanceToWin ?? 0) * 100).toFixed(1)}%`
        : `p=${fmtP(c.pValue)}${m.role === "goal" && goalCmps.length > 1 ? ` adjusted ${fmtP(c.adjustedPValue)}` : ""}`
    }`;
  const guardFails = metrics
    .filter((m) => m.role === "guardrail")
    .flatMap((m) => m.comparisons.filter((c) => c.outcome === "worse").map((c) => describe(m, c)));
  const goalWorse = metrics
    .filter((m) => m.role === "goal")
    .flatMap((m) => m.comparisons.filter((c) => c.outcome === "worse").map((c) => describe(m, c)));
  const goalBetter = metrics
    .filter((m) => m.role === "goal")
    .flatMap((m) => m.comparisons.filter((c) => c.outcome === "better").map((c) => describe(m, c)));
  if (guardFails.length > 0) {
    reasons.push(...guardFails.map((g) => `guardrail worse: ${g}`));
    return result("lose");
  }
  if (goalWorse.length > 0) {
    reasons.push(...goalWorse.map((g) => `goal worse: ${g}`));
    return result("lose");
  }
  if (goalBetter.length > 0) {
    reasons.push(...goalBetter.map((g) => `goal better: ${g}`));
    return result("win");
  }
  const goals = metrics.filter((m) => m.role === "goal");
  reasons.push(
    `no significant difference yet: ${goals.flatMap((m) => m.comparisons.map((c) => describe(m, c))).join("; ") || "no comparable data"}`,
  );
  return result(spec.method === "fixedHorizon" ? "inconclusive" : "running");
}

function describeUnits(arms: readonly ArmResult[]): string {
  return arms.map((a) => `${a.name}=${a.units}`).join(", ");
}

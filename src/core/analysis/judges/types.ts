/** The types every judge shares: verdicts, their inputs and reasons, and the judge interface. */
import type { JudgeSpec } from "../../model.js";
import type { CandidateTraffic, ObservedValues } from "../observation.js";

/** A judge's key in a spec: "threshold" | "relative" | "sequential" | "mannWhitney". */
export type JudgeKind = JudgeSpec extends infer S ? (S extends unknown ? keyof S : never) : never;
/** The body of the judge `K`'s spec, e.g. `{ min?, max? }` for "threshold". */
export type JudgeBody<K extends JudgeKind> = Extract<JudgeSpec, Record<K, unknown>>[K];
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
  /**
   * No request was sent to the candidate in the window (the data plane says so): a quiet
   * service, not a failing one (`../no-response.ts`).
   */
  | "noTraffic"
  /**
   * Requests were sent to the candidate and none got an answer: inconclusive while the first
   * is younger than the metric's noResponseTimeout, a fail after it (`../no-response.ts`).
   */
  | "noResponse"
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
  /** Of `events`, requests abandoned by their clients (builtin error_rate); absent when none. */
  abandoned?: number;
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
  /**
   * The data plane's count of the candidate's requests, and the bound on waiting for an answer
   * (ms), in a verdict the no-response rule gave ("noTraffic", "noResponse").
   */
  traffic?: CandidateTraffic & { noResponseMs: number };
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
  /** Set for "inconclusive" and "error" verdicts, and a "fail" of the no-response rule. */
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
  /** The values' unit for explanations ("ms" for the builtin latency); absent: unitless. */
  unit?: string;
}

/** What every verdict of one judgment starts from: the judge and the inputs so far. */
export interface Base {
  kind: JudgeKind;
  inputs: VerdictInputs;
}

/**
 * One judge: its key in a spec, and the judgment of one usable measurement (a failed one never
 * gets here). It may throw a RangeError on numbers it cannot use: `judge` turns that into an
 * error verdict.
 */
export interface Judge<B> {
  readonly key: JudgeKind;
  /** minSamples when a metric judged by it does not set one. */
  readonly defaultMinSamples: number;
  judge(body: B, obs: ObservedValues, ctx: JudgeContext, base: Base): Verdict;
}

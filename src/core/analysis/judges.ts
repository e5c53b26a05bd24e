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
 * The four judges, one file each in `judges/` (to add one: its spec type, a `{ <key>: Body }`
 * member of `JudgeSpec` in `model.ts`, `judges/<key>.ts` exporting a `Judge<Body>`, one line in
 * `JUDGES` and its zod schema in `src/resources/schema/analysis-template.ts`):
 * - threshold {min?, max?}: the candidate's value against fixed bounds.
 * - relative {mode, maxIncrease?, maxDecrease?}: candidate against baseline, as a ratio or a
 *   difference.
 * - sequential {maxIncrease, detect?, alpha}: a one-sided mixture SPRT on error counts, always
 *   valid under continuous monitoring.
 * - mannWhitney {maxRelativeIncrease, alpha}: a one-sided rank test on latency samples or
 *   histogram bins with a Hodges–Lehmann shift as the effect, its alpha split over the looks of
 *   a run.
 */
import type { JudgeSpec } from "../model.js";
import { error, inconclusive } from "./judges/explain.js";
import { mannWhitney } from "./judges/mann-whitney.js";
import { relative } from "./judges/relative.js";
import { sequential } from "./judges/sequential.js";
import { threshold } from "./judges/threshold.js";
import type { Base, Judge, JudgeBody, JudgeContext, JudgeKind, Verdict } from "./judges/types.js";
import type { Observation } from "./observation.js";

export { num } from "./judges/explain.js";
export { mannWhitneyLookAlpha } from "./judges/mann-whitney.js";
export { DEFAULT_SEQUENTIAL_DETECT } from "./judges/sequential.js";
export type {
  Effect,
  Judge,
  JudgeBody,
  JudgeContext,
  JudgeKind,
  JudgeMemory,
  Outcome,
  SideInputs,
  Verdict,
  VerdictInputs,
  VerdictReason,
} from "./judges/types.js";

/** Every judge by its key. A judge kind of `JudgeSpec` missing here fails `tsc`. */
export const JUDGES: { readonly [K in JudgeKind]: Judge<JudgeBody<K>> } = {
  threshold,
  relative,
  sequential,
  mannWhitney,
};

/** The judge kind of a spec. Throws on a spec with no known key (validation prevents it). */
export function judgeKind(spec: JudgeSpec): JudgeKind {
  for (const key of Object.keys(spec)) if (Object.hasOwn(JUDGES, key)) return key as JudgeKind;
  throw new Error(`unknown judge kind: ${Object.keys(spec).join(", ")}`);
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
    const body = (spec as Record<string, unknown>)[kind];
    return (JUDGES[kind] as Judge<unknown>).judge(body, obs, ctx, base);
  } catch (e) {
    return error(base, "badInput", `${ctx.metric}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

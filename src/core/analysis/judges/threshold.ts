/** threshold {min?, max?}: the candidate's value against fixed bounds. */

import { plural } from "../../plural.js";
import type { ObservedValues } from "../observation.js";
import { apart, error, inconclusive, num, verdict } from "./explain.js";
import type { Base, Judge, JudgeBody, JudgeContext, Verdict } from "./types.js";

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
      `${ctx.metric} ${num(value)} from ${plural(n, "sample")} < minSamples ${ctx.minSamples}: too little data to judge (${bounds})`,
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

/** The threshold judge. */
export const threshold: Judge<JudgeBody<"threshold">> = {
  key: "threshold",
  defaultMinSamples: 1,
  judge: judgeThreshold,
};

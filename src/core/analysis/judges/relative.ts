/**
 * relative {mode, maxIncrease?, maxDecrease?}: candidate against baseline. "ratio": the
 * relative change candidate/baseline − 1 must lie in [−maxDecrease, +maxIncrease] (0.2 means
 * +20 %); "difference": candidate − baseline must lie in [−maxDecrease, +maxIncrease], in the
 * metric's unit.
 */
import type { ObservedValues } from "../observation.js";
import {
  apart,
  error,
  inconclusive,
  num,
  shortSide,
  sideInputs,
  signed,
  signedPct,
  verdict,
} from "./explain.js";
import type { Base, Judge, JudgeBody, JudgeContext, Verdict } from "./types.js";

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

/** The relative judge. */
export const relative: Judge<JudgeBody<"relative">> = {
  key: "relative",
  defaultMinSamples: 1,
  judge: judgeRelative,
};

/**
 * Building verdicts and the numbers in their explanations, shared by the judges: every verdict
 * is made here, field by field, and every number reads the same way in every explanation.
 */
import type { ObservedSide } from "../observation.js";
import type { Base, Outcome, SideInputs, Verdict, VerdictReason } from "./types.js";

export function verdict(
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

export function inconclusive(
  b: Base & Partial<Verdict>,
  reason: VerdictReason,
  explanation: string,
  provisional = false,
): Verdict {
  return verdict(b, "inconclusive", explanation, reason, provisional);
}

export function error(b: Base, reason: VerdictReason, explanation: string): Verdict {
  return verdict(b, "error", explanation, reason);
}

export function sideInputs(
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
    if (side.proportion.abandoned !== undefined) out.abandoned = side.proportion.abandoned;
  }
  return out;
}

/** "500 requests < minSamples 1000 on the candidate", or undefined when both have enough. */
export function shortSide(
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

export function signed(v: number, digits = 3): string {
  return `${v >= 0 ? "+" : ""}${num(v, digits)}`;
}

export function signedPct(v: number, digits = 3): string {
  return `${v >= 0 ? "+" : ""}${num(v * 100, digits)}%`;
}

/** A difference of rates in percentage points: 0.032 -> "+3.2". */
export function signedPoints(v: number, digits = 2): string {
  return `${v >= 0 ? "+" : ""}${num(v * 100, digits)}`;
}

/**
 * `a` and `b` formatted with `f` at the fewest significant digits (from `digits` on) that tell
 * them apart, so that an explanation never reads "0.01 > max 0.01".
 */
export function apart(
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

/** "4.1% (41/1000)"; with abandoned requests "31% (250/810, 250 abandoned by clients)". */
export function rate(p: { events: number; trials: number; abandoned?: number }): string {
  const of = `${p.events}/${p.trials}`;
  const counts =
    p.abandoned !== undefined && p.abandoned > 0
      ? `${of}, ${p.abandoned} abandoned by clients`
      : of;
  return p.trials > 0 ? `${num((100 * p.events) / p.trials)}% (${counts})` : `(${counts})`;
}

export function pval(p: number): string {
  return num(p, 2);
}

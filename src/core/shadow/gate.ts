/**
 * The shadow gate: whether a shadow phase passes, fails or must go on, from its report. Pure.
 *
 * The verdict is taken once there are `minSamples` compared pairs and the phase has lasted its
 * `duration` (if any); before that it waits, whatever the numbers say so far: users never see
 * the shadow's answers, so waiting for a full sample costs nothing, and a verdict on too few
 * pairs would pass or fail on luck. Fewer samples than `minSamples` is never a pass.
 */

import { plural } from "../plural.js";
import type { ShadowReport } from "./aggregate.js";
import type { ShadowGateSpec } from "./types.js";

export interface GateVerdict {
  verdict: "pass" | "fail" | "wait";
  /** One line per check, with the numbers: "mismatch rate 4.2% > 1%". */
  reasons: string[];
}

const pct = (x: number) => `${(x * 100).toFixed(x < 0.01 && x > 0 ? 2 : 1)}%`;

/** Judges a report against the gate. `elapsedMs`/`durationMs`: time in the phase and its minimum. */
export function evaluateGate(
  gate: ShadowGateSpec,
  report: ShadowReport | null,
  elapsedMs: number,
  durationMs: number,
): GateVerdict {
  const samples = report?.samples ?? 0;
  if (report === null || samples < gate.minSamples) {
    return { verdict: "wait", reasons: [`${samples}/${gate.minSamples} samples`] };
  }
  if (elapsedMs < durationMs) {
    return {
      verdict: "wait",
      reasons: [`${Math.round(elapsedMs / 1000)}s of ${Math.round(durationMs / 1000)}s`],
    };
  }
  const failed: string[] = [];
  const passed: string[] = [];
  const check = (ok: boolean, line: string) => (ok ? passed : failed).push(line);
  if (gate.maxMismatchRate !== undefined) {
    const r = report.mismatchRate ?? 1;
    check(
      r <= gate.maxMismatchRate,
      `mismatch rate ${pct(r)} ${r <= gate.maxMismatchRate ? "<=" : ">"} ${pct(gate.maxMismatchRate)}`,
    );
  }
  if (gate.minAgreement !== undefined) {
    const a = report.agreement ?? 0;
    check(
      a >= gate.minAgreement,
      `agreement ${pct(a)} ${a >= gate.minAgreement ? ">=" : "<"} ${pct(gate.minAgreement)}`,
    );
  }
  if (gate.maxLatencyIncrease !== undefined) {
    if (report.latency === null) {
      failed.push("latency: no pair with both latencies");
    } else {
      const inc = report.latency.increase;
      check(
        inc <= gate.maxLatencyIncrease,
        `latency p50 ${report.latency.primaryP50Ms.toFixed(1)}ms -> ${report.latency.shadowP50Ms.toFixed(1)}ms (${inc >= 0 ? "+" : ""}${pct(inc)}) ${inc <= gate.maxLatencyIncrease ? "<=" : ">"} +${pct(gate.maxLatencyIncrease)}`,
      );
    }
  }
  if (gate.maxDriftPsi !== undefined) {
    const p = report.drift?.psi ?? null;
    if (p === null) failed.push("drift: no predictions to compare (is compare.drift set?)");
    else
      check(
        p <= gate.maxDriftPsi,
        `drift PSI ${p.toFixed(3)} ${p <= gate.maxDriftPsi ? "<=" : ">"} ${gate.maxDriftPsi}`,
      );
  }
  return failed.length > 0
    ? { verdict: "fail", reasons: [...failed, ...passed] }
    : { verdict: "pass", reasons: [plural(samples, "sample"), ...passed] };
}

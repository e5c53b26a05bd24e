/**
 * `shadow: {percent, methods, compare, noise, gate}`: a dark launch. The candidate gets copies
 * of a share of live requests (users only ever get the stable version's answers), the router
 * compares each pair, and the phase passes or fails by its gate:
 *
 *   1. on entry the step puts the mirror in the status (`status.shadow`; `routes.ts` carries it
 *      to the route table) and waits;
 *   2. each tick it reads the phase's report (`input.shadowReport`, which the controller reads
 *      from the shadow store where routers flush their aggregates) and judges it with
 *      `evaluateGate`: fewer samples than `minSamples`, or less time than `duration`, waits;
 *   3. fail: the rollout rolls back, with the report's numbers in the event;
 *   4. pass: the report goes into the history (`ShadowPassed`), the mirror is removed, and the
 *      next step starts (e.g. `setWeight: 10`: shadow -> canary -> 100%).
 *
 * `setMirrorRoute: {percent, match?}` (Argo Rollouts' name) mirrors without a gate until a
 * later `setMirrorRoute: {}` or the end of the rollout.
 */
import { durationMs } from "../duration.js";
import { plural } from "../plural.js";
import type { ShadowReport } from "../shadow/aggregate.js";
import { evaluateGate } from "../shadow/gate.js";
import type { MirrorRouteStep, ShadowStatus, ShadowStep } from "../shadow/types.js";
import { describeMatch } from "./setHeaderRoute.js";
import type { StepContext, StepKind } from "./types.js";

/** How often a waiting shadow step looks at its report again (routers flush every second). */
export const SHADOW_POLL_MS = 2000;

/** The identity of a mirror phase: reports are stored and read under it. */
export function shadowId(ctx: StepContext, i: number): string {
  return `r${ctx.status.rolloutNumber}-s${i}-${ctx.status.canaryVersion}`;
}

/** The report's numbers for the history: what decided, without the bulk. */
export function reportSummary(r: ShadowReport | null): Record<string, unknown> | null {
  if (r === null) return null;
  return {
    samples: r.samples,
    mismatches: r.mismatches,
    mismatchRate: r.mismatchRate,
    agreement: r.agreement,
    byField: r.byField.slice(0, 5).map((f) => ({ field: f.field, rate: f.rate, noise: f.noise })),
    noiseFields: r.noise?.fields ?? [],
    sampleDiffs: r.sampleDiffs.slice(0, 3),
    classification: r.classification && {
      agreement: r.classification.agreement,
      compared: r.classification.compared,
      disagreements: r.classification.disagreements.slice(0, 5),
    },
    regression: r.regression,
    drift: r.drift,
    latency: r.latency,
    shadowErrors: r.shadowErrors,
    sent: r.sent,
    drops: r.drops,
  };
}

export const shadow: StepKind<ShadowStep> = {
  key: "shadow",
  describe: (b) => `shadow ${b.percent}% (gate: ${plural(b.gate.minSamples, "sample")})`,
  clear(status) {
    status.shadow = null;
  },
  run(ctx, i, body) {
    const s = ctx.status;
    const id = shadowId(ctx, i);
    const version = s.canaryVersion ?? "";
    // 1. Entry: the mirror goes into the status, and so into the route table.
    if (s.shadow?.id !== id) {
      const st: ShadowStatus = {
        id,
        kind: "shadow",
        version,
        stepIndex: i,
        startedAt: ctx.now,
        mirror: {
          percent: body.percent,
          ...(body.methods ? { methods: body.methods } : {}),
          ...(body.sideEffectFree !== undefined ? { sideEffectFree: body.sideEffectFree } : {}),
          ...(body.stripHeaders ? { stripHeaders: body.stripHeaders } : {}),
          ...(body.match ? { match: body.match } : {}),
          ...(body.limits ? { limits: body.limits } : {}),
        },
        ...(body.compare ? { compare: body.compare } : {}),
        ...(body.noise ? { noise: true } : {}),
      };
      s.shadow = st;
      ctx.emit(
        "ShadowStarted",
        `${body.percent}% of requests mirrored to ${version}; users get ${s.stableVersion}'s answers (${ctx.label(i)})`,
        {
          step: i,
          id,
          version,
          percent: body.percent,
          gate: body.gate,
          noise: body.noise === true,
        },
      );
    }
    // 2. The gate, on the report routers flushed for this phase.
    const input = ctx.input.shadowReport;
    const report = input !== undefined && input !== null && input.id === id ? input.report : null;
    const minMs = body.gate.duration === undefined ? 0 : durationMs(body.gate.duration);
    const v = evaluateGate(body.gate, report, ctx.now - (s.shadow?.startedAt ?? ctx.now), minMs);
    if (v.verdict === "wait") {
      ctx.setPhase("Progressing", `shadow ${version} (${ctx.label(i)}): ${v.reasons.join(", ")}`);
      ctx.wakeAt(ctx.now + SHADOW_POLL_MS);
      return "wait";
    }
    const data = {
      step: i,
      id,
      version,
      verdict: v.verdict,
      reasons: v.reasons,
      report: reportSummary(report),
    };
    // 3. Fail: back to stable, numbers in the event.
    if (v.verdict === "fail") {
      ctx.rollBack(`shadow gate failed (${ctx.label(i)}): ${v.reasons.join("; ")}`, data);
      return "wait";
    }
    // 4. Pass: the report into the history, the mirror off, on to the next step.
    ctx.emit("ShadowPassed", `shadow gate passed (${ctx.label(i)}): ${v.reasons.join("; ")}`, data);
    s.shadow = null;
    return "next";
  },
};

export const setMirrorRoute: StepKind<MirrorRouteStep> = {
  key: "setMirrorRoute",
  describe: (b) =>
    b.percent === undefined || b.percent === 0
      ? "setMirrorRoute (remove)"
      : `setMirrorRoute ${b.percent}%${b.match ? ` ${describeMatch(b.match)}` : ""}`,
  // `shadow.clear` already forgets `status.shadow`; a second clear is harmless.
  clear(status) {
    status.shadow = null;
  },
  run(ctx, i, b) {
    const s = ctx.status;
    if (b.percent === undefined || b.percent === 0) {
      if (s.shadow) ctx.emit("MirrorRouteRemoved", `mirror removed (${ctx.label(i)})`, { step: i });
      s.shadow = null;
      return "next";
    }
    const id = shadowId(ctx, i);
    const version = s.canaryVersion ?? "";
    s.shadow = {
      id,
      kind: "mirror",
      version,
      stepIndex: i,
      startedAt: ctx.now,
      mirror: {
        percent: b.percent,
        ...(b.methods ? { methods: b.methods } : {}),
        ...(b.sideEffectFree !== undefined ? { sideEffectFree: b.sideEffectFree } : {}),
        ...(b.stripHeaders ? { stripHeaders: b.stripHeaders } : {}),
        ...(b.match ? { match: b.match } : {}),
      },
    };
    ctx.emit(
      "MirrorRouteSet",
      `${b.percent}% of ${b.match ? `requests with ${describeMatch(b.match)}` : "requests"} mirrored to ${version} (${ctx.label(i)})`,
      { step: i, id, version, percent: b.percent, match: b.match ?? null },
    );
    return "next";
  },
};

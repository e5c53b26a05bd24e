/**
 * Analysis gating: measurements go to their runs, the background analysis runs beside the
 * steps, inline analysis gates a step, a timed pause does not end while the background analysis
 * has seen nothing of the candidate, and a run's outcome acts on the rollout (a failure rolls
 * back or turns a feature's flags off, inconclusive waits for a person).
 */
import {
  nextDueAt,
  observe,
  type RunState,
  type RunTemplate,
  shortOfData,
  startRun,
  summarize,
} from "../analysis/run.js";
import { type AnalysisRefSpec, DEFAULT_TRAFFIC_POLICY } from "../model.js";
import { describeStep } from "../steps/index.js";
import { complete, holdForPerson, rollBack } from "./transitions.js";
import type { Stage, Work } from "./types.js";
import { earliest, emit, inRollout, setPhase, stepLabel } from "./work.js";

/**
 * 4. Analysis: record the measurements the controller took, run the background analysis, and
 * roll back at once when an analysis fails (automatic rollback).
 */
export const analysis: Stage = {
  name: "analysis",
  run(w) {
    const s = w.status;
    const a = s.analysis ?? {};
    s.analysis = a;
    // 1. Feed each measurement to its run; results for runs that have been replaced are dropped.
    for (const o of w.input.observations ?? []) {
      const target = o.run === "step" ? a.step?.run : a.background;
      if (!target || target.startedAt !== o.runStartedAt) continue;
      const next = observe(target, o.metric, o.observation, w.now, {
        fromMs: o.fromMs,
        toMs: o.toMs,
      });
      const last = next.metrics.find((m) => m.name === o.metric)?.verdicts.at(-1);
      if (last?.counted && last.verdict.outcome !== "pass") {
        emit(w, "AnalysisVerdict", `${o.metric}: ${last.verdict.explanation}`, {
          run: o.run,
          metric: o.metric,
          outcome: last.verdict.outcome,
          pValue: last.verdict.pValue ?? null,
          statistic: last.verdict.statistic ?? null,
          effect: last.verdict.effect ?? null,
          window: { fromMs: o.fromMs, toMs: o.toMs },
        });
      }
      if (o.run === "step" && a.step) a.step = { ...a.step, run: next };
      else a.background = next;
    }
    if (!inRollout(s)) {
      a.background = null;
      return "continue";
    }
    // 2. A background run that has an outcome acts on it (it is started after the steps below).
    if (a.background) {
      const verdict = settle(w, a.background, "background analysis");
      if (verdict === "rolledBack") return "stop";
      if (verdict === "inconclusive") {
        a.background = null; // starts afresh when a person resumes
        return "stop";
      }
      if (verdict === "passed") {
        a.background = null; // a finite background run that passed: start another
      } else {
        w.wakeAt = earliest(w.wakeAt, nextDueAt(a.background));
      }
    }
    return "continue";
  },
};

/**
 * The background analysis runs from its starting step until the rollout ends. Called after the
 * steps, so a run starts in the same tick as the step that reaches its starting point.
 */
export function startBackgroundAnalysis(w: Work): void {
  const s = w.status;
  const bg = w.strategy.background;
  if (!bg || !inRollout(s) || s.pausedByUser || (s.stepIndex ?? 0) < bg.startingStep) return;
  s.analysis ??= {};
  const a = s.analysis;
  if (a.background) return;
  a.background = beginRun(w, bg, "background");
  emit(w, "AnalysisStarted", `background analysis started (${bg.templates.join(", ")})`, {
    run: "background",
    templates: bg.templates,
  });
  // A run that cannot start (a missing template) rolls back now, not a tick later.
  if (settle(w, a.background, "background analysis") !== "running") a.background = null;
  else w.wakeAt = earliest(w.wakeAt, nextDueAt(a.background));
}

export function beginRun(w: Work, ref: AnalysisRefSpec, kind: "inline" | "background"): RunState {
  const templates: RunTemplate[] = [];
  const missing: string[] = [];
  for (const name of ref.templates) {
    const spec = w.input.templates?.[name];
    if (spec) templates.push({ name, spec });
    else missing.push(name);
  }
  // Requests unanswered for as long as the router lets a version take to answer fail the
  // candidate (no-response.ts), unless a metric says otherwise.
  const upstreamSeconds = (w.spec.trafficPolicy ?? DEFAULT_TRAFFIC_POLICY).timeouts.upstreamSeconds;
  const run = startRun(templates, ref.args ?? [], w.now, {
    kind,
    noResponseMs: upstreamSeconds * 1000,
  });
  if (missing.length > 0) {
    return {
      ...run,
      phase: "Error",
      message: `no AnalysisTemplate named ${missing.join(", ")}`,
      finishedAt: w.now,
    };
  }
  return run;
}

/**
 * Acts on a run's phase: a failure or an error rolls back at once, inconclusive waits for a
 * person; "running" and "passed" let the rollout go on.
 */
export function settle(
  w: Work,
  run: RunState,
  label: string,
): "running" | "passed" | "rolledBack" | "inconclusive" {
  const sum = summarize(run);
  if (sum.phase === "Running") return "running";
  const data = {
    run: label,
    phase: sum.phase,
    metrics: sum.metrics.map((m) => ({
      name: m.name,
      phase: m.phase,
      dryRun: m.dryRun,
      counters: m.counters,
      last: m.last
        ? {
            outcome: m.last.verdict.outcome,
            explanation: m.last.verdict.explanation,
            pValue: m.last.verdict.pValue ?? null,
            statistic: m.last.verdict.statistic ?? null,
            bound: m.last.verdict.bound ?? null,
            effect: m.last.verdict.effect ?? null,
            inputs: m.last.verdict.inputs,
          }
        : null,
    })),
  };
  if (sum.phase === "Successful") {
    emit(w, "AnalysisSucceeded", `${label} passed: ${sum.message}`, data);
    return "passed";
  }
  if (sum.phase === "Failed" || sum.phase === "Error") {
    const what = `${label} ${sum.phase === "Failed" ? "failed" : "errored"}: ${sum.message}`;
    emit(w, "AnalysisFailed", what, data);
    if (label !== "background analysis" && flagsToKill(w).length > 0) {
      killFeature(w, what);
      return "rolledBack";
    }
    rollBack(w, "controller", what, { analysis: label });
    return "rolledBack";
  }
  emit(w, "AnalysisInconclusive", `${label} inconclusive: ${sum.message}`, data);
  holdForPerson(w);
  setPhase(
    w,
    "Paused",
    `${label} inconclusive: ${sum.message}; run \`turnout promote\` to go on or \`turnout abort\``,
  );
  return "inconclusive";
}

/** Flags this rollout raised, when a failure should turn them off rather than switch back. */
export function flagsToKill(w: Work): string[] {
  const s = w.status;
  if (!w.strategy.flagFailureKeepsVersion || s.canaryWeight !== 100) return [];
  return Object.entries(s.flags ?? {})
    .filter(([, e]) => e.rollout === s.rolloutNumber && e.state !== "DISABLED")
    .map(([key]) => key);
}

/**
 * Blue-green with feature flags: the feature failed, not the version. Its flags go off at
 * once (no redeploy) and the new version, already serving 100%, completes with the feature
 * dark; `turnout flags enable` brings it back once fixed.
 */
export function killFeature(w: Work, why: string): void {
  const s = w.status;
  const killed = flagsToKill(w);
  const flags = { ...(s.flags ?? {}) };
  for (const key of killed) {
    flags[key] = {
      ...(flags[key] as NonNullable<(typeof flags)[string]>),
      state: "DISABLED",
      at: w.now,
      reason: `turned off: ${why}`,
    };
  }
  s.flags = flags;
  const version = s.canaryVersion;
  emit(
    w,
    "FlagKilled",
    `flag ${killed.join(", ")} turned off: ${why}; ${version} keeps serving with the feature off`,
    { flags: killed, version, reason: why },
  );
  complete(w);
  setPhase(
    w,
    "Completed",
    `rollout ${s.rolloutNumber} completed with the feature off: flag ${killed.join(", ")} turned off (${why}); ${s.stableVersion} serves 100%`,
  );
}

/** An inline analysis at step `i`: the `analysis` step, and the gates of other strategies. */
export function analysisGate(
  w: Work,
  i: number,
  ref: AnalysisRefSpec,
): "running" | "passed" | "stopped" {
  const s = w.status;
  s.analysis ??= {};
  const a = s.analysis;
  if (!a.step || a.step.stepIndex !== i || a.step.rollout !== s.rolloutNumber) {
    a.step = { stepIndex: i, rollout: s.rolloutNumber, run: beginRun(w, ref, "inline") };
    emit(
      w,
      "AnalysisStarted",
      `analysis started at ${stepLabel(w, i)} (${ref.templates.join(", ")})`,
      {
        run: "step",
        step: i,
        templates: ref.templates,
      },
    );
  }
  const run = a.step.run;
  const outcome = settle(w, run, `analysis at ${stepLabel(w, i)}`);
  if (outcome === "running") {
    w.wakeAt = earliest(w.wakeAt, nextDueAt(run));
    setPhase(w, "Progressing", `analysis at ${stepLabel(w, i)}: ${run.message}`);
    return "running";
  }
  if (outcome === "passed") {
    a.step = null;
    return "passed";
  }
  return "stopped";
}

/**
 * Whether the timed pause at step `i`, whose time is up, must wait for the background analysis:
 * it does while the background run has no evidence on the candidate (`shortOfData`: no
 * measurement yet, no request sent to it, requests sent and none answered yet, no data, too few
 * samples). A pause is there to watch the candidate at its weight; ending it on nothing seen is
 * how a version that hangs was promoted, its clients waiting longer than the pause so that no
 * request ended and every look said "no data". Flagger halts on a query without data; Argo
 * pauses on inconclusive. The wait has no bound of its own: a candidate that gets requests and
 * answers none fails by the no-response rule, and a quiet one must not be rolled back for being
 * quiet. The status says what it waits for, a StepHeld event (notifiers' "paused") tells
 * people once, and `turnout promote` goes on without the data. Returns how long the step was
 * held once it may end (0 when it never was).
 */
export function holdForData(w: Work, i: number): { held: true } | { held: false; heldMs: number } {
  const s = w.status;
  const run = s.analysis?.background;
  const short = run ? shortOfData(run, w.now) : [];
  const since =
    s.heldForData?.step === i && s.heldForData.rollout === s.rolloutNumber
      ? s.heldForData.since
      : null;
  if (short.length === 0) {
    s.heldForData = null;
    return { held: false, heldMs: since === null ? 0 : w.now - since };
  }
  const version = s.canaryVersion as string;
  const what = `${stepLabel(w, i)} (${describeStep(w.steps[i]!)})`;
  const why = short.map((m) => m.explanation).join("; ");
  if (since === null) {
    s.heldForData = { step: i, rollout: s.rolloutNumber, since: w.now };
    emit(
      w,
      "StepHeld",
      `${what} is over, held: the background analysis has no evidence on ${version} yet (${why}); it goes on once it has, \`turnout promote\` goes on without it`,
      {
        step: i,
        version,
        weight: s.canaryWeight,
        metrics: short.map((m) => ({
          name: m.metric,
          reason: m.reason,
          explanation: m.explanation,
        })),
      },
    );
  }
  // No running duration in the message: it would change the status at every tick (the status
  // view shows how long from `heldForData.since`).
  setPhase(
    w,
    "Progressing",
    `${what} held with ${version} at ${s.canaryWeight}%: the background analysis has no evidence on ${version} yet (${why}); it goes on once it has, \`turnout promote\` goes on without it`,
  );
  if (run) w.wakeAt = earliest(w.wakeAt, nextDueAt(run));
  return { held: true };
}

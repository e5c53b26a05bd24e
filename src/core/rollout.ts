/**
 * The rollout decision: a pure function of a service's spec, its last status, the commands
 * people sent, what the runtime reports, and `now`. No I/O, no clock reads, no logging
 * (DESIGN invariant 2). The controller feeds it and carries out what it returns.
 *
 * One reconcile runs a short list of named stages, in order (CONVENTIONS 3). Each stage reads
 * and updates the working state and returns an outcome: "continue" to run the next stage,
 * "stop" to skip the remaining decision stages (routes and targets are always computed).
 */
import type { Observation } from "./analysis/observation.js";
import {
  nextDueAt,
  observe,
  type RunState,
  type RunTemplate,
  startRun,
  summarize,
} from "./analysis/run.js";
import { durationMs, formatDuration } from "./duration.js";
import type { EventData, EventType } from "./events.js";
import type { ExperimentData } from "./experiment/types.js";
import type {
  AnalysisRefSpec,
  AnalysisTemplateSpec,
  Command,
  CommandResult,
  EventDraft,
  RolloutStep,
  ServiceSpec,
  ServiceStatus,
} from "./model.js";
import { replicasOf } from "./replicas.js";
import type { ShadowReport } from "./shadow/aggregate.js";
import { clearStepState, describeStep, kindOf, type StepContext } from "./steps/index.js";
import { roundWeight } from "./steps/setWeight.js";
import {
  type CompiledStrategy,
  compileStrategy,
  DEFAULT_PROGRESS_DEADLINE_SECONDS,
} from "./strategies/index.js";

export { replicasOf } from "./replicas.js";
export { describeStep } from "./steps/index.js";
export { describeMatch } from "./steps/setHeaderRoute.js";
export { roundWeight } from "./steps/setWeight.js";
export { DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS } from "./strategies/index.js";

/** What the runtime reports for one version of the service. */
export interface VersionReadiness {
  /** Instances that pass their readiness probe. */
  ready: number;
  /** Instances that failed (exited, or never became ready in time). */
  failed: number;
  /** Why the last failed instance failed. */
  message?: string;
}

export interface ReconcileInput {
  now: number;
  service: { name: string; generation: number; spec: ServiceSpec };
  /** Null for a service the controller has never seen. */
  status: ServiceStatus | null;
  /** Pending commands for this service, oldest first. */
  commands: Command[];
  /** Per version; a version the runtime does not run is absent. */
  readiness: Record<string, VersionReadiness>;
  /** AnalysisTemplates by name, for analysis steps and background analysis. */
  templates?: Record<string, AnalysisTemplateSpec>;
  /** Measurements the controller took for this service's analysis runs since the last tick. */
  observations?: AnalysisObservation[];
  /** Aggregated exposures and outcomes of the running experiment (the `experiment` step reads it). */
  experimentData?: ExperimentData;
  /** The report of the mirror phase in `status.shadow` (the `shadow` step's gate reads it). */
  shadowReport?: { id: string; report: ShadowReport } | null;
  /**
   * `compileStrategy(service.spec)`, when the caller has compiled it already (the controller's
   * tick compiles once for the decision, the route table and the experiment); compiled here
   * otherwise.
   */
  strategy?: CompiledStrategy;
}

/** One measurement taken for a metric of an analysis run, with the window it covered. */
export interface AnalysisObservation {
  run: "step" | "background";
  /** The run's `startedAt`: a result for a run that has since been replaced is dropped. */
  runStartedAt: number;
  metric: string;
  observation: Observation;
  fromMs: number;
  toMs: number;
}

export interface VersionWeight {
  version: string;
  /** Percent, 0..100; the list sums to 100. */
  weight: number;
}

export interface ReconcileOutput {
  status: ServiceStatus;
  events: EventDraft[];
  commandResults: CommandResult[];
  /** The traffic split to put in force. */
  weights: VersionWeight[];
  /** Versions the runtime must run, with their instance counts. */
  targets: { version: string; replicas: number }[];
  /** Clock ms at which something will change by itself (a timed pause ends); null if none. */
  wakeAt: number | null;
}

export type StageOutcome = "continue" | "stop";

/** Mutable working state of one reconcile; never escapes it. */
interface Work {
  readonly input: ReconcileInput;
  readonly now: number;
  readonly name: string;
  readonly spec: ServiceSpec;
  readonly strategy: CompiledStrategy;
  readonly steps: RolloutStep[];
  status: ServiceStatus;
  events: EventDraft[];
  results: CommandResult[];
  wakeAt: number | null;
}

export interface Stage {
  name: string;
  run(w: Work): StageOutcome;
}

/** The steps of the service's strategy, compiled. */
export function stepsOf(spec: ServiceSpec): RolloutStep[] {
  return compileStrategy(spec).steps;
}

export function emptyStatus(now: number): ServiceStatus {
  return {
    phase: "Healthy",
    message: "",
    observedGeneration: 0,
    stableVersion: null,
    canaryVersion: null,
    stepIndex: null,
    stepStartedAt: null,
    canaryWeight: 0,
    pausedByUser: false,
    abortedVersion: null,
    rolloutStartedAt: null,
    rolloutNumber: 0,
    previousStableVersions: [],
    lastTransitionAt: now,
  };
}

// ---------------------------------------------------------------------------------------
// Helpers shared by stages
// ---------------------------------------------------------------------------------------

/** Appends an event of the catalogue (`events.ts`) to this reconcile's history. */
function emit<T extends EventType>(
  w: Work,
  type: T,
  message: string,
  data: EventData[T],
  actor = "controller",
) {
  w.events.push({ service: w.name, type, actor, message, data, time: w.now });
}

function setPhase(w: Work, phase: ServiceStatus["phase"], message: string): void {
  if (w.status.phase !== phase) w.status.lastTransitionAt = w.now;
  w.status.phase = phase;
  w.status.message = message;
}

function inRollout(s: ServiceStatus): boolean {
  return s.canaryVersion !== null;
}

function stepLabel(w: Work, i: number): string {
  return `step ${i + 1}/${w.steps.length}`;
}

/** Forgets the rollout in progress: no canary, no step, no weight. */
function clearRollout(s: ServiceStatus): void {
  s.canaryVersion = null;
  s.canaryWeight = 0;
  s.stepIndex = null;
  s.stepStartedAt = null;
  s.pausedByUser = false;
  s.pausedAt = null;
  s.rolloutStartedAt = null;
  s.analysis = { step: null, background: null };
  s.replicas = null;
  s.preview = null;
  s.candidateWaitSince = null;
  clearStepState(s);
}

/** Ends the rollout with all traffic back on stable; used by abort and automatic failures. */
function rollBack(w: Work, actor: string, why: string, data: Record<string, unknown>): void {
  const s = w.status;
  const canary = s.canaryVersion;
  const fromWeight = s.canaryWeight;
  s.abortedVersion = canary;
  const message = `rollout to ${canary} aborted: ${why}; ${s.stableVersion} serves 100%`;
  // The phase first: step kinds' `clear` sees a rollback as Degraded at this time (setFlag
  // turns its flags off then).
  setPhase(w, "Degraded", message);
  clearRollout(s);
  const delay = w.strategy.abortScaleDownDelaySeconds;
  s.abortScaleDownAt = delay > 0 ? w.now + delay * 1000 : null;
  emit(
    w,
    "RolloutAborted",
    message,
    { version: canary, stable: s.stableVersion, fromWeight, ...data },
    actor,
  );
}

function startRollout(w: Work): void {
  const s = w.status;
  const to = w.spec.version;
  const replaced = s.canaryVersion;
  clearRollout(s);
  s.canaryVersion = to;
  s.stepIndex = 0;
  s.stepStartedAt = w.now;
  s.abortedVersion = null;
  s.abortScaleDownAt = null;
  s.rolloutStartedAt = w.now;
  s.rolloutNumber += 1;
  const st = w.strategy;
  if (st.candidateReplicas !== undefined) s.replicas = { [to]: st.candidateReplicas };
  if (st.preview?.match) s.headerRoute = st.preview.match;
  if (st.preview?.port !== undefined) s.preview = { port: st.preview.port };
  // A recent stable version coming back is a rollback, not a new release: no steps.
  const window = w.strategy.rollbackWindow;
  const inWindow = window > 0 && s.previousStableVersions.slice(0, window).includes(to);
  if (inWindow) s.stepIndex = w.steps.length;
  const message = replaced
    ? `rollout ${s.rolloutNumber}: ${replaced} replaced by ${to} mid-rollout; starting over from ${s.stableVersion}`
    : inWindow
      ? `rollout ${s.rolloutNumber}: ${s.stableVersion} -> ${to}, a recent stable version (rollback window ${window}): no steps`
      : `rollout ${s.rolloutNumber}: ${s.stableVersion} -> ${to} (${w.steps.length} steps)`;
  setPhase(w, "Progressing", message);
  emit(w, "RolloutStarted", message, {
    rollout: s.rolloutNumber,
    from: s.stableVersion,
    to,
    replaced,
    steps: w.steps.length,
    rollbackWindow: inWindow,
    generation: w.input.service.generation,
  });
}

function complete(w: Work): void {
  const s = w.status;
  const from = s.stableVersion;
  const to = s.canaryVersion as string;
  const tookMs = s.rolloutStartedAt === null ? 0 : w.now - s.rolloutStartedAt;
  if (from !== null && from !== to) {
    s.previousStableVersions = [
      from,
      ...s.previousStableVersions.filter((v) => v !== from && v !== to),
    ].slice(0, 10);
  }
  s.stableVersion = to;
  clearRollout(s);
  // Blue-green: the old version stays warm, so that going back to it is a switch, not a start.
  const warm = w.strategy.scaleDownDelaySeconds ?? 0;
  s.previousScaleDownAt = from !== null && from !== to && warm > 0 ? w.now + warm * 1000 : null;
  const message = `rollout ${s.rolloutNumber} completed: ${to} is stable and serves 100% (took ${formatDuration(tookMs)})`;
  setPhase(w, "Completed", message);
  emit(w, "RolloutCompleted", message, { rollout: s.rolloutNumber, from, to, tookMs });
}

/** The rollout waits for a person from now on; the clock of a timed pause stops. */
function holdForPerson(w: Work): void {
  const s = w.status;
  if (!s.pausedByUser) s.pausedAt = w.now;
  s.pausedByUser = true;
}

/**
 * Ends a hold by a person. Time paused by a person does not count toward a timed pause: the
 * step's start moves on by the time held (5 s into a 10 s pause, paused, resumed: 5 s left).
 * Returns the time held, or null when unknown (a status from before `pausedAt` existed: the
 * step then starts over, as it used to).
 */
function release(w: Work): number | null {
  const s = w.status;
  const held = s.pausedAt != null ? Math.max(0, w.now - s.pausedAt) : null;
  if (s.stepStartedAt !== null) s.stepStartedAt = held !== null ? s.stepStartedAt + held : w.now;
  s.pausedByUser = false;
  s.pausedAt = null;
  return held;
}

/** What is left of the current step's timed pause (ms), or null when it is not one. */
function timedPauseLeft(w: Work): number | null {
  const s = w.status;
  const step = w.steps[s.stepIndex ?? 0];
  if (!step || !("pause" in step) || step.pause.duration === undefined) return null;
  const started = s.stepStartedAt ?? w.now;
  return Math.max(0, started + durationMs(step.pause.duration) - w.now);
}

/** Who set the desired version last with `turnout undo` (the history's Undo event). */
export interface UndoMark {
  actor: string;
  /** Clock ms. */
  time: number;
  from: string;
  to: string;
}

/**
 * What an apply that changes `spec.version` will do, in words for the person applying, before
 * the controller does it (the same rules as the desiredVersion stage below). With `undo`, the
 * version being replaced was set by `turnout undo`: re-applying the file that undo reverted
 * silently undoes the undo, so this says so first. Null when the version does not change.
 */
export function planVersionChange(
  from: string,
  spec: ServiceSpec,
  status: ServiceStatus | null,
  undo?: UndoMark,
): string | null {
  const to = spec.version;
  if (from === to) return null;
  const head = undo
    ? `spec.version ${from} was set by \`turnout undo\` (${undo.actor}, ${isoSecond(undo.time)}); this apply changes it to ${to}, undoing the undo: `
    : `spec.version ${from} -> ${to}: `;
  if (status === null || status.stableVersion === null) return `${head}${to} serves 100% at once`;
  if (to === status.stableVersion) {
    return `${head}${to} is the stable version${status.canaryVersion ? `: the rollout to ${status.canaryVersion} is cancelled` : ""}; it serves 100%`;
  }
  if (to === status.canaryVersion) return `${head}${to} is already rolling out`;
  if (to === status.abortedVersion) {
    return `${head}${to} was aborted and does not start again by itself: \`turnout retry\` to try it again`;
  }
  const compiled = compileStrategy(spec);
  const n = compiled.steps.length;
  const window = compiled.rollbackWindow;
  if (window > 0 && status.previousStableVersions.slice(0, window).includes(to)) {
    return `${head}${to} is a recent stable version (rollback window ${window}), so it takes 100% at once, skipping all ${n} step${n === 1 ? "" : "s"} (${compiled.steps.map(describeStep).join(", ")})`;
  }
  const replacing = status.canaryVersion
    ? `, replacing the rollout to ${status.canaryVersion}`
    : "";
  return `${head}a new rollout ${status.stableVersion} -> ${to} of ${n} step${n === 1 ? "" : "s"}${replacing}`;
}

/** "2026-12-02 21:40:03 UTC", for messages (the format of `turnout history`). */
function isoSecond(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** Moves past the current step; the next one starts now. */
function advance(w: Work): void {
  const s = w.status;
  s.stepIndex = (s.stepIndex ?? 0) + 1;
  s.stepStartedAt = w.now;
}

// ---------------------------------------------------------------------------------------
// Stages
// ---------------------------------------------------------------------------------------

/** 1. A service seen for the first time: its version is stable at once, no rollout. */
const initialize: Stage = {
  name: "initialize",
  run(w) {
    const s = w.status;
    if (s.stableVersion !== null) return "continue";
    s.stableVersion = w.spec.version;
    s.observedGeneration = w.input.service.generation;
    const message = `${w.spec.version} is the first version; it serves 100%`;
    setPhase(w, "Healthy", message);
    emit(w, "StableVersionSet", message, { version: w.spec.version });
    return "continue";
  },
};

/** 2. Commands people sent (promote, abort, pause, resume, retry), in the order they came. */
const applyCommands: Stage = {
  name: "commands",
  run(w) {
    for (const cmd of w.input.commands) {
      const r = applyCommand(w, cmd);
      w.results.push({ id: cmd.id, outcome: r.ok ? "applied" : "rejected", message: r.message });
    }
    return "continue";
  },
};

function applyCommand(w: Work, cmd: Command): { ok: boolean; message: string } {
  const s = w.status;
  const who = cmd.actor;
  const why = cmd.reason ? ` (${cmd.reason})` : "";
  const noRollout = {
    ok: false,
    message: `no rollout in progress for ${w.name} (phase ${s.phase}); nothing to ${cmd.type}`,
  };
  switch (cmd.type) {
    case "abort": {
      if (!inRollout(s)) return noRollout;
      const canary = s.canaryVersion;
      rollBack(w, who, `aborted by ${who}${why}`, { reason: cmd.reason ?? null });
      return { ok: true, message: `aborted rollout to ${canary}; ${s.stableVersion} serves 100%` };
    }
    case "pause": {
      if (!inRollout(s)) return noRollout;
      if (s.pausedByUser) return { ok: true, message: "already paused" };
      holdForPerson(w);
      const message = `paused by ${who}${why} at ${stepLabel(w, s.stepIndex ?? 0)}, ${s.canaryVersion} at ${s.canaryWeight}%`;
      setPhase(w, "Paused", message);
      emit(w, "Paused", message, { stepIndex: s.stepIndex, weight: s.canaryWeight }, who);
      return { ok: true, message: "paused" };
    }
    case "resume": {
      if (!inRollout(s)) return noRollout;
      if (s.pausedByUser) {
        const held = release(w);
        // An inconclusive (or interrupted) analysis step runs again from the start.
        if (s.analysis?.step) s.analysis.step = null;
        const left = timedPauseLeft(w);
        const message = `resumed by ${who}${why}${held !== null ? ` after ${formatDuration(held)}` : ""}${left !== null ? `; ${formatDuration(left)} of the pause left` : ""}`;
        setPhase(w, "Progressing", message);
        emit(w, "Resumed", message, { stepIndex: s.stepIndex, heldMs: held }, who);
        return { ok: true, message: "resumed" };
      }
      const step = w.steps[s.stepIndex ?? 0];
      if (step) {
        const { kind, body } = kindOf(step);
        if (kind.waitsForPerson?.(body)) return promoteStep(w, cmd);
      }
      return { ok: false, message: `${w.name} is not paused (phase ${s.phase})` };
    }
    case "promote": {
      if (!inRollout(s)) return noRollout;
      if (cmd.args.full === true) {
        const message = `fully promoted by ${who}${why}: skipping the remaining steps`;
        emit(
          w,
          "Promoted",
          message,
          { full: true, fromStep: s.stepIndex, weight: s.canaryWeight },
          who,
        );
        s.stepIndex = w.steps.length;
        s.stepStartedAt = w.now;
        s.pausedByUser = false;
        s.pausedAt = null;
        return { ok: true, message: `${s.canaryVersion} promoted to 100%` };
      }
      return promoteStep(w, cmd);
    }
    case "retry": {
      if (s.phase !== "Degraded" || s.abortedVersion === null) {
        return { ok: false, message: `nothing to retry: ${w.name} is ${s.phase}, not Degraded` };
      }
      if (s.abortedVersion !== w.spec.version) {
        return {
          ok: false,
          message: `the aborted version ${s.abortedVersion} is no longer the desired version ${w.spec.version}`,
        };
      }
      emit(
        w,
        "Retried",
        `retry of ${s.abortedVersion} requested by ${who}${why}`,
        { version: s.abortedVersion },
        who,
      );
      s.abortedVersion = null; // the desiredVersion stage starts the rollout again
      return { ok: true, message: `retrying rollout to ${w.spec.version}` };
    }
  }
}

function promoteStep(w: Work, cmd: Command): { ok: boolean; message: string } {
  const s = w.status;
  const i = s.stepIndex ?? 0;
  const step = w.steps[i];
  const message = `promoted by ${cmd.actor}${cmd.reason ? ` (${cmd.reason})` : ""}: ${
    step ? `skipped ${stepLabel(w, i)} (${describeStep(step)})` : "finishing"
  }`;
  emit(w, "Promoted", message, { full: false, fromStep: i, weight: s.canaryWeight }, cmd.actor);
  s.pausedByUser = false;
  s.pausedAt = null;
  if (s.analysis?.step) s.analysis.step = null;
  advance(w);
  return { ok: true, message };
}

/** 3. Compare the desired version with what runs: start, restart or cancel a rollout. */
const desiredVersion: Stage = {
  name: "desiredVersion",
  run(w) {
    const s = w.status;
    const want = w.spec.version;
    s.observedGeneration = w.input.service.generation;
    if (want === s.stableVersion) {
      if (inRollout(s)) {
        const canary = s.canaryVersion;
        clearRollout(s);
        const message = `desired version is back to ${want}: rollout to ${canary} cancelled; ${want} serves 100%`;
        setPhase(w, "Healthy", message);
        emit(w, "RolloutCancelled", message, { version: canary, stable: want });
      } else if (s.phase === "Degraded") {
        s.abortedVersion = null;
        setPhase(w, "Healthy", `desired version is back to ${want}, the stable version`);
        emit(w, "Recovered", s.message, { stable: want });
      }
      return "continue";
    }
    if (want === s.canaryVersion) return "continue";
    if (want === s.abortedVersion) return "stop"; // stays Degraded until retry or a new version
    startRollout(w);
    return "continue";
  },
};

/**
 * 4. Analysis: record the measurements the controller took, run the background analysis, and
 * roll back at once when an analysis fails (automatic rollback).
 */
const analysis: Stage = {
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
function startBackgroundAnalysis(w: Work): void {
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

function beginRun(w: Work, ref: AnalysisRefSpec, kind: "inline" | "background"): RunState {
  const templates: RunTemplate[] = [];
  const missing: string[] = [];
  for (const name of ref.templates) {
    const spec = w.input.templates?.[name];
    if (spec) templates.push({ name, spec });
    else missing.push(name);
  }
  const run = startRun(templates, ref.args ?? [], w.now, { kind });
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
function settle(
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
function flagsToKill(w: Work): string[] {
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
function killFeature(w: Work, why: string): void {
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

/** 5. A rollout waits until every instance of the new version is ready; a failed one aborts it. */

const waitForCanary: Stage = {
  name: "waitForCanary",
  run(w) {
    const s = w.status;
    if (!inRollout(s)) return "continue";
    // A rolling update grows the candidate itself, batch by batch.
    if (w.strategy.waitForCandidate === false) return "continue";
    const v = s.canaryVersion as string;
    const want = s.replicas?.[v] ?? replicasOf(w.spec);
    const r = w.input.readiness[v] ?? { ready: 0, failed: 0 };
    if (r.failed > 0) {
      rollBack(
        w,
        "controller",
        `${v} failed to start (${r.message ?? `${r.failed} instance(s) failed`})`,
        {
          ready: r.ready,
          failed: r.failed,
          wanted: want,
        },
      );
      return "stop";
    }
    if (r.ready < want) {
      // The progress deadline counts from when the wait began (a start, or an instance lost).
      s.candidateWaitSince ??= w.now;
      const deadline =
        (w.strategy.progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_SECONDS) * 1000;
      if (!s.pausedByUser && w.now - s.candidateWaitSince > deadline) {
        rollBack(
          w,
          "controller",
          `${v} not ready within the progress deadline (${formatDuration(deadline)}): ${r.ready}/${want} instances ready`,
          { ready: r.ready, wanted: want, deadlineSeconds: deadline / 1000 },
        );
        return "stop";
      }
      w.wakeAt = earliest(w.wakeAt, s.candidateWaitSince + deadline + 1);
      if (!s.pausedByUser)
        setPhase(w, "Progressing", `waiting for ${v}: ${r.ready}/${want} instances ready`);
      return "stop";
    }
    s.candidateWaitSince = null;
    return "continue";
  },
};

/** 6. Run the steps, each by its kind (`steps/`), until one waits or all are done. */
const runSteps: Stage = {
  name: "steps",
  run(w) {
    const s = w.status;
    if (!inRollout(s)) return "continue";
    if (s.pausedByUser) {
      if (s.phase !== "Paused")
        setPhase(w, "Paused", `paused by a person at ${stepLabel(w, s.stepIndex ?? 0)}`);
      return "stop";
    }
    // Bounded: each iteration either advances a step or returns.
    const ctx = stepContext(w);
    while ((s.stepIndex ?? 0) < w.steps.length) {
      const i = s.stepIndex ?? 0;
      const { kind, body } = kindOf(w.steps[i] as RolloutStep);
      if (kind.run(ctx, i, body) === "wait") return "stop";
      advance(w);
    }
    complete(w);
    return "continue";
  },
};

/** What step kinds see of a reconcile (`steps/types.ts`). */
function stepContext(w: Work): StepContext {
  return {
    now: w.now,
    name: w.name,
    spec: w.spec,
    input: w.input,
    steps: w.steps,
    status: w.status,
    get stepStartedAt() {
      return w.status.stepStartedAt ?? w.now;
    },
    emit: (type, message, data, actor) => emit(w, type, message, data, actor),
    setPhase: (phase, message) => setPhase(w, phase, message),
    label: (i) => stepLabel(w, i),
    wakeAt: (ms) => {
      w.wakeAt = earliest(w.wakeAt, ms);
    },
    rollBack: (why, data) => rollBack(w, "controller", why, data),
    analysisGate: (i, ref) => analysisGate(w, i, ref),
  };
}

/** An inline analysis at step `i`: the `analysis` step, and the gates of other strategies. */
function analysisGate(w: Work, i: number, ref: AnalysisRefSpec): "running" | "passed" | "stopped" {
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

/** 7. A quiet service says what serves it. */
const steady: Stage = {
  name: "steady",
  run(w) {
    const s = w.status;
    if (inRollout(s) || s.phase === "Degraded" || s.phase === "Completed") return "continue";
    const stable = s.stableVersion as string;
    const r = w.input.readiness[stable];
    const want = replicasOf(w.spec);
    const ready = r ? `${r.ready}/${want} ready` : "no instances yet";
    setPhase(w, "Healthy", `${stable} serves 100% (${ready})`);
    return "continue";
  },
};

/** The decision stages, in order. Exported for tests and for `turnout status` to explain. */
export const STAGES: readonly Stage[] = [
  initialize,
  applyCommands,
  desiredVersion,
  analysis,
  waitForCanary,
  runSteps,
  steady,
];

/** Runs the stages and derives the route weights and runtime targets. */
export function reconcile(input: ReconcileInput): ReconcileOutput {
  const strategy = input.strategy ?? compileStrategy(input.service.spec);
  const w: Work = {
    input,
    now: input.now,
    name: input.service.name,
    spec: input.service.spec,
    strategy,
    steps: strategy.steps,
    status: input.status ? structuredClone(input.status) : emptyStatus(input.now),
    events: [],
    results: [],
    wakeAt: null,
  };
  for (const stage of STAGES) {
    if (stage.run(w) === "stop") break;
  }
  startBackgroundAnalysis(w);
  return {
    status: w.status,
    events: w.events,
    commandResults: w.results,
    weights: weightsOf(w.status),
    targets: targetsOf(w.status, w.spec, w.now),
    wakeAt: earliest(w.wakeAt, scaleDownAt(w.status, w.now)),
  };
}

function earliest(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

/** When an aborted candidate is due to stop, if that is still ahead. */
function scaleDownAt(s: ServiceStatus, now: number): number | null {
  const due = (at: number | null | undefined) => (at != null && at > now ? at : null);
  return earliest(due(s.abortScaleDownAt), due(s.previousScaleDownAt));
}

export function weightsOf(s: ServiceStatus): VersionWeight[] {
  const stable = s.stableVersion;
  if (stable === null) return [];
  if (s.canaryVersion === null || s.canaryVersion === stable)
    return [{ version: stable, weight: 100 }];
  const c = roundWeight(s.canaryWeight);
  return [
    { version: stable, weight: roundWeight(100 - c) },
    { version: s.canaryVersion, weight: c },
  ];
}

/** Stable always runs; the canary runs during its rollout. Aborted and replaced versions stop. */
export function targetsOf(
  s: ServiceStatus,
  spec: ServiceSpec,
  now: number,
): { version: string; replicas: number }[] {
  const replicas = replicasOf(spec);
  // A step may run a version at another size (a rolling update's batches, a smaller preview).
  const of = (v: string) => s.replicas?.[v] ?? replicas;
  const out: { version: string; replicas: number }[] = [];
  const listed = (v: string) => out.some((t) => t.version === v);
  if (s.stableVersion !== null)
    out.push({ version: s.stableVersion, replicas: of(s.stableVersion) });
  if (s.canaryVersion !== null && !listed(s.canaryVersion)) {
    out.push({ version: s.canaryVersion, replicas: of(s.canaryVersion) });
  }
  // Versions a step runs besides these (an experiment's further arms).
  for (const [v, n] of Object.entries(s.replicas ?? {})) {
    if (!listed(v)) out.push({ version: v, replicas: n });
  }
  // An aborted candidate stays up (without traffic) for a while, so people can look at it.
  const keep = s.abortedVersion;
  if (keep !== null && !listed(keep) && (s.abortScaleDownAt ?? 0) > now) {
    out.push({ version: keep, replicas });
  }
  // Blue-green: the previous stable version stays warm for scaleDownDelaySeconds.
  const previous = s.previousStableVersions[0];
  if (previous !== undefined && !listed(previous) && (s.previousScaleDownAt ?? 0) > now) {
    out.push({ version: previous, replicas });
  }
  return out;
}

/**
 * The moves of a rollout's status: start, advance a step, hold for a person and release,
 * complete, roll back. Stages, commands and analysis all move the status through these, so
 * each move (and the event it records) is written once.
 */
import { formatDuration } from "../duration.js";
import type { ServiceStatus } from "../model.js";
import { plural } from "../plural.js";
import { clearStepState } from "../steps/index.js";
import type { Work } from "./types.js";
import { emit, setPhase } from "./work.js";

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

/** Forgets the rollout in progress: no canary, no step, no weight. */
export function clearRollout(s: ServiceStatus): void {
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
  s.heldForData = null;
  clearStepState(s);
}

/** Ends the rollout with all traffic back on stable; used by abort and automatic failures. */
export function rollBack(w: Work, actor: string, why: string, data: Record<string, unknown>): void {
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

export function startRollout(w: Work): void {
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
      : `rollout ${s.rolloutNumber}: ${s.stableVersion} -> ${to} (${plural(w.steps.length, "step")})`;
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

export function complete(w: Work): void {
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
export function holdForPerson(w: Work): void {
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
export function release(w: Work): number | null {
  const s = w.status;
  const held = s.pausedAt != null ? Math.max(0, w.now - s.pausedAt) : null;
  if (s.stepStartedAt !== null) s.stepStartedAt = held !== null ? s.stepStartedAt + held : w.now;
  s.pausedByUser = false;
  s.pausedAt = null;
  return held;
}

/** Moves past the current step; the next one starts now. */
export function advance(w: Work): void {
  const s = w.status;
  s.stepIndex = (s.stepIndex ?? 0) + 1;
  s.stepStartedAt = w.now;
  s.heldForData = null;
}

/**
 * The decisions of the process runtime, pure: what one instance's state becomes when a probe
 * answers, its start-up deadline passes, its process crashes or its restart is due; how it
 * stops; and which instances a service's `ensure` starts and stops. No processes, timers,
 * files or clocks here: each function reads and updates the plain facts of an instance (and of
 * its current process run) and says what the runtime must do (`lifecycle.ts` spawns,
 * signals, probes and schedules accordingly). The life these decisions make is described in
 * `process-runtime.ts`'s header.
 */
import type { RestartPolicySpec } from "../../core/model.js";
import { plural } from "../../core/plural.js";
import type { Instance } from "../runtime.js";

export type InstanceState = Instance["state"];

/** Failed readiness probes in a row that take a ready instance out of traffic (Kubernetes' default). */
export const READINESS_FAILURE_THRESHOLD = 3;

/** What is known of an instance (a slot with a fixed port) across the runs of its process. */
export interface InstanceFacts {
  state: InstanceState;
  message: string | undefined;
  restarts: number;
  lastExit: string | undefined;
  /** Crashes since the instance was last ready; `failureThreshold` of them make it "failed". */
  crashesSinceReady: number;
  /** Exponent of the next back-off delay. */
  backoffStep: number;
}

/** What is known of one run of the instance's process. */
export interface RunFacts {
  /** Clock time of the spawn (or adoption): how long it has run, for the back-off reset. */
  readonly startedAt: number;
  /** Passed readiness once: from then on a failing probe only takes it out of traffic. */
  wasReady: boolean;
  readinessFailures: number;
  livenessFailures: number;
  /** Set when Turnout ends the process itself for a reason (liveness, startup timeout). */
  killReason: string | undefined;
  /** The kill reason makes the instance failed at once (startup timeout). */
  failNow: boolean;
}

/** A probe's answer. */
export interface ProbeAnswer {
  ok: boolean;
  detail: string;
}

/** Sets state and message; true when the state changed (the runtime then tells its listeners). */
function setState(f: InstanceFacts, state: InstanceState, message: string | undefined): boolean {
  const changed = f.state !== state;
  f.state = state;
  f.message = message;
  return changed;
}

/**
 * 1. A readiness probe answered. The probe runs for the life of the process, as Kubernetes'
 * does: until the first pass it decides when the instance starts taking traffic; after that,
 * READINESS_FAILURE_THRESHOLD failures in a row take it out of traffic ("starting") until it
 * passes again. It never restarts anything; that is the liveness probe's job.
 *
 * `becameReady`: the start-up deadline no longer applies; `firstReady`: the liveness probe
 * starts now.
 */
export function readinessAnswered(
  f: InstanceFacts,
  run: RunFacts,
  r: ProbeAnswer,
): { changed: boolean; becameReady: boolean; firstReady: boolean } {
  if (r.ok) {
    run.readinessFailures = 0;
    if (f.state === "ready") return { changed: false, becameReady: false, firstReady: false };
    const firstReady = !run.wasReady;
    run.wasReady = true;
    f.crashesSinceReady = 0;
    return { changed: setState(f, "ready", undefined), becameReady: true, firstReady };
  }
  if (!run.wasReady) {
    // Still not ready, nothing for the controller to act on: no change to announce. A failed
    // instance keeps the message that says why it failed.
    if (f.state !== "failed") f.message = `readiness probe: ${r.detail}`;
  } else if (++run.readinessFailures >= READINESS_FAILURE_THRESHOLD && f.state === "ready") {
    const changed = setState(
      f,
      "starting",
      `not ready: readiness probe failed ${plural(run.readinessFailures, "time")} in a row (${r.detail})`,
    );
    return { changed, becameReady: false, firstReady: false };
  }
  return { changed: false, becameReady: false, firstReady: false };
}

/**
 * 2. A liveness probe answered. `failureThreshold` failures in a row restart the instance, as
 * the kubelet does: the process is terminated (gracefully) and its exit is a crash with the
 * kill reason.
 */
export function livenessAnswered(
  f: InstanceFacts,
  run: RunFacts,
  r: ProbeAnswer,
  failureThreshold: number,
): { changed: boolean; terminate: boolean } {
  run.livenessFailures = r.ok ? 0 : run.livenessFailures + 1;
  if (run.livenessFailures < failureThreshold) return { changed: false, terminate: false };
  run.killReason = `liveness probe failed ${plural(run.livenessFailures, "time")} (${r.detail})`;
  return { changed: setState(f, "starting", `${run.killReason}; restarting`), terminate: true };
}

/**
 * 3. The start-up deadline passed. A run that was never ready is terminated, and the instance
 * is failed at once: a start-up that timed out is what the user must see; the restart may
 * still bring it up, and then it is ready again. Returns null when the run was ready once.
 */
export function startupTimedOut(
  f: InstanceFacts,
  run: RunFacts,
  startupTimeoutMs: number,
): { changed: boolean } | null {
  if (run.wasReady) return null;
  const last = f.message?.startsWith("readiness probe: ") ? f.message : "no probe answered yet";
  run.killReason = `not ready within ${startupTimeoutMs / 1000}s (${last})`;
  run.failNow = true;
  return { changed: setState(f, "failed", `${run.killReason}; restarting`) };
}

/**
 * 4. The process is gone unasked (or never started): its restart is due after a back-off of
 * `initialBackoffSeconds`, doubling per crash up to `maxBackoffSeconds`, back to the first
 * delay after a run of `resetAfterSeconds` (Kubernetes' CrashLoopBackOff). The instance is
 * "starting" meanwhile, and "failed" once it crashed `failureThreshold` times in a row without
 * becoming ready, or at once when `failNow`. Always a change: the controller and `status` show
 * restarts and the last exit.
 */
export function crashed(
  f: InstanceFacts,
  crash: {
    reason: string;
    failNow: boolean;
    /** The run that ended; absent when the process never started. */
    run?: RunFacts | undefined;
    now: number;
    policy: RestartPolicySpec;
    logFile?: string | undefined;
  },
): { delaySeconds: number; failed: boolean } {
  const { reason, policy, run } = crash;
  if (run && crash.now - run.startedAt >= policy.resetAfterSeconds * 1000) f.backoffStep = 0;
  const delaySeconds = Math.min(
    policy.maxBackoffSeconds,
    policy.initialBackoffSeconds * 2 ** f.backoffStep,
  );
  f.backoffStep++;
  f.crashesSinceReady++;
  f.lastExit = reason;
  const failed = crash.failNow || f.crashesSinceReady >= policy.failureThreshold;
  const loop = f.crashesSinceReady > 1 ? ` (crash loop: ${f.crashesSinceReady} in a row)` : "";
  const where = crash.logFile ? `; log: ${crash.logFile}` : "";
  f.state = failed ? "failed" : "starting";
  f.message = `${reason}${loop}; restart in ${delaySeconds}s${where}`;
  return { delaySeconds, failed };
}

/** 5. The restart is due: the process is spawned again (a failed instance keeps its state). */
export function restartDue(f: InstanceFacts, reason: string): void {
  f.restarts++;
  // Kept as the message until the probe says more.
  f.message = `restarted (${f.restarts}) after: ${reason}`;
}

/**
 * 6. How the instance stops. Only one that served can have requests in flight or be in a route
 * table (a readiness flap leaves it "starting" but perhaps still in a router's table): it waits
 * for the stop gate (when there is one) and drains; one that never served is terminated at
 * once. `drain` false (shutdown): no gate, no drain.
 */
export function stopPlan(
  f: InstanceFacts,
  run: RunFacts | undefined,
  o: { drain: boolean; hasGate: boolean; drainMs: number },
): { gate: boolean; drainMs: number; message: string } {
  const served = o.drain && (f.state === "ready" || run?.wasReady === true);
  const gate = served && o.hasGate;
  const drainMs = served ? o.drainMs : 0;
  const message = gate
    ? "stopping: waiting until every router serves a table without it"
    : drainMs > 0
      ? `draining for ${drainMs / 1000}s`
      : "stopping";
  return { gate, drainMs, message };
}

/** What `scalePlan` needs of an instance. */
export interface SlotFacts {
  readonly id: string;
  readonly version: string;
  readonly index: number;
  readonly state: InstanceState;
  /** The runtime has decided to drop it (it may still be stopping). */
  readonly removing: boolean;
}

export type ScaleStep =
  | { op: "stop"; id: string }
  | { op: "start"; version: string; index: number };

/**
 * 7. What `ensure` does for one service, in order: versions no longer wanted go, all their
 * instances; each wanted version scales to its replicas. Extra instances go, those not serving
 * first (failed, then starting; as Kubernetes picks pods to delete), then the highest index.
 * Missing ones start at the lowest free index; indices of instances still stopping stay taken,
 * so no two listed instances share an id.
 */
export function scalePlan(
  instances: readonly SlotFacts[],
  wanted: ReadonlyMap<string, number>,
): ScaleStep[] {
  const plan: ScaleStep[] = [];
  for (const m of instances)
    if (!m.removing && !wanted.has(m.version)) plan.push({ op: "stop", id: m.id });
  for (const [version, replicas] of wanted) {
    const ofVersion = instances.filter((m) => m.version === version);
    const live = ofVersion
      .filter((m) => !m.removing)
      .sort((a, b) => rank(a.state) - rank(b.state) || b.index - a.index);
    for (const m of live.slice(0, Math.max(0, live.length - replicas)))
      plan.push({ op: "stop", id: m.id });
    const used = new Set(ofVersion.map((m) => m.index));
    for (let missing = replicas - live.length, i = 0; missing > 0; i++) {
      if (used.has(i)) continue;
      used.add(i);
      missing--;
      plan.push({ op: "start", version, index: i });
    }
  }
  return plan;
}

/** Scale-down order: instances that serve nothing go first. */
function rank(state: InstanceState): number {
  return state === "ready" ? 2 : state === "starting" ? 1 : 0;
}

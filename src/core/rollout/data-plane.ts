/**
 * The data plane's part in a service's health: a route table the routers do not serve is no
 * traffic split at all, so a service whose table is not in force (a listener that cannot bind,
 * a table its data plane refused) is Degraded whatever its rollout says, and its rollout holds.
 *
 * The rollout's own phase and message are kept underneath (`status.dataPlane.underlying`):
 *   1. `enterDataPlane`, before the stages: the stages see the rollout's own phase, never the
 *      Degraded of the data plane (which would read as an aborted rollout); when the data plane
 *      serves again, the time it did not counts neither against a timed pause nor against the
 *      progress deadline (as `resume` does for a person's pause).
 *   2. While it does not serve, no rollout starts (`desiredVersion` asks `dataPlaneDown`), no
 *      step runs (the `dataPlaneHold` stage stops before them), and `promote` is refused.
 *      Commands that go back to the stable version (abort, a desired version back to the
 *      stable one) still act: they need no new split to be safe.
 *   3. `settleDataPlane`, after the stages: Degraded with "not serving: <reason>" on top of what
 *      the stages decided, or the stages' phase once it serves again, with an event each way.
 */
import type { DataPlaneCondition } from "../model.js";
import type { Stage, Work } from "./types.js";
import { emit, inRollout, stepLabel } from "./work.js";

/** What `enterDataPlane` found, for `settleDataPlane`. */
export interface DataPlaneBefore {
  held: DataPlaneCondition | null;
  /** When the stored Degraded began (kept while the data plane stays down). */
  transitionAt: number;
}

/** Whether the routers report that they cannot put the service's table in force. */
export function dataPlaneDown(w: Work): boolean {
  return w.input.dataPlane?.serving === false;
}

/** 1. Before the stages: the rollout's own phase back; the time held given back to its clocks. */
export function enterDataPlane(w: Work): DataPlaneBefore {
  const s = w.status;
  const held = s.dataPlane?.serving === false ? s.dataPlane : null;
  const before = { held, transitionAt: s.lastTransitionAt };
  if (held === null) return before;
  s.phase = held.underlying.phase;
  s.message = held.underlying.message;
  if (!dataPlaneDown(w) && inRollout(s)) {
    // A person's pause that overlaps gives its own time back when resumed (`release`).
    const pausedAt = s.pausedByUser && s.pausedAt != null ? s.pausedAt : null;
    const end = pausedAt === null ? w.now : Math.min(pausedAt, w.now);
    const shift = Math.max(0, end - held.since);
    if (s.stepStartedAt !== null) s.stepStartedAt += shift;
    if (s.candidateWaitSince != null) s.candidateWaitSince += shift;
  }
  return before;
}

/** 2. The hold: no step runs while the data plane cannot put their weights in force. */
export const dataPlaneHold: Stage = {
  name: "dataPlaneHold",
  run(w) {
    return dataPlaneDown(w) ? "stop" : "continue";
  },
};

/** Why a command that moves traffic forward is refused during the hold. */
export function heldRefusal(w: Work, what: string): { ok: false; message: string } {
  return {
    ok: false,
    message: `cannot ${what} ${w.name} while its data plane does not serve its route table (${w.input.dataPlane?.reason ?? "reported by a router"}); the rollout holds until it does`,
  };
}

/** 3. After the stages: Degraded on top of their decision, or their decision once it serves. */
export function settleDataPlane(w: Work, before: DataPlaneBefore): void {
  const s = w.status;
  const { held } = before;
  if (!dataPlaneDown(w)) {
    if (held === null) return;
    s.dataPlane = null;
    s.lastTransitionAt = w.now;
    const heldMs = Math.max(0, w.now - held.since);
    emit(w, "DataPlaneServing", `the route table is served again; ${s.message}`, {
      reason: held.reason,
      heldMs,
    });
    return;
  }
  const reason = w.input.dataPlane?.reason ?? "a router reports it cannot serve the route table";
  const underlying = { phase: s.phase, message: s.message };
  s.dataPlane = { serving: false, reason, since: held?.since ?? w.now, underlying };
  s.phase = "Degraded";
  s.message = `not serving: ${reason}${heldWhat(w)}`;
  s.lastTransitionAt = held !== null ? before.transitionAt : w.now;
  if (held === null) {
    emit(w, "DataPlaneNotServing", s.message, {
      reason,
      canary: s.canaryVersion,
      stepIndex: inRollout(s) ? s.stepIndex : null,
    });
  }
}

/** What waits for the data plane: the rollout in progress, or the one the desired version asks for. */
function heldWhat(w: Work): string {
  const s = w.status;
  if (inRollout(s)) {
    const i = Math.min(s.stepIndex ?? 0, Math.max(0, w.steps.length - 1));
    return `; the rollout to ${s.canaryVersion} holds at ${stepLabel(w, i)} (${s.canaryVersion} at ${s.canaryWeight}%)`;
  }
  const want = w.spec.version;
  if (want !== s.stableVersion && want !== s.abortedVersion)
    return `; the rollout to ${want} starts once it is served`;
  return "";
}

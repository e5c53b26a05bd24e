/**
 * The desired version against what runs: the first version of a service, starting,
 * restarting or cancelling a rollout, and what a quiet service says. `planVersionChange` puts
 * the desiredVersion stage's rules in words before an apply, so it lives beside that stage.
 */
import type { ServiceSpec, ServiceStatus } from "../model.js";
import { plural } from "../plural.js";
import { replicasOf } from "../replicas.js";
import { describeStep } from "../steps/index.js";
import { compileStrategy } from "../strategies/index.js";
import { dataPlaneDown } from "./data-plane.js";
import { clearRollout, startRollout } from "./transitions.js";
import type { Stage } from "./types.js";
import { emit, inRollout, setPhase } from "./work.js";

/** 1. A service seen for the first time: its version is stable at once, no rollout. */
export const initialize: Stage = {
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

/** 3. Compare the desired version with what runs: start, restart or cancel a rollout. */
export const desiredVersion: Stage = {
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
    // No split is put in force while the data plane does not serve (data-plane.ts).
    if (dataPlaneDown(w)) return "stop";
    startRollout(w);
    return "continue";
  },
};

/** 7. A quiet service says what serves it. */
export const steady: Stage = {
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
 * the controller does it (the same rules as the desiredVersion stage above). With `undo`, the
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
  // No rollout starts while the data plane does not serve (data-plane.ts): say so now.
  const held =
    status.dataPlane?.serving === false
      ? `; it starts once the route table is served (not serving: ${status.dataPlane.reason})`
      : "";
  if (window > 0 && status.previousStableVersions.slice(0, window).includes(to)) {
    return `${head}${to} is a recent stable version (rollback window ${window}), so it takes 100% at once, skipping all ${plural(n, "step")} (${compiled.steps.map(describeStep).join(", ")})${held}`;
  }
  const replacing = status.canaryVersion
    ? `, replacing the rollout to ${status.canaryVersion}`
    : "";
  return `${head}a new rollout ${status.stableVersion} -> ${to} of ${plural(n, "step")}${replacing}${held}`;
}

/** "2026-12-02 21:40:03 UTC", for messages (the format of `turnout history`). */
export function isoSecond(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

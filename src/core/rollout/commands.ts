/**
 * Commands people send (abort, pause, resume, promote, retry): each is applied or rejected
 * with a message for the person who sent it.
 */
import { durationMs, formatDuration } from "../duration.js";
import type { Command } from "../model.js";
import { describeStep, kindOf } from "../steps/index.js";
import { dataPlaneDown, heldRefusal } from "./data-plane.js";
import { advance, holdForPerson, release, rollBack } from "./transitions.js";
import type { Stage, Work } from "./types.js";
import { emit, inRollout, setPhase, stepLabel } from "./work.js";

/** 2. Commands people sent (promote, abort, pause, resume, retry), in the order they came. */
export const applyCommands: Stage = {
  name: "commands",
  run(w) {
    for (const cmd of w.input.commands) {
      const r = applyCommand(w, cmd);
      w.results.push({ id: cmd.id, outcome: r.ok ? "applied" : "rejected", message: r.message });
    }
    return "continue";
  },
};

export function applyCommand(w: Work, cmd: Command): { ok: boolean; message: string } {
  const s = w.status;
  const who = cmd.actor;
  const why = cmd.reason ? ` (${cmd.reason})` : "";
  const noRollout = {
    ok: false,
    message: `no rollout in progress for ${w.name} (phase ${shownPhase(w)}); nothing to ${cmd.type}`,
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
        if (kind.waitsForPerson?.(body))
          return dataPlaneDown(w) ? heldRefusal(w, "resume") : promoteStep(w, cmd);
      }
      return { ok: false, message: `${w.name} is not paused (phase ${shownPhase(w)})` };
    }
    case "promote": {
      if (!inRollout(s)) return noRollout;
      if (dataPlaneDown(w)) return heldRefusal(w, "promote");
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
        return {
          ok: false,
          message: dataPlaneDown(w)
            ? `nothing to retry: ${w.name} has no aborted rollout (it is Degraded because its data plane does not serve its route table)`
            : `nothing to retry: ${w.name} is ${s.phase}, not Degraded`,
        };
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

export function promoteStep(w: Work, cmd: Command): { ok: boolean; message: string } {
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

/** What is left of the current step's timed pause (ms), or null when it is not one. */
export function timedPauseLeft(w: Work): number | null {
  const s = w.status;
  const step = w.steps[s.stepIndex ?? 0];
  if (!step || !("pause" in step) || step.pause.duration === undefined) return null;
  const started = s.stepStartedAt ?? w.now;
  return Math.max(0, started + durationMs(step.pause.duration) - w.now);
}

/** The phase people see: Degraded while the data plane does not serve (data-plane.ts). */
function shownPhase(w: Work): string {
  return dataPlaneDown(w)
    ? "Degraded: its data plane does not serve its route table"
    : w.status.phase;
}

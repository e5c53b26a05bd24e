/**
 * `pause: {duration}` waits that long, and then for as long as the background analysis has no
 * evidence on the candidate (`ctx.holdForData`: a pause is for watching the candidate, and
 * ending it on nothing seen promoted versions that hang); `pause: {}` waits until someone
 * promotes.
 */
import { durationMs, formatDuration } from "../duration.js";
import type { PauseStep } from "../model.js";
import type { StepKind } from "./types.js";

export const pause: StepKind<PauseStep> = {
  key: "pause",
  describe: (p) =>
    p.duration !== undefined
      ? `pause ${formatDuration(durationMs(p.duration))}`
      : "pause (until promoted)",
  waitsForPerson: (p) => p.duration === undefined,
  run(ctx, i, p) {
    const s = ctx.status;
    const where = `${ctx.label(i)} with ${s.canaryVersion} at ${s.canaryWeight}%`;
    if (p.duration === undefined) {
      // Once, when the wait starts (the phase is still that of the step before): a person
      // has to act, and notifiers tell them so.
      if (s.phase !== "Paused")
        ctx.emit("AwaitingPromotion", `${ctx.label(i)} reached: waiting for a person to promote`, {
          step: i,
          version: s.canaryVersion,
          weight: s.canaryWeight,
        });
      ctx.setPhase("Paused", `paused at ${where}, until promoted`);
      return "wait";
    }
    const d = durationMs(p.duration);
    if (ctx.now - ctx.stepStartedAt < d) {
      ctx.wakeAt(ctx.stepStartedAt + d);
      ctx.setPhase("Progressing", `pausing ${formatDuration(d)} at ${where}`);
      return "wait";
    }
    const hold = ctx.holdForData(i);
    if (hold.held) return "wait";
    const held = hold.heldMs > 0 ? `, held ${formatDuration(hold.heldMs)} for analysis data` : "";
    ctx.emit("StepCompleted", `${ctx.label(i)} (${pause.describe(p)}) done${held}`, {
      step: i,
      ...(hold.heldMs > 0 ? { heldMs: hold.heldMs } : {}),
    });
    return "next";
  },
};

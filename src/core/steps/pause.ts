/** `pause: {duration}` waits that long; `pause: {}` waits until someone promotes. */
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
    ctx.emit("StepCompleted", `${ctx.label(i)} (${pause.describe(p)}) done`, { step: i });
    return "next";
  },
};

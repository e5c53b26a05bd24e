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

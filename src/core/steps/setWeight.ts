/** `setWeight: N`: N% of traffic goes to the new version; done at once. */
import type { StepKind } from "./types.js";

/** Keeps weights on the 0.0001% grid so that 100 - w is exact enough to compare and print. */
export function roundWeight(w: number): number {
  return Math.round(w * 10_000) / 10_000;
}

export const setWeight: StepKind<number> = {
  key: "setWeight",
  describe: (weight) => `setWeight ${weight}`,
  run(ctx, i, weight) {
    const s = ctx.status;
    const from = s.canaryWeight;
    const to = roundWeight(weight);
    if (from !== to) {
      s.canaryWeight = to;
      ctx.emit("WeightChanged", `${s.canaryVersion} weight ${from}% -> ${to}% (${ctx.label(i)})`, {
        version: s.canaryVersion,
        from,
        to,
        step: i,
      });
    }
    return "next";
  },
};

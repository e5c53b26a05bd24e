/**
 * `switch: {}` (blue-green): the candidate grows to its full size, and once every instance is
 * ready it takes 100% of the traffic in one route-table swap. The preview route goes away with
 * the switch. The old version keeps running (it is still the stable one until the rollout
 * completes), so a failure after the switch is a switch back, not a restart.
 */
import type { SwitchStep } from "../model.js";
import { replicasOf } from "../replicas.js";
import type { StepKind } from "./types.js";

export const switchStep: StepKind<SwitchStep> = {
  key: "switch",
  describe: () => "switch (all traffic at once)",
  run(ctx, i) {
    const s = ctx.status;
    const v = s.canaryVersion as string;
    const want = replicasOf(ctx.spec);
    // 1. Full size first: a preview may have run with fewer instances.
    if (s.replicas && v in s.replicas) {
      const { [v]: _, ...rest } = s.replicas;
      s.replicas = Object.keys(rest).length > 0 ? rest : null;
    }
    // 2. Never switch to a version that could not take the load.
    const ready = ctx.input.readiness[v]?.ready ?? 0;
    if (ready < want) {
      ctx.setPhase("Progressing", `switch waits for ${v}: ${ready}/${want} instances ready`);
      return "wait";
    }
    // 3. One swap: the weight and the end of the preview land in the same route table.
    const from = s.canaryWeight;
    s.canaryWeight = 100;
    s.preview = null;
    s.headerRoute = null;
    ctx.emit(
      "Switched",
      `switched: ${v} serves 100%, ${s.stableVersion} stays warm (${ctx.label(i)})`,
      { version: v, from, to: 100, previous: s.stableVersion, step: i },
    );
    return "next";
  },
};

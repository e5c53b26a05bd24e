/**
 * Strategies compile to a list of steps plus a few rollout-wide settings (DESIGN: "each
 * strategy compiles to a list of steps"). The rollout core runs only the compiled form, so a
 * strategy is a preset: a user may write the same steps by hand under `canary.steps` and mix
 * kinds (shadow, then canary, then an A/B test).
 */
import type { ServiceSpec } from "../model.js";
import { compileAbTest } from "./abTest.js";
import { compileBlueGreen } from "./blueGreen.js";
import { compileCanary } from "./canary.js";
import { compileRolling } from "./rolling.js";
import { compileShadow } from "./shadow.js";
import {
  type CompiledStrategy,
  DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
  DEFAULT_PROGRESS_DEADLINE_SECONDS,
} from "./types.js";

export {
  type CompiledStrategy,
  DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
  DEFAULT_PROGRESS_DEADLINE_SECONDS,
} from "./types.js";

/** The compiled form of a service's strategy; without one, a new version replaces the old at once. */
export function compileStrategy(spec: ServiceSpec): CompiledStrategy {
  const st = spec.strategy;
  if (st?.canary) return compileCanary(st.canary);
  if (st?.abTest) return compileAbTest(st.abTest);
  if (st?.shadow) return compileShadow(st.shadow);
  if (st?.blueGreen) return compileBlueGreen(st.blueGreen);
  if (st?.rolling) return compileRolling(st.rolling);
  return {
    name: "replace",
    steps: [],
    abortScaleDownDelaySeconds: DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
    rollbackWindow: 0,
    waitForCandidate: true,
    scaleDownDelaySeconds: 0,
    progressDeadlineSeconds: DEFAULT_PROGRESS_DEADLINE_SECONDS,
  };
}

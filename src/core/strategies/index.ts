/**
 * Strategies compile to a list of steps plus a few rollout-wide settings (DESIGN: "each
 * strategy compiles to a list of steps"). The rollout core runs only the compiled form, so a
 * strategy is a preset: a user may write the same steps by hand under `canary.steps` and mix
 * kinds (shadow, then canary, then an A/B test).
 */
import type { ServiceSpec } from "../model.js";
import { compileCanary } from "./canary.js";
import { type CompiledStrategy, DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS } from "./types.js";

export { type CompiledStrategy, DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS } from "./types.js";

/** The compiled form of a service's strategy; without one, a new version replaces the old at once. */
export function compileStrategy(spec: ServiceSpec): CompiledStrategy {
  const st = spec.strategy;
  if (st?.canary) return compileCanary(st.canary);
  return {
    name: "replace",
    steps: [],
    abortScaleDownDelaySeconds: DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
    rollbackWindow: 0,
  };
}

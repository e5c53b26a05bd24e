/**
 * `strategy.shadow`: a dark launch as a preset. The candidate gets mirrored traffic and is
 * compared with the stable version; when the gate passes it takes 100% at once (the steps run
 * out, which completes the rollout), when it fails the rollout rolls back. For shadow, then a
 * canary, write the steps under `canary.steps` (`- shadow: {...}` then `- setWeight: 10` ...).
 */
import type { ShadowStep } from "../shadow/types.js";
import { type CompiledStrategy, DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS } from "./types.js";

export function compileShadow(s: ShadowStep): CompiledStrategy {
  return {
    name: "shadow",
    steps: [{ shadow: s }],
    abortScaleDownDelaySeconds: DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
    rollbackWindow: 0,
  };
}

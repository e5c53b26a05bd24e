/**
 * `abTest: {...}` is a preset: one `experiment` step with the same fields. A win ends the
 * step and the rollout completes (the candidate takes 100%); a loss or no result rolls back.
 * To run an A/B test after a shadow or canary phase, write the steps under `canary.steps`
 * with an `experiment` step where it belongs.
 */
import type { AbTestStrategySpec } from "../experiment/types.js";
import {
  type CompiledStrategy,
  DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
  DEFAULT_PROGRESS_DEADLINE_SECONDS,
} from "./types.js";

export function compileAbTest(a: AbTestStrategySpec): CompiledStrategy {
  const { abortScaleDownDelaySeconds, ...experiment } = a;
  return {
    name: "abTest",
    steps: [{ experiment }],
    abortScaleDownDelaySeconds:
      abortScaleDownDelaySeconds ?? DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
    rollbackWindow: 0,
    waitForCandidate: true,
    scaleDownDelaySeconds: 0,
    progressDeadlineSeconds: DEFAULT_PROGRESS_DEADLINE_SECONDS,
  };
}

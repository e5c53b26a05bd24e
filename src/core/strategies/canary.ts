/** A canary is its step list as written, with its background analysis and rollback window. */
import type { CanaryStrategySpec } from "../model.js";
import {
  type CompiledStrategy,
  DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
  DEFAULT_PROGRESS_DEADLINE_SECONDS,
} from "./types.js";

export function compileCanary(c: CanaryStrategySpec): CompiledStrategy {
  return {
    name: "canary",
    steps: c.steps,
    ...(c.analysis ? { background: c.analysis } : {}),
    abortScaleDownDelaySeconds:
      c.abortScaleDownDelaySeconds ?? DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
    rollbackWindow: c.rollbackWindow?.revisions ?? 0,
    waitForCandidate: true,
    scaleDownDelaySeconds: 0,
    progressDeadlineSeconds: c.progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_SECONDS,
  };
}

/**
 * A rolling update is one `rollingUpdate` step with Kubernetes' defaults (25% surge, 25%
 * unavailable, 600 s progress deadline). The candidate starts with no instances: the step
 * grows it batch by batch, so the rollout does not wait for a full-size candidate first.
 */
import type { RollingStrategySpec } from "../model.js";
import { type CompiledStrategy, DEFAULT_PROGRESS_DEADLINE_SECONDS } from "./types.js";

export function compileRolling(r: RollingStrategySpec): CompiledStrategy {
  return {
    name: "rolling",
    steps: [
      {
        rollingUpdate: {
          maxSurge: r.maxSurge ?? "25%",
          maxUnavailable: r.maxUnavailable ?? "25%",
          minReadySeconds: r.minReadySeconds ?? 0,
          progressDeadlineSeconds: r.progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_SECONDS,
          ...(r.analysis ? { analysis: r.analysis } : {}),
        },
      },
    ],
    // Like `kubectl rollout undo`, an abort brings the old instances back; the new ones go.
    abortScaleDownDelaySeconds: 0,
    rollbackWindow: 0,
    waitForCandidate: false,
    candidateReplicas: 0,
    scaleDownDelaySeconds: 0,
    progressDeadlineSeconds: r.progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_SECONDS,
  };
}

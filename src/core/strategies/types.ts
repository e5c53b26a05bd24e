/** The compiled form of a strategy, shared by every strategy file. */
import type { BackgroundAnalysisSpec, MatchRule, RolloutStep } from "../model.js";

export interface CompiledStrategy {
  /** The strategy's name, for messages ("canary", "blueGreen", ...); "replace" without one. */
  name: string;
  steps: RolloutStep[];
  /** Analysis that runs in the background from its starting step until the rollout ends. */
  background?: BackgroundAnalysisSpec;
  /** After an abort or a failed analysis, the candidate keeps running this long. */
  abortScaleDownDelaySeconds: number;
  /** A version among the last N stable ones comes back without steps (0: never). */
  rollbackWindow: number;
  /** Steps start only once the candidate runs all the instances it should (default true; false: rolling). */
  waitForCandidate?: boolean;
  /** Instances the candidate starts with (default: the spec's replicas). */
  candidateReplicas?: number;
  /** The candidate's preview route until a `switch` step (blue-green). */
  preview?: { port?: number; match?: Omit<MatchRule, "to"> };
  /** After a rollout completes, the old stable version keeps running this long (seconds; default 0). */
  scaleDownDelaySeconds?: number;
  /** A candidate not ready this long after the rollout began is aborted (seconds; default 600). */
  progressDeadlineSeconds?: number;
  /**
   * Blue-green with feature flags: once the candidate serves 100% and this rollout has raised
   * flags, a failed inline analysis turns those flags off and keeps the candidate (the code is
   * fine with the feature dark) instead of switching back.
   */
  flagFailureKeepsVersion?: boolean;
}

/** Default seconds an aborted candidate keeps running (Argo Rollouts' abortScaleDownDelaySeconds). */
export const DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS = 30;

/** Kubernetes' default progressDeadlineSeconds. */
export const DEFAULT_PROGRESS_DEADLINE_SECONDS = 600;

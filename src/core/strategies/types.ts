/** The compiled form of a strategy, shared by every strategy file. */
import type { BackgroundAnalysisSpec, RolloutStep } from "../model.js";

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
}

/** Default seconds an aborted candidate keeps running (Argo Rollouts' abortScaleDownDelaySeconds). */
export const DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS = 30;

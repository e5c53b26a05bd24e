/**
 * Blue-green compiles to: [prePromotionAnalysis], a wait for promotion (timed with
 * autoPromotionSeconds, else until `turnout promote`), the switch, [postPromotionAnalysis].
 * Green starts at `previewReplicas` (default full size) behind the preview route; blue keeps
 * serving everyone until the switch and stays warm for `scaleDownDelaySeconds` after it, and
 * a rollback to blue within that time skips the steps (rollback window 1): a switch back.
 */
import type { BlueGreenStrategySpec, RolloutStep } from "../model.js";
import {
  type CompiledStrategy,
  DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
  DEFAULT_PROGRESS_DEADLINE_SECONDS,
} from "./types.js";

export const DEFAULT_SCALE_DOWN_DELAY_SECONDS = 30;

export function compileBlueGreen(bg: BlueGreenStrategySpec): CompiledStrategy {
  const steps: RolloutStep[] = [];
  if (bg.prePromotionAnalysis) steps.push({ analysis: bg.prePromotionAnalysis });
  steps.push({
    pause: bg.autoPromotionSeconds !== undefined ? { duration: bg.autoPromotionSeconds } : {},
  });
  // Ship dark: every flag the flag steps raise is off when green takes traffic, whatever an
  // earlier rollout left it at (a flag at 100% would expose green's feature to everyone at the
  // switch, before any analysis). Visible steps, so status and history say why.
  for (const flag of flagsRaised(bg)) steps.push({ setFlag: { flag, enabled: false } });
  steps.push({ switch: {} });
  if (bg.postPromotionAnalysis) steps.push({ analysis: bg.postPromotionAnalysis });
  // Blue-green with feature flags: the feature is raised after the switch (setFlag steps).
  if (bg.flagSteps) steps.push(...bg.flagSteps);
  const flags = (bg.flagSteps?.length ?? 0) > 0;
  return {
    name: "blueGreen",
    steps,
    abortScaleDownDelaySeconds:
      bg.abortScaleDownDelaySeconds ?? DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
    rollbackWindow: 1,
    waitForCandidate: true,
    ...(bg.previewReplicas !== undefined ? { candidateReplicas: bg.previewReplicas } : {}),
    ...(bg.preview ? { preview: bg.preview } : {}),
    scaleDownDelaySeconds: bg.scaleDownDelaySeconds ?? DEFAULT_SCALE_DOWN_DELAY_SECONDS,
    progressDeadlineSeconds: bg.progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_SECONDS,
    ...(flags ? { flagFailureKeepsVersion: true } : {}),
  };
}

/** The flags that `flagSteps` turn on or raise, in order of first mention. */
function flagsRaised(bg: BlueGreenStrategySpec): string[] {
  const out: string[] = [];
  for (const step of bg.flagSteps ?? []) {
    if (!("setFlag" in step)) continue;
    const f = step.setFlag;
    const raises = f.enabled === true || f.percentage !== undefined || f.variant !== undefined;
    if (raises && !out.includes(f.flag)) out.push(f.flag);
  }
  return out;
}

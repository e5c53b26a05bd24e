/** A Service's `strategy`: canary, blueGreen, rolling, abTest or shadow (exactly one). */
import { z } from "zod";
import { capped, exactlyOne, limited, num, strict } from "./blocks.js";
import { AbTestStrategySchema } from "./experiment.js";
import { MatchConditionsSchema } from "./routing.js";
import { ShadowStepSchema } from "./shadow.js";
import { analysisRefShape, CanaryStepSchema, RollingShape, STEP_SCHEMAS } from "./steps.js";

const CanaryStrategySchema = strict({
  steps: capped("STEPS", "steps", z.array(CanaryStepSchema)).describe(
    "Run in order; after the last, the version takes 100%.",
  ),
  analysis: strict({
    ...analysisRefShape,
    startingStep: limited("STARTING_STEP")
      .default(0)
      .describe("Index of the step from which the analysis runs (0: from the start)."),
  })
    .optional()
    .describe(
      "Analysis that runs in the background during the rollout; a failure rolls back at once.",
    ),
  abortScaleDownDelaySeconds: limited("DELAY_SECONDS")
    .optional()
    .describe(
      "After an abort, the candidate keeps running this long without traffic (default 30).",
    ),
  rollbackWindow: strict({
    revisions: limited("ROLLBACK_REVISIONS").describe(
      "How many recent stable versions count as a rollback.",
    ),
  })
    .optional()
    .describe(
      "A recent stable version coming back skips the steps (a rollback is not a new release).",
    ),
  progressDeadlineSeconds: limited("PROGRESS_DEADLINE_SECONDS")
    .optional()
    .describe("The candidate must be ready within this, or the rollout aborts (default 600)."),
});

const BlueGreenStrategySchema = strict({
  preview: strict({
    port: num({ int: true, min: 1, max: 65535 })
      .optional()
      .describe("A listener of its own that sends everything to green, until the switch."),
    match: MatchConditionsSchema.optional().describe(
      "Requests matching these conditions go to green on the service's port, until the switch.",
    ),
  })
    .optional()
    .describe("How testers reach green before the switch."),
  previewReplicas: limited("REPLICAS")
    .optional()
    .describe("Instances of green before the switch (default: the full replica count)."),
  prePromotionAnalysis: strict({ ...analysisRefShape })
    .optional()
    .describe("Must pass before the switch; a failure aborts."),
  autoPromotionSeconds: limited("AUTO_PROMOTION_SECONDS")
    .optional()
    .describe(
      "Switch by itself this long after green is ready; without it, `turnout promote` switches.",
    ),
  postPromotionAnalysis: strict({ ...analysisRefShape })
    .optional()
    .describe("Runs after the switch; a failure switches back to blue at once."),
  scaleDownDelaySeconds: limited("DELAY_SECONDS")
    .optional()
    .describe(
      "Blue keeps running this long after the switch, for an instant switch back (default 30).",
    ),
  abortScaleDownDelaySeconds: limited("DELAY_SECONDS")
    .optional()
    .describe("After an abort, green keeps running this long without traffic (default 30)."),
  progressDeadlineSeconds: limited("PROGRESS_DEADLINE_SECONDS")
    .optional()
    .describe("Green must be ready within this, or the rollout aborts (default 600)."),
  flagSteps: capped(
    "STEPS",
    "steps",
    z.array(
      exactlyOne(
        {
          setFlag: STEP_SCHEMAS.setFlag,
          analysis: STEP_SCHEMAS.analysis,
          pause: STEP_SCHEMAS.pause,
        },
        { noun: "flag step kind" },
      ),
    ),
  )
    .optional()
    .describe(
      "Blue-green with feature flags: setFlag, analysis and pause steps run after the switch. Once a step has raised a flag, a failed analysis turns the rollout's flags off and green stays (FlagKilled); before that, a failure switches back to blue.",
    ),
});

// The step's fields without their defaults (compileRolling applies them), described as there:
// `unwrap()` drops the description with the default.
const RollingStrategySchema = strict({
  maxSurge: RollingShape.maxSurge.unwrap().optional().describe(RollingShape.maxSurge.description!),
  maxUnavailable: RollingShape.maxUnavailable
    .unwrap()
    .optional()
    .describe(RollingShape.maxUnavailable.description!),
  minReadySeconds: RollingShape.minReadySeconds
    .unwrap()
    .optional()
    .describe(RollingShape.minReadySeconds.description!),
  progressDeadlineSeconds: RollingShape.progressDeadlineSeconds
    .unwrap()
    .optional()
    .describe(RollingShape.progressDeadlineSeconds.description!),
  analysis: RollingShape.analysis,
}).superRefine((r, ctx) => {
  // As Kubernetes: with no surge and no unavailability an update could never make progress.
  const zero = (v: unknown) => v === 0 || (typeof v === "string" && Number.parseFloat(v) === 0);
  if (zero(r.maxSurge) && zero(r.maxUnavailable)) {
    ctx.addIssue({
      code: "custom",
      path: ["maxUnavailable"],
      input: r.maxUnavailable,
      message: "may not be 0 when maxSurge is 0: the update could never make progress",
    });
  }
});

export const StrategySchema = exactlyOne(
  {
    canary: CanaryStrategySchema.describe("Move traffic to the new version step by step."),
    blueGreen: BlueGreenStrategySchema.describe(
      "Run green beside blue, test it through the preview, then switch all traffic at once.",
    ),
    rolling: RollingStrategySchema.describe(
      "Replace instances batch by batch with zero downtime; traffic follows ready instances.",
    ),
    abTest: AbTestStrategySchema.describe(
      "An A/B test of the new version against the stable one; a win promotes it, a loss or no result keeps stable.",
    ),
    shadow: ShadowStepSchema.describe(
      "A dark launch: mirror requests to the new version, compare the answers; the gate's pass promotes it, a fail keeps stable.",
    ),
  },
  { noun: "strategy" },
).describe("How a rollout proceeds; without one, a new version replaces the old at once.");

/** The schema of every rollout step kind (`src/core/steps/`), and of one step. */
import { z } from "zod";
import type { BodyOf, StepKey } from "../../core/steps/index.js";
import {
  capped,
  duration,
  exactlyOne,
  limited,
  nonEmpty,
  num,
  resourceName,
  str,
  strict,
  uniqueNames,
} from "./blocks.js";
import { ExperimentStepSchema } from "./experiment.js";
import { MatchConditionsSchema } from "./routing.js";
import { MirrorRouteStepSchema, ShadowStepSchema } from "./shadow.js";

export const PauseStepSchema = strict({
  duration: duration("PAUSE")
    .optional()
    .describe('How long to wait ("30s", "5m", "1h30m" or seconds); without it, until promoted.'),
});

export const analysisRefShape = {
  templates: capped(
    "TEMPLATES",
    "templates",
    z
      .array(resourceName)
      .min(1, { error: "must name at least one AnalysisTemplate, got an empty list" }),
  ).describe("Names of AnalysisTemplates to run."),
  args: capped(
    "ARGS",
    "arguments",
    z
      .array(strict({ name: nonEmpty("an argument name"), value: str("VALUE_LENGTH") }))
      .superRefine(uniqueNames("argument", "args"), { when: (p) => Array.isArray(p.value) }),
  )
    .optional()
    .describe("Values for the templates' arguments ({{args.NAME}} in their sources)."),
};

/** Kubernetes' intOrString for surge/unavailable: a whole number or a percent ("25%"). */
function intOrPercent(what: string) {
  return z
    .union([limited("SURGE"), z.templateLiteral([z.number().min(0).max(100), "%"])], {
      error: `${what} must be a whole number or a percent of the replicas like "25%"`,
    })
    .describe(`${what}: a whole number, or a percent of the replicas ("25%").`);
}

export const RollingShape = {
  maxSurge: intOrPercent("maxSurge")
    .default("25%")
    .describe('Instances above the replica count during the update (default "25%", rounded up).'),
  maxUnavailable: intOrPercent("maxUnavailable")
    .default("25%")
    .describe(
      'Instances below the replica count that may be unavailable (default "25%", rounded down).',
    ),
  minReadySeconds: limited("DELAY_SECONDS")
    .default(0)
    .describe("A new instance counts as available after being ready this long (default 0)."),
  progressDeadlineSeconds: limited("PROGRESS_DEADLINE_SECONDS")
    .default(600)
    .describe("Without progress for this long, the update aborts and the old version returns."),
  analysis: strict({ ...analysisRefShape })
    .optional()
    .describe("Run between batches: each batch waits for a pass before the next one starts."),
};

/**
 * The body schema of every step kind, by its key (`src/core/steps/`): a new kind adds one
 * entry here. A step is exactly one of these keys. Typed by the step kinds, as `STEP_KINDS`
 * is: a kind without a schema, a schema without a kind, or a schema whose output is not the
 * kind's body fails `tsc`.
 */
export const STEP_SCHEMAS = {
  setWeight: num({ min: 0, max: 100, decimals: 4 }).describe(
    "Percent of traffic on the new version, 0..100, up to 4 decimals.",
  ),
  pause: PauseStepSchema.describe("Wait for a duration, or ({}) until someone promotes."),
  analysis: strict({ ...analysisRefShape }).describe(
    "Run the templates' metrics now and wait for the verdict: pass goes on, fail rolls back, inconclusive pauses.",
  ),
  setFlag: strict({
    flag: resourceName.describe("The Flag to change."),
    percentage: num({ min: 0, max: 100, decimals: 4 })
      .optional()
      .describe("Percent of contexts on the flag's rollout variant, 0..100, up to 4 decimals."),
    variant: nonEmpty("a variant name").optional().describe("Serve this variant to everyone."),
    enabled: z.boolean().optional().describe("Turn the flag on (true) or off (false)."),
  })
    .superRefine((b, ctx) => {
      if (b.percentage === undefined && b.variant === undefined && b.enabled === undefined)
        ctx.addIssue({
          code: "custom",
          input: b,
          message: 'needs "percentage", "variant" or "enabled", got none',
        });
    })
    .describe(
      "Change a Flag (its percentage, variant or state); a rollback of the rollout turns it off.",
    ),
  experiment: ExperimentStepSchema.describe(
    "An A/B test of the canary (B) against stable (A): sticky arms, exposures, metrics, a decision.",
  ),
  setHeaderRoute: strict({
    match: MatchConditionsSchema.optional().describe(
      "Requests matching these conditions go to the canary; without match, the header route is removed.",
    ),
  }).describe(
    "Send requests that match (e.g. testers' header) to the canary, whatever the weight.",
  ),
  shadow: ShadowStepSchema,
  setMirrorRoute: MirrorRouteStepSchema,
  switch: strict({}).describe(
    "Blue-green's switch: the candidate grows to full size, then takes 100% in one route-table swap.",
  ),
  rollingUpdate: strict(RollingShape).describe(
    "Replace the old version's instances batch by batch (Kubernetes' rolling update).",
  ),
} satisfies { readonly [K in StepKey]: z.ZodType<BodyOf<K>, unknown> };

export const RolloutStepSchema = exactlyOne(STEP_SCHEMAS, { noun: "step kind" }).describe(
  `One step: exactly one of ${Object.keys(STEP_SCHEMAS).join(", ")}.`,
);

/**
 * The steps a person writes in a canary: every kind but `switch` and `rollingUpdate`, which the
 * blueGreen and rolling strategies compile to (as written in a canary they would be listed as
 * choices in every "unknown step kind" error, and they are not meant to be written).
 */
const { switch: _switch, rollingUpdate: _rollingUpdate, ...WRITTEN_STEP_SCHEMAS } = STEP_SCHEMAS;
export const CanaryStepSchema = exactlyOne(WRITTEN_STEP_SCHEMAS, { noun: "step kind" }).describe(
  `One step: exactly one of ${Object.keys(WRITTEN_STEP_SCHEMAS).join(", ")}.`,
);

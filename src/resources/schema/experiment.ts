/**
 * A/B experiments (`src/core/experiment/`, `src/core/steps/experiment.ts`): the `experiment`
 * step and the `abTest` strategy share one shape.
 */
import { z } from "zod";
import type { ExperimentSpec } from "../../core/experiment/types.js";
import { LIMITS } from "../limits.js";
import {
  capped,
  duration,
  exactlyOne,
  limited,
  metricName,
  nonEmpty,
  num,
  oneOfKeys,
  oneOfMeta,
  resourceName,
  str,
  strict,
  token,
  uniqueNames,
  versionName,
} from "./blocks.js";
import { describeValue } from "./messages.js";

const KEY_SOURCES = ["header", "cookie", "query"] as const;
const queryName = str("NAME_LENGTH").regex(/^[A-Za-z0-9._~-]+$/, {
  error: (iss) =>
    `must be a query parameter name of A-Z, a-z, 0-9, ".", "_", "~" and "-" like "user", got ${describeValue(iss.input)}`,
});

const ExperimentMetricSourceSchema = exactlyOne({
  event: metricName.describe("Outcome events posted to POST /api/v1/events with this metric name."),
  responseHeader: token("an HTTP header name", "x-model-confidence").describe(
    "A number the service returns in this response header, recorded by the router per exposed unit.",
  ),
  builtin: z
    .enum(["error_rate", "latency"], {
      error: (iss) => `must be "error_rate" or "latency", got ${describeValue(iss.input)}`,
    })
    .describe("The router's own per-version measurements over the experiment (unit: the request)."),
}).describe("Where the metric's values come from (exactly one).");

const ExperimentMetricSchema = strict({
  name: metricName.describe("The metric's name in results."),
  kind: z
    .enum(["binomial", "mean", "ratio"], {
      error: (iss) => `must be "binomial", "mean" or "ratio", got ${describeValue(iss.input)}`,
    })
    .describe(
      "binomial: share of units with an event (conversion); mean: per-unit sum (units without events count 0); ratio: sum of source / sum of denominator (delta method).",
    ),
  role: z
    .enum(["goal", "guardrail"], {
      error: (iss) => `must be "goal" or "guardrail", got ${describeValue(iss.input)}`,
    })
    .default("goal")
    .describe("goal: decides the experiment; guardrail: must not get significantly worse."),
  source: ExperimentMetricSourceSchema,
  denominator: ExperimentMetricSourceSchema.optional().describe(
    "For ratio metrics: the denominator (an event or a response header).",
  ),
  covariate: strict({
    event: metricName.describe("The event whose pre-exposure sum per unit is the covariate."),
  })
    .optional()
    .describe(
      "CUPED (mean metrics): a pre-period covariate, the unit's sum of this event from before its first exposure.",
    ),
  better: z
    .enum(["increase", "decrease"], {
      error: (iss) => `must be "increase" or "decrease", got ${describeValue(iss.input)}`,
    })
    .optional()
    .describe('Which way is better; default "increase", "decrease" for builtin metrics.'),
}).superRefine((m, ctx) => {
  const builtin = "builtin" in m.source ? m.source.builtin : undefined;
  if (m.kind === "ratio" && !m.denominator)
    ctx.addIssue({
      code: "custom",
      path: ["denominator"],
      input: undefined,
      message: "is required for a ratio metric",
    });
  if (m.kind !== "ratio" && m.denominator)
    ctx.addIssue({
      code: "custom",
      path: ["denominator"],
      input: m.denominator,
      message: `only ratio metrics take a denominator, this one is ${m.kind}`,
    });
  if (m.covariate && m.kind !== "mean")
    ctx.addIssue({
      code: "custom",
      path: ["covariate"],
      input: m.covariate,
      message: `only mean metrics take a covariate (CUPED), this one is ${m.kind}`,
    });
  if (m.denominator && "builtin" in m.denominator && m.denominator.builtin !== undefined)
    ctx.addIssue({
      code: "custom",
      path: ["denominator", "builtin"],
      input: m.denominator,
      message: "a denominator must be an event or a response header",
    });
  if (builtin === "error_rate" && m.kind !== "binomial")
    ctx.addIssue({
      code: "custom",
      path: ["kind"],
      input: m.kind,
      message: `builtin error_rate is a binomial metric, got ${m.kind}`,
    });
  if (builtin === "latency" && m.kind !== "mean")
    ctx.addIssue({
      code: "custom",
      path: ["kind"],
      input: m.kind,
      message: `builtin latency is a mean metric, got ${m.kind}`,
    });
});

const ArmSchema = strict({
  name: metricName.describe('The arm\'s name, e.g. "A" or "control".'),
  version: versionName.describe(
    'Which version serves the arm: "stable" (the version serving now), "canary" (the candidate) or another version by name (a third arm).',
  ),
  weight: num({ gt: 0, max: 100 }).describe("Percent of the experiment's units in this arm."),
});

const experimentShape = {
  name: resourceName
    .optional()
    .describe("Unique experiment name; default <service>-<candidate version>."),
  arms: capped(
    "ARMS",
    "arms",
    z
      .array(ArmSchema)
      .min(LIMITS.ARMS.min, { error: "must list at least two arms (one stable, one canary)" })
      .superRefine(uniqueNames("arm", "arms"))
      .superRefine((arms, ctx) => {
        if (arms.length < 2) return;
        if (!arms.some((a) => a.version === "stable") || !arms.some((a) => a.version === "canary"))
          ctx.addIssue({
            code: "custom",
            input: arms,
            message: "needs one arm on stable (the control) and one on canary",
          });
        const sum = arms.reduce((s, a) => s + a.weight, 0);
        if (Math.abs(sum - 100) > 1e-9)
          ctx.addIssue({
            code: "custom",
            input: arms,
            message: `weights must sum to 100, got ${sum}`,
          });
      }),
  )
    .optional()
    .describe("The arms; default A = stable (100 - split) and B = canary (split)."),
  split: num({ gt: 0, lt: 100 })
    .default(50)
    .describe("Percent of units in B when arms are not listed."),
  assignment: strict({
    header: token("an HTTP header name", "x-user-id")
      .optional()
      .describe("Unit id from this request header."),
    cookie: token("a cookie name", "uid")
      .optional()
      .describe("Unit id from this cookie; a client without it is issued one."),
    query: queryName.optional().describe("Unit id from this query parameter."),
    salt: nonEmpty().optional().describe("Hash salt; default the experiment's name."),
  })
    .superRefine(...oneOfKeys(KEY_SOURCES))
    .meta(oneOfMeta(KEY_SOURCES))
    .describe(
      "Where a request's unit id comes from (exactly one of header, cookie or query).",
    ) as unknown as z.ZodType<ExperimentSpec["assignment"], ExperimentSpec["assignment"]>,
  force: strict({
    header: token("an HTTP header name", "x-turnout-arm")
      .optional()
      .describe("A header naming the arm."),
    query: queryName.optional().describe("A query parameter naming the arm."),
  })
    .optional()
    .describe(
      "QA override: requests naming an arm here are served by it and not logged as exposures.",
    ),
  metrics: capped(
    "EXPERIMENT_METRICS",
    "metrics",
    z
      .array(ExperimentMetricSchema)
      .min(1, { error: "must list at least one metric" })
      .superRefine(uniqueNames("metric", "metrics"))
      .superRefine((ms, ctx) => {
        if (!ms.some((m) => (m as { role?: string }).role !== "guardrail"))
          ctx.addIssue({ code: "custom", input: ms, message: "needs at least one goal metric" });
      }),
  ).describe("Goal and guardrail metrics."),
  method: z
    .enum(["sequential", "fixedHorizon", "bayesian"], {
      error: (iss) =>
        `must be "sequential", "fixedHorizon" or "bayesian", got ${describeValue(iss.input)}`,
    })
    .default("sequential")
    .describe(
      "sequential: always-valid confidence sequences, look any time (default); fixedHorizon: z / Welch t at minSamples; bayesian: chance to win.",
    ),
  alpha: num({ gt: 0, lt: 1 }).default(0.05).describe("Type I error over the whole experiment."),
  minSamples: limited("SAMPLES", { min: 2 })
    .default(100)
    .describe("Units per arm before any decision (for fixedHorizon: the planned sample size)."),
  maxDuration: duration("EXPERIMENT_DURATION", { positive: true })
    .default("1h")
    .describe("Longest run; inconclusive by then keeps the stable version (A)."),
  decision: z
    .enum(["auto", "manual"], {
      error: (iss) => `must be "auto" or "manual", got ${describeValue(iss.input)}`,
    })
    .default("auto")
    .describe("On a win: promote at once (auto) or wait for `turnout promote` (manual)."),
  correction: z
    .enum(["holm", "bh"], {
      error: (iss) => `must be "holm" or "bh", got ${describeValue(iss.input)}`,
    })
    .default("holm")
    .describe("Across several goal metrics: Holm (family-wise) or Benjamini-Hochberg (FDR)."),
  sequentialTuning: num({ gt: 0, max: LIMITS.SAMPLES.max })
    .default(5000)
    .describe("N* of the asymptotic confidence sequence: total units at which it is tightest."),
  chanceToWin: num({ gt: 0.5, lt: 1 })
    .default(0.95)
    .describe("bayesian: chance to win needed to ship B (1 - this calls B worse)."),
};

export const ExperimentStepSchema = strict({ ...experimentShape });

export const AbTestStrategySchema = strict({
  ...experimentShape,
  abortScaleDownDelaySeconds: limited("DELAY_SECONDS")
    .optional()
    .describe("After a loss, the candidate keeps running this long without traffic (default 30)."),
});

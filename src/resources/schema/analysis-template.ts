/** The AnalysisTemplate kind: metrics, where they come from, and how each is judged. */
import { z } from "zod";
import type { JudgeBody, JudgeKind } from "../../core/analysis/judges.js";
import {
  apiVersion,
  capped,
  command,
  duration,
  exactlyOne,
  httpUrl,
  limited,
  MetadataSchema,
  metricName,
  nonEmpty,
  num,
  resourceName,
  str,
  strict,
  stringMap,
  uniqueNames,
} from "./blocks.js";
import { isPlainObject } from "./messages.js";

const BUILTIN_METRIC_NAMES = ["error_rate", "latency", "request_rate"] as const;
const MetricSourceSchema = exactlyOne({
  builtin: z
    .union([
      z.enum(BUILTIN_METRIC_NAMES),
      strict({
        metric: z.enum(BUILTIN_METRIC_NAMES),
        flag: resourceName.describe("A flag the service evaluates at the edge (spec.flags)."),
        candidate: nonEmpty("a variant name")
          .optional()
          .describe('The variant under test (default "on").'),
        baseline: nonEmpty("a variant name")
          .optional()
          .describe('The variant it is compared with (default "off").'),
      }).describe(
        "The metric for two variants of a flag within the candidate version: the feature on against off.",
      ),
    ])
    .describe(
      "A metric the router measures per version itself: error_rate is (5xx + requests abandoned by their clients before the version answered) / requests; latency is ms from arrival to last byte; request_rate is requests per second.",
    ),
  prometheus: strict({
    address: httpUrl({ allowQuery: false }).describe("Base URL of the Prometheus HTTP API."),
    query: nonEmpty("a PromQL query", "TEXT_LENGTH").describe(
      "PromQL; {{args.NAME}}, {{service}}, {{candidate}} and {{baseline}} are replaced.",
    ),
    rangeQuery: strict({ step: duration("QUERY_STEP", { positive: true }) })
      .optional()
      .describe(
        "Query the analysis window at this step (all points are samples); without it, an instant query.",
      ),
    reduce: z
      .enum(["first", "sum", "max", "min", "avg"])
      .optional()
      .describe(
        "How several series combine into one; without it, more than one series is an error.",
      ),
    timeoutSeconds: limited("SOURCE_TIMEOUT_SECONDS").default(10),
  }).describe("A PromQL query against a Prometheus server."),
  web: strict({
    url: httpUrl({ allowQuery: true }),
    method: z.enum(["GET", "POST"]).default("GET"),
    headers: stringMap('header names must not be empty or contain "="', {
      entries: "HEADER_LISTS",
      noun: "headers",
      value: "VALUE_LENGTH",
    }).optional(),
    body: str("TEXT_LENGTH").optional(),
    jsonPath: nonEmpty("a JSON path like $.data.value", "PATH_LENGTH").optional(),
    timeoutSeconds: limited("SOURCE_TIMEOUT_SECONDS").default(10),
  }).describe("An HTTP endpoint that returns the value (picked with jsonPath)."),
  command: strict({
    command,
    timeoutSeconds: limited("SOURCE_TIMEOUT_SECONDS").default(10),
  }).describe("A command that prints the value."),
}).describe("Where the metric's value comes from (exactly one).");

const alpha = () => num({ gt: 0, lt: 1 }).default(0.05);

/**
 * The spec schema of every judge, by its key (`src/core/analysis/judges/`); typed by the judge
 * kinds, as `JUDGES` is, so a judge without a schema (or one whose output is not its body)
 * fails `tsc`.
 */
const JUDGE_SCHEMAS = {
  threshold: strict({
    min: limited("MEASURED_VALUE").optional(),
    max: limited("MEASURED_VALUE").optional(),
  }).superRefine((t, ctx) => {
    if (t.min === undefined && t.max === undefined)
      ctx.addIssue({
        code: "custom",
        input: t,
        message: 'needs "min", "max" or both, got neither',
      });
    else if (t.min !== undefined && t.max !== undefined && t.min > t.max)
      ctx.addIssue({
        code: "custom",
        path: ["max"],
        input: t.max,
        message: `must be >= min (${t.min}), got ${t.max}`,
      });
  }),
  relative: strict({
    mode: z.enum(["ratio", "difference"]),
    maxIncrease: limited("MEASURED_VALUE", { min: 0 }).optional(),
    maxDecrease: limited("MEASURED_VALUE", { min: 0 }).optional(),
  }).superRefine((r, ctx) => {
    if (r.maxIncrease === undefined && r.maxDecrease === undefined)
      ctx.addIssue({
        code: "custom",
        input: r,
        message: 'needs "maxIncrease", "maxDecrease" or both, got neither',
      });
  }),
  sequential: strict({
    maxIncrease: limited("RATE_CHANGE"),
    detect: num({ gt: 0, max: 1 })
      .optional()
      .describe(
        "The excess over maxIncrease to catch fastest (the mSPRT's mixing scale), as a fraction; default 0.02 (2 points).",
      ),
    alpha: alpha(),
  }).describe("Sequential test of candidate against baseline rates; may be checked at every look."),
  mannWhitney: strict({ maxRelativeIncrease: limited("RELATIVE_CHANGE"), alpha: alpha() }).describe(
    "Mann-Whitney U test of candidate against baseline samples (e.g. latencies).",
  ),
} satisfies { readonly [K in JudgeKind]: z.ZodType<JudgeBody<K>, unknown> };

const JudgeSchema = exactlyOne(JUDGE_SCHEMAS).describe(
  "How the value is judged: pass, fail or inconclusive (exactly one).",
);

const MetricSchema = strict({
  name: metricName,
  source: MetricSourceSchema,
  judge: JudgeSchema,
  interval: duration("ANALYSIS_INTERVAL", { positive: true })
    .optional()
    .describe("Time between measurements."),
  count: limited("MEASUREMENTS").optional().describe("Number of measurements."),
  minSamples: limited("SAMPLES", { min: 0 })
    .optional()
    .describe("Below this many samples the result is inconclusive, never pass."),
  failureLimit: limited("MEASUREMENT_LIMIT")
    .optional()
    .describe("Failed measurements tolerated before the analysis fails."),
  inconclusiveLimit: limited("MEASUREMENT_LIMIT")
    .optional()
    .describe("Inconclusive measurements tolerated before the analysis is inconclusive."),
  consecutiveErrorLimit: limited("MEASUREMENT_LIMIT")
    .optional()
    .describe("Errors in a row (e.g. the source is unreachable) tolerated before failing."),
  dryRun: z.boolean().optional().describe("Measure and report, but never fail the rollout."),
  noResponseTimeout: duration("NO_RESPONSE_TIMEOUT", { positive: true })
    .optional()
    .describe(
      "Requests sent to the candidate with none answered for this long fail the measurement (builtin sources only); default the service's trafficPolicy.timeouts.upstreamSeconds.",
    ),
}).superRefine(
  (m, ctx) => {
    // Only the router knows what it sent the candidate before anything came back; on another
    // source the setting would do nothing, which is worse than an error.
    if (m.noResponseTimeout === undefined || !isPlainObject(m.source) || "builtin" in m.source)
      return;
    ctx.addIssue({
      code: "custom",
      path: ["noResponseTimeout"],
      input: m.noResponseTimeout,
      message: `only a builtin source knows the requests sent to the candidate; this metric's source is ${Object.keys(m.source).join(", ")}`,
    });
  },
  { when: (p) => isPlainObject(p.value) },
);

const AnalysisTemplateSpecSchema = strict({
  args: capped(
    "ARGS",
    "arguments",
    z
      .array(strict({ name: nonEmpty("an argument name"), value: str("VALUE_LENGTH").optional() }))
      .superRefine(uniqueNames("argument", "args"), { when: (p) => Array.isArray(p.value) }),
  )
    .optional()
    .describe("Arguments that a rollout passes in, with optional default values."),
  metrics: capped(
    "TEMPLATE_METRICS",
    "metrics",
    z
      .array(MetricSchema)
      .min(1, { error: "must list at least one metric, got an empty list" })
      .superRefine(uniqueNames("metric", "metrics"), { when: (p) => Array.isArray(p.value) }),
  ),
});

export const AnalysisTemplateSchema = strict({
  apiVersion,
  kind: z.literal("AnalysisTemplate"),
  metadata: MetadataSchema,
  spec: AnalysisTemplateSpecSchema,
}).meta({
  title: "AnalysisTemplate",
  description: "Metrics, where they come from, and how each is judged during a rollout.",
});

/**
 * The zod schemas of shadow deployments: the `shadow` step and strategy, `setMirrorRoute`, and
 * `compare`. Built from the shared building blocks (`blocks.ts`), so that messages and unknown-
 * key handling are the same as everywhere else; `steps.ts` adds them to `STEP_SCHEMAS` and
 * `strategy.ts` to the strategies.
 */
import { z } from "zod";
import { parsePath } from "../../core/shadow/json-diff.js";
import { capped, duration, limited, num, str, strict } from "./blocks.js";
import { MatchConditionsSchema } from "./routing.js";

/** Methods that are safe to copy without a declaration (RFC 9110 safe methods). */
export const SAFE_METHODS = ["GET", "HEAD", "OPTIONS"];
const METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"] as const;

/**
 * Copies of unsafe methods reach the shadow's side effects (a second payment, a second email):
 * only when the spec says the endpoints have none.
 */
function methodsNeedDeclaration(
  v: { methods?: unknown; sideEffectFree?: unknown },
  ctx: z.core.$RefinementCtx,
): void {
  if (!Array.isArray(v.methods)) return;
  v.methods.forEach((m: unknown, i) => {
    if (typeof m !== "string" || SAFE_METHODS.includes(m) || v.sideEffectFree === true) return;
    ctx.addIssue({
      code: "custom",
      input: m,
      path: ["methods", i],
      message: `${m} is mirrored only with sideEffectFree: true (the copy runs the request a second time on the shadow)`,
    });
  });
}

// Runs even when other fields of the step are wrong, so every problem is reported at once.
const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

const jsonPath = str("PATH_LENGTH").superRefine((s, ctx) => {
  const r = parsePath(s);
  if (typeof r === "string")
    ctx.addIssue({
      code: "custom",
      input: s,
      message: `must be a JSON path like "$.a.b[*].c": ${r}`,
    });
});
const headerName = str("NAME_LENGTH").regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, {
  error: (iss) => `must be an HTTP header name, got ${JSON.stringify(iss.input)}`,
});
const headerList = () => capped("HEADER_LISTS", "headers", z.array(headerName));
const percent = num({ min: 0.01, max: 100, decimals: 2 });
const mirrorShape = {
  percent: percent.describe("Share of matching requests copied to the shadow, 0.01..100."),
  methods: capped("METHODS", "methods", z.array(z.enum(METHODS)).min(1))
    .optional()
    .describe("Methods copied (default GET, HEAD); POST and others need sideEffectFree: true."),
  sideEffectFree: z
    .boolean()
    .optional()
    .describe(
      "The endpoints have no side effects (model inference): unsafe methods may be copied.",
    ),
  stripHeaders: headerList()
    .optional()
    .describe("Request headers removed from copies, e.g. [authorization, cookie]."),
  match: MatchConditionsSchema.optional().describe("Only requests that match are copied."),
};
const LimitsSchema = strict({
  maxConcurrency: limited("MIRROR_CONCURRENCY")
    .optional()
    .describe("Copies in flight at once (default 64)."),
  maxQueue: limited("MIRROR_QUEUE")
    .optional()
    .describe("Copies waiting; more are dropped (default 256)."),
  maxBodyBytes: limited("MIRROR_BODY_BYTES")
    .optional()
    .describe("Request bodies buffered for copies up to this size (default 1 MiB)."),
  maxCompareBytes: limited("MIRROR_COMPARE_BYTES")
    .optional()
    .describe("Response bodies compared up to this size (default 256 KiB)."),
  timeoutSeconds: limited("MIRROR_TIMEOUT_SECONDS")
    .optional()
    .describe("A copy without an answer by then is dropped (default 5)."),
}).describe("Bounds of the mirror: concurrency, queue, body sizes, timeout.");
const CompareSchema = strict({
  status: z.boolean().optional().describe("Compare status codes (default true)."),
  headers: headerList().optional().describe("Response headers compared by value."),
  body: z
    .enum(["json", "text", "hash", "none"])
    .optional()
    .describe("How bodies compare (default json)."),
  ignore: capped("IGNORE_PATHS", "paths", z.array(jsonPath))
    .optional()
    .describe('JSON paths left out: "$.meta.id", "$.items[*].ts", "$..timestamp".'),
  tolerance: strict({
    absolute: limited("MEASURED_VALUE", { min: 0 })
      .optional()
      .describe("Numbers within this absolute difference are equal."),
    relative: limited("RELATIVE_CHANGE")
      .optional()
      .describe("Numbers within this relative difference are equal."),
  }).optional(),
  classification: strict({
    field: jsonPath.describe("The label, or the probability vector/object with argmax."),
    mode: z.enum(["label", "argmax"]).optional(),
  })
    .optional()
    .describe("Classification agreement on a field."),
  regression: strict({ field: jsonPath })
    .optional()
    .describe("Regression error (MAE, max) on a numeric field."),
  drift: strict({
    field: jsonPath.optional(),
    bins: limited("DRIFT_BINS").optional(),
  })
    .optional()
    .describe("Drift of the prediction distribution (PSI, Kolmogorov-Smirnov)."),
}).describe("How each (primary, shadow) pair is compared.");
const GateSchema = strict({
  minSamples: limited("SAMPLES", { min: 1 }).describe(
    "Compared pairs needed before a verdict; fewer is never a pass.",
  ),
  maxMismatchRate: num({ min: 0, max: 1 })
    .optional()
    .describe("Largest share of pairs that differ (noise excluded), 0..1."),
  minAgreement: num({ min: 0, max: 1 })
    .optional()
    .describe("Smallest classification agreement (else share of matching pairs), 0..1."),
  maxLatencyIncrease: limited("RELATIVE_CHANGE")
    .optional()
    .describe("Largest relative increase of median latency (0.2 = +20%)."),
  maxDriftPsi: limited("DRIFT_PSI")
    .optional()
    .describe("Largest PSI of the prediction distribution."),
  duration: duration("PAUSE").optional().describe("The phase lasts at least this long."),
}).describe("When the shadow phase passes.");
export const ShadowStepSchema = strict({
  ...mirrorShape,
  limits: LimitsSchema.optional(),
  compare: CompareSchema.optional(),
  noise: z
    .boolean()
    .optional()
    .describe(
      "Also send each copy to a second stable instance; fields that differ there are noise (Diffy).",
    ),
  gate: GateSchema,
})
  .superRefine(methodsNeedDeclaration, { when: (p) => isObject(p.value) })
  .describe(
    "Mirror a share of requests to the new version, compare the answers, pass or fail by the gate.",
  );
export const MirrorRouteStepSchema = strict({
  ...mirrorShape,
  percent: num({ min: 0, max: 100, decimals: 2 })
    .optional()
    .describe("Share copied; absent or 0 removes the mirror."),
})
  .superRefine(methodsNeedDeclaration, { when: (p) => isObject(p.value) })
  .describe("Mirror a share of (matching) requests to the canary, no gate; {} removes it.");

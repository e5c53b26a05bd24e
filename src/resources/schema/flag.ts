/** The Flag kind (evaluated by `src/core/flags`), and the targeting conditions Segments share. */
import { z } from "zod";
import { regexProblem } from "../../core/regex.js";
import { LIMITS, type LimitName } from "../limits.js";
import {
  apiVersion,
  capped,
  cappedRecord,
  MetadataSchema,
  nonEmpty,
  num,
  resourceName,
  str,
  strict,
} from "./blocks.js";
import { describeValue, isPlainObject, jsonBytes, orList, type PathSegment } from "./messages.js";

const CONDITION_OPS = [
  "equals",
  "notEquals",
  "in",
  "notIn",
  "startsWith",
  "endsWith",
  "contains",
  "gt",
  "gte",
  "lt",
  "lte",
  "semverEq",
  "semverGt",
  "semverGte",
  "semverLt",
  "semverLte",
  "matches",
  "exists",
] as const;
const scalar = z.union([str("VALUE_LENGTH"), z.number(), z.boolean()]);
const SEMVER_TEXT =
  /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

export const FlagConditionSchema = strict({
  attribute: nonEmpty("a context attribute name").describe(
    'A context attribute, e.g. "email", "plan" or "targetingKey".',
  ),
  op: z.enum(CONDITION_OPS).describe("How the attribute is tested."),
  value: scalar.optional().describe("The operand of single-value operators."),
  values: capped("CONDITION_VALUES", "values", z.array(scalar))
    .optional()
    .describe('The list of "in" and "notIn".'),
}).superRefine((c, ctx) => {
  const list = c.op === "in" || c.op === "notIn";
  if (list && c.values === undefined)
    ctx.addIssue({
      code: "custom",
      path: ["values"],
      input: c,
      message: `is required for op "${c.op}" (a list)`,
    });
  if (!list && c.op !== "exists" && c.value === undefined)
    ctx.addIssue({
      code: "custom",
      path: ["value"],
      input: c,
      message: `is required for op "${c.op}"`,
    });
  if (
    ["gt", "gte", "lt", "lte"].includes(c.op) &&
    c.value !== undefined &&
    Number.isNaN(Number(c.value))
  )
    ctx.addIssue({
      code: "custom",
      path: ["value"],
      input: c.value,
      message: `must be a number for op "${c.op}", got ${describeValue(c.value)}`,
    });
  if (c.op.startsWith("semver") && !SEMVER_TEXT.test(String(c.value ?? "")))
    ctx.addIssue({
      code: "custom",
      path: ["value"],
      input: c.value,
      message: `must be a semantic version like "1.2.3", got ${describeValue(c.value)}`,
    });
  if (c.op === "matches" && typeof c.value === "string") {
    const problem = regexProblem(c.value);
    if (problem !== null)
      ctx.addIssue({ code: "custom", path: ["value"], input: c.value, message: problem });
  }
});

const percent = () => num({ min: 0, max: 100, decimals: 4 });

/** A JSON value of at most the limit's bytes (flag variants travel to every client). */
function jsonAtMost(name: LimitName) {
  const max = LIMITS[name].max;
  return (v: unknown, ctx: z.core.$RefinementCtx) => {
    const bytes = jsonBytes(v);
    if (bytes > max)
      ctx.addIssue({
        code: "custom",
        input: v,
        message: `must be at most ${max} bytes as JSON, got ${bytes}`,
      });
  };
}

const FlagRuleSchema = strict({
  name: nonEmpty("a rule name").optional().describe("For people and flagMetadata.rule."),
  conditions: capped("CONDITIONS", "conditions", z.array(FlagConditionSchema))
    .optional()
    .describe("All must hold."),
  segments: capped("RULE_SEGMENTS", "segments", z.array(resourceName))
    .optional()
    .describe("Segments the context must belong to (all)."),
  variant: nonEmpty("a variant name").optional().describe("Serve this variant."),
  split: cappedRecord("FLAG_VARIANTS", "variants", z.record(nonEmpty("a variant name"), percent()))
    .optional()
    .describe("Or split by bucket: percent per variant, summing to 100."),
});

const FlagSpecSchema = strict({
  type: z.enum(["boolean", "string", "number", "object"]).describe("The OpenFeature flag type."),
  variants: cappedRecord(
    "FLAG_VARIANTS",
    "variants",
    z.record(
      nonEmpty("a variant name"),
      z.union([
        z.boolean(),
        str("TEXT_LENGTH"),
        z.number(),
        z.record(z.string(), z.unknown()).superRefine(jsonAtMost("VARIANT_VALUE_BYTES")),
        z.array(z.unknown()).superRefine(jsonAtMost("VARIANT_VALUE_BYTES")),
      ]),
    ),
  ).describe("Each variant by name, with its value (of the flag's type)."),
  defaultVariant: nonEmpty("a variant name").describe(
    "Served when nothing else applies, and when the flag is disabled.",
  ),
  state: z
    .enum(["ENABLED", "DISABLED"])
    .default("ENABLED")
    .describe("DISABLED is the kill switch: everyone gets the default variant."),
  rules: capped("FLAG_RULES", "rules", z.array(FlagRuleSchema))
    .optional()
    .describe("Targeting rules, in order; the first match wins."),
  rollout: strict({
    variant: nonEmpty("a variant name").describe("The variant rolled out."),
    percentage: percent().describe("Percent of contexts that get it, 0..100, up to 4 decimals."),
  })
    .optional()
    .describe(
      "A percentage rollout for contexts no rule matched; the rest get the default variant.",
    ),
  bucketBy: nonEmpty("a context attribute name")
    .optional()
    .describe("The context attribute that buckets splits and rollouts (default targetingKey)."),
  salt: nonEmpty().optional().describe("Bucket hash salt (default: the flag's name)."),
  description: str("TEXT_LENGTH").optional(),
}).superRefine(
  (f, ctx) => {
    if (!isPlainObject(f.variants)) return;
    const names = Object.keys(f.variants);
    const known = (v: unknown, path: PathSegment[]) => {
      if (typeof v === "string" && !names.includes(v))
        ctx.addIssue({
          code: "custom",
          path,
          input: v,
          message: `must be one of the variants (${orList(names)}), got ${describeValue(v)}`,
        });
    };
    if (names.length === 0)
      ctx.addIssue({
        code: "custom",
        path: ["variants"],
        input: f.variants,
        message: "must list at least one variant",
      });
    for (const [n, v] of Object.entries(f.variants)) {
      const ok = f.type === "object" ? typeof v === "object" && v !== null : typeof v === f.type;
      if (!ok)
        ctx.addIssue({
          code: "custom",
          path: ["variants", n],
          input: v,
          message: `must be a ${f.type} (the flag's type), got ${describeValue(v)}`,
        });
    }
    known(f.defaultVariant, ["defaultVariant"]);
    if (f.rollout) known(f.rollout.variant, ["rollout", "variant"]);
    (f.rules ?? []).forEach((r, i) => {
      if ((r.variant === undefined) === (r.split === undefined))
        ctx.addIssue({
          code: "custom",
          path: ["rules", i],
          input: r,
          message: 'must have exactly one of "variant" and "split"',
        });
      known(r.variant, ["rules", i, "variant"]);
      if (r.split) {
        let sum = 0;
        for (const [v, w] of Object.entries(r.split)) {
          known(v, ["rules", i, "split", v]);
          sum += w;
        }
        if (Math.abs(sum - 100) > 1e-6)
          ctx.addIssue({
            code: "custom",
            path: ["rules", i, "split"],
            input: r.split,
            message: `must sum to 100, got ${Math.round(sum * 10000) / 10000}`,
          });
      }
    });
  },
  { when: (p) => isPlainObject(p.value) },
);

export const FlagSchema = strict({
  apiVersion,
  kind: z.literal("Flag"),
  metadata: MetadataSchema,
  spec: FlagSpecSchema,
}).meta({
  title: "Flag",
  description:
    "A feature flag served over OFREP, at the router's edge and by the in-process provider.",
});

/**
 * The zod building blocks every resource kind is made of: strict objects whose unknown keys
 * name the allowed ones, "exactly one of", numbers and strings bounded by the limits table
 * (`../limits.ts`), names, durations, URLs, and the `apiVersion`/`metadata` every kind shares.
 * Every failure reads as a message a person can act on ("must be 0..100, got 120").
 */
import { z } from "zod";
import { parseDuration } from "../../core/duration.js";
import { API_VERSION } from "../../core/model.js";
import { durationText, LIMITS, type Limit, type LimitName } from "../limits.js";
import { describeValue, isPlainObject, orList, quoteHint } from "./messages.js";

export interface ObjectInfo {
  /** What an unknown key is called in messages ("field", "step kind", "strategy"). */
  noun: string;
  /** Keys that are planned but not accepted yet; the message says so instead of "unknown". */
  notYet?: readonly string[];
}

// Keyed by the object's allowed keys: zod clones a schema on every `.superRefine`/`.meta`, so
// the instance that reports an unknown key is not the one built here, but its shape is.
export const objectInfo = new Map<string, ObjectInfo>();
export const shapeKey = (keys: readonly string[]) => keys.join("\u0000");

/** A strict object: unknown keys are errors that name the allowed ones. */
export function strict<S extends z.ZodRawShape>(
  shape: S,
  info?: ObjectInfo,
): z.ZodObject<S, z.core.$strict> {
  if (info) objectInfo.set(shapeKey(Object.keys(shape)), info);
  return z.strictObject(shape);
}

type OneKey<T> = { [K in keyof T]: { [P in K]: T[K] } }[keyof T];

/**
 * An object with exactly one of the given keys, typed as the union of one-key objects.
 * Built as an object of optional keys plus a count check rather than `z.union`, because a union
 * of failing branches reports "invalid input" instead of the error inside the branch that the
 * user obviously meant.
 */
export function exactlyOne<S extends Record<string, z.ZodType>>(
  shape: S,
  info?: ObjectInfo,
): z.ZodType<
  OneKey<{ [K in keyof S]: z.output<S[K]> }>,
  OneKey<{ [K in keyof S]: z.input<S[K]> }>
> {
  const keys = Object.keys(shape);
  const optional: Record<string, z.ZodType> = {};
  for (const k of keys) optional[k] = shape[k]!.optional();
  const schema = strict(optional, info)
    .superRefine(
      (v, ctx) => {
        const present = keys.filter((k) => v[k] !== undefined);
        if (present.length === 1) return;
        ctx.addIssue({
          code: "custom",
          input: v,
          message:
            present.length === 0
              ? `must have exactly one of ${orList(keys)}, got ${describeValue(v)}`
              : `must have exactly one of ${orList(keys)}, got ${present.length}: ${present.map((p) => JSON.stringify(p)).join(" and ")}`,
        });
      },
      {
        // Runs even when a branch has errors (so "both static and process" is reported with
        // them), but not when the input is no object or has unknown keys: those already have a
        // clearer message, and a typo'd key would otherwise also be reported as "none".
        when: (p) =>
          isPlainObject(p.value) &&
          !p.issues.some((i) => i.code === "unrecognized_keys" && (i.path?.length ?? 0) === 0),
      },
    )
    .meta({ minProperties: 1, maxProperties: 1 });
  return schema as unknown as z.ZodType<
    OneKey<{ [K in keyof S]: z.output<S[K]> }>,
    OneKey<{ [K in keyof S]: z.input<S[K]> }>
  >;
}

export interface NumOpts {
  int?: boolean;
  /** Inclusive bounds. */
  min?: number;
  max?: number;
  /** Exclusive bounds. */
  gt?: number;
  lt?: number;
  /** At most this many decimal places. */
  decimals?: number;
}

export function rangeText(o: NumOpts): string {
  const what = o.int ? "an integer" : "a number";
  if (o.gt !== undefined && o.lt !== undefined)
    return `${what} between ${o.gt} and ${o.lt} (exclusive)`;
  if (o.min !== undefined && o.max !== undefined) return `${what} ${o.min}..${o.max}`;
  if (o.min !== undefined) return `${what} >= ${o.min}`;
  if (o.gt !== undefined) return `${what} > ${o.gt}`;
  if (o.max !== undefined) return `${what} <= ${o.max}`;
  return what;
}

/** A number whose every failure reads "must be <range>, got <value>". */
export function num(o: NumOpts = {}): z.ZodNumber {
  const range = rangeText(o);
  const error = (iss: { input?: unknown }) =>
    iss.input === undefined
      ? `is required (${range})`
      : `must be ${range}, got ${describeValue(iss.input)}`;
  let s = z.number({ error });
  if (o.int) s = s.int({ error });
  if (o.min !== undefined) s = s.gte(o.min, { error });
  if (o.max !== undefined) s = s.lte(o.max, { error });
  if (o.gt !== undefined) s = s.gt(o.gt, { error });
  if (o.lt !== undefined) s = s.lt(o.lt, { error });
  if (o.decimals !== undefined) {
    // A refinement rather than `.multipleOf`: JSON Schema validators in editors test
    // `multipleOf: 0.0001` by float division and would flag 33.3333 as wrong.
    const scale = 10 ** o.decimals;
    const places = o.decimals;
    s = s.refine((v) => Math.abs(v * scale - Math.round(v * scale)) < 1e-6, {
      error: (iss) =>
        `must have at most ${places} decimal places (steps of ${1 / scale}), got ${describeValue(iss.input)}`,
    });
  }
  return s;
}

/** A number bounded by one entry of the limits table (an integer for counts and sizes). */
export function limited(name: LimitName, o: NumOpts = {}): z.ZodNumber {
  const l: Limit = LIMITS[name];
  const int = l.unit === "integer" || l.unit === "bytes";
  return num({
    ...(int ? { int } : {}),
    ...(l.min !== undefined && o.gt === undefined ? { min: l.min } : {}),
    max: l.max,
    ...o,
  });
}

/** `must be at most 253 characters, got 300`; `abort` spares the later checks a huge string. */
export const maxChars = (name: LimitName) => {
  const max = LIMITS[name].max;
  return [
    max,
    {
      abort: true,
      error: (iss: { input?: unknown }) =>
        `must be at most ${max} characters, got ${typeof iss.input === "string" ? iss.input.length : describeValue(iss.input)}`,
    },
  ] as const;
};

/** A string of at most the limit's length. */
export const str = (name: LimitName = "VALUE_LENGTH") => z.string().max(...maxChars(name));

export const nonEmpty = (what = "a non-empty string", limit: LimitName = "NAME_LENGTH") =>
  z
    .string()
    .max(...maxChars(limit))
    .min(1, { error: `must be ${what}, got an empty string` });

/**
 * A list of at most the limit's items. The count is checked before any item is parsed (a
 * refinement of the array would run after all of them), so 150,000 steps cost one comparison.
 */
export function capped<T extends z.ZodArray<z.ZodType>>(name: LimitName, noun: string, schema: T) {
  const max = LIMITS[name].max;
  return z.preprocess((v, ctx) => {
    if (Array.isArray(v) && v.length > max)
      ctx.addIssue({
        code: "custom",
        input: v,
        message: `must have at most ${max} ${noun}, got ${v.length}`,
      });
    return v;
  }, schema.max(max)) as unknown as z.ZodType<z.output<T>, z.input<T>>;
}

/** A map of at most the limit's entries, counted before any entry is parsed. */
export function cappedRecord<T extends z.ZodType>(name: LimitName, noun: string, schema: T) {
  const max = LIMITS[name].max;
  return z.preprocess(
    (v, ctx) => {
      if (isPlainObject(v)) {
        const n = Object.keys(v).length;
        if (n > max)
          ctx.addIssue({
            code: "custom",
            input: v,
            message: `must have at most ${max} ${noun}, got ${n}`,
          });
      }
      return v;
    },
    schema.meta({ maxProperties: max }),
  ) as unknown as z.ZodType<z.output<T>, z.input<T>>;
}

/** Resource names end up in URLs, metric labels and host names, hence DNS labels. */
export const RESOURCE_NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const resourceName = z.string().regex(RESOURCE_NAME, {
  error: (iss) =>
    `must be a DNS label: 1..63 characters of lowercase a-z, 0-9 and "-", starting with a letter and not ending with "-"; got ${describeValue(iss.input)}`,
});

/** Version names are templated into commands and file paths, hence the small alphabet. */
export const VERSION_NAME = /^[A-Za-z0-9._-]{1,63}$/;
export const versionName = z.string().regex(VERSION_NAME, {
  error: (iss) =>
    `must be a version name: 1..63 characters of A-Z, a-z, 0-9, ".", "_" and "-"; got ${describeValue(iss.input)}`,
});

export const metricName = z.string().regex(/^[A-Za-z0-9._-]{1,63}$/, {
  error: (iss) =>
    `must be a name of 1..63 characters of A-Z, a-z, 0-9, ".", "_" and "-"; got ${describeValue(iss.input)}`,
});

/** RFC 9110 token: what header and cookie names may contain. */
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
export const token = (what: string, example: string) =>
  str("NAME_LENGTH").regex(TOKEN, {
    error: (iss) => `must be ${what} like "${example}", got ${describeValue(iss.input)}`,
  });

/** A string whose wrong type says how to quote it; at most the limit's length. */
export const stringValue = (limit: LimitName) =>
  z
    .string({
      error: (iss) =>
        iss.input === undefined
          ? "is required (a string)"
          : `must be a string, got ${describeValue(iss.input)}${quoteHint(iss.input)}`,
    })
    .max(...maxChars(limit));

export const stringMap = (
  keyMessage: string,
  o: { entries: LimitName; noun: string; value: LimitName; key?: z.ZodType<string> },
) =>
  cappedRecord(
    o.entries,
    o.noun,
    z.record(
      o.key ??
        z
          .string()
          .max(...maxChars("NAME_LENGTH"))
          .regex(/^[^=\0]+$/, { error: keyMessage }),
      stringValue(o.value),
    ),
  );

// Kubernetes' label syntax (apimachinery validation.IsQualifiedName and IsValidLabelValue).
export const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** Why a label or annotation key is not a Kubernetes qualified name, or null. */
export function labelKeyProblem(key: string): string | null {
  const slash = key.indexOf("/");
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)))
    return `prefix must be a DNS subdomain of at most 253 characters (lowercase a-z, 0-9, "-" and ".")`;
  if (!LABEL_NAME.test(name))
    return `must be [prefix/]name, the name 1..63 characters of A-Z, a-z, 0-9, "-", "_" and ".", starting and ending with a letter or digit (Kubernetes label syntax)`;
  return null;
}

export const labelKey = z
  .string()
  .max(...maxChars("LABEL_KEY"))
  .superRefine((k, ctx) => {
    const problem = labelKeyProblem(k);
    if (problem !== null) ctx.addIssue({ code: "custom", input: k, message: problem });
  })
  // For editors; the refinement above gives the message.
  .meta({ pattern: `^(${DNS_SUBDOMAIN.source.slice(1, -1)}/)?${LABEL_NAME.source.slice(1)}` });

export const DURATION_PATTERN = "^\\s*(\\d+(\\.\\d+)?(ms|s|m|h|d))+\\s*$";

/**
 * A duration ("30s", "1h30m" or seconds) within a limit of the table. The form is checked by
 * each branch, the range once for both, so "100d" and 8640000 get the same message.
 */
export const duration = (limit: LimitName, o: { positive?: boolean } = {}) => {
  const l: Limit = LIMITS[limit];
  const minMs = l.min ?? 0;
  const maxMs = l.max;
  const range = `${durationText(minMs)}..${durationText(maxMs)}`;
  return z
    .union(
      [
        z
          .string()
          // Longer than any real duration; bounds the parser's work on a pasted blob.
          .max(...maxChars("NAME_LENGTH"))
          .superRefine((s, ctx) => {
            const r = parseDuration(s);
            if ("error" in r) ctx.addIssue({ code: "custom", input: s, message: r.error });
            else if (o.positive && r.ms === 0)
              ctx.addIssue({
                code: "custom",
                input: s,
                message: `must be longer than 0, got "${s}"`,
              });
          })
          .meta({ pattern: DURATION_PATTERN }),
        (o.positive ? num({ gt: 0 }) : num({ min: 0 })).meta({
          minimum: minMs / 1000,
          maximum: maxMs / 1000,
        }),
      ],
      {
        error: (iss) =>
          `must be a duration like "30s", "5m" or "1h30m", or a number of seconds; got ${describeValue(iss.input)}`,
      },
    )
    .superRefine((v, ctx) => {
      const r = parseDuration(v);
      if ("error" in r || (o.positive && r.ms === 0)) return;
      if (r.ms < minMs || r.ms > maxMs)
        ctx.addIssue({
          code: "custom",
          input: v,
          message: `must be a duration ${range}, got ${describeValue(v)}${typeof v === "number" ? " seconds" : ""}`,
        });
    });
};

export const httpUrl = (o: { allowQuery: boolean }) =>
  str("PATH_LENGTH")
    .superRefine((s, ctx) => {
      const expected = `an absolute http:// or https:// URL${o.allowQuery ? "" : " without query or fragment"}`;
      let u: URL;
      try {
        u = new URL(s);
      } catch {
        ctx.addIssue({
          code: "custom",
          input: s,
          message: `must be ${expected}, got ${describeValue(s)}`,
        });
        return;
      }
      if (u.protocol !== "http:" && u.protocol !== "https:") {
        ctx.addIssue({
          code: "custom",
          input: s,
          message: `must be ${expected}, got ${describeValue(s)} (scheme "${u.protocol.slice(0, -1)}")`,
        });
      } else if (!o.allowQuery && (u.search !== "" || u.hash !== "" || /[?#]/.test(s))) {
        ctx.addIssue({
          code: "custom",
          input: s,
          message: `must be ${expected}, got ${describeValue(s)}`,
        });
      }
    })
    .meta({ format: "uri", pattern: "^https?://" });

export const command = capped(
  "COMMAND_ARGS",
  "arguments",
  z
    .array(str("TEXT_LENGTH"), {
      error: (iss) =>
        `must be a list of strings (argv), e.g. [node, server.mjs]; got ${describeValue(iss.input)}`,
    })
    .min(1, {
      error: "must be a non-empty list (argv), e.g. [node, server.mjs]; got an empty list",
    })
    .superRefine((argv, ctx) => {
      if (argv[0] === "")
        ctx.addIssue({
          code: "custom",
          path: [0],
          input: "",
          message: "must name a program, got an empty string",
        });
    }),
);

/**
 * Issues when not exactly one of `keys` is present; for objects that have other fields besides
 * the one-of group (so `exactlyOne` does not fit). Registered with `when` like `exactlyOne`.
 */
export function oneOfKeys(keys: readonly string[]) {
  return [
    (v: Record<string, unknown>, ctx: z.core.$RefinementCtx<Record<string, unknown>>) => {
      const present = keys.filter((k) => v[k] !== undefined);
      if (present.length === 1) return;
      ctx.addIssue({
        code: "custom",
        input: v,
        message:
          present.length === 0
            ? `must have exactly one of ${orList(keys)}, got none`
            : `must have exactly one of ${orList(keys)}, got ${present.length}: ${present.map((p) => JSON.stringify(p)).join(" and ")}`,
      });
    },
    {
      when: (p: { value: unknown; issues: readonly z.core.$ZodRawIssue[] }) =>
        isPlainObject(p.value) &&
        !p.issues.some((i) => i.code === "unrecognized_keys" && (i.path?.length ?? 0) === 0),
    },
  ] as const;
}

/** JSON Schema for "exactly one of these keys" (editors check it; zod checks `oneOfKeys`). */
export const oneOfMeta = (keys: readonly string[]) => ({
  oneOf: keys.map((k) => ({ required: [k] })),
});

/** An HTTP path for probes and health checks. */
export const httpPath = () =>
  str("PATH_LENGTH").regex(/^\//, {
    error: (iss) => `must be an HTTP path starting with "/", got ${describeValue(iss.input)}`,
  });

/** Issues for repeated `name`s in a list, at the later occurrence. */
export function uniqueNames(what: string, list: string) {
  return (items: unknown[], ctx: z.core.$RefinementCtx<unknown[]>) => {
    const seen = new Map<string, number>();
    items.forEach((item, i) => {
      const name = isPlainObject(item) ? item.name : undefined;
      if (typeof name !== "string") return;
      const first = seen.get(name);
      if (first === undefined) seen.set(name, i);
      else
        ctx.addIssue({
          code: "custom",
          path: [i, "name"],
          input: name,
          message: `duplicate ${what} name "${name}" (already used by ${list}[${first}])`,
        });
    });
  };
}

// ---------------------------------------------------------------------------------------
// Shared by every kind
// ---------------------------------------------------------------------------------------

export const apiVersion = z.literal(API_VERSION, {
  error: (iss) => `must be "${API_VERSION}", got ${describeValue(iss.input)}`,
});

export const MetadataSchema = strict({
  name: resourceName.describe("Name, unique per kind: a DNS label such as fraud-model."),
  labels: cappedRecord(
    "LABELS",
    "labels",
    z.record(
      labelKey,
      stringValue("LABEL_VALUE").regex(LABEL_VALUE, {
        error: (iss) =>
          `must be a label value: at most 63 characters of A-Z, a-z, 0-9, "-", "_" and ".", starting and ending with a letter or digit (Kubernetes label syntax), got ${describeValue(iss.input)}`,
      }),
    ),
  )
    .optional()
    .describe(
      "String pairs for people and tools, in Kubernetes label syntax; Turnout does not interpret them.",
    ),
  annotations: stringMap("", {
    entries: "ANNOTATIONS",
    noun: "annotations",
    value: "ANNOTATION_VALUE",
    key: labelKey,
  })
    .optional()
    .describe("String pairs for longer notes than labels; keys in label syntax."),
});

/** What an object with these allowed keys calls an unknown key, if it said (see `strict`). */
export function infoOf(allowed: readonly string[]): ObjectInfo | undefined {
  return objectInfo.get(shapeKey(allowed));
}

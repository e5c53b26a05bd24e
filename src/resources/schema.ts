/**
 * Zod schemas for the resources users write (`apiVersion: turnout.dev/v1`), and the one place
 * that turns zod issues into messages a person can act on ("must be 0..100, got 120").
 *
 * The schemas are the single source for validation, defaults, the model types (checked at
 * compile time below) and the editor JSON Schema (`./jsonschema.ts`).
 */
import { z } from "zod";
import { parseDuration } from "../core/duration.js";
import type { ExperimentSpec } from "../core/experiment/types.js";
import {
  type AnalysisTemplateResource,
  API_VERSION,
  type CanaryStrategySpec,
  DEFAULT_DRAIN_SECONDS,
  DEFAULT_PROCESS_LOGS,
  DEFAULT_RESTART_POLICY,
  DEFAULT_TRAFFIC_POLICY,
  type FlagResource,
  RESOURCE_KINDS,
  type Resource,
  type SegmentResource,
  type ServiceResource,
  type StickinessSpec,
  type ValueMatch,
} from "../core/model.js";
import { regexProblem } from "../core/regex.js";
import { durationText, LIMITS, type Limit, type LimitName } from "./limits.js";
import { shadowSchemas } from "./shadow-schema.js";

// ---------------------------------------------------------------------------------------
// Describing values in messages
// ---------------------------------------------------------------------------------------

/** How a value reads in a message: strings quoted, collections by their shape. */
export function describeValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null (an empty value)";
  if (typeof v === "string") {
    const s = v.length > 60 ? `${v.slice(0, 57)}...` : v;
    return JSON.stringify(s);
  }
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (Array.isArray(v)) return v.length === 0 ? "an empty list" : "a list";
  if (typeof v === "object") return Object.keys(v).length === 0 ? "an empty object" : "an object";
  return typeof v;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Size of a value as compact UTF-8 JSON: what is stored and served. Infinity when it has no
 * JSON form (too deeply nested to serialize).
 */
export function jsonBytes(v: unknown): number {
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch {
    return Number.POSITIVE_INFINITY;
  }
  if (text === undefined) return 0;
  let bytes = text.length;
  // Code units past ASCII take 2 or 3 UTF-8 bytes (a surrogate pair: 4 for its two units).
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) bytes += c >= 0x800 && (c < 0xd800 || c > 0xdfff) ? 2 : 1;
  }
  return bytes;
}

const EXPECTED_TEXT: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "an integer",
  boolean: "true or false",
  object: "an object",
  record: "an object",
  array: "a list",
};

function expectedText(expected: string): string {
  return EXPECTED_TEXT[expected] ?? expected;
}

/** "a" and "b" / "a", "b" or "c" */
function orList(items: readonly string[], quote = true): string {
  const q = items.map((i) => (quote ? JSON.stringify(i) : i));
  if (q.length <= 1) return q.join("");
  return `${q.slice(0, -1).join(", ")} or ${q[q.length - 1]}`;
}

/**
 * Edit distance counting a swap of neighbours as one edit ("prot" -> "port"), the commonest
 * typo; for "did you mean" hints on misspelt keys and kinds.
 */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  // Beyond a third of the word's length the "suggestion" is noise rather than a typo fix.
  return bestD <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

// ---------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------

interface ObjectInfo {
  /** What an unknown key is called in messages ("field", "step kind", "strategy"). */
  noun: string;
  /** Keys that are planned but not accepted yet; the message says so instead of "unknown". */
  notYet?: readonly string[];
}

// Keyed by the object's allowed keys: zod clones a schema on every `.superRefine`/`.meta`, so
// the instance that reports an unknown key is not the one built here, but its shape is.
const objectInfo = new Map<string, ObjectInfo>();
const shapeKey = (keys: readonly string[]) => keys.join("\u0000");

/** A strict object: unknown keys are errors that name the allowed ones. */
function strict<S extends z.ZodRawShape>(
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
function exactlyOne<S extends Record<string, z.ZodType>>(
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

interface NumOpts {
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

function rangeText(o: NumOpts): string {
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
function num(o: NumOpts = {}): z.ZodNumber {
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
function limited(name: LimitName, o: NumOpts = {}): z.ZodNumber {
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
const maxChars = (name: LimitName) => {
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
const str = (name: LimitName = "VALUE_LENGTH") => z.string().max(...maxChars(name));

const nonEmpty = (what = "a non-empty string", limit: LimitName = "NAME_LENGTH") =>
  z
    .string()
    .max(...maxChars(limit))
    .min(1, { error: `must be ${what}, got an empty string` });

/**
 * A list of at most the limit's items. The count is checked before any item is parsed (a
 * refinement of the array would run after all of them), so 150,000 steps cost one comparison.
 */
function capped<T extends z.ZodArray<z.ZodType>>(name: LimitName, noun: string, schema: T) {
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
function cappedRecord<T extends z.ZodType>(name: LimitName, noun: string, schema: T) {
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
const resourceName = z.string().regex(RESOURCE_NAME, {
  error: (iss) =>
    `must be a DNS label: 1..63 characters of lowercase a-z, 0-9 and "-", starting with a letter and not ending with "-"; got ${describeValue(iss.input)}`,
});

/** Version names are templated into commands and file paths, hence the small alphabet. */
export const VERSION_NAME = /^[A-Za-z0-9._-]{1,63}$/;
const versionName = z.string().regex(VERSION_NAME, {
  error: (iss) =>
    `must be a version name: 1..63 characters of A-Z, a-z, 0-9, ".", "_" and "-"; got ${describeValue(iss.input)}`,
});

const metricName = z.string().regex(/^[A-Za-z0-9._-]{1,63}$/, {
  error: (iss) =>
    `must be a name of 1..63 characters of A-Z, a-z, 0-9, ".", "_" and "-"; got ${describeValue(iss.input)}`,
});

/** RFC 9110 token: what header and cookie names may contain. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const token = (what: string, example: string) =>
  str("NAME_LENGTH").regex(TOKEN, {
    error: (iss) => `must be ${what} like "${example}", got ${describeValue(iss.input)}`,
  });

/** A string whose wrong type says how to quote it; at most the limit's length. */
const stringValue = (limit: LimitName) =>
  z
    .string({
      error: (iss) =>
        iss.input === undefined
          ? "is required (a string)"
          : `must be a string, got ${describeValue(iss.input)}${quoteHint(iss.input)}`,
    })
    .max(...maxChars(limit));

const stringMap = (
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
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** Why a label or annotation key is not a Kubernetes qualified name, or null. */
function labelKeyProblem(key: string): string | null {
  const slash = key.indexOf("/");
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)))
    return `prefix must be a DNS subdomain of at most 253 characters (lowercase a-z, 0-9, "-" and ".")`;
  if (!LABEL_NAME.test(name))
    return `must be [prefix/]name, the name 1..63 characters of A-Z, a-z, 0-9, "-", "_" and ".", starting and ending with a letter or digit (Kubernetes label syntax)`;
  return null;
}

const labelKey = z
  .string()
  .max(...maxChars("LABEL_KEY"))
  .superRefine((k, ctx) => {
    const problem = labelKeyProblem(k);
    if (problem !== null) ctx.addIssue({ code: "custom", input: k, message: problem });
  })
  // For editors; the refinement above gives the message.
  .meta({ pattern: `^(${DNS_SUBDOMAIN.source.slice(1, -1)}/)?${LABEL_NAME.source.slice(1)}` });

/** YAML turns `1`, `true` and `1.0` into numbers and booleans; say how to keep them strings. */
function quoteHint(v: unknown): string {
  return typeof v === "number" || typeof v === "boolean"
    ? ` (write it in quotes: "${String(v)}")`
    : "";
}

const DURATION_PATTERN = "^\\s*(\\d+(\\.\\d+)?(ms|s|m|h|d))+\\s*$";

/**
 * A duration ("30s", "1h30m" or seconds) within a limit of the table. The form is checked by
 * each branch, the range once for both, so "100d" and 8640000 get the same message.
 */
const duration = (limit: LimitName, o: { positive?: boolean } = {}) => {
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

const httpUrl = (o: { allowQuery: boolean }) =>
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

const command = capped(
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

// ---------------------------------------------------------------------------------------
// Shared
// ---------------------------------------------------------------------------------------

const apiVersion = z.literal(API_VERSION, {
  error: (iss) => `must be "${API_VERSION}", got ${describeValue(iss.input)}`,
});

const MetadataSchema = strict({
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

// ---------------------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------------------

const ListenSchema = strict({
  port: num({ int: true, min: 1, max: 65535 }).describe("TCP port the router listens on."),
  host: str("PATH_LENGTH")
    .regex(/^[A-Za-z0-9.:[\]-]+$/, {
      error: (iss) =>
        `must be a host name or IP address like "127.0.0.1" or "0.0.0.0", got ${describeValue(iss.input)}`,
    })
    .default("127.0.0.1")
    .describe('Address to listen on; "0.0.0.0" for every interface.'),
});

/**
 * Issues when not exactly one of `keys` is present; for objects that have other fields besides
 * the one-of group (so `exactlyOne` does not fit). Registered with `when` like `exactlyOne`.
 */
function oneOfKeys(keys: readonly string[]) {
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
const oneOfMeta = (keys: readonly string[]) => ({ oneOf: keys.map((k) => ({ required: [k] })) });

const STICKY_SOURCES = ["header", "cookie", "query"] as const;

const StickinessSchema = strict({
  header: token("an HTTP header name", "x-user-id")
    .optional()
    .describe("Sticky key from this request header (its first occurrence)."),
  cookie: token("a cookie name", "session")
    .optional()
    .describe(
      "Sticky key from this cookie; a client without it is issued one (a random id, for a year).",
    ),
  // Only characters that are never percent-encoded, so the raw query string can be searched
  // for the name as is.
  query: str("NAME_LENGTH")
    .regex(/^[A-Za-z0-9._~-]+$/, {
      error: (iss) =>
        `must be a query parameter name of A-Z, a-z, 0-9, ".", "_", "~" and "-" like "user", got ${describeValue(iss.input)}`,
    })
    .optional()
    .describe("Sticky key from this query parameter (form-decoded)."),
  salt: nonEmpty()
    .optional()
    .describe("Hash salt; defaults to the service name. Changing it moves users between versions."),
})
  .superRefine(...oneOfKeys(STICKY_SOURCES))
  .meta(oneOfMeta(STICKY_SOURCES))
  .describe(
    "Where a request's sticky key comes from (exactly one of header, cookie or query), and the hash salt; requests with the same key see the same version.",
  ) as unknown as z.ZodType<StickinessSpec, StickinessSpec>;

const VALUE_MATCHES = ["equals", "regex", "exists"] as const;

/** A regex of a match rule: must compile with RE2 within its bounds (core/regex.ts). */
const userRegex = z.string().superRefine((s, ctx) => {
  const problem = regexProblem(s);
  if (problem !== null) ctx.addIssue({ code: "custom", input: s, message: problem });
});

/** `{ name, equals | regex | exists }` for a header or a cookie. */
const valueMatch = (name: z.ZodType<string>, what: string) =>
  strict({
    name,
    equals: str("VALUE_LENGTH").optional().describe(`The ${what}'s value is exactly this.`),
    regex: userRegex
      .optional()
      .describe(
        `The ${what}'s value matches this regular expression (RE2 syntax, linear-time; searched anywhere unless anchored with ^ or $; values over 16 KiB never match).`,
      ),
    exists: z
      .boolean()
      .optional()
      .describe(`true: the ${what} is present (any value); false: it is absent.`),
  })
    .superRefine(...oneOfKeys(VALUE_MATCHES))
    .meta(oneOfMeta(VALUE_MATCHES)) as unknown as z.ZodType<
    { name: string } & ValueMatch,
    { name: string } & ValueMatch
  >;

const matchConditionShape = {
  header: valueMatch(token("an HTTP header name", "x-beta"), "header")
    .optional()
    .describe("A request header condition; header names are case-insensitive."),
  cookie: valueMatch(token("a cookie name", "tester"), "cookie")
    .optional()
    .describe("A cookie condition; cookie names are case-sensitive."),
  pathPrefix: str("PATH_LENGTH")
    .regex(/^\/[^?#\s]*$/, {
      error: (iss) =>
        `must be a URL path starting with "/", without query, fragment or spaces, like "/beta"; got ${describeValue(iss.input)}`,
    })
    .optional()
    .describe(
      'The URL path starts with this, on whole segments ("/beta" matches "/beta/x", not "/betamax").',
    ),
};

/** A rule must have a condition: one without any would take every request. */
const needsCondition = [
  (
    rule: { header?: unknown; cookie?: unknown; pathPrefix?: unknown },
    ctx: z.core.$RefinementCtx,
  ) => {
    if (rule.header !== undefined || rule.cookie !== undefined || rule.pathPrefix !== undefined)
      return;
    ctx.addIssue({
      code: "custom",
      input: rule,
      message:
        'needs at least one condition ("header", "cookie" or "pathPrefix"); a rule without one would take every request',
    });
  },
  {
    when: (p: z.core.ParsePayload) =>
      isPlainObject(p.value) &&
      !p.issues.some((i) => i.code === "unrecognized_keys" && (i.path?.length ?? 0) === 0),
  },
] as const;

/** The conditions of a setHeaderRoute step (a match rule whose target is the canary). */
const MatchConditionsSchema = strict({ ...matchConditionShape })
  .superRefine(...needsCondition)
  .meta({ anyOf: ["header", "cookie", "pathPrefix"].map((k) => ({ required: [k] })) });

const MatchRuleSchema = strict({
  ...matchConditionShape,
  to: z
    .string()
    .regex(VERSION_NAME, {
      error: (iss) =>
        `must be "canary", "stable" or a version name (1..63 characters of A-Z, a-z, 0-9, ".", "_" and "-"); got ${describeValue(iss.input)}`,
    })
    .describe('Where matching requests go: "canary", "stable" or a version name.'),
})
  .superRefine(...needsCondition)
  .meta({ anyOf: ["header", "cookie", "pathPrefix"].map((k) => ({ required: [k] })) });

const RoutingSchema = strict({
  matches: capped("MATCHES", "rules", z.array(MatchRuleSchema))
    .optional()
    .describe(
      "Rules tried in order before the split; the first whose conditions all hold sends the request to its version. A rule whose version is not running is skipped.",
    ),
  versionOverride: z
    .boolean()
    .optional()
    .describe(
      "Honour a client's x-turnout-version: <version> request header (for testers and previews). Off by default.",
    ),
}).describe("Match rules that pin requests to a version, and the opt-in version override header.");

/** For static runtimes: every `to` of a match rule names a role or a version it knows. */
function checkRoutingTargets(
  spec: { runtime: unknown; routing?: unknown },
  ctx: z.core.$RefinementCtx<{ runtime: unknown; routing?: unknown }>,
): void {
  const runtime = spec.runtime;
  const versions =
    isPlainObject(runtime) && isPlainObject(runtime.static) ? runtime.static.versions : undefined;
  const matches = isPlainObject(spec.routing) ? spec.routing.matches : undefined;
  if (!isPlainObject(versions) || !Array.isArray(matches)) return;
  const known = Object.keys(versions);
  if (known.length === 0) return;
  matches.forEach((rule: unknown, i) => {
    const to = isPlainObject(rule) ? rule.to : undefined;
    // A malformed name is already reported by the field's own check.
    if (typeof to !== "string" || !VERSION_NAME.test(to)) return;
    if (to === "canary" || to === "stable" || known.includes(to)) return;
    ctx.addIssue({
      code: "custom",
      path: ["routing", "matches", i, "to"],
      input: to,
      message: `must be "canary", "stable" or one of the versions of spec.runtime.static.versions (${orList(known)}), got ${describeValue(to)}`,
    });
  });
}

/** An HTTP path for probes and health checks. */
const httpPath = () =>
  str("PATH_LENGTH").regex(/^\//, {
    error: (iss) => `must be an HTTP path starting with "/", got ${describeValue(iss.input)}`,
  });

const TP = DEFAULT_TRAFFIC_POLICY;
const DEFAULT_HEALTH_CHECK = {
  path: "/healthz",
  intervalSeconds: 5,
  timeoutSeconds: 1,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
} as const;

const HealthCheckSchema = strict({
  path: httpPath()
    .default(DEFAULT_HEALTH_CHECK.path)
    .describe("Path checked with GET on every instance; a 2xx or 3xx answer passes."),
  intervalSeconds: limited("PROBE_PERIOD_SECONDS")
    .default(DEFAULT_HEALTH_CHECK.intervalSeconds)
    .describe("Seconds from the end of one check to the start of the next."),
  timeoutSeconds: limited("PROBE_TIMEOUT_SECONDS")
    .default(DEFAULT_HEALTH_CHECK.timeoutSeconds)
    .describe("Seconds before a check counts as failed."),
  healthyThreshold: limited("PROBE_THRESHOLD")
    .default(DEFAULT_HEALTH_CHECK.healthyThreshold)
    .describe("Passing checks in a row that bring an unhealthy instance back."),
  unhealthyThreshold: limited("PROBE_THRESHOLD")
    .default(DEFAULT_HEALTH_CHECK.unhealthyThreshold)
    .describe("Failing checks in a row that take an instance out of the balancing."),
});

const OutlierDetectionSchema = strict({
  consecutiveFailures: limited("CONSECUTIVE_FAILURES")
    .default(TP.outlierDetection.consecutiveFailures)
    .describe("Connect errors or 5xx in a row that eject an instance."),
  ejectionSeconds: limited("EJECTION_SECONDS")
    .default(TP.outlierDetection.ejectionSeconds)
    .describe(
      "How long an ejected instance is skipped; doubles for each ejection that follows soon after (at most 300 s).",
    ),
  maxEjectionPercent: num({ min: 0, max: 100 })
    .default(TP.outlierDetection.maxEjectionPercent)
    .describe(
      "At most this percent of a version's instances are ejected at once (at least one; 0 turns ejection off).",
    ),
});

const TrafficPolicySchema = strict({
  loadBalancing: z
    .enum(["leastRequest", "roundRobin"], {
      error: (iss) => `must be "leastRequest" or "roundRobin", got ${describeValue(iss.input)}`,
    })
    .default(TP.loadBalancing)
    .describe(
      "How a version's instances share its requests: fewest requests in flight, or in turn.",
    ),
  healthCheck: HealthCheckSchema.optional().describe(
    "Active health checks of every instance; off when absent ({} for the defaults).",
  ),
  outlierDetection: OutlierDetectionSchema.default(() => ({ ...TP.outlierDetection })).describe(
    "Passive ejection of instances that fail requests.",
  ),
  retries: strict({
    attempts: limited("RETRY_ATTEMPTS")
      .default(TP.retries.attempts)
      .describe("Retries of one request (0 turns them off)."),
  })
    .default(() => ({ ...TP.retries }))
    .describe(
      "Idempotent requests without a body are retried on connect errors only, on another instance.",
    ),
  timeouts: strict({
    requestHeadersSeconds: limited("REQUEST_HEADERS_TIMEOUT_SECONDS")
      .default(TP.timeouts.requestHeadersSeconds)
      .describe("Time a client may take to send its request headers (then 408)."),
    idleSeconds: limited("IDLE_TIMEOUT_SECONDS")
      .default(TP.timeouts.idleSeconds)
      .describe("Keep-alive idle time of client connections."),
    upstreamSeconds: limited("UPSTREAM_TIMEOUT_SECONDS")
      .default(TP.timeouts.upstreamSeconds)
      .describe("Time an instance may take to send its response headers (then 504)."),
  })
    .default(() => ({ ...TP.timeouts }))
    .describe("Client and upstream timeouts."),
  maxRequestBodyBytes: limited("REQUEST_BODY_BYTES")
    .default(TP.maxRequestBodyBytes)
    .describe("Largest request body accepted (then 413)."),
}).describe("How the router balances, health-checks, retries and times out; defaults apply.");

const StaticRuntimeSchema = strict({
  versions: cappedRecord(
    "VERSIONS",
    "versions",
    z
      .record(
        versionName,
        strict({
          upstreams: capped(
            "UPSTREAMS",
            "upstreams",
            z
              .array(httpUrl({ allowQuery: false }))
              .min(1, { error: "must list at least one upstream URL, got an empty list" }),
          ).describe("Base URLs of the version's instances, e.g. http://127.0.0.1:9001."),
        }),
      )
      .superRefine((v, ctx) => {
        if (Object.keys(v).length === 0)
          ctx.addIssue({
            code: "custom",
            input: v,
            message:
              'must list at least one version, e.g. v1: { upstreams: ["http://127.0.0.1:9001"] }; got none',
          });
      })
      .meta({ minProperties: 1 }),
  ).describe("Each version by name, with the URLs where it runs."),
});

const DEFAULT_READINESS = {
  path: "/healthz",
  periodSeconds: 1,
  timeoutSeconds: 1,
  initialDelaySeconds: 0,
} as const;

const ProbeSchema = strict({
  path: httpPath()
    .default(DEFAULT_READINESS.path)
    .describe("Path probed with GET; any 2xx or 3xx answer means ready."),
  periodSeconds: limited("PROBE_PERIOD_SECONDS")
    .default(DEFAULT_READINESS.periodSeconds)
    .describe("Seconds between probes."),
  timeoutSeconds: limited("PROBE_TIMEOUT_SECONDS")
    .default(DEFAULT_READINESS.timeoutSeconds)
    .describe("Seconds before a probe counts as failed."),
  initialDelaySeconds: limited("PROBE_DELAY_SECONDS")
    .default(DEFAULT_READINESS.initialDelaySeconds)
    .describe("Seconds after start before the first probe."),
});

const LivenessSchema = strict({
  path: httpPath().default("/healthz").describe("Path probed with GET; 2xx or 3xx is alive."),
  periodSeconds: limited("PROBE_PERIOD_SECONDS").default(10).describe("Seconds between probes."),
  timeoutSeconds: limited("PROBE_TIMEOUT_SECONDS")
    .default(1)
    .describe("Seconds before a probe counts as failed."),
  failureThreshold: limited("PROBE_THRESHOLD")
    .default(3)
    .describe("Consecutive failed probes that restart the instance."),
});

const RP = DEFAULT_RESTART_POLICY;
const RestartPolicySchema = strict({
  initialBackoffSeconds: limited("BACKOFF_SECONDS")
    .default(RP.initialBackoffSeconds)
    .describe("Delay before the first restart; it doubles after each further crash."),
  maxBackoffSeconds: limited("BACKOFF_SECONDS")
    .default(RP.maxBackoffSeconds)
    .describe("Longest delay between restarts."),
  resetAfterSeconds: limited("BACKOFF_SECONDS")
    .default(RP.resetAfterSeconds)
    .describe("A run this long without a crash resets the delay to its first value."),
  failureThreshold: limited("PROBE_THRESHOLD")
    .default(RP.failureThreshold)
    .describe(
      "Consecutive crashes without becoming ready after which the instance is reported failed (it keeps being restarted).",
    ),
});

const ProcessLogsSchema = strict({
  maxBytes: limited("LOG_FILE_BYTES")
    .default(DEFAULT_PROCESS_LOGS.maxBytes)
    .describe("Size in bytes at which an instance's log file is rotated."),
  maxFiles: limited("LOG_FILES")
    .default(DEFAULT_PROCESS_LOGS.maxFiles)
    .describe("Log files kept per instance, the current one included."),
});

const envSchema = stringMap('environment variable names must not be empty or contain "="', {
  entries: "ENV",
  noun: "variables",
  value: "TEXT_LENGTH",
});

const ProcessRuntimeSchema = strict({
  command: command.describe(
    "argv of each instance; ${version}, ${port} and ${instance} are replaced in each element.",
  ),
  cwd: nonEmpty("a directory", "PATH_LENGTH")
    .optional()
    .describe("Working directory of the instances."),
  env: envSchema
    .optional()
    .describe("Environment of every instance, templated like command; PORT is always set."),
  replicas: limited("REPLICAS").default(1).describe("Instances per version."),
  // A function default: each parse gets its own object, so callers may mutate the result.
  readiness: ProbeSchema.default(() => ({ ...DEFAULT_READINESS })).describe(
    "HTTP readiness probe, for the instance's whole life: it takes traffic once the probe passes, and none after 3 failures in a row until it passes again.",
  ),
  startupTimeoutSeconds: limited("STARTUP_TIMEOUT_SECONDS")
    .default(60)
    .describe("Seconds an instance may take to become ready before it counts as failed."),
  terminationGracePeriodSeconds: limited("DELAY_SECONDS")
    .default(10)
    .describe("Seconds between SIGTERM and SIGKILL when an instance stops."),
  versions: cappedRecord(
    "VERSIONS",
    "versions",
    z.record(versionName, strict({ command: command.optional(), env: envSchema.optional() })),
  )
    .optional()
    .describe("Per-version overrides: another command, or env merged over the common env."),
  liveness: LivenessSchema.optional().describe(
    "HTTP liveness probe, from the first time an instance is ready; failing it restarts the instance.",
  ),
  drainSeconds: limited("DELAY_SECONDS")
    .default(DEFAULT_DRAIN_SECONDS)
    .describe(
      "Seconds a stopping instance keeps running after it leaves the route table, before SIGTERM; must exceed the time routers take to swap tables.",
    ),
  restartPolicy: RestartPolicySchema.default(() => ({ ...DEFAULT_RESTART_POLICY })).describe(
    "Restarts after a crash, with exponential back-off (as Kubernetes' CrashLoopBackOff).",
  ),
  logs: ProcessLogsSchema.default(() => ({ ...DEFAULT_PROCESS_LOGS })).describe(
    "Each instance's stdout and stderr go to <dataDir>/logs/<service>/<version>-<instance>.log, rotated by size.",
  ),
});

const RuntimeSchema = exactlyOne({
  static: StaticRuntimeSchema.describe("Versions run elsewhere, at URLs you give."),
  process: ProcessRuntimeSchema.describe(
    "Turnout starts, probes, drains and stops local processes.",
  ),
}).describe("Where instances run (exactly one).");

const PauseStepSchema = strict({
  duration: duration("PAUSE")
    .optional()
    .describe('How long to wait ("30s", "5m", "1h30m" or seconds); without it, until promoted.'),
});

const analysisRefShape = {
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

// ---- A/B experiments (src/core/experiment/, src/core/steps/experiment.ts) --------------

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

const ExperimentStepSchema = strict({ ...experimentShape });

const AbTestStrategySchema = strict({
  ...experimentShape,
  abortScaleDownDelaySeconds: limited("DELAY_SECONDS")
    .optional()
    .describe("After a loss, the candidate keeps running this long without traffic (default 30)."),
});

/**
 * The body schema of every step kind, by its key (`src/core/steps/`): a new kind adds one
 * entry here. A step is exactly one of these keys.
 */
const { ShadowStepSchema, MirrorRouteStepSchema } = shadowSchemas({
  strict,
  num,
  limited,
  capped,
  str,
  duration: () => duration("PAUSE"),
  match: MatchConditionsSchema,
});

/** Kubernetes' intOrString for surge/unavailable: a whole number or a percent ("25%"). */
function intOrPercent(what: string) {
  return z
    .union([limited("SURGE"), z.templateLiteral([z.number().min(0).max(100), "%"])], {
      error: `${what} must be a whole number or a percent of the replicas like "25%"`,
    })
    .describe(`${what}: a whole number, or a percent of the replicas ("25%").`);
}

const RollingShape = {
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

const STEP_SCHEMAS = {
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
};

const RolloutStepSchema = exactlyOne(STEP_SCHEMAS, { noun: "step kind" }).describe(
  `One step: exactly one of ${Object.keys(STEP_SCHEMAS).join(", ")}.`,
);

const CanaryStrategySchema = strict({
  steps: capped("STEPS", "steps", z.array(RolloutStepSchema)).describe(
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
      "Blue-green with feature flags: setFlag, analysis and pause steps run after the switch; a failed analysis turns the flags off and switches back.",
    ),
});

const RollingStrategySchema = strict({
  maxSurge: RollingShape.maxSurge.unwrap().optional(),
  maxUnavailable: RollingShape.maxUnavailable.unwrap().optional(),
  minReadySeconds: RollingShape.minReadySeconds.unwrap().optional(),
  progressDeadlineSeconds: RollingShape.progressDeadlineSeconds.unwrap().optional(),
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

const StrategySchema = exactlyOne(
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

const ServiceSpecSchema = strict({
  listen: ListenSchema.describe("Where the router listens for this service's users."),
  stickiness: StickinessSchema.optional(),
  routing: RoutingSchema.optional(),
  trafficPolicy: TrafficPolicySchema.optional(),
  runtime: RuntimeSchema,
  version: versionName.describe("The desired version; changing it starts a rollout."),
  strategy: StrategySchema.optional(),
  flags: capped("SERVICE_FLAGS", "flags", z.array(resourceName))
    .optional()
    .describe(
      "Flags the router evaluates per request (targeting key: the sticky key); results go upstream in x-turnout-flags and label measurements.",
    ),
})
  .superRefine(
    (spec, ctx) => {
      // The desired version of a static service must be one it knows the upstreams of.
      const runtime: unknown = spec.runtime;
      const versions =
        isPlainObject(runtime) && isPlainObject(runtime.static)
          ? runtime.static.versions
          : undefined;
      if (!isPlainObject(versions) || typeof spec.version !== "string") return;
      const known = Object.keys(versions);
      if (known.length === 0 || known.includes(spec.version)) return;
      ctx.addIssue({
        code: "custom",
        path: ["version"],
        input: spec.version,
        message: `must be one of the versions of spec.runtime.static.versions (${orList(known)}), got ${describeValue(spec.version)}`,
      });
    },
    // Checked even when other fields are wrong, so that all errors come at once.
    { when: (p) => isPlainObject(p.value) },
  )
  .superRefine(checkRoutingTargets, { when: (p) => isPlainObject(p.value) });

export const ServiceSchema = strict({
  apiVersion,
  kind: z.literal("Service"),
  metadata: MetadataSchema,
  spec: ServiceSpecSchema,
}).meta({
  title: "Service",
  description: "A service users call, and how new versions of it roll out.",
});

// ---------------------------------------------------------------------------------------
// AnalysisTemplate
// ---------------------------------------------------------------------------------------

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
    .describe("A metric the router measures per version itself."),
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

const JudgeSchema = exactlyOne({
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
}).describe("How the value is judged: pass, fail or inconclusive (exactly one).");

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
});

/** Issues for repeated `name`s in a list, at the later occurrence. */
function uniqueNames(what: string, list: string) {
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

// ---------------------------------------------------------------------------------------
// Flag and Segment (evaluated by src/core/flags)
// ---------------------------------------------------------------------------------------

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

const FlagConditionSchema = strict({
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

export const SegmentSchema = strict({
  apiVersion,
  kind: z.literal("Segment"),
  metadata: MetadataSchema,
  spec: strict({
    included: capped("SEGMENT_KEYS", "keys", z.array(str("VALUE_LENGTH")))
      .optional()
      .describe("targetingKeys that always belong."),
    excluded: capped("SEGMENT_KEYS", "keys", z.array(str("VALUE_LENGTH")))
      .optional()
      .describe("targetingKeys that never belong (wins)."),
    conditions: capped("CONDITIONS", "conditions", z.array(FlagConditionSchema))
      .optional()
      .describe("Contexts meeting all belong."),
    description: str("TEXT_LENGTH").optional(),
  }),
}).meta({ title: "Segment", description: "A named set of contexts that Flag rules share." });

export const SCHEMAS = {
  Service: ServiceSchema,
  AnalysisTemplate: AnalysisTemplateSchema,
  Flag: FlagSchema,
  Segment: SegmentSchema,
} as const satisfies Record<Resource["kind"], z.ZodType>;

// Compile-time: what the schemas produce is the model, and the model passes the schemas (so a
// stored resource can be validated again). A drift fails `tsc` here, not at runtime elsewhere.
// The model lets `strategy` be `{}` (room for strategies to come); the schema wants one key.
type Assignable<A, B> = [A] extends [B] ? true : false;
true satisfies Assignable<z.output<typeof ServiceSchema>, ServiceResource>;
true satisfies Assignable<
  ServiceResource & { spec: { strategy?: { canary: CanaryStrategySpec } } },
  z.input<typeof ServiceSchema>
>;
true satisfies Assignable<z.output<typeof AnalysisTemplateSchema>, AnalysisTemplateResource>;
true satisfies Assignable<AnalysisTemplateResource, z.input<typeof AnalysisTemplateSchema>>;
true satisfies Assignable<z.output<typeof FlagSchema>, FlagResource>;
true satisfies Assignable<z.output<typeof SegmentSchema>, SegmentResource>;

// ---------------------------------------------------------------------------------------
// Validation of one document
// ---------------------------------------------------------------------------------------

export type PathSegment = string | number;

/** One problem in one document; `atKey` when the position is the key itself (unknown keys). */
export interface DocumentIssue {
  path: PathSegment[];
  message: string;
  atKey?: boolean;
}

export interface DocumentResult {
  resource?: Resource;
  /** "Service/fraud-model" when kind and name are strings, even if invalid. */
  label?: string;
  issues: DocumentIssue[];
}

/** `spec.strategy.canary.steps[2].setWeight`; odd keys in brackets: `versions["1.0"]`. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function issueMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case "invalid_type": {
      const expected = expectedText(String(iss.expected));
      if (iss.input === undefined) return `is required (${expected})`;
      return `must be ${expected}, got ${describeValue(iss.input)}${iss.expected === "string" ? quoteHint(iss.input) : ""}`;
    }
    case "invalid_value": {
      const values = iss.values.map((v) => String(v));
      return `must be ${values.length > 2 ? "one of " : ""}${orList(values)}, got ${describeValue(iss.input)}`;
    }
    case "too_small":
      if (iss.origin === "array")
        return `must have at least ${iss.minimum} item(s), got ${(iss.input as unknown[]).length}`;
      if (iss.origin === "string") return "must not be empty";
      return `must be >= ${iss.minimum}, got ${describeValue(iss.input)}`;
    case "too_big":
      if (iss.origin === "array")
        return `must have at most ${iss.maximum} item(s), got ${(iss.input as unknown[]).length}`;
      return `must be <= ${iss.maximum}, got ${describeValue(iss.input)}`;
    case "invalid_union":
      return `does not match any allowed form, got ${describeValue(iss.input)}`;
    default:
      return undefined;
  }
}

function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const info = objectInfo.get(shapeKey(allowed)) ?? { noun: "field" };
  if (info.notYet?.includes(key))
    return `${info.noun} "${key}" is not supported yet; supported: ${allowed.join(", ")}`;
  const guess = closest(key, allowed);
  return `unknown ${info.noun} "${key}"; allowed: ${allowed.join(", ")}${guess ? ` (did you mean "${guess}"?)` : ""}`;
}

/**
 * Validates one parsed document (any JSON value) as a resource. Never throws; every problem
 * found is in `issues`, with the path of the field it concerns.
 */
export function validateDocument(value: unknown): DocumentResult {
  if (!isPlainObject(value)) {
    return {
      issues: [
        {
          path: [],
          message: `must be an object with apiVersion, kind, metadata and spec; got ${describeValue(value)}`,
        },
      ],
    };
  }
  const kind = value.kind;
  const name = isPlainObject(value.metadata) ? value.metadata.name : undefined;
  const label =
    typeof kind === "string" && typeof name === "string" ? `${kind}/${name}` : undefined;

  if (!RESOURCE_KINDS.includes(kind as Resource["kind"])) {
    const issues: DocumentIssue[] = [];
    if (value.apiVersion !== API_VERSION)
      issues.push({
        path: ["apiVersion"],
        message: `must be "${API_VERSION}", got ${describeValue(value.apiVersion)}`,
      });
    const guess = typeof kind === "string" ? closest(kind, RESOURCE_KINDS) : undefined;
    issues.push({
      path: ["kind"],
      message:
        kind === undefined
          ? `is required; known kinds: ${RESOURCE_KINDS.join(", ")}`
          : `unknown kind ${describeValue(kind)}; known kinds: ${RESOURCE_KINDS.join(", ")}${guess ? ` (did you mean "${guess}"?)` : ""}`,
    });
    return { ...(label ? { label } : {}), issues };
  }

  // Before the schema, so an oversized document costs one serialization, not a full parse.
  const bytes = jsonBytes(value);
  if (bytes > LIMITS.DOCUMENT_BYTES.max) {
    return {
      ...(label ? { label } : {}),
      issues: [
        {
          path: [],
          message:
            bytes === Number.POSITIVE_INFINITY
              ? "is nested too deeply to store"
              : `must be at most ${LIMITS.DOCUMENT_BYTES.max} bytes as JSON (1 MiB), got ${bytes}`,
        },
      ],
    };
  }

  const schema: z.ZodType = SCHEMAS[kind as Resource["kind"]];
  // Allowed keys of each object with unknown keys, by path; the finalized issue no longer
  // carries the schema, so they are captured while zod still has it.
  const allowedAt = new Map<string, string[]>();
  const result = schema.safeParse(value, {
    error: (iss) => {
      if (iss.code === "unrecognized_keys") {
        const shape = (iss.inst as { _zod?: { def?: { shape?: object } } } | undefined)?._zod?.def
          ?.shape;
        allowedAt.set(JSON.stringify(iss.path ?? []), shape ? Object.keys(shape) : []);
        return "unknown field";
      }
      return issueMessage(iss);
    },
  });
  if (result.success)
    return { resource: result.data as Resource, ...(label ? { label } : {}), issues: [] };

  const issues: DocumentIssue[] = [];
  const seen = new Set<string>();
  const add = (i: DocumentIssue) => {
    // int/min/max checks of one number share a message; say it once.
    const k = `${JSON.stringify(i.path)} ${i.message}`;
    if (seen.has(k)) return;
    seen.add(k);
    issues.push(i);
  };
  for (const iss of result.error.issues) {
    const path = iss.path.filter((p): p is PathSegment => typeof p !== "symbol");
    if (iss.code === "unrecognized_keys") {
      const allowed = allowedAt.get(JSON.stringify(iss.path)) ?? [];
      for (const key of iss.keys)
        add({ path: [...path, key], message: unknownKeyMessage(key, allowed), atKey: true });
    } else if (iss.code === "invalid_key") {
      const inner = iss.issues.map((i) => i.message).join("; ");
      add({
        path,
        message: `invalid key ${describeValue(path[path.length - 1])}: ${inner}`,
        atKey: true,
      });
    } else {
      add({ path, message: iss.message });
    }
  }
  return { ...(label ? { label } : {}), issues };
}

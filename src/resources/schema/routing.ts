/**
 * A Service's stickiness (where a request's sticky key comes from), match rules (header,
 * cookie, path prefix -> version) and the version override header.
 */
import { z } from "zod";
import type { StickinessSpec, ValueMatch } from "../../core/model.js";
import { regexProblem } from "../../core/regex.js";
import {
  capped,
  nonEmpty,
  oneOfKeys,
  oneOfMeta,
  str,
  strict,
  token,
  VERSION_NAME,
} from "./blocks.js";
import { describeValue, isPlainObject, orList } from "./messages.js";

const STICKY_SOURCES = ["header", "cookie", "query"] as const;

export const StickinessSchema = strict({
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
export const MatchConditionsSchema = strict({ ...matchConditionShape })
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

export const RoutingSchema = strict({
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
export function checkRoutingTargets(
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

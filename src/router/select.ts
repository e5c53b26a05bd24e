/**
 * Which version serves a request. For each request, in order (the first step that decides wins):
 *
 * 1. Override. When the table has `versionOverride` and the request carries
 *    `x-turnout-version: <v>` naming a version with at least one endpoint, that version (weight
 *    0 included, for previews). Any other value is ignored and selection goes on.
 * 2. Match rules, in table order: the first rule whose conditions all hold picks its version.
 *    Conditions: a header (name case-insensitive; its first occurrence) or a cookie that
 *    `equals` a string, matches a `regex` (RE2 syntax, searched anywhere; linear time; values
 *    over 16 KiB never match, see core/regex.ts) or `exists` (true: present, false: absent); `pathPrefix` on the
 *    URL path, on whole segments ("/beta" matches "/beta", "/beta/" and "/beta/x", never
 *    "/betamax"), compared as sent (no percent-decoding). A rule whose version has no endpoints
 *    is skipped, so requests fall through to the next steps.
 * 3. Sticky assignment. When the table has `stickiness` and the request carries its key (the
 *    header's first occurrence; the cookie; the query parameter, form-decoded), bucket =
 *    `bucketOf(salt, key, hashVersion)` (core/hashing.ts) and the version whose bucket range
 *    holds it: backends in table order own consecutive ranges of weight × 10,000 buckets,
 *    canary first, so the users on a canary stay on it as its weight grows and only new
 *    buckets move over. An empty key counts as no key. If the owner has no endpoints now, the
 *    request takes step 4 (and its key comes back once the owner is ready).
 * 4. The weighted split: smooth weighted round-robin (table.ts), exact over every 10,000 picks.
 *
 * Cookie stickiness: a request without the cookie (or with an empty one) gets a new id
 * (`crypto.randomUUID()`), used as this request's key, so its first request already lands
 * where the following ones will; `out.setCookie` then holds the `Set-Cookie` value
 * (`<name>=<id>; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax`) for the response. This
 * happens whichever step picks the version, so a tester pinned by a rule is still sticky after.
 *
 * Cost: a table without selection features goes straight to SWRR. Otherwise one scan of the
 * raw header list per header needed (names compared without lower-casing), a cookie parse only
 * when a rule or the stickiness reads cookies, a 32-bit hash computed without allocating, and
 * a linear search of the (two or three) ranges. The only per-request allocations are the
 * substrings of a cookie or query value and, once per client, the issued cookie.
 */
import { randomUUID } from "node:crypto";
import { cookieValue, headerValue, pathHasPrefix, queryValue } from "./request.js";
import { pickBackend } from "./table.js";
import {
  CONDITION_EQUALS,
  CONDITION_EXISTS,
  type CompiledBackend,
  type CompiledCondition,
  type CompiledMatch,
  ISSUED_COOKIE_ATTRIBUTES,
  type RequestFacts,
  type SelectableRequest,
  type StickyKeySpec,
  type TableCore,
} from "./types.js";

export { cookieValue, headerValue, pathHasPrefix, queryValue } from "./request.js";
export type { SelectableRequest } from "./types.js";

/** The request header a client may send to ask for a version when the table allows it. */
export const VERSION_OVERRIDE_HEADER = "x-turnout-version";

/**
 * What `selectBackend` reports besides the version: a newly issued sticky cookie (`setCookie`)
 * and the sticky key it read (`stickyKey`, `stickyKnown`), which later steps reuse rather than
 * read again. One object can serve every request of a router: each call overwrites it, so read
 * it before handling the next request.
 */
export type SelectOutput = Pick<RequestFacts, "setCookie" | "stickyKey" | "stickyKnown">;

/**
 * Picks the version for a request (see the module comment for the rules); null when no version
 * can take it. Synchronous and allocation-light: it runs once per request.
 *
 * @example
 * const out: SelectOutput = { setCookie: null };
 * const backend = selectBackend(table, req, out);
 * if (out.setCookie !== null) headers.push("set-cookie", out.setCookie);
 */
export function selectBackend(
  table: TableCore,
  req: SelectableRequest,
  out: SelectOutput,
): CompiledBackend | null {
  out.setCookie = null;
  out.stickyKnown = false;
  const sel = table.selection;
  if (sel === null) return pickBackend(table);
  const raw = req.rawHeaders;
  const sticky = sel.sticky;

  // The sticky key first: issuing a cookie does not depend on which step picks the version.
  let key: string | undefined;
  if (sticky !== null) {
    key = stickyKeyOf(sticky, req, out, true);
    out.stickyKey = key;
    out.stickyKnown = true;
  }

  // 1. Override.
  if (sel.versionOverride) {
    const v = headerValue(raw, VERSION_OVERRIDE_HEADER);
    if (v !== undefined) {
      const b = table.byVersion.get(v);
      if (b !== undefined) return b;
    }
  }

  // 2. Match rules.
  const matches = sel.matches;
  for (let i = 0; i < matches.length; i++) {
    const m = matches[i]!;
    if (ruleHolds(m, req, raw)) return m.backend;
  }

  // 3. Sticky ranges.
  if (sticky !== null && key !== undefined && key.length > 0) {
    const bucket = sticky.bucket(sticky.salt, key);
    const ends = sticky.ends;
    for (let i = 0; i < ends.length; i++) {
      if (bucket < ends[i]!) {
        const owner = sticky.owners[i]!;
        if (owner !== null) return owner;
        break;
      }
    }
  }

  // 4. The weighted split.
  return pickBackend(table);
}

/**
 * A request's sticky key (an empty one counts as none). With `issue`, a request without the
 * cookie of cookie stickiness gets a new id (a random UUID), and `out.setCookie` the cookie.
 */
export function stickyKeyOf(
  spec: StickyKeySpec,
  req: SelectableRequest,
  out: Pick<RequestFacts, "setCookie">,
  issue: boolean,
): string | undefined {
  let key: string | undefined;
  if (spec.source === "header") key = headerValue(req.rawHeaders, spec.name);
  else if (spec.source === "query") key = queryValue(req.url, spec.name);
  else {
    key = cookieValue(req.rawHeaders, spec.name);
    if ((key === undefined || key.length === 0) && issue) {
      key = randomUUID();
      out.setCookie = spec.cookiePrefix + key + ISSUED_COOKIE_ATTRIBUTES;
    }
  }
  return key === undefined || key.length === 0 ? undefined : key;
}

function ruleHolds(m: CompiledMatch, req: SelectableRequest, raw: string[]): boolean {
  if (m.pathPrefix !== null && !pathHasPrefix(req.url, m.pathPrefix)) return false;
  if (m.header !== null && !conditionHolds(m.header, headerValue(raw, m.header.name))) {
    return false;
  }
  if (m.cookie !== null && !conditionHolds(m.cookie, cookieValue(raw, m.cookie.name))) {
    return false;
  }
  return true;
}

function conditionHolds(c: CompiledCondition, value: string | undefined): boolean {
  if (c.kind === CONDITION_EXISTS) return (value !== undefined) === c.exists;
  if (value === undefined) return false;
  if (c.kind === CONDITION_EQUALS) return value === c.equals;
  return c.regex!.test(value);
}

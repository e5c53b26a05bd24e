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
import type { IncomingMessage } from "node:http";
import {
  CONDITION_EQUALS,
  CONDITION_EXISTS,
  type CompiledBackend,
  type CompiledCondition,
  type CompiledMatch,
  type CompiledTable,
  ISSUED_COOKIE_ATTRIBUTES,
  pickBackend,
} from "./table.js";

/** The request header a client may send to ask for a version when the table allows it. */
export const VERSION_OVERRIDE_HEADER = "x-turnout-version";

/** What selection reads of a request: `IncomingMessage` fits. */
export type SelectableRequest = Pick<IncomingMessage, "rawHeaders" | "url">;

/**
 * What `selectBackend` reports besides the version. One object can serve every request of a
 * router: each call overwrites it, so read it before handling the next request.
 */
export interface SelectOutput {
  /** A `Set-Cookie` value for the response (a newly issued sticky cookie), or null. */
  setCookie: string | null;
}

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
  table: CompiledTable,
  req: SelectableRequest,
  out: SelectOutput,
): CompiledBackend | null {
  out.setCookie = null;
  const sel = table.selection;
  if (sel === null) return pickBackend(table);
  const raw = req.rawHeaders;
  const sticky = sel.sticky;

  // The sticky key first: issuing a cookie does not depend on which step picks the version.
  let key: string | undefined;
  if (sticky !== null) {
    if (sticky.source === "header") key = headerValue(raw, sticky.name);
    else if (sticky.source === "cookie") {
      key = cookieValue(raw, sticky.name);
      if (key === undefined || key.length === 0) {
        key = randomUUID();
        out.setCookie = sticky.cookiePrefix + key + ISSUED_COOKIE_ATTRIBUTES;
      }
    } else key = queryValue(req.url, sticky.name);
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

/** Whether `raw` (any case) is `lower` (lower-case), without allocating a lower-cased copy. */
function sameName(raw: string, lower: string): boolean {
  if (raw === lower) return true;
  const n = lower.length;
  if (raw.length !== n) return false;
  for (let i = 0; i < n; i++) {
    let c = raw.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** The first value of a header in Node's raw [name, value, ...] list. */
export function headerValue(raw: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (sameName(raw[i]!, lowerName)) return raw[i + 1];
  }
  return undefined;
}

/**
 * A cookie's value from the request's Cookie header(s) (RFC 6265 §5.4 form: `a=1; b=2`): the
 * first pair with this exact name, surrounding whitespace and double quotes removed.
 */
export function cookieValue(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (!sameName(raw[i]!, "cookie")) continue;
    const v = findCookie(raw[i + 1]!, name);
    if (v !== undefined) return v;
  }
  return undefined;
}

function findCookie(header: string, name: string): string | undefined {
  const n = header.length;
  let at = 0;
  while (at < n) {
    let c = header.charCodeAt(at);
    while (c === 32 || c === 9) c = header.charCodeAt(++at);
    let end = header.indexOf(";", at);
    if (end < 0) end = n;
    const eq = at + name.length;
    if (eq < end && header.charCodeAt(eq) === 61 /* = */ && header.startsWith(name, at)) {
      let from = eq + 1;
      let to = end;
      while (to > from && isSpace(header.charCodeAt(to - 1))) to--;
      while (from < to && isSpace(header.charCodeAt(from))) from++;
      if (to - from >= 2 && header.charCodeAt(from) === 34 && header.charCodeAt(to - 1) === 34) {
        from++;
        to--;
      }
      return header.slice(from, to);
    }
    at = end + 1;
  }
  return undefined;
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * A query parameter's value from a request target (first occurrence), form-decoded ("+" is a
 * space, %XX escapes; a malformed escape leaves the value as sent). `name` must be made of
 * characters that are never escaped (the schema allows only those).
 */
export function queryValue(url: string | undefined, name: string): string | undefined {
  if (url === undefined) return undefined;
  const q = url.indexOf("?");
  if (q < 0) return undefined;
  let n = url.indexOf("#", q);
  if (n < 0) n = url.length;
  let at = q + 1;
  while (at < n) {
    let end = url.indexOf("&", at);
    if (end < 0 || end > n) end = n;
    const after = at + name.length;
    if (after <= end && url.startsWith(name, at)) {
      if (after === end) return "";
      if (url.charCodeAt(after) === 61 /* = */) return formDecode(url.slice(after + 1, end));
    }
    at = end + 1;
  }
  return undefined;
}

function formDecode(v: string): string {
  if (v.indexOf("%") < 0 && v.indexOf("+") < 0) return v;
  try {
    return decodeURIComponent(v.replaceAll("+", " "));
  } catch {
    return v;
  }
}

/** Whether the path of a request target starts with `prefix` on a segment boundary. */
export function pathHasPrefix(url: string | undefined, prefix: string): boolean {
  if (url === undefined || url.length === 0) return prefix === "/";
  let start = 0;
  if (url.charCodeAt(0) !== 47 /* / */) {
    // Absolute form ("http://host/path"): the path starts at the first "/" after the authority.
    const scheme = url.indexOf("://");
    if (scheme < 0) return false;
    start = url.indexOf("/", scheme + 3);
    if (start < 0) return prefix === "/";
  }
  if (!url.startsWith(prefix, start)) return false;
  if (prefix.charCodeAt(prefix.length - 1) === 47) return true;
  const next = start + prefix.length;
  if (next === url.length) return true;
  const c = url.charCodeAt(next);
  return c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */;
}

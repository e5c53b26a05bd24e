/**
 * Reading a request without parsing it: a header's first value from Node's raw header list,
 * a cookie, a query parameter, a path prefix. Used per request by the selection and by the
 * features (experiments, edge flags, the mirror's match), so they allocate nothing but the
 * substrings they return.
 */

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

/**
 * JSON as the store writes it. Resources are compared by their stored text, so the text must
 * not depend on the order in which a YAML file or a client happened to list keys.
 */

/**
 * JSON with object keys sorted at every level, so equal content gives equal text.
 * Throws (rather than silently writing something else) on values JSON cannot represent
 * faithfully: BigInt (JSON.stringify throws a TypeError itself), NaN and ±Infinity (which
 * JSON.stringify would turn into `null`), and a top-level value with no JSON form.
 *
 * @example canonicalJson({ b: 1, a: { d: 2, c: 3 } }) === '{"a":{"c":3,"d":2},"b":1}'
 */
export function canonicalJson(value: unknown): string {
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "number" && !Number.isFinite(v)) {
      throw new TypeError(`cannot store ${v} as JSON`);
    }
    return isPlainObject(v) ? sortKeys(v) : v;
  });
  if (text === undefined)
    throw new TypeError(`cannot store a value of type ${typeof value} as JSON`);
  return text;
}

/** Parses a JSON column written by `canonicalJson`. */
export function parseJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  // Object.fromEntries defines own data properties, so a "__proto__" key stays a plain key.
  // Integer-like keys still come first in ascending order (a property of JS objects), which
  // is as deterministic as lexical order and so just as canonical.
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k]]),
  );
}

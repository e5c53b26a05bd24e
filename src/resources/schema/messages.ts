/**
 * How values, lists and paths read in validation messages, and the "did you mean" guess for
 * misspelt keys and kinds. No zod here: `validate.ts` and the building blocks use these.
 */

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

export function expectedText(expected: string): string {
  return EXPECTED_TEXT[expected] ?? expected;
}

/** "a" and "b" / "a", "b" or "c" */
export function orList(items: readonly string[], quote = true): string {
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

/** YAML turns `1`, `true` and `1.0` into numbers and booleans; say how to keep them strings. */
export function quoteHint(v: unknown): string {
  return typeof v === "number" || typeof v === "boolean"
    ? ` (write it in quotes: "${String(v)}")`
    : "";
}

export type PathSegment = string | number;

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

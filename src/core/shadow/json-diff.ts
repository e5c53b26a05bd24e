/**
 * JSON deep diff for shadow comparison: the paths where two documents differ, with ignored
 * paths and a numeric tolerance. Paths are JSONPath-like (`$.a.b[3]["odd key"]`); patterns may
 * use `*` (one key or index) and `..` (any depth): `$.items[*].ts`, `$..timestamp`.
 */
import type { FieldDiff, ToleranceSpec } from "./types.js";

/** One step of a path: an object key or an array index. */
export type PathToken = string | number;
/** One step of a pattern: a key, an index, `*` (any one step) or `**` (any number of steps). */
export type PatternToken = { key: string } | { index: number } | { any: 1 } | { deep: 1 };

/** A pair stops collecting diffs here: a report needs the first few, not thousands. */
export const MAX_DIFFS_PER_PAIR = 50;
/** Values in a diff are cut to this many characters. */
const MAX_VALUE_CHARS = 120;

/**
 * Parses `$.a.b[*].c`, `a.b`, `$..ts`, `$["odd key"][0]` into tokens; returns a message when the
 * pattern is malformed (schema validation reports it with the field's path).
 */
export function parsePath(pattern: string): PatternToken[] | string {
  let s = pattern.trim();
  if (s.startsWith("$")) s = s.slice(1);
  else if (s.length > 0 && !s.startsWith(".") && !s.startsWith("[")) s = `.${s}`;
  const out: PatternToken[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === ".") {
      if (s[i + 1] === ".") {
        out.push({ deep: 1 });
        i += 2;
        // `$..x` has the key right after the dots; `$..[0]` an index.
        if (s[i] === "[") continue;
      } else {
        i += 1;
      }
      let j = i;
      while (j < s.length && s[j] !== "." && s[j] !== "[") j++;
      const key = s.slice(i, j);
      if (key === "") return `empty key at character ${i + 1} of ${JSON.stringify(pattern)}`;
      out.push(key === "*" ? { any: 1 } : { key });
      i = j;
    } else if (c === "[") {
      const end = s.indexOf("]", i);
      if (end < 0) return `unclosed [ in ${JSON.stringify(pattern)}`;
      const inner = s.slice(i + 1, end).trim();
      if (inner === "*") out.push({ any: 1 });
      else if (/^\d+$/.test(inner)) out.push({ index: Number(inner) });
      else if (/^"(?:[^"\\]|\\.)*"$/.test(inner) || /^'[^']*'$/.test(inner)) {
        out.push({
          key: inner.startsWith('"') ? (JSON.parse(inner) as string) : inner.slice(1, -1),
        });
      } else return `bad bracket [${inner}] in ${JSON.stringify(pattern)}`;
      i = end + 1;
    } else {
      return `unexpected ${JSON.stringify(c)} at character ${i + 1} of ${JSON.stringify(pattern)}`;
    }
  }
  return out;
}

/** Whether a concrete path matches a pattern. */
export function matchPath(pattern: readonly PatternToken[], path: readonly PathToken[]): boolean {
  return matchFrom(pattern, 0, path, 0);
}

function matchFrom(
  p: readonly PatternToken[],
  pi: number,
  path: readonly PathToken[],
  xi: number,
): boolean {
  if (pi === p.length) return xi === path.length;
  const t = p[pi]!;
  if ("deep" in t) {
    for (let k = xi; k <= path.length; k++) if (matchFrom(p, pi + 1, path, k)) return true;
    return false;
  }
  if (xi === path.length) return false;
  const x = path[xi]!;
  if ("any" in t) return matchFrom(p, pi + 1, path, xi + 1);
  if ("key" in t) return x === t.key && matchFrom(p, pi + 1, path, xi + 1);
  return x === t.index && matchFrom(p, pi + 1, path, xi + 1);
}

/** `$.a[3]["odd key"]` */
export function formatPath(path: readonly PathToken[]): string {
  let s = "$";
  for (const t of path) {
    if (typeof t === "number") s += `[${t}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(t)) s += `.${t}`;
    else s += `[${JSON.stringify(t)}]`;
  }
  return s;
}

/**
 * The field a diff belongs to: array indexes become `[*]`, so that "score differs in 3% of
 * pairs" is one line, not one line per position. (`$.items[3].score` -> `$.items[*].score`.)
 */
export function fieldOf(path: string): string {
  return path.replace(/\[\d+\]/g, "[*]");
}

/** The value at a path without wildcards, or undefined. */
export function valueAt(doc: unknown, path: readonly PatternToken[]): unknown {
  let cur: unknown = doc;
  for (const t of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    if ("key" in t) {
      if (Array.isArray(cur)) return undefined;
      cur = (cur as Record<string, unknown>)[t.key];
    } else if ("index" in t) {
      if (!Array.isArray(cur)) return undefined;
      cur = cur[t.index];
    } else {
      return undefined;
    }
  }
  return cur;
}

/** Whether two numbers are equal within the tolerance. */
export function numbersEqual(a: number, b: number, tol: ToleranceSpec | undefined): boolean {
  if (a === b) return true;
  if (tol === undefined) return false;
  const d = Math.abs(a - b);
  if (tol.absolute !== undefined && d <= tol.absolute) return true;
  if (tol.relative !== undefined && d <= tol.relative * Math.max(Math.abs(a), Math.abs(b)))
    return true;
  return false;
}

export interface DiffOptions {
  ignore?: readonly (readonly PatternToken[])[];
  tolerance?: ToleranceSpec | undefined;
}

/**
 * The differences between two JSON values, in document order, at most `MAX_DIFFS_PER_PAIR`.
 * An object key present on one side only is a diff at that key (`<absent>`); arrays of
 * different length differ at the array (`length 3` vs `length 4`) and element by element over
 * the common length.
 */
export function diffJson(a: unknown, b: unknown, opts: DiffOptions = {}): FieldDiff[] {
  const out: FieldDiff[] = [];
  walk(a, b, [], opts, out);
  return out;
}

function ignored(path: readonly PathToken[], opts: DiffOptions): boolean {
  const ig = opts.ignore;
  if (ig === undefined) return false;
  for (const p of ig) if (matchPath(p, path)) return true;
  return false;
}

function walk(
  a: unknown,
  b: unknown,
  path: PathToken[],
  opts: DiffOptions,
  out: FieldDiff[],
): void {
  if (out.length >= MAX_DIFFS_PER_PAIR) return;
  if (ignored(path, opts)) return;
  if (typeof a === "number" && typeof b === "number") {
    if (!numbersEqual(a, b, opts.tolerance)) push(out, path, a, b);
    return;
  }
  const aObj = a !== null && typeof a === "object";
  const bObj = b !== null && typeof b === "object";
  if (!aObj || !bObj) {
    if (a !== b) push(out, path, a, b);
    return;
  }
  const aArr = Array.isArray(a);
  if (aArr !== Array.isArray(b)) {
    push(out, path, a, b);
    return;
  }
  if (aArr) {
    const x = a as unknown[];
    const y = b as unknown[];
    if (x.length !== y.length) {
      out.push({
        path: formatPath(path),
        primary: `length ${x.length}`,
        shadow: `length ${y.length}`,
      });
    }
    const n = Math.min(x.length, y.length);
    for (let i = 0; i < n; i++) {
      path.push(i);
      walk(x[i], y[i], path, opts, out);
      path.pop();
    }
    return;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  for (const k of Object.keys(x)) {
    path.push(k);
    if (Object.hasOwn(y, k)) walk(x[k], y[k], path, opts, out);
    else if (!ignored(path, opts)) push(out, path, x[k], ABSENT);
    path.pop();
  }
  for (const k of Object.keys(y)) {
    if (Object.hasOwn(x, k)) continue;
    path.push(k);
    if (!ignored(path, opts)) push(out, path, ABSENT, y[k]);
    path.pop();
  }
}

const ABSENT = Symbol("absent");

function push(out: FieldDiff[], path: readonly PathToken[], a: unknown, b: unknown): void {
  if (out.length >= MAX_DIFFS_PER_PAIR) return;
  out.push({ path: formatPath(path), primary: show(a), shadow: show(b) });
}

/** A short printable form of a value for sample diffs. */
export function show(v: unknown): string {
  if (v === ABSENT) return "<absent>";
  const s = typeof v === "string" ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v));
  return s.length > MAX_VALUE_CHARS ? `${s.slice(0, MAX_VALUE_CHARS - 1)}…` : s;
}

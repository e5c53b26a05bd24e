/**
 * Compares one (primary, shadow) response pair: status, chosen headers, body (JSON deep diff,
 * text, or bytes by hash), and the ML comparators' inputs (labels, regression values, the
 * prediction for drift). Pure; the router calls it off the request path.
 */
import {
  diffJson,
  MAX_DIFFS_PER_PAIR,
  type PatternToken,
  parsePath,
  show,
  valueAt,
} from "./json-diff.js";
import type { CapturedResponse, CompareSpec, FieldDiff, PairResult } from "./types.js";

/** A `CompareSpec` with its paths parsed once (per route table, not per pair). */
export interface CompiledCompare {
  readonly spec: CompareSpec;
  readonly status: boolean;
  readonly headers: readonly string[];
  readonly body: "json" | "text" | "hash" | "none";
  readonly ignore: readonly (readonly PatternToken[])[];
  readonly classification: { path: readonly PatternToken[]; argmax: boolean } | null;
  readonly regression: readonly PatternToken[] | null;
  /** The drift field and whether it is categorical (a classification label). */
  readonly drift: { path: readonly PatternToken[]; categorical: boolean; bins: number } | null;
}

/** Default PSI bins (deciles of the primary's values). */
export const DEFAULT_DRIFT_BINS = 10;

/**
 * Compiles a compare spec; throws on a malformed path (the schema has already refused those,
 * so this only fires for specs that bypassed validation).
 */
export function compileCompare(spec: CompareSpec = {}): CompiledCompare {
  const parse = (p: string): PatternToken[] => {
    const r = parsePath(p);
    if (typeof r === "string") throw new Error(r);
    return r;
  };
  const classification = spec.classification
    ? { path: parse(spec.classification.field), argmax: spec.classification.mode === "argmax" }
    : null;
  const regression = spec.regression ? parse(spec.regression.field) : null;
  let drift: CompiledCompare["drift"] = null;
  if (spec.drift) {
    const bins = spec.drift.bins ?? DEFAULT_DRIFT_BINS;
    if (spec.drift.field !== undefined)
      drift = { path: parse(spec.drift.field), categorical: false, bins };
    else if (regression) drift = { path: regression, categorical: false, bins };
    else if (classification) drift = { path: classification.path, categorical: true, bins };
  }
  return {
    spec,
    status: spec.status ?? true,
    headers: (spec.headers ?? []).map((h) => h.toLowerCase()),
    body: spec.body ?? "json",
    ignore: (spec.ignore ?? []).map(parse),
    classification,
    regression,
    drift,
  };
}

const decoder = new TextDecoder("utf-8", { fatal: false });

/**
 * Parses a body as JSON; undefined when it is not JSON. A body whose first non-space byte
 * cannot start a JSON text is not parsed at all: a thrown SyntaxError per pair costs more
 * than the rest of the comparison (plain-text answers, e.g. "ok").
 */
function parseJson(body: Uint8Array): unknown {
  let i = 0;
  while (
    i < body.length &&
    (body[i] === 0x20 || body[i] === 0x0a || body[i] === 0x0d || body[i] === 0x09)
  )
    i++;
  if (i === body.length) return undefined;
  const c = body[i]!;
  // { [ " - 0-9 t f n
  if (
    c !== 0x7b &&
    c !== 0x5b &&
    c !== 0x22 &&
    c !== 0x2d &&
    !(c >= 0x30 && c <= 0x39) &&
    c !== 0x74 &&
    c !== 0x66 &&
    c !== 0x6e
  )
    return undefined;
  try {
    return JSON.parse(decoder.decode(body));
  } catch {
    return undefined;
  }
}

function headerValue(h: CapturedResponse["headers"], name: string): string {
  const v = h[name];
  if (v === undefined) return "<absent>";
  return typeof v === "string" ? v : v.join(", ");
}

/**
 * Compares a pair. When either body was cut at the compare limit, bodies are not compared
 * (and no ML field is read): a prefix would report differences that are not there.
 */
export function comparePair(
  c: CompiledCompare,
  primary: CapturedResponse,
  shadow: CapturedResponse,
): PairResult {
  const diffs: FieldDiff[] = [];
  // 1. Status.
  if (c.status && primary.status !== shadow.status) {
    diffs.push({ path: "status", primary: String(primary.status), shadow: String(shadow.status) });
  }
  // 2. Chosen headers.
  for (const name of c.headers) {
    const a = headerValue(primary.headers, name);
    const b = headerValue(shadow.headers, name);
    if (a !== b) diffs.push({ path: `header:${name}`, primary: show(a), shadow: show(b) });
  }
  const result: PairResult = {
    diffs,
    labels: null,
    values: null,
    drift: null,
    latencyMs: { primary: primary.latencyMs, shadow: shadow.latencyMs },
  };
  if (primary.truncated || shadow.truncated) return result;

  // 3. Body.
  const needJson =
    c.body === "json" || c.classification !== null || c.regression !== null || c.drift !== null;
  const a = needJson ? parseJson(primary.body) : undefined;
  const b = needJson ? parseJson(shadow.body) : undefined;
  if (c.body === "json" && a !== undefined && b !== undefined) {
    for (const d of diffJson(a, b, { ignore: c.ignore, tolerance: c.spec.tolerance })) {
      if (diffs.length >= MAX_DIFFS_PER_PAIR) break;
      diffs.push(d);
    }
  } else if (c.body === "json" || c.body === "text") {
    if (!bytesEqual(primary.body, shadow.body)) diffs.push(textDiff(primary.body, shadow.body));
  } else if (c.body === "hash") {
    if (!bytesEqual(primary.body, shadow.body)) {
      diffs.push({
        path: "body",
        primary: `${primary.body.length} bytes, fnv1a ${fnv1a(primary.body)}`,
        shadow: `${shadow.body.length} bytes, fnv1a ${fnv1a(shadow.body)}`,
      });
    }
  }

  // 4. ML fields.
  if (c.classification !== null) {
    const la = labelOf(valueAt(a, c.classification.path), c.classification.argmax);
    const lb = labelOf(valueAt(b, c.classification.path), c.classification.argmax);
    if (la !== null && lb !== null) result.labels = { primary: la, shadow: lb };
  }
  if (c.regression !== null) {
    const va = valueAt(a, c.regression);
    const vb = valueAt(b, c.regression);
    if (isNum(va) && isNum(vb)) result.values = { primary: va, shadow: vb };
  }
  if (c.drift !== null) {
    if (c.drift.categorical) {
      if (result.labels !== null) result.drift = { ...result.labels };
    } else {
      const va = valueAt(a, c.drift.path);
      const vb = valueAt(b, c.drift.path);
      if (isNum(va) && isNum(vb)) result.drift = { primary: va, shadow: vb };
    }
  }
  return result;
}

function isNum(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

/**
 * A classification label: the value itself (strings as is, others as JSON), or with `argmax`
 * the index of the largest number of an array or the key of the largest value of an object.
 * Ties go to the first. Null when the field is missing or not usable.
 */
export function labelOf(v: unknown, argmax: boolean): string | null {
  if (v === undefined || v === null) return null;
  if (!argmax) return typeof v === "string" ? v : JSON.stringify(v);
  let best: string | null = null;
  let max = Number.NEGATIVE_INFINITY;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (isNum(x) && x > max) {
        max = x;
        best = String(i);
      }
    }
  } else if (typeof v === "object") {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (isNum(x) && x > max) {
        max = x;
        best = k;
      }
    }
  }
  return best;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The first difference of two texts, with a little context. */
function textDiff(a: Uint8Array, b: Uint8Array): FieldDiff {
  const x = decoder.decode(a);
  const y = decoder.decode(b);
  let i = 0;
  while (i < x.length && i < y.length && x[i] === y[i]) i++;
  const from = Math.max(0, i - 20);
  const cut = (s: string) =>
    `@${i}: ${JSON.stringify(s.slice(from, i + 40))}${s.length > i + 40 ? "…" : ""}`;
  return { path: "body", primary: cut(x), shadow: cut(y) };
}

/** 32-bit FNV-1a as hex: a short, stable name for a body in reports (not for security). */
export function fnv1a(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

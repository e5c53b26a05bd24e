/** Validation of one parsed document as a resource, with every problem at its path. */
import type { z } from "zod";
import { API_VERSION, RESOURCE_KINDS, type Resource } from "../../core/model.js";
import { LIMITS } from "../limits.js";
import { infoOf } from "./blocks.js";
import { SCHEMAS } from "./kinds.js";
import {
  closest,
  describeValue,
  expectedText,
  isPlainObject,
  jsonBytes,
  orList,
  type PathSegment,
  quoteHint,
} from "./messages.js";

/** One problem in one document; `atKey` when the position is the key itself (unknown keys). */
export interface DocumentIssue {
  path: PathSegment[];
  message: string;
  atKey?: boolean;
}

/** An unknown key with a close known one: validation goes on as if that one were meant. */
type RenamableIssue = DocumentIssue & {
  rename?: { parent: PathSegment[]; from: string; to: string };
};

export interface DocumentResult {
  resource?: Resource;
  /** "Service/fraud-model" when kind and name are strings, even if invalid. */
  label?: string;
  issues: DocumentIssue[];
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
      const guess = typeof iss.input === "string" ? closest(iss.input, values) : undefined;
      return `must be ${values.length > 2 ? "one of " : ""}${orList(values)}, got ${describeValue(iss.input)}${guess ? ` (did you mean "${guess}"?)` : ""}`;
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
      // Replaced by `unionIssues`, which sees the branches' issues.
      return UNION_MESSAGE;
    default:
      return undefined;
  }
}

const UNION_MESSAGE = "does not match any allowed form";

function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const info = infoOf(allowed) ?? { noun: "field" };
  if (info.notYet?.includes(key))
    return `${info.noun} "${key}" is not supported yet; supported: ${allowed.join(", ")}`;
  if (allowed.length === 0) return `unknown ${info.noun} "${key}": this takes no fields, write {}`;
  const guess = closest(key, allowed);
  return `unknown ${info.noun} "${key}"; allowed: ${allowed.join(", ")}${guess ? ` (did you mean "${guess}"?)` : ""}`;
}

/**
 * Validates one parsed document (any JSON value) as a resource. Never throws; every problem
 * found is in `issues`, with the path of the field it concerns.
 *
 * An unknown key would hide every problem below it (`stratgy:` is not read, so neither is
 * anything under it). So an unknown key with a close known one that is absent is reported, and
 * the document is validated again as if the known key had been meant, until no such key is
 * left: one pass reports everything. The problems found below a renamed key keep the path as
 * written, so they point at the right line.
 */
export function validateDocument(value: unknown): DocumentResult {
  const first = validateOnce(value);
  const plain = (issues: readonly RenamableIssue[]): DocumentIssue[] =>
    issues.map(({ rename: _r, ...i }) => i);
  if (first.resource || !isPlainObject(value)) return { ...first, issues: plain(first.issues) };
  const reported: RenamableIssue[] = [];
  /** Renames done, in the coordinates of the document they were done in. */
  const renames: { parent: PathSegment[]; from: string; to: string }[] = [];
  let doc: unknown = value;
  let result = first;
  for (let round = 0; round < MAX_RENAME_ROUNDS; round++) {
    const fixes = result.issues.flatMap((i) => (i.rename ? [{ issue: i, ...i.rename }] : []));
    const applicable = fixes.filter((f) => canRename(doc, f.parent, f.from, f.to));
    if (applicable.length === 0) break;
    doc = structuredClone(doc);
    for (const f of applicable) {
      rename(doc, f.parent, f.from, f.to);
      renames.push({ parent: f.parent, from: f.from, to: f.to });
      reported.push({ ...f.issue, path: asWritten(f.issue.path, renames.slice(0, -1)) });
    }
    result = validateOnce(doc);
    if (result.resource) break;
  }
  if (renames.length === 0) return { ...first, issues: plain(first.issues) };
  const seen = new Set(reported.map((i) => JSON.stringify(i.path)));
  const rest = result.resource
    ? []
    : result.issues
        .map((i) => ({ ...i, path: asWritten(i.path, renames) }))
        .filter((i) => !seen.has(JSON.stringify(i.path)) || !i.atKey);
  const issues = plain([...reported, ...rest]);
  return { ...(first.label ? { label: first.label } : {}), issues };
}

/** Nested typos (`stratgy:` then `canaray:` below it) take one round each. */
const MAX_RENAME_ROUNDS = 8;

function objectAt(doc: unknown, path: readonly PathSegment[]): Record<string, unknown> | null {
  let node: unknown = doc;
  for (const seg of path) {
    if (Array.isArray(node) && typeof seg === "number") node = node[seg];
    else if (isPlainObject(node) && typeof seg === "string") node = node[seg];
    else return null;
  }
  return isPlainObject(node) ? node : null;
}

function canRename(doc: unknown, parent: PathSegment[], from: string, to: string): boolean {
  const o = objectAt(doc, parent);
  return o !== null && Object.hasOwn(o, from) && !Object.hasOwn(o, to);
}

function rename(doc: unknown, parent: PathSegment[], from: string, to: string): void {
  const o = objectAt(doc, parent);
  if (!o || !Object.hasOwn(o, from) || Object.hasOwn(o, to)) return;
  o[to] = o[from];
  delete o[from];
}

/** A path in the renamed document, as it is written in the user's document. */
function asWritten(
  path: readonly PathSegment[],
  renames: readonly { parent: PathSegment[]; from: string; to: string }[],
): PathSegment[] {
  let out = [...path];
  for (let i = renames.length - 1; i >= 0; i--) {
    const r = renames[i]!;
    const n = r.parent.length;
    if (out.length > n && out[n] === r.to && r.parent.every((seg, j) => out[j] === seg)) {
      out = [...out.slice(0, n), r.from, ...out.slice(n + 1)];
    }
  }
  return out;
}

/** A better word than "does not match any allowed form" for a union, from its branches. */
function unionIssues(
  doc: unknown,
  path: PathSegment[],
  branches: readonly (readonly z.core.$ZodIssue[])[],
): DocumentIssue[] {
  const input = valueAt(doc, path);
  // A branch that refuses the value itself (not a field of it) is not the form meant.
  const refusesValue = (b: readonly z.core.$ZodIssue[]) =>
    b.some((i) => (i.code === "invalid_type" || i.code === "invalid_value") && i.path.length === 0);
  // An object, and one branch takes objects: that branch's problems are the ones that matter.
  const objectBranches = branches.filter((b) => !refusesValue(b));
  if (isPlainObject(input) && objectBranches.length === 1) {
    return objectBranches[0]!.map((i) => ({
      path: [...path, ...i.path.filter((p): p is PathSegment => typeof p !== "symbol")],
      message: i.message,
    }));
  }
  const values = branches.flatMap((b) =>
    b.flatMap((i) => (i.code === "invalid_value" && i.path.length === 0 ? i.values : [])),
  );
  if (values.length > 0) {
    const names = values.map((v) => String(v));
    const objectToo = branches.some(
      (b) =>
        b.some((i) => i.code === "invalid_type" && i.path.length === 0) &&
        b.some((i) => i.code === "invalid_type" && i.expected === "object"),
    );
    const guess = typeof input === "string" ? closest(input, names) : undefined;
    return [
      {
        path,
        message: `must be ${names.length > 2 ? "one of " : ""}${orList(names)}${objectToo ? ", or an object" : ""}, got ${describeValue(input)}${guess ? ` (did you mean "${guess}"?)` : ""}`,
      },
    ];
  }
  return [{ path, message: `does not match any allowed form, got ${describeValue(input)}` }];
}

function valueAt(doc: unknown, path: readonly PathSegment[]): unknown {
  let node: unknown = doc;
  for (const seg of path) {
    if (Array.isArray(node) && typeof seg === "number") node = node[seg];
    else if (isPlainObject(node) && typeof seg === "string") node = node[seg];
    else return undefined;
  }
  return node;
}

function validateOnce(
  value: unknown,
): Omit<DocumentResult, "issues"> & { issues: RenamableIssue[] } {
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

  const issues: RenamableIssue[] = [];
  const seen = new Set<string>();
  const add = (i: RenamableIssue) => {
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
      for (const key of iss.keys) {
        const guess = closest(key, allowed);
        add({
          path: [...path, key],
          message: unknownKeyMessage(key, allowed),
          atKey: true,
          ...(guess ? { rename: { parent: path, from: key, to: guess } } : {}),
        });
      }
    } else if (iss.code === "invalid_key") {
      const inner = iss.issues.map((i) => i.message).join("; ");
      add({
        path,
        message: `invalid key ${describeValue(path[path.length - 1])}: ${inner}`,
        atKey: true,
      });
    } else if (iss.code === "invalid_union" && iss.message === UNION_MESSAGE) {
      for (const i of unionIssues(value, path, iss.errors)) add(i);
    } else {
      add({ path, message: iss.message });
    }
  }
  return { ...(label ? { label } : {}), issues };
}

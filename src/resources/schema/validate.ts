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

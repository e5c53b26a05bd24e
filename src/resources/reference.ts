/**
 * The field reference (docs/reference/resources.md), generated from the JSON Schema that is
 * itself generated from the zod schemas that validate: one row per field of every kind, with its
 * type, default, bounds, meaning (the schema's description) and an example. Written by
 * `npm run schema`; a test fails when the committed file differs, so the reference cannot drift
 * from what `apply` accepts.
 *
 * Examples come from real documents first (the YAML under examples/ and test/fixtures/valid/,
 * passed in by the caller): the first value seen at a field's path. A field no document sets
 * gets its default, its first allowed value, or a value made from its type and bounds.
 */
import { generateJsonSchema } from "./jsonschema.js";

type Node = Record<string, unknown>;

export interface FieldRow {
  /** `spec.strategy.canary.steps[].setWeight`; `<name>` stands for a map key. */
  path: string;
  type: string;
  required: boolean;
  default?: unknown;
  bounds: string[];
  description: string;
  example?: string;
}

const UNION_KEYS = ["anyOf", "oneOf"] as const;

/** Meanings of the fields every kind shares, which the schemas leave undescribed. */
const COMMON_MEANINGS: Readonly<Record<string, string>> = {
  apiVersion: "The API version of Turnout's resources.",
  kind: "The resource's kind.",
  metadata: "The resource's name, labels and annotations.",
  spec: "What the resource asks for.",
};

function isNode(x: unknown): x is Node {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function alternatives(n: Node): Node[] {
  for (const k of UNION_KEYS) {
    const alts = n[k];
    if (Array.isArray(alts)) return alts.filter(isNode);
  }
  return [];
}

/** A short type: `string`, `integer`, `"a" | "b"`, `duration`, `list of object`, `map of string`. */
export function typeOf(n: Node): string {
  if ("const" in n) return JSON.stringify(n.const);
  if (Array.isArray(n.enum)) return n.enum.map((v) => JSON.stringify(v)).join(" \\| ");
  const alts = alternatives(n);
  if (alts.length > 0) {
    const types = alts.map(typeOf).map((t) => (t === "any" ? "object" : t));
    if (
      alts.length === 2 &&
      types.includes("number") &&
      alts.some((a) => typeof a.pattern === "string" && a.pattern.includes("ms|s|m|h|d"))
    )
      return "duration";
    return [...new Set(types)].join(" \\| ");
  }
  const t = n.type;
  if (t === "array") return `list of ${isNode(n.items) ? typeOf(n.items) : "any"}`;
  if (t === "object" && !isNode(n.properties) && isNode(n.additionalProperties))
    return `map of ${typeOf(n.additionalProperties)}`;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) return t.join(" \\| ");
  if (isNode(n.properties)) return "object";
  return "any";
}

function boundsOf(n: Node): string[] {
  const b: string[] = [];
  const alts = alternatives(n);
  // A duration's bounds are those of its number form (seconds).
  const num = alts.find((a) => a.type === "number" || a.type === "integer") ?? n;
  if (typeof num.minimum === "number") b.push(`>= ${num.minimum}`);
  if (typeof num.exclusiveMinimum === "number") b.push(`> ${num.exclusiveMinimum}`);
  if (typeof num.maximum === "number") b.push(`<= ${num.maximum}`);
  if (typeof num.exclusiveMaximum === "number") b.push(`< ${num.exclusiveMaximum}`);
  if (typeof n.minLength === "number" && n.minLength > 0) b.push(`length >= ${n.minLength}`);
  if (typeof n.maxLength === "number") b.push(`length <= ${n.maxLength}`);
  if (typeof n.minItems === "number" && n.minItems > 0) b.push(`items >= ${n.minItems}`);
  if (typeof n.maxItems === "number") b.push(`items <= ${n.maxItems}`);
  if (typeof n.maxProperties === "number") b.push(`keys <= ${n.maxProperties}`);
  return b;
}

/** Every field of one kind's schema, depth first, in the schema's order. */
export function fieldsOf(kindSchema: Node): FieldRow[] {
  const rows: FieldRow[] = [];
  const seen = new Set<string>();
  const walk = (n: Node, prefix: string, depth: number): void => {
    if (depth > 64) return;
    for (const alt of alternatives(n)) walk(alt, prefix, depth + 1);
    if (isNode(n.properties)) {
      const required = new Set(Array.isArray(n.required) ? (n.required as string[]) : []);
      for (const [name, sub] of Object.entries(n.properties)) {
        if (!isNode(sub)) continue;
        const path = prefix === "" ? name : `${prefix}.${name}`;
        if (!seen.has(path)) {
          seen.add(path);
          rows.push({
            path,
            type: typeOf(sub),
            required: required.has(name),
            ...("default" in sub ? { default: sub.default } : {}),
            bounds: boundsOf(sub),
            description:
              typeof sub.description === "string" ? sub.description : (COMMON_MEANINGS[path] ?? ""),
          });
        }
        walk(sub, path, depth + 1);
      }
    }
    if (isNode(n.additionalProperties)) walk(n.additionalProperties, `${prefix}.<name>`, depth + 1);
    if (isNode(n.items)) walk(n.items, `${prefix}[]`, depth + 1);
  };
  walk(kindSchema, "", 0);
  return rows;
}

/** Values seen per path in real documents (`spec.strategy.canary.steps[].setWeight` -> 10). */
export function examplesFrom(docs: readonly unknown[]): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const walk = (v: unknown, path: string): void => {
    if (path !== "" && !out.has(path)) out.set(path, v);
    if (Array.isArray(v)) for (const item of v) walk(item, `${path}[]`);
    else if (isNode(v)) {
      for (const [k, sub] of Object.entries(v)) {
        const p = path === "" ? k : `${path}.${k}`;
        walk(sub, p);
        // A map's keys are names the user chose: also record under `<name>`.
        walk(sub, path === "" ? "<name>" : `${path}.<name>`);
      }
    }
  };
  for (const d of docs) if (isNode(d)) walk(d, "");
  return out;
}

function exampleText(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  const text = JSON.stringify(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** An example for a field no document sets: its default, first allowed value, or one from its bounds. */
function madeUpExample(r: FieldRow, n: Node | undefined): unknown {
  if (r.default !== undefined) return r.default;
  if (!n) return undefined;
  if ("const" in n) return n.const;
  if (Array.isArray(n.enum)) return n.enum[0];
  if (r.type === "duration") return "30s";
  if (r.type === "boolean") return true;
  if (r.type === "integer" || r.type === "number") {
    const min = typeof n.minimum === "number" ? n.minimum : 0;
    const max = typeof n.maximum === "number" ? n.maximum : Number.POSITIVE_INFINITY;
    return Math.min(max, Math.max(min, 1));
  }
  return undefined;
}

function nodeAt(kindSchema: Node, path: string): Node | undefined {
  let found: Node | undefined;
  const walk = (n: Node, prefix: string): void => {
    if (found) return;
    for (const alt of alternatives(n)) walk(alt, prefix);
    if (isNode(n.properties)) {
      for (const [name, sub] of Object.entries(n.properties)) {
        if (!isNode(sub)) continue;
        const p = prefix === "" ? name : `${prefix}.${name}`;
        if (p === path) {
          found = sub;
          return;
        }
        if (path.startsWith(p)) walk(sub, p);
      }
    }
    if (isNode(n.additionalProperties)) walk(n.additionalProperties, `${prefix}.<name>`);
    if (isNode(n.items)) walk(n.items, `${prefix}[]`);
  };
  walk(kindSchema, "");
  return found;
}

function cell(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/** The kinds of the JSON Schema with their schemas, in its order. */
export function kindSchemas(schema: Node = generateJsonSchema()): [string, Node][] {
  const out: [string, Node][] = [];
  for (const alt of alternatives(schema)) {
    const kind =
      isNode(alt.properties) && isNode(alt.properties.kind) ? alt.properties.kind.const : null;
    if (typeof kind === "string") out.push([kind, alt]);
  }
  return out;
}

/** docs/reference/resources.md: a table of every field per kind. `docs` give the examples. */
export function renderFieldReference(docs: readonly unknown[]): string {
  const lines: string[] = [
    "# Resource field reference",
    "",
    "<!-- Generated by `npm run schema` from the same definitions that validate resources",
    "     (src/resources/reference.ts); edit the schemas' descriptions, not this file. -->",
    "",
    "Every field of every kind, with its type, default, bounds and an example. Examples come",
    "from the documents in `examples/` and `test/fixtures/valid/` where one sets the field.",
    "`<name>` stands for a key you choose (a version name, an argument name...); `[]` for any",
    'item of a list. Durations are written `"250ms"`, `"30s"`, `"5m"`, `"1h30m"` or as a',
    "number of seconds; their bounds are in seconds. How the kinds fit together, with worked",
    "examples: [../resources.md](../resources.md).",
    "",
  ];
  const byKind = new Map<string, unknown[]>();
  for (const d of docs) {
    if (isNode(d) && typeof d.kind === "string") {
      const list = byKind.get(d.kind) ?? [];
      list.push(d);
      byKind.set(d.kind, list);
    }
  }
  const kinds = kindSchemas();
  lines.push(`Kinds: ${kinds.map(([k]) => `[${k}](#${k.toLowerCase()})`).join(", ")}.`, "");
  for (const [kind, schema] of kinds) {
    const examples = examplesFrom(byKind.get(kind) ?? []);
    lines.push(`## ${kind}`, "");
    lines.push("| Field | Type | Required / default | Bounds | Meaning | Example |");
    lines.push("| --- | --- | --- | --- | --- | --- |");
    for (const r of fieldsOf(schema)) {
      const seen = examples.get(r.path);
      const ex =
        seen !== undefined && !isNode(seen) && !Array.isArray(seen)
          ? seen
          : Array.isArray(seen) && seen.every((x) => !isNode(x))
            ? seen
            : madeUpExample(r, nodeAt(schema, r.path));
      const def = r.required
        ? "required"
        : r.default !== undefined
          ? `\`${JSON.stringify(r.default)}\``
          : "";
      lines.push(
        `| \`${r.path}\` | ${cell(r.type)} | ${def} | ${cell(r.bounds.join(", "))} | ${cell(r.description)} | ${
          ex === undefined ? "" : `\`${cell(exampleText(ex))}\``
        } |`,
      );
    }
    lines.push("");
  }
  return `${lines.join("\n")}`;
}

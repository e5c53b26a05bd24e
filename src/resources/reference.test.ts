import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { generateJsonSchema } from "./jsonschema.js";
import { fieldsOf, kindSchemas, typeOf } from "./reference.js";
import { REFERENCE_PATH, renderReferenceFile } from "./reference-docs.js";
import { SCHEMAS } from "./schema/kinds.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

test("docs/reference/resources.md is what `npm run schema` generates", () => {
  const committed = readFileSync(join(ROOT, REFERENCE_PATH), "utf8");
  assert.ok(
    committed === renderReferenceFile(ROOT),
    `${REFERENCE_PATH} is stale: run \`npm run schema\``,
  );
});

test("every kind and every field name of the JSON Schema has an entry in the reference", () => {
  const doc = readFileSync(join(ROOT, REFERENCE_PATH), "utf8");
  const kinds = kindSchemas(generateJsonSchema());
  assert.deepEqual(
    kinds.map(([k]) => k).sort(),
    Object.keys(SCHEMAS).sort(),
    "the JSON Schema covers every kind of the registry",
  );
  // Independently of the walker: every property name anywhere in the schema is in a row.
  const names = new Set<string>();
  const collect = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(collect);
    else if (n && typeof n === "object") {
      const o = n as Record<string, unknown>;
      if (o.properties && typeof o.properties === "object")
        for (const k of Object.keys(o.properties)) names.add(k);
      Object.values(o).forEach(collect);
    }
  };
  collect(generateJsonSchema());
  const rows = doc.split("\n").filter((l) => l.startsWith("| `"));
  const missing = [...names].filter(
    (name) =>
      !rows.some((r) =>
        new RegExp(
          `^\\| \`([^\`]*\\.)?${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(\\[\\])?\``,
        ).test(r),
      ),
  );
  assert.deepEqual(missing, [], "fields of the JSON Schema without a row in the reference");
  for (const [kind, schema] of kinds) {
    assert.ok(doc.includes(`## ${kind}`), `no section for ${kind}`);
    assert.ok(fieldsOf(schema).length > 3, `${kind} has fields`);
  }
});

test("types read as people write them", () => {
  assert.equal(typeOf({ type: "string", const: "Service" }), '"Service"');
  assert.equal(typeOf({ type: "string", enum: ["a", "b"] }), '"a" \\| "b"');
  assert.equal(
    typeOf({
      anyOf: [
        { type: "string", pattern: "^\\s*(\\d+(\\.\\d+)?(ms|s|m|h|d))+\\s*$" },
        { type: "number" },
      ],
    }),
    "duration",
  );
  assert.equal(typeOf({ type: "array", items: { type: "integer" } }), "list of integer");
  assert.equal(
    typeOf({ type: "object", additionalProperties: { type: "string" } }),
    "map of string",
  );
});

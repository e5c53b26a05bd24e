// Writes schema/turnout.schema.json from the zod schemas, the table of limits in
// docs/resources.md from src/resources/limits.ts, and the field reference
// docs/reference/resources.md (`npm run schema`).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderJsonSchema } from "../src/resources/jsonschema.js";
import { LIMITS_BEGIN, LIMITS_END, renderLimitsTable } from "../src/resources/limits.js";
import { REFERENCE_PATH, renderReferenceFile } from "../src/resources/reference-docs.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "schema", "turnout.schema.json");
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, renderJsonSchema());
console.log(`wrote ${out}`);

const docs = join(root, "docs", "resources.md");
const text = readFileSync(docs, "utf8");
const start = text.indexOf(LIMITS_BEGIN);
const end = text.indexOf(LIMITS_END);
if (start < 0 || end < start) throw new Error(`${docs}: no limits markers`);
writeFileSync(
  docs,
  text.slice(0, start) + renderLimitsTable() + text.slice(end + LIMITS_END.length),
);
console.log(`wrote the limits table in ${docs}`);

const reference = join(root, REFERENCE_PATH);
mkdirSync(dirname(reference), { recursive: true });
writeFileSync(reference, renderReferenceFile(root));
console.log(`wrote ${reference}`);

// Writes schema/turnout.schema.json from the zod schemas (`npm run schema`).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderJsonSchema } from "../src/resources/jsonschema.js";

const out = join(dirname(fileURLToPath(import.meta.url)), "..", "schema", "turnout.schema.json");
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, renderJsonSchema());
console.log(`wrote ${out}`);

/**
 * The field reference's file: the rendering of reference.ts with its examples read from the
 * repository's own documents (examples/ and test/fixtures/valid/). Kept apart from
 * reference.ts because it reads files; used by `npm run schema` and by the staleness test.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { renderFieldReference } from "./reference.js";

export const REFERENCE_PATH = "docs/reference/resources.md";
const EXAMPLE_DIRS = ["examples", "test/fixtures/valid"];

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(name)) out.push(p);
  }
  return out;
}

/** The documents whose values serve as examples, in a stable order. */
export function exampleDocuments(root: string): unknown[] {
  const docs: unknown[] = [];
  for (const dir of EXAMPLE_DIRS) {
    for (const file of yamlFiles(join(root, dir))) {
      for (const d of parseAllDocuments(readFileSync(file, "utf8"))) {
        if (!("errors" in d) || d.errors.length === 0) docs.push(d.toJS());
      }
    }
  }
  return docs;
}

export function renderReferenceFile(root: string): string {
  return `${renderFieldReference(exampleDocuments(root))}\n`;
}

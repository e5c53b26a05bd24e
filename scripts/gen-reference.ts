/**
 * Brings the generated sections of docs/reference/ up to date (`npm run docs:reference`): the
 * CLI's commands from its commander tree, the error table from src/errors.ts, the event table
 * from src/core/events.ts (src/reference/pages.ts lists them). The field reference,
 * docs/reference/resources.md, is written by `npm run schema`.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { REFERENCE_PAGES, renderPage } from "../src/reference/pages.js";

const root = fileURLToPath(new URL("..", import.meta.url));
for (const page of REFERENCE_PAGES) {
  const file = join(root, page.path);
  const text = await renderPage(root, page);
  const changed = text !== readFileSync(file, "utf8");
  if (changed) writeFileSync(file, text);
  process.stdout.write(`${page.path}: ${changed ? "written" : "up to date"}\n`);
}

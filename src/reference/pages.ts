/**
 * The generated parts of docs/reference/: which page holds which generated section, and how a
 * page is brought up to date. `npm run docs:reference` writes them (scripts/gen-reference.ts);
 * `reference.test.ts` fails when a committed page differs from what would be written.
 *
 * A page is hand-written prose around generated sections (between `<!-- NAME:begin ... -->`
 * and `<!-- NAME:end -->`), formatted by Biome as `npm run lint` checks it. The field
 * reference (resources.md) is the one page generated whole, by `npm run schema`
 * (src/resources/reference-docs.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cliProgram, renderCommands } from "./cli.js";
import { renderErrorTable } from "./errors.js";
import { renderEventTable } from "./events.js";
import { formatMarkdown, replaceSection } from "./markdown.js";

export interface ReferencePage {
  /** Relative to the repository's root. */
  path: string;
  /** Section name -> its content. */
  sections: Record<string, () => string | Promise<string>>;
}

export const REFERENCE_PAGES: readonly ReferencePage[] = [
  {
    path: "docs/reference/cli.md",
    sections: { commands: async () => renderCommands(await cliProgram()) },
  },
  { path: "docs/reference/errors.md", sections: { errors: renderErrorTable } },
  { path: "docs/reference/events.md", sections: { events: renderEventTable } },
];

/** The page as it should be: its committed text with every generated section rendered anew. */
export async function renderPage(root: string, page: ReferencePage): Promise<string> {
  let text = readFileSync(join(root, page.path), "utf8");
  for (const [name, render] of Object.entries(page.sections))
    text = replaceSection(text, page.path, name, await render());
  return formatMarkdown(root, page.path, text);
}

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseDocRun, strategiesDoc } from "./doc.js";
import { runLab } from "./lab.js";
import { markdownTable, metricRows, summaryRows, verdictLines } from "./report.js";

const DOC = readFileSync(new URL("../../docs/strategies.md", import.meta.url), "utf8");

/** A Markdown table line without the column padding Biome adds when it formats the doc. */
function norm(line: string): string {
  if (!line.startsWith("|")) return line;
  const cells = line
    .slice(1, -1)
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());
  return `|${cells.map((c) => (/^-+$/.test(c) ? "---" : c)).join("|")}|`;
}
const DOC_LINES = DOC.split("\n").map(norm);

describe("docs/strategies.md", () => {
  it("has the rows the lab measures for the seeds it records (rolling and shadow rerun in full)", async () => {
    const { seeds, seed } = parseDocRun(DOC);
    // A row depends only on its strategy, scenario and seeds, so two strategies rerun are
    // their rows of the whole lab: rolling and shadow, the two with the shortest runs.
    const r = await runLab({ seeds, seed, strategies: ["rolling", "shadow"] });
    const lines = DOC_LINES;
    const has = (line: string) =>
      assert.ok(
        lines.includes(line),
        `docs/strategies.md lacks:\n${line}\n(run npm run docs:strategies)`,
      );
    for (const table of [summaryRows(r), metricRows(r)]) {
      const md = markdownTable(table).split("\n");
      for (const line of md) has(norm(line));
    }
    for (const v of verdictLines(r)) has(`- ${v}`);
    // Six strategies x five scenarios in the figures table, nothing else.
    const figureRows = lines.filter((l) =>
      /^\|[^|]+\|(good|errors|latency|wrongPredictions|crash)\|/.test(l),
    );
    assert.equal(figureRows.length, 30);
  });

  it("is the generator's output around those rows (nothing edited by hand)", async () => {
    const { seeds, seed } = parseDocRun(DOC);
    // Everything but the measured rows (checked above) is fixed text: the generator's.
    const r = await runLab({ seeds: 1, seed, strategies: ["rolling"], scenarios: ["crash"] });
    const fresh = strategiesDoc({ ...r, seeds })
      .split("\n")
      .map(norm);
    const measured = (l: string) =>
      (l.startsWith("|") && !l.startsWith("|---")) || l.startsWith("- ");
    assert.deepEqual(
      DOC_LINES.filter((l) => !measured(l)),
      fresh.filter((l) => !measured(l)),
    );
  });
});

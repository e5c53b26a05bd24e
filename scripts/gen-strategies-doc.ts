/**
 * Writes docs/strategies.md from a run of the strategy lab (src/lab/doc.ts):
 * `npm run docs:strategies [-- --seeds N --seed S]`, by default the seeds the doc records
 * (the default lab's 200 from 1 when it records none). `src/lab/doc.test.ts` fails when the
 * doc and the lab drift.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseDocRun, strategiesDoc } from "../src/lab/doc.js";
import { runLab } from "../src/lab/lab.js";
import { workerPool } from "../src/lab/pool.js";

const FILE = new URL("../docs/strategies.md", import.meta.url);
const { values } = parseArgs({ options: { seeds: { type: "string" }, seed: { type: "string" } } });
const recorded = existsSync(FILE) ? parseDocRun(readFileSync(FILE, "utf8")) : null;
const seeds = Number(values.seeds ?? recorded?.seeds ?? 200);
const seed = Number(values.seed ?? recorded?.seed ?? 1);
const t0 = Date.now();
const report = await runLab({ seeds, seed, execute: workerPool() });
writeFileSync(FILE, strategiesDoc(report));
// Biome aligns the tables' columns (as in every doc); `biome check .` then finds nothing to fix.
execFileSync("npx", ["biome", "format", "--write", fileURLToPath(FILE)], { stdio: "inherit" });
process.stdout.write(
  `docs/strategies.md: ${seeds} seeds from ${seed}, ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
);

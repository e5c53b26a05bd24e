// Runs every *.test.ts under src/ and test/ with Node's built-in test runner through tsx.
// Node 20's `--test` does not expand globs, so the file list is built here.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const roots = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ["src", "test"];
const files = [];
function walk(p) {
  const st = statSync(p, { throwIfNoEntry: false });
  if (!st) return;
  if (st.isFile()) {
    if (p.endsWith(".test.ts")) files.push(p);
    return;
  }
  for (const name of readdirSync(p).sort()) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    walk(join(p, name));
  }
}
for (const r of roots) walk(r);
if (files.length === 0) {
  console.error("no test files found under", roots.join(", "));
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? "2";
const r = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, ...files],
  {
    stdio: "inherit",
    env: { ...process.env, TURNOUT_LOG_LEVEL: process.env.TURNOUT_LOG_LEVEL ?? "silent" },
  },
);
process.exit(r.status ?? 1);

// Runs every *.test.ts under src/ and test/ with Node's built-in test runner through tsx.
// Node 20's `--test` does not expand globs, so the file list is built here.
//
// Files in EXCLUSIVE run after the rest, on their own: they make the machine busy on purpose
// (busy processes on every core) and would starve whatever ran beside them (seen: the two
// zero-downtime files together never got 4 instances ready). The runner's summary is printed
// for each run, then one line with the totals of both.
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const EXCLUSIVE = ["test/e2e/zero-downtime-hostile.test.ts", "test/e2e/fleet-ha-busy.test.ts"];

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
const exclusive = files.filter((f) => EXCLUSIVE.includes(f.split("\\").join("/")));
const shared = files.filter((f) => !exclusive.includes(f));

/** Runs one batch, streaming its output; resolves with its exit code and summary counts. */
function run(batch, conc) {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--test", `--test-concurrency=${conc}`, ...batch],
      {
        stdio: ["ignore", "pipe", "inherit"],
        env: { ...process.env, TURNOUT_LOG_LEVEL: process.env.TURNOUT_LOG_LEVEL ?? "silent" },
      },
    );
    let tail = "";
    child.stdout.on("data", (d) => {
      process.stdout.write(d);
      tail = (tail + d.toString()).slice(-4000);
    });
    child.on("exit", (code) => {
      const count = (name) => Number(new RegExp(`^# ${name} (\\d+)`, "m").exec(tail)?.[1] ?? 0);
      resolve({
        code: code ?? 1,
        tests: count("tests"),
        pass: count("pass"),
        fail: count("fail"),
        skipped: count("skipped"),
      });
    });
  });
}

const results = [];
if (shared.length > 0) results.push(await run(shared, concurrency));
if (exclusive.length > 0) results.push(await run(exclusive, "1"));
const sum = (k) => results.reduce((a, r) => a + r[k], 0);
if (results.length > 1) {
  process.stdout.write(
    `# all: tests ${sum("tests")}, pass ${sum("pass")}, fail ${sum("fail")}, skipped ${sum("skipped")}\n`,
  );
}
process.exit(results.some((r) => r.code !== 0) ? 1 : 0);

/**
 * `turnout demo` is the main job: it must finish a canary with zero failed requests and exit 0,
 * and Ctrl-C must stop it without leaving a process behind.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ROOT, waitFor } from "../helpers.js";

const CLI = [process.execPath, "--import", "tsx", join(ROOT, "src/cli/main.ts"), "demo"];

function childrenOf(pid: number): number[] {
  try {
    return execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" })
      .split("\n")
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

/** Gone, or a zombie nobody reaps (this sandbox's PID 1 does not). */
function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

function run(onLine?: (line: string, pid: number) => void) {
  const p = spawn(CLI[0]!, CLI.slice(1), {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", TURNOUT_LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  p.stdout.on("data", (d: Buffer) => {
    const text = d.toString();
    out += text;
    for (const line of text.split("\n")) onLine?.(line, p.pid!);
  });
  p.stderr.on("data", (d) => (err += d));
  const done = new Promise<number | null>((r) => p.on("exit", (code) => r(code)));
  return { p, done, out: () => out, err: () => err };
}

describe("turnout demo", () => {
  it("rolls v1 -> v2 to completion, rolls the bad v3 back automatically, and exits 0", async () => {
    const d = run();
    const code = await d.done;
    assert.equal(code, 0, `${d.out()}\n${d.err()}`);
    assert.match(d.out(), /done: rollout 1 completed: v2 is stable/);
    assert.match(
      d.out(),
      /rolled back automatically: rollout to v3 aborted: background analysis failed/,
    );
    assert.match(d.out(), /verdict: errors \d+(\.\d+)?% \(\d+\/\d+\) vs baseline/);
    assert.match(d.out(), /v1 \d+ \(0 errors\), v2 \d+ \(0 errors\)/);
    assert.match(d.out(), /Promoted\s+demo/);
    // The A/B part (src/cli/demo/abtest.ts): m2 wins on purchases and is promoted.
    assert.match(d.out(), /m2 promoted: rollout 1 completed: m2 is stable/);
    assert.match(d.out(), /SRM: +ok/);
    // The close: the strategies' usual ratings explained, what was shown, where to go next.
    assert.match(d.out(), /Risk: expected +measured/);
    assert.match(d.out(), /expected: how each strategy is usually rated for risk and ease of/);
    assert.doesNotMatch(d.out(), /brief/);
    assert.match(d.out(), /What the demo showed\n( {2}✓ .+\n){6,7}All went as it should\.\n/);
    assert.match(d.out(), /Next: `turnout up`, then take a model of your own/);
    // One sequence of section numbers across every scenario (they restarted at 1 per scenario).
    const sections = [...d.out().matchAll(/^(\d+)\. /gm)].map((m) => Number(m[1]));
    assert.ok(sections.length >= 14, `sections ${sections.join(",")}`);
    assert.deepEqual(
      sections,
      sections.map((_, i) => i + 1),
    );
  });

  it("stops everything on Ctrl-C, leaving no process behind", async () => {
    let instances: number[] = [];
    let signalled = false;
    const d = run((line, pid) => {
      if (!signalled && line.includes("synthetic users")) {
        signalled = true;
        instances = childrenOf(pid);
        process.kill(pid, "SIGINT");
      }
    });
    const code = await d.done;
    assert.ok(signalled, d.out());
    assert.equal(code, 130, d.err());
    assert.ok(instances.length >= 2, `the demo had its model instances running: ${instances}`);
    await waitFor("instances gone", async () => instances.every(isGone), 10_000);
  });
});

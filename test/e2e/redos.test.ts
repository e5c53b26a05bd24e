/**
 * Flag `matches` conditions, in rules and in segments, through OFREP on a real `turnout up`:
 * patterns that backtrack catastrophically under RegExp evaluate 10 kB attributes in bounded
 * time (the issue: a 29-character attribute took 2 s), and patterns RE2 cannot run are refused
 * at apply with their path and name, leaving the stored flags untouched.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { api, startUp, tempDir, type Up } from "../helpers.js";

const FLAGS = `apiVersion: turnout.dev/v1
kind: Flag
metadata: { name: greedy }
spec:
  type: string
  variants: { plain: "p", fancy: "f", seg: "s" }
  defaultVariant: plain
  rules:
    - name: nested
      conditions: [{ attribute: email, op: matches, value: "^(a+)+$" }]
      variant: fancy
    - name: alternation
      conditions: [{ attribute: name, op: matches, value: "(a|aa)+$" }]
      variant: fancy
    - name: issue
      conditions: [{ attribute: code, op: matches, value: "^(?:a{00000000000000000000001,})+$" }]
      variant: fancy
    - segments: [slow]
      variant: seg
---
apiVersion: turnout.dev/v1
kind: Segment
metadata: { name: slow }
spec:
  conditions: [{ attribute: tag, op: matches, value: "(x+x+)+y" }]
`;

/** Generous for a loaded 2-core machine; backtracking takes seconds at 30 characters. */
const BOUND_MS = 500;

describe("user patterns through OFREP", () => {
  let dir: string;
  let up: Up;
  let key: string;
  const evaluate = async (context: Record<string, string>) => {
    const started = performance.now();
    const r = await fetch(`${up.url}/ofrep/v1/evaluate/flags/greedy`, {
      method: "POST",
      headers: { "x-api-key": key, "content-type": "application/json" },
      body: JSON.stringify({ context: { targetingKey: "u1", ...context } }),
    });
    const body = (await r.json()) as { variant?: string };
    return { status: r.status, variant: body.variant, ms: performance.now() - started };
  };

  before(async () => {
    dir = tempDir();
    up = await startUp(dir);
    key = readFileSync(join(dir, "flag-keys"), "utf8")
      .split("\n")
      .find((l) => l.startsWith("tfk_"))!;
    const r = await api(up, "POST", "/api/v1/apply", FLAGS, { contentType: "application/yaml" });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  });
  after(async () => {
    await up?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("catastrophic patterns in rules and segments evaluate 10 kB attributes in bounded time", async () => {
    const n = 10_000;
    const contexts: Record<string, string>[] = [
      { email: `${"a".repeat(n)}!` },
      { name: `${"a".repeat(n)}!` },
      { code: `${"a".repeat(n)}!` },
      { code: `${"a".repeat(28)}!` }, // the 29 characters, 2 s before
      { tag: "x".repeat(n) },
    ];
    for (const context of contexts) {
      const r = await evaluate(context);
      assert.equal(r.status, 200);
      assert.equal(r.variant, "plain", JSON.stringify(context).slice(0, 40));
      assert.ok(r.ms < BOUND_MS, `${Object.keys(context)[0]}: ${r.ms.toFixed(0)} ms`);
    }
    // And they still match what they should.
    assert.equal((await evaluate({ email: "a".repeat(n) })).variant, "fancy");
    assert.equal((await evaluate({ tag: `${"x".repeat(n)}y` })).variant, "seg");
  });

  it("a pattern RE2 cannot run is refused at apply, by name and path; stored flags unchanged", async () => {
    const bad = FLAGS.replace('"^(a+)+$"', '"^(?=a)(a+)+$"');
    const r = await api(up, "POST", "/api/v1/apply", bad, { contentType: "application/yaml" });
    assert.equal(r.status, 400, JSON.stringify(r.json));
    const text = JSON.stringify(r.json);
    assert.match(text, /spec\.rules\[0\]\.conditions\[0\]\.value/);
    assert.match(text, /must not use lookahead/);
    assert.equal((await evaluate({ email: "aaa" })).variant, "fancy");
  });
});

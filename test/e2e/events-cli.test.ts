/** `turnout events post` against a real Turnout (#18 item 13), with the answer's warnings (item 5). */
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { type RunningTurnout, startTurnout } from "../../src/server.js";
import { cli, tempDir } from "../helpers.js";

describe("turnout events post", () => {
  let dir: string;
  let t: RunningTurnout;
  const run = (...args: string[]) => cli(["--server", t.url, "--token", t.token, ...args]);

  before(async () => {
    dir = tempDir();
    t = await startTurnout({ dataDir: dir, port: 0, logger: pino({ level: "silent" }) });
  });
  after(async () => {
    await t.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("posts one event from options, idempotent with --key, and warns of an unread metric", async () => {
    const args = ["events", "post", "--unit", "user-1", "--metric", "purchase", "--value", "19.5"];
    // A retry is the same event: the same key and the same timestamp.
    args.push("--key", "k1", "--timestamp", String(Date.now()));
    const a = await run(...args);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /^1 accepted of 1\n$/);
    assert.match(
      a.stderr,
      /warning: no experiment reads metric "purchase" \(1 event; stored, but counted in no result\)/,
    );
    const again = await run(...args, "-o", "json");
    assert.equal(again.code, 0, again.stderr);
    const j = JSON.parse(again.stdout);
    assert.deepEqual([j.received, j.accepted, j.duplicates], [1, 0, 1]);
  });

  it("posts a batch from a file", async () => {
    const file = join(dir, "events.json");
    const now = Date.now();
    writeFileSync(
      file,
      JSON.stringify({
        events: [1, 2, 3].map((n) => ({
          idempotencyKey: `b-${n}`,
          unit: `u${n}`,
          metric: "signup",
          timestamp: now,
        })),
      }),
    );
    const r = await run("events", "post", "-f", file);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^3 accepted of 3\n$/);
  });

  it("posts a file bigger than one request in batches, the answers added up; a repeat counts once", async () => {
    const file = join(dir, "many.json");
    const now = Date.now();
    const events = Array.from({ length: 2_500 }, (_, n) => ({
      idempotencyKey: `many-${n}`,
      unit: `u${n}`,
      metric: n % 2 === 0 ? "signup" : "sigup",
      timestamp: now,
    }));
    writeFileSync(file, JSON.stringify(events));
    const r = await run("events", "post", "-f", file);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^2500 accepted of 2500\n$/);
    // One warning for the misspelt metric, its events counted over every batch.
    assert.equal(r.stderr.match(/warning: no experiment reads metric "sigup"/g)?.length, 1);
    assert.match(r.stderr, /\(1250 events;/);
    const again = await run("events", "post", "-f", file, "-o", "json");
    assert.equal(again.code, 0, again.stderr);
    const j = JSON.parse(again.stdout);
    assert.deepEqual([j.received, j.accepted, j.duplicates], [2500, 0, 2500]);
  });

  it("a file nested too deep is refused before it is parsed (exit 1, the limit named)", async () => {
    const file = join(dir, "deep.json");
    writeFileSync(file, `${"[".repeat(5000)}${"]".repeat(5000)}`);
    const r = await run("events", "post", "-f", file);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /deep|depth|nest/i);
  });

  it("without --unit and --metric or -f: a usage error (exit 2); bad events: the API's problems", async () => {
    const r = await run("events", "post", "--metric", "x");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /needs --unit and --metric/);
    const bad = await run("events", "post", "--unit", "u", "--metric", "m", "--timestamp", "0");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /events\[0\]\.timestamp/);
  });
});

/**
 * An A/B test end to end, in one process on port 0: the router assigns users to arms by a
 * header (sticky), serves QA's forced arm without logging it, logs first exposures and a
 * response header's values; the app posts outcome events (batched, idempotent, validated);
 * the controller decides (manual: it waits for a person), `turnout experiment results` shows
 * the table, and `promote` completes the rollout.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { Pool } from "undici";
import { type RunningTurnout, startTurnout } from "../../src/server.js";
import { api, cli, freePort, startUp, tempDir, waitFor } from "../helpers.js";

function backend(name: string, confidence: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/plain", "x-model-confidence": confidence });
    res.end(name);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      resolve({ url: `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`, server });
    }),
  );
}

const USERS = 1000;

describe("A/B test end to end", () => {
  let dir: string;
  let t: RunningTurnout;
  let port: number;
  const servers: Server[] = [];
  const armOf = new Map<string, string>();

  before(async () => {
    dir = tempDir("turnout-ab-");
    const a = await backend("v1", "0.80");
    const b = await backend("v2", "0.82");
    servers.push(a.server, b.server);
    port = await freePort();
    t = await startTurnout({ dataDir: dir, port: 0, pollIntervalMs: 200 });
    const service = (version: string) => `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: shop }
spec:
  listen: { port: ${port} }
  runtime:
    static:
      versions:
        v1: { upstreams: ["${a.url}"] }
        v2: { upstreams: ["${b.url}"] }
  version: ${version}
  strategy:
    abTest:
      name: checkout-v2
      split: 50
      assignment: { header: x-user }
      force: { header: x-turnout-arm }
      metrics:
        - { name: conversion, kind: binomial, role: goal, source: { event: buy } }
        - { name: confidence, kind: mean, role: guardrail, source: { responseHeader: x-model-confidence } }
        - { name: errors, kind: binomial, role: guardrail, source: { builtin: error_rate } }
      minSamples: 200
      maxDuration: 10m
      decision: manual
`;
    let r = await api(t, "POST", "/api/v1/apply", service("v1"), {
      contentType: "application/yaml",
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r = await api(t, "POST", "/api/v1/apply", service("v2"), { contentType: "application/yaml" });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await waitFor("the experiment in the route table", async () => {
      const s = await api(t, "GET", "/api/v1/services/shop/status");
      return (
        s.json?.status?.experiment?.name === "checkout-v2" && s.json.status.canaryWeight === 50
      );
    });
    // The router has the table once a request with a user id is answered by v2 for some user.
    await waitFor("the router applying the table", async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`, {
        headers: { "x-user": "probe", "x-turnout-arm": "B" },
      });
      return (await res.text()) === "v2";
    });
  });

  after(async () => {
    await t?.stop();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("assigns users stickily by header, about 50/50, and serves forced arms", async () => {
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8 });
    for (let round = 0; round < 2; round++) {
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          for (let i = w; i < USERS; i += 8) {
            const user = `user-${i}`;
            const res = await pool.request({
              path: "/",
              method: "GET",
              headers: { "x-user": user },
            });
            const v = await res.body.text();
            const arm = v === "v1" ? "A" : "B";
            if (round === 0) armOf.set(user, arm);
            else assert.equal(arm, armOf.get(user), `${user} moved between arms`);
          }
        }),
      );
    }
    await pool.close();
    const b = [...armOf.values()].filter((a) => a === "B").length;
    assert.ok(b > 430 && b < 570, `B got ${b} of ${USERS}`);
    for (const arm of ["A", "B"]) {
      const res = await fetch(`http://127.0.0.1:${port}/`, {
        headers: { "x-user": "qa-tester", "x-turnout-arm": arm },
      });
      assert.equal(await res.text(), arm === "A" ? "v1" : "v2");
    }
  });

  it("accepts outcome events idempotently and rejects bad batches with every problem", async () => {
    const now = Date.now();
    // Deterministic conversions: 12% of A's users, 30% of B's.
    const events = [...armOf].flatMap(([user, arm], i) =>
      (arm === "A" ? i % 25 < 3 : i % 10 < 3)
        ? [{ idempotencyKey: `buy-${user}`, unit: user, metric: "buy", timestamp: now }]
        : [],
    );
    const first = await api(t, "POST", "/api/v1/events", { events });
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assert.deepEqual(first.json, {
      received: events.length,
      accepted: events.length,
      duplicates: 0,
    });
    const again = await api(t, "POST", "/api/v1/events", { events: events.slice(0, 10) });
    assert.deepEqual(again.json, { received: 10, accepted: 0, duplicates: 10 });
    // A metric no experiment reads is stored, and the answer says so (#18 item 5).
    const typo = await api(t, "POST", "/api/v1/events", {
      events: [1, 2].map((n) => ({
        idempotencyKey: `typo-${n}`,
        unit: `user-${n}`,
        metric: "buyy",
        timestamp: now,
      })),
    });
    assert.equal(typo.status, 200);
    assert.deepEqual(typo.json.unknownMetrics, [{ metric: "buyy", events: 2, didYouMean: "buy" }]);
    assert.match(typo.json.warning, /2 event\(s\) name a metric no experiment reads \("buyy"\)/);

    const bad = await api(t, "POST", "/api/v1/events", {
      events: [
        { idempotencyKey: "ok-1", unit: "user-1", metric: "buy", timestamp: now },
        { idempotencyKey: "bad-1", unit: "", metric: "buy", timestamp: now },
        {
          idempotencyKey: "bad-2",
          unit: "user-2",
          metric: "buy",
          value: "7",
          timestamp: "yesterday",
        },
        { idempotencyKey: "bad-3", unit: "user-3", metric: "buy", timestamp: now + 3_600_000 },
      ],
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, "TURNOUT_ERR_EVENTS_INVALID");
    const paths = bad.json.error.details.errors.map((e: { path: string }) => e.path);
    assert.deepEqual(paths, [
      "events[1].unit",
      "events[2].value",
      "events[2].timestamp",
      "events[3].timestamp",
    ]);
    // Nothing of a rejected batch is stored: "ok-1" is accepted as new afterwards.
    const ok = await api(t, "POST", "/api/v1/events", {
      events: [{ idempotencyKey: "ok-1", unit: "nobody", metric: "other", timestamp: now }],
    });
    assert.equal(ok.json.accepted, 1);
  });

  it("decides B wins (waiting for a person), shows the results, and promote completes", async () => {
    const status = await waitFor(
      "the manual decision",
      async () => {
        const s = await api(t, "GET", "/api/v1/services/shop/status");
        return s.json?.status?.phase === "Paused" ? s.json.status : null;
      },
      20_000,
    );
    assert.match(status.message, /v2 wins .*turnout promote/);

    // The router flushes exposures and header events every 500 ms: wait for the last ones.
    const r = await waitFor("every response header recorded", async () => {
      const res = await api(t, "GET", "/api/v1/experiments/checkout-v2/results");
      const conf = res.json?.metrics?.find((m: any) => m.name === "confidence");
      return conf?.arms[0].value > 1.6 - 1e-9 && conf?.arms[1].value > 1.64 - 1e-9 ? res : null;
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.verdict, "win");
    assert.equal(r.json.srm.mismatch, false);
    const units = Object.fromEntries(r.json.arms.map((a: any) => [a.name, a.units]));
    // Every user once; the forced QA requests and the probe are not exposures.
    assert.equal(units.A + units.B, USERS);
    const conf = r.json.metrics.find((m: any) => m.name === "confidence");
    assert.ok(Math.abs(conf.arms[0].value - 1.6) < 1e-9, JSON.stringify(conf.arms)); // 2 responses × 0.80
    const conv = r.json.metrics.find((m: any) => m.name === "conversion");
    assert.equal(conv.comparisons[0].outcome, "better");

    const env = { TURNOUT_SERVER: t.url, TURNOUT_TOKEN: t.token };
    const text = await cli(["experiment", "results", "checkout-v2"], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /SRM: +ok/);
    assert.match(text.stdout, /conversion +goal +B/);
    // The table says it is live; the decision says when and on which units it was taken.
    assert.equal(r.json.live, true);
    assert.equal(typeof r.json.decidedAt, "number");
    assert.match(text.stdout, /verdict: +win \(this table's figures, read at .*, live\)/);
    assert.match(text.stdout, /decision: win at \S+ \S+: .*\(on A=\d+, B=\d+ units\)/);
    assert.match(text.stdout, /events kept arriving since/);
    const list = await cli(["get", "experiments", "-o", "json"], env);
    assert.equal(JSON.parse(list.stdout).items[0].name, "checkout-v2");
    const plan = await cli([
      "experiment",
      "plan",
      "--baseline",
      "0.05",
      "--mde",
      "0.1",
      "-o",
      "json",
    ]);
    assert.equal(plan.code, 0, plan.stderr);
    // statsmodels' samplesize_proportions_2indep_onetail gives 31,234 per arm (power.test.ts).
    assert.equal(JSON.parse(plan.stdout).fixedHorizon.control, 31234);
    assert.ok(JSON.parse(plan.stdout).sequential.perArm > 31234);

    const p = await api(t, "POST", "/api/v1/services/shop/promote", {});
    assert.equal(p.status, 200, JSON.stringify(p.json));
    await waitFor("Completed", async () => {
      const s = await api(t, "GET", "/api/v1/services/shop/status");
      return s.json?.status?.phase === "Completed" && s.json.status.stableVersion === "v2";
    });
    const missing = await api(t, "GET", "/api/v1/experiments/nope/results");
    assert.equal(missing.json.error.code, "TURNOUT_ERR_EXPERIMENT_NOT_FOUND");
  });
});

describe("outcome events survive a crash", () => {
  it("events acknowledged before a SIGKILL are there after the restart (their keys are duplicates)", async () => {
    const dir = tempDir("turnout-ab-crash-");
    try {
      let up = await startUp(dir);
      const now = Date.now();
      const events = Array.from({ length: 500 }, (_, i) => ({
        idempotencyKey: `crash-${i}`,
        unit: `u${i}`,
        metric: "buy",
        value: i,
        timestamp: now,
      }));
      const r = await api(up, "POST", "/api/v1/events", { events });
      assert.equal(r.json.accepted, 500, JSON.stringify(r.json));
      // No graceful shutdown: the reply was the only promise.
      assert.equal(await up.stop("SIGKILL"), null);
      up = await startUp(dir);
      const again = await api(up, "POST", "/api/v1/events", { events });
      // No experiment reads "buy" here: the answer also says so (unknownMetrics, warning).
      const { received, accepted, duplicates } = again.json;
      assert.deepEqual(
        { received, accepted, duplicates },
        { received: 500, accepted: 0, duplicates: 500 },
      );
      assert.deepEqual(again.json.unknownMetrics, [{ metric: "buy", events: 500 }]);
      await up.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

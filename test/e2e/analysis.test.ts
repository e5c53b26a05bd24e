/**
 * End to end: a canary gated by analysis on the router's own measurements. A candidate that
 * fails 30% of its requests is rolled back automatically; the verdict is explained in status
 * and history; and once the rollback is committed, the route table in force sends nothing more
 * to the candidate.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { Pool } from "undici";
import { type RunningTurnout, startTurnout } from "../../src/server.js";
import { api, cli, freePort, tempDir, waitFor } from "../helpers.js";

function backend(name: string, failEvery: number): Promise<{ url: string; server: Server }> {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    n++;
    const fail = failEvery > 0 && n % failEvery === 0;
    res.writeHead(fail ? 500 : 200, { "content-type": "text/plain" });
    res.end(name);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      resolve({ url: `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`, server });
    }),
  );
}

describe("canary gated by analysis, end to end", () => {
  let dir: string;
  let t: RunningTurnout;
  let port: number;
  const servers: Server[] = [];
  let stopTraffic = false;
  let traffic: Promise<void> | null = null;

  before(async () => {
    dir = tempDir();
    const good = await backend("v1", 0);
    const bad = await backend("v2", 3); // every third request fails: 33% errors
    servers.push(good.server, bad.server);
    port = await freePort();
    t = await startTurnout({ dataDir: dir, port: 0, pollIntervalMs: 200 });
    const yaml = `apiVersion: turnout.dev/v1
kind: AnalysisTemplate
metadata: { name: errors }
spec:
  metrics:
    - name: error-rate
      source: { builtin: error_rate }
      judge: { sequential: { maxIncrease: 0.02, alpha: 0.01 } }
      interval: 1s
      minSamples: 20
---
apiVersion: turnout.dev/v1
kind: Service
metadata: { name: checkout }
spec:
  listen: { port: ${port} }
  runtime:
    static:
      versions:
        v1: { upstreams: ["${good.url}"] }
        v2: { upstreams: ["${bad.url}"] }
  version: v1
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {}
      analysis: { templates: [errors] }
`;
    const r = await api(t, "POST", "/api/v1/apply", yaml, { contentType: "application/yaml" });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await waitFor(
      "v1 serving",
      async () =>
        (await api(t, "GET", "/api/v1/services/checkout/status")).json.status?.phase === "Healthy",
    );
  });

  after(async () => {
    stopTraffic = true;
    await traffic;
    await t?.stop();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("rolls a failing candidate back automatically and explains why", async (ctx) => {
    // When each new table for the service was put in force by the router (wall clock).
    const reloads: number[] = [];
    t.router.onReload((e) => {
      if (e.ok && e.changed.includes("checkout")) reloads.push(Date.now());
    });
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 4 });
    let afterRollback = { v2: 0, total: 0 };
    let rolledBack = false;
    traffic = (async () => {
      while (!stopTraffic) {
        const res = await pool.request({ path: "/", method: "GET" });
        const body = await res.body.text();
        if (rolledBack) {
          afterRollback.total++;
          if (body === "v2") afterRollback.v2++;
        }
        await new Promise((r) => setTimeout(r, 2));
      }
      await pool.close();
    })();

    const yaml = (await api(t, "GET", "/api/v1/services/checkout")).json.resource;
    yaml.spec.version = "v2";
    const r = await api(t, "POST", "/api/v1/apply", yaml);
    assert.equal(r.status, 200, JSON.stringify(r.json));

    const v = await waitFor(
      "automatic rollback",
      async () => {
        const s = (await api(t, "GET", "/api/v1/services/checkout/status")).json;
        return s.status?.phase === "Degraded" ? s : undefined;
      },
      30_000,
    ).catch(async (err) => {
      const s = (await api(t, "GET", "/api/v1/services/checkout/status")).json;
      const h = (await api(t, "GET", "/api/v1/services/checkout/history")).json;
      console.error(JSON.stringify(s.status, null, 1).slice(0, 4000));
      console.error(
        h.events
          .map((e: { type: string; message: string }) => `${e.type}: ${e.message}`)
          .join("\n"),
      );
      throw err;
    });
    rolledBack = true;
    afterRollback = { v2: 0, total: 0 };
    assert.match(v.status.message, /background analysis failed/);
    assert.match(v.status.message, /error-rate/);
    assert.deepEqual(
      v.routeTable.backends.map((b: { version: string; weight: number }) => [b.version, b.weight]),
      [["v1", 100]],
    );

    const events = (await api(t, "GET", "/api/v1/services/checkout/history")).json.events;
    const failed = events.find((e: { type: string }) => e.type === "AnalysisFailed");
    assert.ok(failed, events.map((e: { type: string }) => e.type).join());
    const metric = failed.data.metrics[0];
    assert.equal(metric.last.outcome, "fail");
    assert.ok(metric.last.pValue < 0.01, `p-value ${metric.last.pValue}`);
    assert.match(metric.last.explanation, /%/);
    const aborted = events.find((e: { type: string }) => e.type === "RolloutAborted");
    assert.equal(aborted.actor, "controller");
    // The verdict's time is the tick that judged; the table is in force when the router applied it.
    const inForce = reloads.find((at) => at >= aborted.time);
    assert.ok(inForce !== undefined, "the router applied the rollback's table");
    ctx.diagnostic(`verdict to route table in force: ${inForce - aborted.time} ms`);

    // The human views show the verdict.
    const st = await cli(["--server", t.url, "--token", t.token, "status", "checkout"]);
    assert.match(st.stdout, /Degraded/);
    assert.match(st.stdout, /error-rate/);
    const h = await cli(["--server", t.url, "--token", t.token, "history", "checkout"]);
    assert.match(h.stdout, /AnalysisFailed/);

    // After the rollback is committed nothing more reaches the candidate.
    await waitFor("more traffic", async () => afterRollback.total >= 200, 20_000);
    assert.equal(afterRollback.v2, 0);
  });
});

/**
 * End to end: a canary of a version that hangs (it answers its health check and accepts every
 * request, but never answers one) is rolled back by the background analysis of the builtin
 * error_rate at its defaults, because its clients give up after 2 s, long before the router's
 * 30-s upstream timeout: the router counts those requests as abandoned, and error_rate counts
 * them as errors. Before abandoned requests were measured, v2 showed no requests at all to the
 * analysis ("no data"), the 20-s pause ran out and v2 was promoted to 100%.
 *
 * `turnout up` in a child process (the built-in router, SQLite), v1 and v2 as static upstreams
 * served by this process, and open-loop clients at 40 requests/s (test/load.ts).
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  api,
  cli,
  freePort,
  hangingServer,
  startBackend,
  startUp,
  staticService,
  tempDir,
  type Up,
  waitFor,
} from "../helpers.js";
import { type PacedLoad, type PacedResult, startPacedLoad } from "../load.js";

/** Clients give up after this long without an answer. */
const CLIENT_TIMEOUT_MS = 2000;
/** The canary's pause at 50%: a version still not caught by then is promoted. */
const PAUSE_SECONDS = 20;

describe("a canary that hangs, end to end", () => {
  let dir: string;
  let up: Up;
  let port: number;
  let v1: Awaited<ReturnType<typeof startBackend>>;
  let v2: Awaited<ReturnType<typeof hangingServer>>;
  let load: PacedLoad | null = null;

  before(async () => {
    dir = tempDir();
    v1 = await startBackend("v1");
    v2 = await hangingServer();
    port = await freePort();
    up = await startUp(dir);
    const template = {
      apiVersion: "turnout.dev/v1",
      kind: "AnalysisTemplate",
      metadata: { name: "errors" },
      spec: {
        metrics: [
          {
            name: "errors",
            source: { builtin: "error_rate" },
            judge: { sequential: { maxIncrease: 0.01 } },
          },
        ],
      },
    };
    const service = staticService(port, { v1: [v1.url], v2: [v2.url] }, "v1", [
      { setWeight: 50 },
      { pause: { duration: `${PAUSE_SECONDS}s` } },
    ]);
    Object.assign(service.spec.strategy.canary, { analysis: { templates: ["errors"] } });
    const r = await api(up, "POST", "/api/v1/apply", [template, service]);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await waitFor(
      "v1 serving",
      async () =>
        (await api(up, "GET", "/api/v1/services/shop/status")).json.status?.phase === "Healthy",
    );
  });

  after(async () => {
    await load?.stop();
    await up?.stop();
    await v1?.close();
    v2?.server.closeAllConnections();
    v2?.server.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("rolls the canary back within the pause; v1 keeps serving", async (ctx) => {
    load = startPacedLoad(port, { rate: 40, timeoutMs: CLIENT_TIMEOUT_MS });
    // Some traffic on v1 first, so that the baseline has requests from the start.
    await waitFor("traffic on v1", async () => load!.results().length >= 40);

    const resource = (await api(up, "GET", "/api/v1/services/shop")).json.resource;
    resource.spec.version = "v2";
    const appliedAt = performance.now();
    const r = await api(up, "POST", "/api/v1/apply", resource);
    assert.equal(r.status, 200, JSON.stringify(r.json));

    const status = async () => (await api(up, "GET", "/api/v1/services/shop/status")).json;
    const ended = await waitFor(
      "the rollout to end (rolled back or completed)",
      async () => {
        const s = await status();
        return s.status?.phase === "Degraded" || s.status?.phase === "Completed" ? s : undefined;
      },
      (PAUSE_SECONDS + 15) * 1000,
    );
    const endedAt = performance.now();
    assert.equal(
      ended.status.phase,
      "Degraded",
      `the rollout was not rolled back: ${ended.status.phase}: ${ended.status.message}`,
    );
    const detectMs = endedAt - appliedAt;
    ctx.diagnostic(`apply to rollback observed: ${Math.round(detectMs)} ms`);
    assert.ok(
      detectMs < PAUSE_SECONDS * 1000,
      `rolled back ${Math.round(detectMs)} ms after the apply, after the pause`,
    );
    assert.deepEqual(
      ended.routeTable.backends.map((b: { version: string; weight: number }) => [
        b.version,
        b.weight,
      ]),
      [["v1", 100]],
    );
    assert.match(ended.status.message, /background analysis failed/);
    assert.match(ended.status.message, /abandoned by clients/);

    // The failed verdict, with the counts behind it.
    const events = (await api(up, "GET", "/api/v1/services/shop/history")).json.events;
    const failed = events.find((e: { type: string }) => e.type === "AnalysisFailed");
    assert.ok(failed, events.map((e: { type: string }) => e.type).join());
    const verdict = failed.data.metrics[0].last;
    assert.equal(verdict.outcome, "fail");
    ctx.diagnostic(`verdict: ${verdict.explanation}`);
    const candidate = verdict.inputs.candidate;
    assert.ok(candidate.abandoned > 0 && candidate.abandoned === candidate.events, verdict);

    // v1 keeps serving: every request sent once the rollback is in force (the router polls
    // its tables every 500 ms at worst) is answered by v1.
    const since = endedAt + 1000;
    await waitFor(
      "200 requests sent after the rollback",
      async () => load!.results().filter((x) => x.sentAt >= since).length >= 200,
      30_000,
    );
    const results = await load.stop();
    load = null;
    const after = results.filter((x) => x.sentAt >= since);
    const wrong = after.filter((x) => x.outcome !== "ok" || x.version !== "v1");
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of ${after.length} not v1's answer`);
    const before = results.filter((x: PacedResult) => x.sentAt >= appliedAt && x.sentAt < since);
    ctx.diagnostic(
      `during the canary: ${before.length} requests, ${before.filter((x) => x.outcome === "timeout").length} given up by their clients`,
    );

    // The human views: status counts them among v2's errors, /metrics has them.
    const st = await cli(["--server", up.url, "--token", up.token, "status", "shop"]);
    assert.match(st.stdout, /Degraded/);
    assert.match(st.stdout, /abandoned by clients/);
    const metrics = await (await fetch(`${up.url}/metrics`)).text();
    const m = /turnout_router_abandoned_requests_total\{service="shop",version="v2"\} (\d+)/.exec(
      metrics,
    );
    assert.ok(m && Number(m[1]) >= candidate.abandoned, metrics.slice(0, 2000));
  });
});

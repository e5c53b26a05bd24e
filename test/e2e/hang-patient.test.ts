/**
 * End to end: a canary of a version that hangs (it answers its health check and accepts every
 * request, but never answers one), with clients more patient than the step's pause: they wait
 * 60 s, the pause is 2 s. No request to v2 ends during the step, so none is abandoned and none
 * times out at the router (its upstream timeout is set to 10 minutes here, so that only the rule
 * under test can catch v2); every look of the background `error_rate` analysis finds no data.
 *
 * Before the router counted requests as they start and a pause waited for evidence, the pause
 * ran out on "no data yet", the rollout completed and v2 served 100% (this test, with
 * `noResponseTimeout` left out, against the code before: Completed, v2 at 100%). Now the pause
 * is held (StepHeld: "37 requests sent, none answered yet"), and once the first request has gone
 * unanswered for the metric's `noResponseTimeout` (2 s here; by default the service's upstream
 * timeout) the analysis fails, v2 is rolled back, and v1 keeps serving.
 *
 * `turnout up` in a child process (the built-in router, SQLite: measurements go through the
 * store), v1 and v2 as static upstreams served by this process, open-loop clients at 40
 * requests/s (test/load.ts).
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
import { type PacedLoad, startPacedLoad } from "../load.js";

/** Clients wait this long for an answer: far longer than the pause and the whole test. */
const CLIENT_TIMEOUT_MS = 60_000;
/** The canary's pause at 50%. */
const PAUSE_SECONDS = 2;
/** How long requests to v2 may go unanswered before the analysis fails it. */
const NO_RESPONSE_SECONDS = 2;

interface HistoryEvent {
  type: string;
  message: string;
  data: Record<string, unknown>;
}

describe("a canary that hangs, with clients more patient than the pause, end to end", () => {
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
            noResponseTimeout: `${NO_RESPONSE_SECONDS}s`,
          },
        ],
      },
    };
    const service = staticService(port, { v1: [v1.url], v2: [v2.url] }, "v1", [
      { setWeight: 50 },
      { pause: { duration: `${PAUSE_SECONDS}s` } },
    ]);
    Object.assign(service.spec.strategy.canary, { analysis: { templates: ["errors"] } });
    // The router's own 504 would end v2's requests after this long: far beyond the test, so
    // that nothing ends and the rule on requests sent is what catches v2.
    Object.assign(service.spec, { trafficPolicy: { timeouts: { upstreamSeconds: 600 } } });
    const r = await api(up, "POST", "/api/v1/apply", [template, service]);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await waitFor(
      "v1 serving",
      async () =>
        (await api(up, "GET", "/api/v1/services/shop/status")).json.status?.phase === "Healthy",
    );
  });

  after(async () => {
    // Let the requests still waiting on v2 end (the router answers 502), then stop the clients.
    v2?.server.closeAllConnections();
    v2?.server.close();
    await load?.stop();
    await up?.stop();
    await v1?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("holds the pause, then rolls v2 back once its requests go unanswered; v1 keeps serving", async (ctx) => {
    load = startPacedLoad(port, { rate: 40, timeoutMs: CLIENT_TIMEOUT_MS });
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
      40_000,
    );
    const endedAt = performance.now();
    assert.equal(
      ended.status.phase,
      "Degraded",
      `the rollout was not rolled back: ${ended.status.phase}: ${ended.status.message}`,
    );
    ctx.diagnostic(`apply to rollback observed: ${Math.round(endedAt - appliedAt)} ms`);
    ctx.diagnostic(`status: ${ended.status.message}`);
    assert.deepEqual(
      ended.routeTable.backends.map((b: { version: string; weight: number }) => [
        b.version,
        b.weight,
      ]),
      [["v1", 100]],
    );
    assert.match(ended.status.message, /background analysis failed/);
    assert.match(ended.status.message, /requests? sent, none answered within/);
    // Nothing v2 was sent had ended: no client gave up, no 504.
    const results = load.results();
    assert.equal(results.filter((x) => x.outcome === "timeout").length, 0);
    assert.equal(results.filter((x) => x.status === 504).length, 0);

    const events: HistoryEvent[] = (await api(up, "GET", "/api/v1/services/shop/history")).json
      .events;
    const types = events.map((e) => e.type);
    // The pause ran out first, and was held rather than completed: v2 was never promoted.
    const held = events.find((e) => e.type === "StepHeld");
    assert.ok(held, types.join());
    ctx.diagnostic(`held: ${held.message}`);
    assert.equal(held.data.step, 1);
    assert.ok(!types.includes("RolloutCompleted"), types.join());
    assert.ok(
      !events.some((e) => e.type === "StepCompleted" && e.data.step === 1),
      "the pause did not complete",
    );
    // The failed verdict, with the counts behind it: sent, none answered, none ended.
    const failed = events.find((e) => e.type === "AnalysisFailed");
    assert.ok(failed, types.join());
    const metrics = failed.data.metrics as { last: Record<string, unknown> }[];
    const verdict = metrics[0]!.last as {
      outcome: string;
      explanation: string;
      inputs: { traffic: Record<string, number | string | null> };
    };
    ctx.diagnostic(`verdict: ${verdict.explanation}`);
    assert.equal(verdict.outcome, "fail");
    const traffic = verdict.inputs.traffic;
    assert.equal(traffic.version, "v2");
    assert.ok((traffic.started as number) > 0, JSON.stringify(traffic));
    assert.equal(traffic.responded, 0);
    assert.equal(traffic.ended, 0);
    assert.equal(traffic.noResponseMs, NO_RESPONSE_SECONDS * 1000);

    // v1 keeps serving: every request sent once the rollback is in force (the router polls its
    // tables every 500 ms at worst) is answered by v1.
    const since = endedAt + 1000;
    await waitFor(
      "100 requests sent after the rollback",
      async () => load!.results().filter((x) => x.sentAt >= since).length >= 100,
      30_000,
    );
    const after = load.results().filter((x) => x.sentAt >= since);
    const wrong = after.filter((x) => x.outcome !== "ok" || x.version !== "v1");
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of ${after.length} not v1's answer`);

    // `turnout status` says why.
    const st = await cli(["--server", up.url, "--token", up.token, "status", "shop"]);
    assert.match(st.stdout, /Degraded/);
    assert.match(st.stdout, /none answered within/);
  });
});

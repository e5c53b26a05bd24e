/**
 * `spec.traffic: {haproxy: {}}` through a real `turnout up` and a real HAProxy: the canary's
 * weights are put in force in HAProxy, the analysis reads HAProxy's measurements, `abort`
 * answers once HAProxy serves the stable version again, a strategy HAProxy cannot carry is
 * refused at apply naming the feature and the provider, `/metrics` shows the service in the
 * router's families, and nothing is left running after Turnout stops. Skipped with a reason where haproxy is not installed (CI installs it).
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, describe, it } from "node:test";
import { needsHaproxy } from "../../src/traffic/haproxy/testing.js";
import {
  api,
  cli,
  freePort,
  pidsWith,
  sendMany,
  startBackend,
  startUp,
  tempDir,
  waitFor,
} from "../helpers.js";

describe("HAProxy as a service's data plane, through turnout up", needsHaproxy(), () => {
  const dir = tempDir("turnout-hx-");
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("runs a canary on HAProxy, measures it from HAProxy's log, aborts back, refuses shadow, leaves nothing", async () => {
    const v1 = await startBackend("v1");
    const v2 = await startBackend("v2");
    const up = await startUp(dir);
    try {
      const port = await freePort();
      const service = (version: string, strategy?: unknown) => ({
        apiVersion: "turnout.dev/v1",
        kind: "Service",
        metadata: { name: "hx" },
        spec: {
          listen: { port },
          traffic: { haproxy: {} },
          stickiness: { header: "x-user" },
          runtime: {
            static: { versions: { v1: { upstreams: [v1.url] }, v2: { upstreams: [v2.url] } } },
          },
          version,
          ...(strategy ? { strategy } : {}),
        },
      });
      let r = await api(up, "POST", "/api/v1/apply", service("v1"));
      assert.equal(r.status, 200, JSON.stringify(r.json));
      await waitFor("v1 served through HAProxy", async () => {
        const counts = await sendMany(port, 20, 4).catch(() => null);
        return counts?.get("v1") === 20;
      });
      // Every answer names its version, as the built-in router's do.
      const one = await fetch(`http://127.0.0.1:${port}/`);
      await one.text();
      assert.equal(one.headers.get("x-turnout-version"), "v1");
      // HAProxy carries it: an HAProxy process runs with its config in the data dir.
      assert.ok(pidsWith(dir).length > 0, "an haproxy process runs for the service");

      r = await api(
        up,
        "POST",
        "/api/v1/apply",
        service("v2", { canary: { steps: [{ setWeight: 30 }, { pause: {} }] } }),
      );
      assert.equal(r.status, 200, JSON.stringify(r.json));
      await waitFor("the canary at 30% in force", async () => {
        const s = (await api(up, "GET", "/api/v1/services/hx/status")).json;
        return s.status?.phase === "Paused" && s.status?.canaryWeight === 30;
      });
      const counts = await sendMany(port, 1000, 8);
      const share = (counts.get("v2") ?? 0) / 1000;
      assert.ok(
        Math.abs(share - 0.3) < 0.05,
        `v2 share ${share} (counts ${JSON.stringify([...counts])})`,
      );
      assert.equal((counts.get("v1") ?? 0) + (counts.get("v2") ?? 0), 1000, "no failed request");

      // HAProxy's log lines reach the measurements `status` (and the analysis) read.
      const observed = await waitFor(
        "HAProxy's measurements in the service's status",
        async () => {
          const s = (await api(up, "GET", "/api/v1/services/hx/status")).json;
          const v2Stats = (s.traffic ?? []).find((t: { version: string }) => t.version === "v2");
          return v2Stats && v2Stats.requests >= 250 ? s.traffic : null;
        },
        20_000,
      );
      assert.ok(observed.length >= 2, JSON.stringify(observed));
      // The data plane is named in status, with its log intake: lost lines are never silent.
      // Every line of the 1,000 answered requests arrives (a loaded machine delays some).
      const st = await waitFor("a line for each of the 1,000 requests", async () => {
        const s = (await api(up, "GET", "/api/v1/services/hx/status")).json;
        return s.dataPlane?.intake?.lines >= 1000 ? s : undefined;
      });
      assert.equal(st.dataPlane.provider, "haproxy");
      assert.equal(st.dataPlane.process.running, true);
      assert.equal(st.dataPlane.intake.lost, 0);
      const shown = await cli(["status", "hx", "--data-dir", dir]);
      assert.match(shown.stdout, /Data plane:\s+haproxy \(managed\), running, .*0 log lines lost/);
      // /metrics: the service HAProxy carries is in the router's families, from HAProxy's log.
      const metrics = await (await fetch(`${up.url}/metrics`)).text();
      const sample = (name: string, labels: string) =>
        Number(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, "m").exec(metrics)?.[1] ?? Number.NaN);
      assert.ok(
        sample("turnout_router_requests_total", 'service="hx",version="v2",code_class="2xx"') >=
          250,
        metrics,
      );
      assert.ok(
        sample("turnout_router_request_duration_seconds_count", 'service="hx",version="v1"') >= 500,
        metrics,
      );

      // abort answers once HAProxy serves 100% stable again.
      r = await api(up, "POST", "/api/v1/services/hx/abort", { reason: "test" });
      assert.ok(r.status < 300, JSON.stringify(r.json));
      const after = await sendMany(port, 200, 8);
      assert.equal(after.get("v1"), 200, `after abort: ${JSON.stringify([...after])}`);

      // A strategy that needs mirrored traffic is refused at apply, naming feature and provider.
      r = await api(
        up,
        "POST",
        "/api/v1/apply",
        service("v2", { shadow: { percent: 100, gate: { minSamples: 10, minAgreement: 0.9 } } }),
      );
      assert.equal(r.status, 400, JSON.stringify(r.json));
      assert.equal(r.json.error.code, "TURNOUT_ERR_TRAFFIC_UNSUPPORTED");
      assert.equal(r.json.error.path, "spec.strategy.shadow");
      assert.match(r.json.error.message, /mirrored traffic.*haproxy provider/);
      // Nothing of the refused apply was stored: v1 still serves everything.
      assert.equal((await sendMany(port, 50, 4)).get("v1"), 50);
    } finally {
      assert.equal(await up.stop(), 0);
      await v1.close();
      await v2.close();
    }
    await waitFor("no haproxy left running", async () => pidsWith(dir).length === 0);
  });
});

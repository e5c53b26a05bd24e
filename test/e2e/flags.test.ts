/**
 * Feature flags end to end, in-process Turnout on port 0 with real HTTP upstreams:
 * - edge evaluation: the router evaluates the service's flags per request (targeting key =
 *   the sticky header), passes `x-turnout-flags` upstream (a client's own is replaced) and
 *   labels its measurements by variant;
 * - the manual kill switch (API and CLI) reaching the edge at once;
 * - blue-green with feature flags (`blueGreen.flagSteps`): switch to v2, then setFlag 50% with an
 *   analysis step; v2 fails when the feature is on, the analysis fails, the flag is turned
 *   off at once (with why in the flag's history) and v2 keeps serving with the feature dark.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { Pool } from "undici";
import { type RunningTurnout, startTurnout } from "../../src/server.js";
import { api, cli, freePort, tempDir, waitFor } from "../helpers.js";

/** Answers `name|<x-turnout-flags>`; fails (500) when `failWhenOn` and the feature is on. */
function backend(name: string, failWhenOn: boolean): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    const flags = String(req.headers["x-turnout-flags"] ?? "");
    const fail = failWhenOn && flags.includes("new-checkout=on");
    res.writeHead(fail ? 500 : 200, { "content-type": "text/plain" });
    res.end(`${name}|${flags}`);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      resolve({ url: `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`, server });
    }),
  );
}

describe("feature flags at the edge and in rollouts", () => {
  let dir: string;
  let t: RunningTurnout;
  let port: number;
  let pool: Pool;
  const servers: Server[] = [];
  let serviceYaml: (version: string) => string;

  const get = async (user: string, extra: Record<string, string> = {}) => {
    const res = await pool.request({
      path: "/",
      method: "GET",
      headers: { "x-user-id": user, ...extra },
    });
    return { status: res.statusCode, body: await res.body.text() };
  };

  before(async () => {
    dir = tempDir();
    const v1 = await backend("v1", false);
    const v2 = await backend("v2", true);
    servers.push(v1.server, v2.server);
    port = await freePort();
    t = await startTurnout({
      dataDir: dir,
      port: 0,
      pollIntervalMs: 200,
      logger: pino({ level: "warn" }, pino.destination(2)),
    });
    pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8 });
    serviceYaml = (version) => `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: shop }
spec:
  listen: { port: ${port} }
  stickiness: { header: x-user-id }
  flags: [new-checkout]
  runtime:
    static:
      versions:
        v1: { upstreams: ["${v1.url}"] }
        v2: { upstreams: ["${v2.url}"] }
  version: ${version}
  strategy:
    blueGreen:
      autoPromotionSeconds: 0
      flagSteps:
        - setFlag: { flag: new-checkout, percentage: 50 }
        - analysis: { templates: [errors] }
        - setFlag: { flag: new-checkout, percentage: 100 }
`;
    const yaml = `apiVersion: turnout.dev/v1
kind: Flag
metadata: { name: new-checkout }
spec:
  type: boolean
  variants: { on: true, off: false }
  defaultVariant: off
  rollout: { variant: on, percentage: 0 }
---
apiVersion: turnout.dev/v1
kind: AnalysisTemplate
metadata: { name: errors }
spec:
  metrics:
    - name: checkout-errors
      # The candidate's requests with the feature on against those with it off.
      source: { builtin: { metric: error_rate, flag: new-checkout } }
      judge: { sequential: { maxIncrease: 0.02, alpha: 0.01 } }
      interval: 1s
      count: 30
      minSamples: 20
---
${serviceYaml("v1")}`;
    const r = await api(t, "POST", "/api/v1/apply", yaml, { contentType: "application/yaml" });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await waitFor("v1 serving", async () => (await get("u0").catch(() => null))?.status === 200);
  });

  after(async () => {
    await pool?.close();
    await t?.stop();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("evaluates flags at the edge and passes them upstream; a client cannot spoof them", async () => {
    const a = await get("u1", { "x-turnout-flags": "new-checkout=on" });
    assert.deepEqual(a, { status: 200, body: "v1|new-checkout=off" });
    const set = await api(t, "POST", "/api/v1/flags/new-checkout/set", { percentage: 100 });
    assert.equal(set.status, 200, JSON.stringify(set.json));
    // The API answered once the flag was in force: no wait.
    assert.equal((await get("u1")).body, "v1|new-checkout=on");
    // The manual kill switch, from the CLI.
    const kill = await cli([
      "flags",
      "disable",
      "new-checkout",
      "--reason",
      "e2e",
      "--server",
      t.url,
      "--token",
      t.token,
    ]);
    assert.equal(kill.code, 0, kill.stderr);
    assert.match(kill.stdout, /disabled/);
    assert.equal((await get("u1")).body, "v1|new-checkout=off");
    const list = await cli(["get", "flags", "-o", "json", "--server", t.url, "--token", t.token]);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(JSON.parse(list.stdout).flags[0].state, "DISABLED");
    const reset = await cli([
      "flags",
      "reset",
      "new-checkout",
      "--server",
      t.url,
      "--token",
      t.token,
    ]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.equal((await get("u1")).body, "v1|new-checkout=off");
  });

  it("get segments lists segments with their conditions and users, in text and JSON", async () => {
    const yaml = `apiVersion: turnout.dev/v1
kind: Segment
metadata: { name: staff }
spec:
  conditions: [{ attribute: email, op: endsWith, value: "@example.com" }]
  included: [u1, u2]
`;
    const r = await api(t, "POST", "/api/v1/apply", yaml, { contentType: "application/yaml" });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const auth = ["--server", t.url, "--token", t.token];
    const text = await cli(["get", "segments", ...auth]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /NAME +CONDITIONS +INCLUDED +EXCLUDED +USED BY/);
    assert.match(text.stdout, /staff +email endsWith "@example.com" +2 +0 +-/);
    const json = await cli(["get", "segments", "staff", "-o", "json", ...auth]);
    assert.equal(json.code, 0, json.stderr);
    const one = JSON.parse(json.stdout);
    assert.equal(one.name, "staff");
    assert.deepEqual(one.spec.included, ["u1", "u2"]);
    assert.deepEqual(one.usedBy, []);
  });

  it("refuses references to flags, variants and segments that do not exist", async () => {
    const bad = serviceYaml("v1")
      .replace("flags: [new-checkout]", "flags: [new-chekout]")
      .replace("percentage: 100 }", "variant: maybe }");
    const r = await api(t, "POST", "/api/v1/apply", bad, { contentType: "application/yaml" });
    assert.equal(r.status, 400);
    const paths = r.json.error.details.errors.map((e: { path: string }) => e.path);
    assert.deepEqual(paths, [
      "spec.flags[0]",
      "spec.strategy.blueGreen.flagSteps[2].setFlag.variant",
    ]);
    const seg = await api(
      t,
      "POST",
      "/api/v1/apply",
      `apiVersion: turnout.dev/v1
kind: Flag
metadata: { name: other }
spec:
  type: boolean
  variants: { on: true, off: false }
  defaultVariant: off
  rules: [{ segments: [nobody], variant: on }]
`,
      { contentType: "application/yaml" },
    );
    assert.equal(seg.status, 400);
    assert.equal(seg.json.error.details.errors[0].path, "spec.rules[0].segments[0]");
  });

  it("a failed analysis after setFlag turns the flag off at once and records why", async () => {
    const r = await api(t, "POST", "/api/v1/apply", serviceYaml("v2"), {
      contentType: "application/yaml",
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    let stop = false;
    const seen = { on: 0, off: 0 };
    const traffic = (async () => {
      let i = 0;
      while (!stop) {
        const res = await get(`user-${i++ % 400}`);
        if (res.body.endsWith("new-checkout=on")) seen.on++;
        else seen.off++;
        await new Promise((res) => setTimeout(res, 1));
      }
    })();
    try {
      const status = await waitFor(
        "the feature turned off",
        async () => {
          const s = (await api(t, "GET", "/api/v1/services/shop/status")).json.status;
          return s?.phase === "Completed" || s?.phase === "Degraded" ? s : null;
        },
        30_000,
      );
      // The feature failed, not the version: the flag goes off, green keeps serving.
      assert.equal(status.phase, "Completed", status.message);
      assert.match(status.message, /completed with the feature off/);
      assert.match(status.message, /checkout-errors/);
      assert.equal(status.stableVersion, "v2");
      assert.equal(status.flags["new-checkout"].state, "DISABLED");
    } finally {
      stop = true;
      await traffic;
    }
    assert.ok(seen.on > 0, "some users had the feature before the rollback");
    // Off at the edge and in OFREP right away.
    assert.equal((await get("user-1")).body, "v2|new-checkout=off");
    const ofrep = await fetch(`${t.url}/ofrep/v1/evaluate/flags/new-checkout`, {
      method: "POST",
      headers: { "x-api-key": t.flags.clientKey, "content-type": "application/json" },
      body: JSON.stringify({ context: { targetingKey: "user-1" } }),
    });
    assert.equal(((await ofrep.json()) as { reason: string }).reason, "DISABLED");
    const h = await api(t, "GET", "/api/v1/flags/new-checkout/history");
    const actions = h.json.history.map((e: { action: string }) => e.action);
    assert.ok(actions.includes("rollout"), actions.join(","));
    assert.ok(actions.includes("rollout-kill"), actions.join(","));
    assert.ok(actions.includes("disable"), actions.join(","));
    // Measurements carry the variant, so analysis can compare on against off.
    const rows = await t.store.readMeasurements({ service: "shop", fromSec: 0, toSec: 2 ** 40 });
    const labels = new Set(rows.map((row) => row.labels));
    assert.ok(labels.has("flag.new-checkout=on"), [...labels].join(" "));
    assert.ok(labels.has("flag.new-checkout=off"), [...labels].join(" "));
  });
});

/**
 * End to end: shadow -> canary. A model's new version (v2) gets copies of live POST /predict
 * requests while users only get v1's answers; the router compares the pairs (labels, scores,
 * noise learned from a second copy to v1), the shadow gate passes on the agreement report and
 * the rollout goes on into a canary. A third version that disagrees far more fails the gate
 * and is rolled back with the report's numbers in its history. Reports are checked in the API,
 * in `turnout status` and in the history.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { Pool } from "undici";
import { type RunningTurnout, startTurnout } from "../../src/server.js";
import { api, cli, freePort, tempDir, waitFor } from "../helpers.js";

/**
 * A model: label "fraud" when x >= threshold. Versions differ in their threshold, so they
 * disagree on the inputs between the two; `ts` differs on every answer (noise).
 */
function model(
  name: string,
  threshold: number,
  seen: { auth: number; shadow: number; copyAuth: number },
): Promise<{ url: string; server: Server }> {
  let n = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const copy = req.headers["x-turnout-shadow"] === "1";
      if (copy) seen.shadow++;
      if (req.headers.authorization) {
        if (copy) seen.copyAuth++;
        else seen.auth++;
      }
      let x = 0;
      try {
        x = Number(JSON.parse(Buffer.concat(chunks).toString()).x) || 0;
      } catch {}
      n++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          version: name,
          label: x >= threshold ? "fraud" : "legit",
          // Scores differ by threshold / 100: within the tolerance for v2, not for v3.
          score: Math.round((x + threshold / 100) * 10_000) / 10_000,
          ts: `${Date.now()}-${n}`,
        }),
      );
    });
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      resolve({ url: `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`, server });
    }),
  );
}

describe("shadow deployment, end to end", () => {
  let dir: string;
  let t: RunningTurnout;
  let port: number;
  const servers: Server[] = [];
  const seen = {
    v1: { auth: 0, shadow: 0, copyAuth: 0 },
    v2: { auth: 0, shadow: 0, copyAuth: 0 },
    v3: { auth: 0, shadow: 0, copyAuth: 0 },
  };
  let stop = false;
  let traffic: Promise<void> | null = null;
  const answeredBy = new Map<string, number>();
  /** When each version first answered a user (wall clock ms). */
  const firstAnswer = new Map<string, number>();
  let errors = 0;

  const service = (version: string, urls: Record<string, string>) => ({
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: "fraud" },
    spec: {
      listen: { host: "127.0.0.1", port },
      runtime: {
        static: {
          versions: Object.fromEntries(
            Object.entries(urls).map(([v, u]) => [v, { upstreams: [u] }]),
          ),
        },
      },
      version,
      strategy: {
        canary: {
          steps: [
            {
              shadow: {
                percent: 100,
                methods: ["POST"],
                sideEffectFree: true,
                stripHeaders: ["authorization"],
                noise: true,
                compare: {
                  ignore: ["$.version"],
                  tolerance: { absolute: 0.001 },
                  classification: { field: "$.label" },
                  regression: { field: "$.score" },
                  drift: {},
                },
                gate: { minSamples: 200, minAgreement: 0.85, maxLatencyIncrease: 10 },
              },
            },
            { setWeight: 50 },
            { pause: {} },
          ],
          abortScaleDownDelaySeconds: 0,
        },
      },
    },
  });
  let urls: Record<string, string> = {};

  before(async () => {
    dir = tempDir();
    // v2 disagrees with v1 on x in [0.5, 0.55): 5% of inputs; v3 on [0.5, 0.8): 30%.
    const v1 = await model("v1", 0.5, seen.v1);
    const v2 = await model("v2", 0.55, seen.v2);
    const v3 = await model("v3", 0.8, seen.v3);
    servers.push(v1.server, v2.server, v3.server);
    urls = { v1: v1.url, v2: v2.url, v3: v3.url };
    port = await freePort();
    t = await startTurnout({ dataDir: dir, port: 0, pollIntervalMs: 200 });
    const r = await api(t, "POST", "/api/v1/apply", { resources: [service("v1", urls)] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await waitFor(
      "v1 serving",
      async () =>
        (await api(t, "GET", "/api/v1/services/fraud/status")).json.status?.phase === "Healthy",
    );
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 4 });
    let i = 0;
    traffic = (async () => {
      while (!stop) {
        // Inputs evenly spread over [0, 1): a fixed sequence, so the disagreement is exact.
        const x = ((i++ * 7919) % 1000) / 1000;
        try {
          const res = await pool.request({
            path: "/predict",
            method: "POST",
            headers: { "content-type": "application/json", authorization: "Bearer user-token" },
            body: JSON.stringify({ x }),
          });
          const body = JSON.parse(await res.body.text()) as { version: string };
          if (res.statusCode !== 200) errors++;
          answeredBy.set(body.version, (answeredBy.get(body.version) ?? 0) + 1);
          if (!firstAnswer.has(body.version)) firstAnswer.set(body.version, Date.now());
        } catch {
          errors++;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      await pool.close();
    })();
  });

  after(async () => {
    stop = true;
    await traffic;
    await t?.stop();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("shadow -> canary: users get v1 only, the gate passes on the agreement report", async () => {
    const r = await api(t, "POST", "/api/v1/apply", { resources: [service("v2", urls)] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    // The shadow phase: the route table mirrors, v2 gets no user traffic.
    const table = await waitFor("mirror in the route table", async () => {
      const v = (await api(t, "GET", "/api/v1/services/fraud/status")).json;
      return v.routeTable?.mirror ? v.routeTable : null;
    });
    assert.equal(table.mirror.version, "v2");
    assert.equal(table.backends.find((b: { version: string }) => b.version === "v2").weight, 0);

    const passed = await waitFor(
      "ShadowPassed",
      async () => {
        const h = (await api(t, "GET", "/api/v1/services/fraud/history")).json.events as {
          type: string;
          data: Record<string, any>;
        }[];
        return h.find((e) => e.type === "ShadowPassed") as
          | { type: string; time: number; data: Record<string, any> }
          | undefined;
      },
      60_000,
    );
    // Until the gate passed, every user answer came from v1 (v2's first answer, if the canary
    // step has already begun, came after the ShadowPassed event).
    const firstV2 = firstAnswer.get("v2");
    assert.ok(firstV2 === undefined || firstV2 >= passed.time, `v2 answered at ${firstV2}`);
    assert.equal(errors, 0);
    const rep = passed.data.report;
    assert.ok(rep.samples >= 200, `samples ${rep.samples}`);
    assert.ok(
      Math.abs(rep.classification.agreement - 0.95) < 0.02,
      `agreement ${rep.classification.agreement}`,
    );
    assert.deepEqual(rep.noiseFields, ["$.ts"]);
    assert.equal(rep.byField.find((f: { noise: boolean }) => !f.noise).field, "$.label");
    assert.ok(Math.abs(rep.regression.mae - 0.0005) < 1e-6, `mae ${rep.regression.mae}`);
    // Copies were marked and lost the user's Authorization header; the primary kept it.
    assert.ok(seen.v2.shadow >= 200);
    assert.equal(seen.v2.copyAuth, 0);
    assert.equal(seen.v1.copyAuth, 0);
    assert.ok(seen.v1.auth > 0);
    // The noise copies went to the stable version.
    assert.ok(seen.v1.shadow >= 200);

    // On into the canary: v2 takes 50% and the rollout waits for a person.
    await waitFor("canary at 50%", async () => {
      const v = (await api(t, "GET", "/api/v1/services/fraud/status")).json;
      return v.status?.phase === "Paused" && v.status.canaryWeight === 50 && !v.routeTable?.mirror;
    });

    const view = (await api(t, "GET", "/api/v1/services/fraud/shadow")).json;
    assert.equal(view.active, null);
    assert.equal(view.report.version, "v2");
    assert.ok(view.report.report.samples >= 200);
    assert.ok(view.report.report.sampleDiffs.length > 0);
    assert.equal(view.report.report.drops.queue_full ?? 0, 0);

    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /turnout_mirror_copies_total\{service="fraud",version="v2"\} \d{3,}/);
    assert.match(
      metrics,
      /turnout_mirror_pairs_compared_total\{service="fraud",version="v2"\} \d{3,}/,
    );

    const st = await cli(["--server", t.url, "--token", t.token, "status", "fraud"]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /Shadow: +last phase r\d+-s0-v2/);
    assert.match(st.stdout, /pairs, mismatch \d+\.\d%, agreement 9\d\.\d%/);

    const p = await api(t, "POST", "/api/v1/services/fraud/promote", { full: true });
    assert.equal(p.status, 200, JSON.stringify(p.json));
    await waitFor(
      "v2 stable",
      async () =>
        (await api(t, "GET", "/api/v1/services/fraud/status")).json.status?.stableVersion === "v2",
    );
  });

  it("a version that disagrees too often fails the gate and is rolled back, with the numbers", async () => {
    // v3 against v2 (the stable one now) disagrees on [0.55, 0.8): 25% of inputs.
    const r = await api(t, "POST", "/api/v1/apply", { resources: [service("v3", urls)] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const status = await waitFor(
      "rolled back",
      async () => {
        const s = (await api(t, "GET", "/api/v1/services/fraud/status")).json.status;
        return s?.phase === "Degraded" ? s : null;
      },
      60_000,
    );
    assert.match(status.message, /shadow gate failed .*agreement 7\d\.\d% < 85\.0%/);
    const h = (await api(t, "GET", "/api/v1/services/fraud/history")).json.events as {
      type: string;
      data: Record<string, any>;
    }[];
    const aborted = h.findLast((e) => e.type === "RolloutAborted")!;
    assert.ok(aborted.data.report.samples >= 200);
    assert.ok(Math.abs(aborted.data.report.agreement - 0.75) < 0.03);
    assert.equal(answeredBy.get("v3") ?? 0, 0, "users never got v3's answers");
  });
});

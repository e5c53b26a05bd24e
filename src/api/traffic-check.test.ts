/** Apply and validate refuse a Service whose data plane cannot carry what its spec needs. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { FakeClock } from "../core/clock.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Store } from "../store/store.js";
import { buildApi } from "./server.js";

const TOKEN = "test-token";
const auth = { authorization: `Bearer ${TOKEN}` };

function svc(name: string, port: number, more: Record<string, unknown>) {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name },
    spec: {
      listen: { port },
      runtime: {
        static: {
          versions: {
            v1: { upstreams: ["http://127.0.0.1:9001"] },
            v2: { upstreams: ["http://127.0.0.1:9002"] },
          },
        },
      },
      version: "v1",
      ...more,
    },
  };
}

const shadowOnHaproxy = svc("dark", 18101, {
  strategy: { shadow: { percent: 100, gate: { minSamples: 100 } } },
  traffic: { haproxy: {} },
});

describe("apply and validate: the traffic provider's capabilities", () => {
  let dir: string;
  let store: Store;
  let app: FastifyInstance;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-traffic-api-"));
    store = await openSqliteStore({ path: join(dir, "t.db") });
    app = buildApi({ store, clock: new FakeClock(), token: TOKEN, version: "test" });
    await app.ready();
  });
  after(async () => {
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const route of ["apply", "validate"]) {
    it(`${route}: a shadow strategy on haproxy is refused with its own code, nothing stored`, async () => {
      const r = await app.inject({
        method: "POST",
        url: `/api/v1/${route}`,
        headers: auth,
        // With a Service that is fine: the set is refused as a whole.
        payload: [svc("ok", 18102, {}), shadowOnHaproxy],
      });
      assert.equal(r.statusCode, 400, r.body);
      const body = r.json();
      assert.equal(body.error.code, "TURNOUT_ERR_TRAFFIC_UNSUPPORTED");
      assert.equal(
        body.error.message,
        "Service/dark: spec.strategy.shadow needs mirrored traffic, which the haproxy provider does not carry; use the built-in router (remove spec.traffic) or another strategy",
      );
      assert.equal(body.error.path, "spec.strategy.shadow");
      assert.equal(body.error.details.errors.length, 1);
      assert.deepEqual(await store.listResources("Service"), []);
    });
  }

  // Response-header metrics: the router records a header's value per exposed unit; HAProxy's
  // log carries no such values, so the experiment would have no data for them.
  const abTest = {
    abTest: {
      assignment: { header: "x-user" },
      metrics: [
        { name: "clicks", kind: "binomial", role: "goal", source: { event: "click" } },
        { name: "confidence", kind: "mean", source: { responseHeader: "x-confidence" } },
      ],
    },
  };
  const headerMetricOnHaproxy = svc("ranker", 18105, {
    strategy: abTest,
    traffic: { haproxy: {} },
  });
  for (const route of ["apply", "validate"]) {
    it(`${route}: an experiment's responseHeader metric on haproxy is refused, naming the field, the feature and the provider`, async () => {
      const r = await app.inject({
        method: "POST",
        url: `/api/v1/${route}`,
        headers: auth,
        payload: headerMetricOnHaproxy,
      });
      assert.equal(r.statusCode, 400, r.body);
      const body = r.json();
      assert.equal(body.error.code, "TURNOUT_ERR_TRAFFIC_UNSUPPORTED");
      assert.equal(
        body.error.message,
        "Service/ranker: spec.strategy.abTest.metrics[1].source.responseHeader needs A/B metrics read from response headers, which the haproxy provider does not carry; use the built-in router (remove spec.traffic) or an event source (POST /api/v1/events) for that metric",
      );
      assert.equal(body.error.path, "spec.strategy.abTest.metrics[1].source.responseHeader");
      assert.deepEqual(await store.listResources("Service"), []);
    });
  }

  it("the same experiment without spec.traffic validates (the built-in router records headers)", async () => {
    const builtin = svc("ranker", 18105, { strategy: abTest });
    const r = await app.inject({
      method: "POST",
      url: "/api/v1/validate",
      headers: auth,
      payload: builtin,
    });
    assert.equal(r.statusCode, 200, r.body);
  });

  it("other problems in the same body: reported together as invalid resources", async () => {
    const r = await app.inject({
      method: "POST",
      url: "/api/v1/apply",
      headers: auth,
      // An AnalysisTemplate that does not exist: found by the same pass as the capability check.
      payload: [
        shadowOnHaproxy,
        svc("refs", 18104, {
          strategy: { canary: { steps: [{ analysis: { templates: ["missing"] } }] } },
        }),
      ],
    });
    assert.equal(r.statusCode, 400, r.body);
    const body = r.json();
    assert.equal(body.error.code, "TURNOUT_ERR_RESOURCE_INVALID");
    const codes = body.error.details.errors.map((e: { code?: string }) => e.code ?? null);
    assert.ok(codes.includes("TURNOUT_ERR_TRAFFIC_UNSUPPORTED"), r.body);
    assert.ok(codes.includes(null), r.body);
    assert.deepEqual(await store.listResources("Service"), []);
  });

  it("what the provider carries is accepted and stored with spec.traffic", async () => {
    const canary = svc("fast", 18103, {
      stickiness: { header: "x-user" },
      strategy: { canary: { steps: [{ setWeight: 10 }, { pause: {} }] } },
      traffic: { haproxy: {} },
    });
    const r = await app.inject({
      method: "POST",
      url: "/api/v1/apply",
      headers: auth,
      payload: canary,
    });
    assert.equal(r.statusCode, 200, r.body);
    const [stored] = await store.listResources("Service");
    assert.deepEqual(stored?.resource.kind === "Service" && stored.resource.spec.traffic, {
      haproxy: {},
    });
  });
});

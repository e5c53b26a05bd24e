import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { FakeClock } from "../core/clock.js";
import { ShadowAggregate } from "../core/shadow/aggregate.js";
import { ShadowStore } from "../store/shadow-store.js";
import type { SqlStore } from "../store/sql-store.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import { buildApi } from "./server.js";

const auth = { authorization: "Bearer t" };

describe("GET /api/v1/services/:name/shadow", () => {
  let store: SqlStore;
  let app: FastifyInstance;
  let shadow: ShadowStore;
  before(async () => {
    store = await openSqliteStore({ path: ":memory:" });
    shadow = new ShadowStore(store);
    app = buildApi({
      store,
      clock: new FakeClock(),
      token: "t",
      version: "test",
      shadow: { shadow },
    });
    await app.ready();
    const r = await app.inject({
      method: "POST",
      url: "/api/v1/apply",
      headers: auth,
      payload: {
        apiVersion: "turnout.dev/v1",
        kind: "Service",
        metadata: { name: "m" },
        spec: {
          listen: { port: 18_099 },
          runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:1"] } } } },
          version: "v1",
        },
      },
    });
    assert.equal(r.statusCode, 200, r.body);
  });
  after(async () => {
    await app.close();
    await store.close();
  });

  it("404 with a stable code for an unknown service", async () => {
    const r = await app.inject({
      method: "GET",
      url: "/api/v1/services/nope/shadow",
      headers: auth,
    });
    assert.equal(r.statusCode, 404);
    assert.equal(r.json().code ?? r.json().error?.code, "TURNOUT_ERR_SERVICE_NOT_FOUND");
  });

  it("no report before any router flushed one; the latest phase after, and a chosen one", async () => {
    let r = await app.inject({ method: "GET", url: "/api/v1/services/m/shadow", headers: auth });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), {
      service: "m",
      active: null,
      report: null,
      phases: [],
      router: null,
    });
    const state = new ShadowAggregate().toJSON();
    await shadow.saveShadowAggregates([
      { service: "m", id: "r1-s0-v2", version: "v2", routerId: "a", state, updatedAt: 1 },
      { service: "m", id: "r2-s0-v3", version: "v3", routerId: "a", state, updatedAt: 2 },
    ]);
    r = await app.inject({ method: "GET", url: "/api/v1/services/m/shadow", headers: auth });
    assert.equal(r.json().report.id, "r2-s0-v3");
    assert.equal(r.json().phases.length, 2);
    r = await app.inject({
      method: "GET",
      url: "/api/v1/services/m/shadow?phase=r1-s0-v2",
      headers: auth,
    });
    assert.equal(r.json().report.version, "v2");
    // The status view carries the same block for `turnout status`.
    r = await app.inject({ method: "GET", url: "/api/v1/services/m/status", headers: auth });
    assert.equal(r.json().shadow.report.id, "r2-s0-v3");
  });
});

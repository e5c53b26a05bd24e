import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { FakeClock } from "../core/clock.js";
import { ShadowAggregate } from "../core/shadow/aggregate.js";
import { comparePair, compileCompare } from "../core/shadow/compare.js";
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

describe("GET /api/v1/services/:name/shadow/history over HTTP", () => {
  let store: SqlStore;
  let app: FastifyInstance;
  let shadow: ShadowStore;
  let base: string;
  const get = async (path: string, headers: Record<string, string> = auth) => {
    const r = await fetch(`${base}${path}`, { headers });
    return { status: r.status, body: (await r.json()) as any };
  };
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
    await app.listen({ port: 0, host: "127.0.0.1" });
    const addr = app.server.address();
    assert.ok(addr !== null && typeof addr === "object");
    base = `http://127.0.0.1:${addr.port}`;
    const r = await fetch(`${base}/api/v1/apply`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({
        apiVersion: "turnout.dev/v1",
        kind: "Service",
        metadata: { name: "m" },
        spec: {
          listen: { port: 18_098 },
          runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:1"] } } } },
          version: "v1",
        },
      }),
    });
    assert.equal(r.status, 200, await r.text());
  });
  after(async () => {
    await app.close();
    await store.close();
  });

  it("empty before any flush; then the points of the latest phase, oldest first, or of a chosen one", async () => {
    assert.deepEqual((await get("/api/v1/services/m/shadow/history")).body, {
      service: "m",
      phase: null,
      points: [],
    });
    // Three flushes of phase r1 (one pair more each, the third one mismatched), then one of r2.
    const a = new ShadowAggregate();
    const at = [1000, 2000, 3000];
    for (const [i, t] of at.entries()) {
      const enc = (y: number) => ({
        status: 200,
        headers: {},
        body: new TextEncoder().encode(JSON.stringify({ y })),
        truncated: false,
        latencyMs: 5,
      });
      a.addPair(comparePair(compileCompare(), enc(1), enc(i === 2 ? 2 : 1)), {
        requestId: `r${i}`,
        method: "GET",
        target: "/",
      });
      await shadow.saveShadowAggregates([
        {
          service: "m",
          id: "r1-s0-v2",
          version: "v2",
          routerId: "a",
          state: a.toJSON(),
          updatedAt: t,
        },
      ]);
    }
    await shadow.saveShadowAggregates([
      {
        service: "m",
        id: "r2-s0-v3",
        version: "v3",
        routerId: "a",
        state: new ShadowAggregate().toJSON(),
        updatedAt: 4000,
      },
    ]);
    let r = await get("/api/v1/services/m/shadow/history");
    assert.equal(r.status, 200);
    assert.equal(r.body.phase, "r2-s0-v3");
    assert.deepEqual(
      r.body.points.map((p: any) => p.at),
      [4000],
    );
    r = await get("/api/v1/services/m/shadow/history?phase=r1-s0-v2");
    assert.equal(r.body.phase, "r1-s0-v2");
    assert.deepEqual(
      r.body.points.map((p: any) => [p.at, p.samples, p.mismatches, p.routers, p.version]),
      [
        [1000, 1, 0, 1, "v2"],
        [2000, 2, 0, 1, "v2"],
        [3000, 3, 1, 1, "v2"],
      ],
    );
    // No label field: agreement is the share of matching pairs, 1 - mismatchRate.
    assert.equal(r.body.points[2].agreement, 1 - 1 / 3);
    r = await get("/api/v1/services/m/shadow/history?phase=r1-s0-v2&since=1000&limit=1");
    assert.deepEqual(
      r.body.points.map((p: any) => p.at),
      [3000],
    );
  });

  it("400 naming the parameter for a malformed since or limit; 404 for an unknown service; 401 signed out", async () => {
    for (const q of ["since=-1", "since=abc", "limit=0", "limit=10001", "limit=1.5"]) {
      const r = await get(`/api/v1/services/m/shadow/history?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.body.code ?? r.body.error?.code, "TURNOUT_ERR_API_BAD_REQUEST", q);
      assert.equal(
        r.body.path ?? r.body.error?.path ?? r.body.details?.path,
        q.split("=")[0],
        JSON.stringify(r.body),
      );
    }
    const nf = await get("/api/v1/services/nope/shadow/history");
    assert.equal(nf.status, 404);
    assert.equal(nf.body.code ?? nf.body.error?.code, "TURNOUT_ERR_SERVICE_NOT_FOUND");
    assert.equal((await get("/api/v1/services/m/shadow/history", {})).status, 401);
  });
});

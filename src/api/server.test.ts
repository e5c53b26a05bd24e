/** API behaviour that the end-to-end tests do not reach: timeouts, conflicts, limits. */
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

function svc(name: string, port: number, version = "v1") {
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
      version,
    },
  };
}

describe("API without a running controller", () => {
  let dir: string;
  let store: Store;
  let app: FastifyInstance;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-api-"));
    store = await openSqliteStore({ path: join(dir, "t.db") });
    app = buildApi({
      store,
      clock: new FakeClock(),
      token: TOKEN,
      version: "test",
      commandTimeoutMs: 200,
      bodyLimit: 64 * 1024,
    });
    await app.ready();
  });
  after(async () => {
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("applies JSON resources and reports created, then unchanged", async () => {
    let r = await app.inject({
      method: "POST",
      url: "/api/v1/apply",
      headers: auth,
      payload: svc("a", 18001),
    });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json().results, [
      { kind: "Service", name: "a", action: "created", generation: 1 },
    ]);
    r = await app.inject({
      method: "POST",
      url: "/api/v1/apply",
      headers: auth,
      payload: { resources: [svc("a", 18001)] },
    });
    assert.equal(r.json().results[0].action, "unchanged");
  });

  it("rejects a service that takes another stored service's port, storing nothing", async () => {
    const r = await app.inject({
      method: "POST",
      url: "/api/v1/apply",
      headers: auth,
      payload: [svc("b", 18002), svc("c", 18001)],
    });
    assert.equal(r.statusCode, 400);
    const e = r.json().error;
    assert.equal(e.code, "TURNOUT_ERR_RESOURCE_INVALID");
    assert.equal(e.path, "spec.listen.port");
    assert.match(JSON.stringify(e.details.errors), /a/);
    assert.equal(
      await store.getResource("Service", "b"),
      null,
      "the valid one was not stored either",
    );
  });

  it("validate checks without storing", async () => {
    const r = await app.inject({
      method: "POST",
      url: "/api/v1/validate",
      headers: auth,
      payload: svc("d", 18003),
    });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().valid, true);
    assert.equal(await store.getResource("Service", "d"), null);
  });

  it("answers 504 when no controller takes a command up; the command stays queued", async () => {
    const r = await app.inject({ method: "POST", url: "/api/v1/services/a/pause", headers: auth });
    assert.equal(r.statusCode, 504);
    assert.equal(r.json().error.code, "TURNOUT_ERR_COMMAND_TIMEOUT");
    const pending = await store.pendingCommands("a");
    assert.equal(pending.length, 1);
    assert.equal(pending[0]?.type, "pause");
  });

  it("undo with no previous stable version is a conflict", async () => {
    const r = await app.inject({ method: "POST", url: "/api/v1/services/a/undo", headers: auth });
    assert.equal(r.statusCode, 409);
    assert.equal(r.json().error.code, "TURNOUT_ERR_ROLLOUT_CONFLICT");
  });

  it("404s for unknown services, with the path of the bad field", async () => {
    const r = await app.inject({
      method: "POST",
      url: "/api/v1/services/zzz/promote",
      headers: auth,
    });
    assert.equal(r.statusCode, 404);
    assert.equal(r.json().error.code, "TURNOUT_ERR_SERVICE_NOT_FOUND");
    assert.equal(r.json().error.path, "name");
  });

  it("413 for an oversized body, 400 for bad query parameters and empty bodies", async () => {
    const big = `# ${"x".repeat(70 * 1024)}\n`;
    let r = await app.inject({
      method: "POST",
      url: "/api/v1/apply",
      headers: { ...auth, "content-type": "application/yaml" },
      payload: big,
    });
    assert.equal(r.statusCode, 413);
    assert.equal(r.json().error.code, "TURNOUT_ERR_API_PAYLOAD_TOO_LARGE");
    r = await app.inject({
      method: "GET",
      url: "/api/v1/services/a/history?limit=-1",
      headers: auth,
    });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.path, "limit");
    r = await app.inject({
      method: "POST",
      url: "/api/v1/apply",
      headers: { ...auth, "content-type": "application/yaml" },
      payload: "   \n",
    });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.code, "TURNOUT_ERR_API_BAD_REQUEST");
  });

  it("compares tokens exactly (a prefix of the token is refused)", async () => {
    const r = await app.inject({
      method: "GET",
      url: "/api/v1/services",
      headers: { authorization: "Bearer test-" },
    });
    assert.equal(r.statusCode, 401);
  });

  it("a missing token's hint names where tokens are kept, not a data dir it may not be in", async () => {
    const r = await app.inject({ method: "GET", url: "/api/v1/services" });
    assert.equal(r.statusCode, 401);
    const { message } = r.json().error;
    assert.match(message, /<data dir>\/token on Turnout's machine/);
    assert.doesNotMatch(message, /\.turnout\/token/);
  });
});

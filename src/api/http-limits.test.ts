/**
 * The API's HTTP edge on a real socket: Expect, header timeout and size, and the events
 * idempotency conflict, all answered in Turnout's error format.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { FakeClock } from "../core/clock.js";
import { ExperimentStore } from "../store/experiment-store.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Store } from "../store/store.js";
import { buildApi } from "./server.js";

const TOKEN = "test-token";

/** Writes `head` on a raw connection and returns everything the server sends until it closes. */
function raw(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    const s = connect(port, "127.0.0.1", () => s.write(head));
    s.on("data", (d) => (out += d));
    s.on("error", reject);
    s.on("close", () => resolve(out));
  });
}

function errorOf(response: string): { status: number; code: string } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);
  const body = JSON.parse(response.slice(response.indexOf("\r\n\r\n") + 4));
  return { status, code: body.error.code };
}

describe("API HTTP limits", () => {
  let dir: string;
  let store: Store;
  let app: FastifyInstance;
  let port: number;
  const clock = new FakeClock(Date.parse("2026-01-01T00:00:00Z"));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-api-limits-"));
    store = await openSqliteStore({ path: join(dir, "t.db") });
    app = buildApi({
      store,
      clock,
      token: TOKEN,
      version: "test",
      bodyLimit: 64 * 1024,
      timeouts: { headersMs: 300, requestMs: 1_500 },
      experiments: new ExperimentStore(store as never),
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    port = (app.server.address() as { port: number }).port;
  });
  after(async () => {
    await app.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses Expect: 100-continue over the body limit at once, without a 100", async () => {
    const r = await new Promise<{ status: number; body: any; continued: boolean }>((resolve) => {
      let continued = false;
      const req = request(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/api/v1/validate",
          headers: {
            authorization: `Bearer ${TOKEN}`,
            "content-type": "application/json",
            "content-length": 10_000_000,
            expect: "100-continue",
          },
        },
        (res) => {
          let t = "";
          res.on("data", (d) => (t += d));
          res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(t), continued }));
        },
      );
      req.on("continue", () => (continued = true));
      req.on("error", () => {});
      req.flushHeaders();
    });
    assert.equal(r.continued, false);
    assert.equal(r.status, 413);
    assert.equal(r.body.error.code, "TURNOUT_ERR_API_PAYLOAD_TOO_LARGE");
  });

  it("continues Expect: 100-continue under the limit, and answers an unknown Expect 417 in JSON", async () => {
    const ok = await raw(
      port,
      `POST /api/v1/validate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n[]`,
    );
    assert.match(ok, /^HTTP\/1\.1 100 Continue/);
    assert.match(ok, /HTTP\/1\.1 400 /); // an empty list: the body was read and judged
    const odd = await raw(
      port,
      `POST /api/v1/validate HTTP/1.1\r\nHost: x\r\nExpect: something\r\nContent-Length: 0\r\n\r\n`,
    );
    assert.deepEqual(errorOf(odd), { status: 417, code: "TURNOUT_ERR_API_EXPECTATION_FAILED" });
  });

  it("answers slow headers 408, huge headers 431 and bad framing 400, in Turnout's format", async () => {
    // The headers never end: the connection is answered and closed after the header timeout.
    const slow = await raw(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    assert.deepEqual(errorOf(slow), { status: 408, code: "TURNOUT_ERR_API_CLIENT_TIMEOUT" });
    const huge = await raw(
      port,
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
    );
    assert.deepEqual(errorOf(huge), { status: 431, code: "TURNOUT_ERR_API_HEADERS_TOO_LARGE" });
    const bad = await raw(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n");
    assert.deepEqual(errorOf(bad), { status: 400, code: "TURNOUT_ERR_API_BAD_REQUEST" });
  });

  it("answers a body that trickles 408 once the whole request is over its time, and closes", async () => {
    // Unauthenticated, as anyone on the network could: the token is checked after the body.
    const started = Date.now();
    const s = connect(port, "127.0.0.1");
    s.write(
      "POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
    );
    // A byte every 100 ms: never idle long enough for any other timeout, never done.
    let sent = 0;
    const trickle = setInterval(() => {
      if (s.writable) {
        s.write("{");
        sent++;
      }
    }, 100);
    let out = "";
    s.on("data", (d) => (out += d));
    s.on("error", () => {});
    await once(s, "close");
    clearInterval(trickle);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1_500, `closed after ${elapsed} ms, before the request timeout`);
    assert.ok(sent >= 10, `only ${sent} bytes were sent: the trickle did not run`);
    const { status, code } = errorOf(out);
    assert.deepEqual({ status, code }, { status: 408, code: "TURNOUT_ERR_API_CLIENT_TIMEOUT" });
    assert.match(out, /did not send the whole request within 1\.5 s/);
  });

  it("answers a JSON body nested too deeply 400 TURNOUT_ERR_INPUT_TOO_DEEP, with the place", async () => {
    const r = await app.inject({
      method: "POST",
      url: "/api/v1/apply",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      payload: `{"resources":${"[".repeat(5_000)}${"]".repeat(5_000)}}`,
    });
    assert.equal(r.statusCode, 400);
    const e = r.json().error;
    assert.equal(e.code, "TURNOUT_ERR_INPUT_TOO_DEEP");
    assert.match(e.message, /nests deeper than 64 levels \(at line 1, column 77, resources/);
  });

  it("accepts a repeated event key with the same payload, and answers 422 for another payload", async () => {
    const ev = (key: string, value: number) => ({
      idempotencyKey: key,
      unit: "u",
      metric: "m",
      value,
      timestamp: clock.now(),
    });
    const post = (...events: object[]) =>
      app.inject({
        method: "POST",
        url: "/api/v1/events",
        headers: { authorization: `Bearer ${TOKEN}` },
        payload: { events },
      });
    const first = await post(ev("k1", 1));
    assert.equal(first.statusCode, 200);
    const { unknownMetrics, warning, ...counts } = first.json();
    assert.deepEqual(counts, { received: 1, accepted: 1, duplicates: 0 });
    // No experiment reads "m": the answer says so.
    assert.deepEqual(unknownMetrics, [{ metric: "m", events: 1 }]);
    assert.match(warning, /Experiments read: none yet/);
    const again = await post(ev("k1", 1));
    assert.equal(again.json().duplicates, 1);
    const other = await post(ev("fresh", 1), ev("k1", 2));
    assert.equal(other.statusCode, 422);
    const e = other.json().error;
    assert.equal(e.code, "TURNOUT_ERR_EVENTS_IDEMPOTENCY_CONFLICT");
    assert.equal(e.path, "events[1].idempotencyKey");
    assert.match(e.message, /"k1" differs in value/);
    assert.deepEqual(e.details.conflicts, [{ index: 1, idempotencyKey: "k1", fields: ["value"] }]);
    // Rejected as a whole: the fresh event of that batch was not stored either.
    const fresh = await post(ev("fresh", 1), ev("k1", 1));
    assert.deepEqual(
      [fresh.json().received, fresh.json().accepted, fresh.json().duplicates],
      [2, 1, 1],
    );
  });
});

import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { describe, it } from "node:test";
import { ClientKeys, type OfrepOptions, ofrepFastPath } from "./ofrep.js";

describe("OFREP fast path", () => {
  const opts = {
    flags: { current: { flags: new Map() } },
    clientKeys: new ClientKeys(null, ["k"]),
  } as unknown as OfrepOptions;
  const fast = ofrepFastPath(opts);
  const req = (method: string, url: string) =>
    ({ method, url, headers: {}, resume() {} }) as unknown as IncomingMessage;
  const res = () => {
    const r = {
      status: 0,
      body: "",
      writeHead(s: number) {
        r.status = s;
      },
      end(b: string) {
        r.body = b;
      },
    };
    return r;
  };

  it("takes only single evaluations; everything else goes to fastify untouched", () => {
    for (const [m, u] of [
      ["GET", "/ofrep/v1/evaluate/flags/x"],
      ["POST", "/ofrep/v1/evaluate/flags"],
      ["POST", "/ofrep/v1/evaluate/flags/"],
      ["POST", "/ofrep/v1/evaluate/flags/a/b"],
      ["POST", "/ofrep/v1/evaluate/flags/x?y=1"],
      ["POST", "/ofrep/v1/evaluate/flags/%E0%A4%A"],
      ["POST", "/api/v1/apply"],
    ] as const) {
      const r = res();
      assert.equal(fast(req(m, u), r as unknown as ServerResponse), false, `${m} ${u}`);
      assert.equal(r.status, 0);
    }
  });

  it("leaves a body declared larger than a context to fastify, which reads or refuses it whole", () => {
    const r = res();
    const big = {
      method: "POST",
      url: "/ofrep/v1/evaluate/flags/x",
      headers: { "content-length": String(64 * 1024 + 1) },
      resume() {},
    } as unknown as IncomingMessage;
    assert.equal(fast(big, r as unknown as ServerResponse), false);
    assert.equal(r.status, 0);
  });

  it("refuses a request without a client key as the fastify route does", () => {
    const r = res();
    assert.equal(
      fast(req("POST", "/ofrep/v1/evaluate/flags/x"), r as unknown as ServerResponse),
      true,
    );
    assert.equal(r.status, 401);
    assert.match(JSON.parse(r.body).errorDetails, /missing client key/);
  });
});

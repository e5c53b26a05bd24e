import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { TurnoutError } from "../../../errors.js";
import {
  assertWellFormed,
  conformanceRequest,
  describeProviderConformance,
} from "../conformance.js";
import type { Measurement, WebSourceSpec } from "../provider.js";
import { WebProvider } from "./web-provider.js";

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A real HTTP server on 127.0.0.1:0 with the routes the tests use. */
async function startServer(): Promise<{ base: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      const url = new URL(req.url ?? "/", "http://x");
      const json = (status: number, v: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(typeof v === "string" ? v : JSON.stringify(v));
      };
      switch (url.pathname) {
        case "/value":
          return json(200, { data: { v: 0.5, ok: true, no: false, s: "0.75", nan: "NaN" } });
        case "/echo":
          return json(200, url.searchParams.get("v") ?? "");
        case "/bare":
          return json(200, " 42\n");
        case "/hang":
          return; // never answers
        case "/500":
          return json(500, { error: "database is down" });
        case "/redirect":
          res.writeHead(302, { location: "/value" });
          return res.end();
        case "/null":
          return json(200, { v: null });
        case "/huge":
          return json(200, {
            v: 7,
            padding: Array.from({ length: 5000 }, (_, i) => ({ i, text: "lorem ipsum dolor" })),
          });
        case "/list":
          return json(200, { items: [{ score: 1 }, { score: 2 }, { score: 3 }], "p99 ms": 12.5 });
        case "/post":
          return json(200, { got: JSON.parse(body || "null"), value: 1 });
        case "/html":
          res.writeHead(200, { "content-type": "text/html" });
          return res.end("<html>hello</html>");
        case "/big":
          return json(200, "1".repeat(3000));
        default:
          return json(404, { error: "not found" });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describeProviderConformance("web", async () => {
  const srv = await startServer();
  const src = (path: string, extra: Partial<WebSourceSpec> = {}) => ({
    web: { url: `${srv.base}${path}`, method: "GET" as const, timeoutSeconds: 5, ...extra },
  });
  return {
    provider: new WebProvider(),
    good: { source: src("/value", { jsonPath: "$.data.v" }) },
    templated: () => src("/echo?v={{args.value}}"),
    hanging: (timeoutSeconds) => ({
      source: src("/hang", timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
    }),
    failing: { source: src("/500") },
    noData: { source: src("/null", { jsonPath: "$.v" }) },
    huge: { source: src("/huge", { jsonPath: "$.v" }) },
    cleanup: () => srv.close(),
  };
});

describe("WebProvider", () => {
  let srv: Awaited<ReturnType<typeof startServer>>;
  const provider = new WebProvider();
  before(async () => {
    srv = await startServer();
  });
  after(() => srv.close());

  const measure = async (
    web: Partial<WebSourceSpec> & { url: string },
    p: WebProvider = provider,
    base: (b: string) => string = (b) => b,
  ): Promise<Measurement> => {
    const source = { web: { ...web, url: `${base(srv.base)}${web.url}` } };
    const req = conformanceRequest({ source, args: { token: "s3cret", user: "u1" } });
    const m = await p.measure(req, new AbortController().signal);
    assertWellFormed(m);
    return m;
  };

  it("picks values with a JSON path: numbers, booleans (1/0) and numeric strings", async () => {
    assert.equal((await measure({ url: "/value", jsonPath: "$.data.v" })).value, 0.5);
    assert.equal((await measure({ url: "/value", jsonPath: "$.data.ok" })).value, 1);
    assert.equal((await measure({ url: "/value", jsonPath: "$.data.no" })).value, 0);
    assert.equal((await measure({ url: "/value", jsonPath: "$[\"data\"]['s']" })).value, 0.75);
    assert.equal((await measure({ url: "/list", jsonPath: "$.items[-1].score" })).value, 3);
    assert.equal((await measure({ url: "/list", jsonPath: '$["p99 ms"]' })).value, 12.5);
  });

  it("a path that does not lead to a number says where it stopped", async () => {
    const missing = await measure({ url: "/value", jsonPath: "$.data.w" });
    assert.equal(missing.errorKind, "failed");
    assert.match(missing.error!, /\$\.data has no key "w" \(keys: v, ok, no, s, nan\)/);
    const index = await measure({ url: "/list", jsonPath: "$.items[5]" });
    assert.match(index.error!, /\$\.items has 3 element\(s\); no \[5\]/);
    const object = await measure({ url: "/value", jsonPath: "$.data" });
    assert.match(object.error!, /\$\.data is an object, not a number or boolean/);
    const nan = await measure({ url: "/value", jsonPath: "$.data.nan" });
    assert.match(nan.error!, /is NaN/);
  });

  it("without a JSON path the body is a bare number", async () => {
    assert.equal((await measure({ url: "/bare" })).value, 42);
    assert.equal((await measure({ url: "/echo?v=true" })).value, 1);
    const obj = await measure({ url: "/value" });
    assert.match(obj.error!, /the body is an object/);
    const html = await measure({ url: "/html" });
    assert.match(html.error!, /not a number \(set jsonPath/);
  });

  it("POSTs a templated body with templated headers; JSON content type by default", async () => {
    const m = await measure({
      url: "/post?user={{args.user}}",
      method: "POST",
      headers: { authorization: "Bearer {{args.token}}" },
      body: '{"candidate":"{{candidate}}","baseline":"{{baseline}}","service":"{{service}}"}',
      jsonPath: "$.value",
    });
    assert.equal(m.value, 1);
    const s = srv.seen[srv.seen.length - 1]!;
    assert.equal(s.method, "POST");
    assert.equal(s.url, "/post?user=u1");
    assert.equal(s.headers.authorization, "Bearer s3cret");
    assert.equal(s.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(s.body), { candidate: "v2", baseline: "v1", service: "svc" });
    // The query string and headers may hold secrets: never in messages or raw.
    assert.doesNotMatch(JSON.stringify(m.raw), /s3cret|user=u1/);
  });

  it("sends credentials in the URL as basic auth, never showing them", async () => {
    const m = await measure({ url: "/value", jsonPath: "$.data.v" }, provider, (base) =>
      base.replace("http://", "http://ops:s%40cret@"),
    );
    assert.equal(m.value, 0.5);
    assert.equal(
      srv.seen[srv.seen.length - 1]!.headers.authorization,
      `Basic ${Buffer.from("ops:s@cret").toString("base64")}`,
    );
    assert.doesNotMatch(JSON.stringify(m.raw), /ops|cret/);
    await assert.rejects(
      measure({ url: "/value", headers: { Authorization: "Bearer x" } }, provider, (base) =>
        base.replace("http://", "http://ops:pw@"),
      ),
      (err: unknown) => err instanceof TurnoutError && /keep one/.test(err.message),
    );
  });

  it("keeps a content type the source sets", async () => {
    await measure({
      url: "/post",
      method: "POST",
      headers: { "Content-Type": "text/plain" },
      body: "1",
      jsonPath: "$.value",
    });
    assert.equal(srv.seen[srv.seen.length - 1]!.headers["content-type"], "text/plain");
  });

  it("non-2xx is an error with the status and the body's start; redirects are not followed", async () => {
    const e = await measure({ url: "/500?token={{args.token}}" });
    assert.equal(e.errorKind, "failed");
    assert.match(
      e.error!,
      /^GET http:\/\/127\.0\.0\.1:\d+\/500: HTTP 500: \{"error":"database is down"\}$/,
    );
    const r = await measure({ url: "/redirect", jsonPath: "$.data.v" });
    assert.match(r.error!, /HTTP 302 \(redirects are not followed\)/);
  });

  it("a body that is not JSON, with a JSON path, is an error", async () => {
    const m = await measure({ url: "/html", jsonPath: "$.v" });
    assert.match(m.error!, /the body is not JSON/);
  });

  it("bounds the response size", async () => {
    const m = await measure({ url: "/big" }, new WebProvider({ maxResponseBytes: 1000 }));
    assert.match(m.error!, /larger than 1000 bytes/);
  });

  it("an unreachable server is an error", async () => {
    const m = await provider.measure(
      conformanceRequest({ source: { web: { url: "http://127.0.0.1:9/x", timeoutSeconds: 2 } } }),
      new AbortController().signal,
    );
    assert.equal(m.errorKind, "failed");
    assert.match(m.error!, /ECONNREFUSED/);
  });

  it("throws for a bad JSON path, a bad URL after templating, or a bad method", async () => {
    const isInvalid = (path: string) => (err: unknown) =>
      err instanceof TurnoutError && err.details.path === path;
    await assert.rejects(
      measure({ url: "/value", jsonPath: "data.v" }),
      isInvalid("source.web.jsonPath"),
    );
    await assert.rejects(
      measure({ url: "/value", jsonPath: "$.items[*]" }),
      isInvalid("source.web.jsonPath"),
    );
    await assert.rejects(
      provider.measure(
        conformanceRequest({ source: { web: { url: "{{args.u}}" } }, args: { u: "ftp://x/" } }),
        new AbortController().signal,
      ),
      isInvalid("source.web.url"),
    );
    await assert.rejects(
      measure({ url: "/value", method: "PUT" as never }),
      isInvalid("source.web.method"),
    );
  });
});

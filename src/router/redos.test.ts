/**
 * User patterns on the router's hot path (match rules, the mirror's match) take linear time:
 * patterns that backtrack catastrophically under RegExp answer a request carrying a 10 kB
 * header at once, and the router keeps serving others meanwhile. Real router, real sockets.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import { test } from "node:test";
import { DEFAULT_MIRROR_LIMITS } from "../core/shadow/types.js";
import { get, portOf, startBackend, startRouter, until } from "./testing/harness.js";
import { MemoryRouteTableSource } from "./testing.js";

/** Pattern, a value it matches, and values of n characters it takes RegExp forever to miss. */
const CATASTROPHIC: [string, string, (n: number) => string][] = [
  ["^(a+)+$", "aaa", (n) => `${"a".repeat(n)}!`],
  ["^(?:p{1,})+$", "ppp", (n) => `${"p".repeat(n)}!`],
  ["^(?:a{00000000000000000000001,})+$", "a{00000000000000000000001,}", (n) => `${"a".repeat(n)}!`],
  ["(x+x+)+y", "xxy", (n) => "x".repeat(n)],
  ["(a|aa)+$", "aaa", (n) => `${"a".repeat(n)}!`],
  ["^(\\w+\\s?)*$", "a b", (n) => `${"word ".repeat(n / 5)}!`],
];

/** Generous for a loaded 2-core machine; exponential blow-up takes seconds at 30 characters. */
const BOUND_MS = 500;

test("a header match rule with a catastrophic pattern answers a 10 kB header in bounded time", async (t) => {
  const v1 = await startBackend(t, "v1");
  const v2 = await startBackend(t, "v2");
  const source = new MemoryRouteTableSource();
  source.set({
    service: "svc",
    listen: { host: "127.0.0.1", port: 0 },
    backends: [
      { version: "v2", weight: 0, endpoints: [v2.url] },
      { version: "v1", weight: 100, endpoints: [v1.url] },
    ],
    matches: CATASTROPHIC.map(([regex], i) => ({
      header: { name: `x-p${i}`, regex },
      version: "v2",
    })),
  });
  const router = await startRouter(t, source);
  const port = portOf(router, "svc");
  // Each rule compiled (none dropped): a matching value routes by it.
  for (const [i, [regex, good]] of CATASTROPHIC.entries()) {
    const hit = await get(port, "/", { [`x-p${i}`]: good });
    assert.equal(hit.text, "v2", regex);
  }

  for (const [i, [regex, , value]] of CATASTROPHIC.entries()) {
    const started = performance.now();
    const miss = await get(port, "/", { [`x-p${i}`]: value(10_000) });
    const ms = performance.now() - started;
    assert.equal(miss.status, 200);
    assert.equal(miss.text, "v1", regex);
    assert.ok(ms < BOUND_MS, `${regex}: ${ms.toFixed(0)} ms for a 10 kB header`);
  }
  const hit = await get(port, "/", { "x-p0": "a".repeat(10_000) });
  assert.equal(hit.text, "v2");
});

test("while one client sends the issue's 31-byte header, others are served", async (t) => {
  const v1 = await startBackend(t, "v1");
  const source = new MemoryRouteTableSource();
  source.set({
    service: "svc",
    listen: { host: "127.0.0.1", port: 0 },
    backends: [{ version: "v1", weight: 100, endpoints: [v1.url] }],
    matches: [
      // The pattern, which the old guard let through to RegExp (7.3 s per request):
      // not RE2 syntax, so the table compiler drops the rule (validation refuses it first).
      { header: { name: "x-q", regex: "^(?:\\p{1,})+$" }, version: "v1" },
      // What it meant without the u flag, in RE2 syntax: runs, in linear time.
      { header: { name: "x-r", regex: "^(?:p{1,})+$" }, version: "v1" },
    ],
  });
  const router = await startRouter(t, source);
  const port = portOf(router, "svc");
  const started = performance.now();
  const [bad, ...good] = await Promise.all([
    get(port, "/", { "x-q": `${"p".repeat(30)}!` }),
    get(port, "/", { "x-r": `${"p".repeat(30)}!` }),
    get(port, "/"),
  ]);
  assert.equal(bad.status, 200);
  for (const g of good) assert.equal(g.status, 200);
  const ms = performance.now() - started;
  assert.ok(ms < BOUND_MS, `${ms.toFixed(0)} ms`);
});

test("the mirror's match runs a catastrophic pattern in bounded time", async (t) => {
  const copies: string[] = [];
  const shadow = http.createServer((req, res) => {
    copies.push(String(req.headers["x-m"]).slice(0, 3));
    req.resume();
    res.end("{}");
  });
  shadow.listen(0, "127.0.0.1");
  await once(shadow, "listening");
  t.after(() => {
    shadow.closeAllConnections();
    shadow.close();
  });
  const primary = await startBackend(t, "v1");
  const source = new MemoryRouteTableSource();
  source.set({
    service: "svc",
    listen: { host: "127.0.0.1", port: 0 },
    backends: [{ version: "v1", weight: 100, endpoints: [primary.url] }],
    mirror: {
      id: "p1",
      version: "v2",
      endpoints: [`http://127.0.0.1:${(shadow.address() as { port: number }).port}`],
      percent: 100,
      methods: ["GET"],
      stripHeaders: [],
      limits: { ...DEFAULT_MIRROR_LIMITS },
      compare: {},
      match: { header: { name: "x-m", regex: "^(a|aa)+$" } },
    },
  });
  const router = await startRouter(t, source);
  const port = portOf(router, "svc");
  await until(() => router.mirrorStats("svc") !== null, 3000, "mirror configured");
  const started = performance.now();
  const miss = await get(port, "/", { "x-m": `${"a".repeat(10_000)}!` });
  const ms = performance.now() - started;
  assert.equal(miss.status, 200);
  assert.ok(ms < BOUND_MS, `${ms.toFixed(0)} ms`);
  // A matching value is copied; the non-matching one was not.
  await get(port, "/", { "x-m": "aaaa" });
  await until(() => copies.length === 1, 3000, "the matching request copied");
  assert.deepEqual(copies, ["aaa"]);
});

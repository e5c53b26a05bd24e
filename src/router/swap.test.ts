/**
 * Route tables swap atomically: no request fails while tables change under load, and pools of
 * endpoints that leave a table stay open for a grace period in case they come back.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Pool } from "undici";
import { ManualClock } from "./health.js";
import { UpstreamPools } from "./pools.js";
import { nextReload, policy, portOf, startBackend, startRouter, table } from "./testing/harness.js";
import { MemoryRouteTableSource } from "./testing.js";

test("100 table swaps under 32 busy keep-alive clients (20,000 requests) fail none", async (t) => {
  const bs = await Promise.all(["a", "b", "c", "d"].map((n) => startBackend(t, n)));
  const [a, b, c, d] = bs.map((x) => x.url) as [string, string, string, string];
  const source = new MemoryRouteTableSource();
  // Weights and endpoints both change: instances leave and come back, pools are retired while
  // requests use them, and a third version appears and goes.
  const variant = (i: number) => {
    const v1 = [[a], [b], [a, b]][i % 3]!;
    const v2 = [[c, d], [d], [c]][i % 3]!;
    const backends = [
      { version: "v1", weight: i % 2 === 0 ? 80 : 30, endpoints: v1 },
      { version: "v2", weight: i % 2 === 0 ? 20 : 60, endpoints: v2 },
    ];
    if (i % 4 === 1) backends.push({ version: "v3", weight: 10, endpoints: [d, a] });
    else backends[1]!.weight += i % 2 === 0 ? 0 : 10;
    return table(
      "svc",
      backends,
      policy({ loadBalancing: i % 5 === 0 ? "roundRobin" : "leastRequest" }),
    );
  };
  source.set(variant(0));
  const router = await startRouter(t, source);
  const port = portOf(router, "svc");

  const TOTAL = 20_000;
  const SWAPS = 100;
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 32, pipelining: 1 });
  t.after(() => pool.close());
  const failures: string[] = [];
  const byVersion = new Map<string, Map<string, number>>();
  let started = 0;
  let finished = 0;

  // Swaps are spread over the run by progress, not by time: one every TOTAL / SWAPS answers.
  let swapsDone = 0;
  const swapper = (async () => {
    for (let i = 1; i <= SWAPS; i++) {
      while (finished < (i * TOTAL) / (SWAPS + 1)) await new Promise((r) => setImmediate(r));
      const applied = nextReload(router, 10_000);
      source.set(variant(i));
      await applied;
      swapsDone++;
    }
  })();

  async function client() {
    while (started < TOTAL) {
      started++;
      try {
        const res = await pool.request({ path: "/", method: "GET" });
        const body = await res.body.text();
        if (res.statusCode !== 200) failures.push(`${res.statusCode} ${body}`);
        const v = String(res.headers["x-turnout-version"]);
        let m = byVersion.get(v);
        if (m === undefined) {
          m = new Map();
          byVersion.set(v, m);
        }
        m.set(body, (m.get(body) ?? 0) + 1);
      } catch (err) {
        failures.push(String(err));
      } finally {
        finished++;
      }
    }
  }
  await Promise.all(Array.from({ length: 32 }, client));
  await swapper;

  assert.deepEqual(failures, []);
  assert.equal(finished, TOTAL);
  assert.equal(swapsDone, SWAPS);
  // Every answer came from an endpoint its version had in some table (one table per request),
  // and every version and backend took part.
  const allowed: Record<string, string[]> = { v1: ["a", "b"], v2: ["c", "d"], v3: ["a", "d"] };
  for (const [v, bodies] of byVersion) {
    for (const body of bodies.keys()) {
      assert.ok(allowed[v]?.includes(body), `version ${v} answered by ${body}`);
    }
  }
  assert.deepEqual([...byVersion.keys()].sort(), ["v1", "v2", "v3"]);
  // No endpoint is left with requests counted as in flight.
  assert.ok(router.endpoints("svc").every((e) => e.outstanding === 0));
});

test("pools of endpoints that leave every table close only after the grace period", async () => {
  const clock = new ManualClock();
  const retired: string[] = [];
  const pools = new UpstreamPools({
    headersTimeoutMs: 1000,
    bodyTimeoutMs: 1000,
    connectTimeoutMs: 1000,
    idleGraceMs: 10_000,
    clock,
    onRetire: (ep) => retired.push(ep.url),
  });
  const a = pools.endpoint("http://127.0.0.1:1", "http://127.0.0.1:1", "");
  const b = pools.endpoint("http://127.0.0.1:2/api", "http://127.0.0.1:2", "/api");
  a.outstanding = 3;
  pools.retainOnly(new Set([b.url]));
  clock.advance(9_999);
  assert.equal(pools.size, 2, "closed before the grace period ended");

  // Back in a table within the grace: the same endpoint, with its state.
  assert.equal(pools.endpoint(a.url, "http://127.0.0.1:1", ""), a);
  assert.equal(a.outstanding, 3);
  pools.retainOnly(new Set([a.url, b.url]));
  clock.advance(60_000);
  assert.equal(pools.size, 2);
  assert.deepEqual(retired, []);

  // Gone for good.
  pools.retainOnly(new Set([b.url]));
  clock.advance(10_000);
  assert.deepEqual(retired, [a.url]);
  assert.equal(pools.size, 1);
  assert.notEqual(pools.endpoint(a.url, "http://127.0.0.1:1", ""), a, "a new endpoint");
  await pools.closeAll();
  assert.equal(pools.size, 0);
});

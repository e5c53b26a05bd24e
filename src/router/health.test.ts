import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { Pool } from "undici";
import {
  type HealthCheckSpec,
  type HealthEvent,
  HealthMonitor,
  httpProbe,
  initialHealth,
  MAX_EJECTION_MS,
  ManualClock,
  type OutlierDetectionSpec,
  OutlierDetector,
  type ProbeResult,
  type ProbeTarget,
} from "./health.js";
import { type Endpoint, pickInstance, seedBalancer } from "./pools.js";

const spec: OutlierDetectionSpec = {
  consecutiveFailures: 3,
  ejectionSeconds: 10,
  maxEjectionPercent: 50,
};

function target(url: string): ProbeTarget {
  return { url, pathPrefix: "", pool: null as unknown as Pool, ...initialHealth() };
}

function fail(d: OutlierDetector, t: ProbeTarget, peers: ProbeTarget[], n: number) {
  for (let i = 0; i < n; i++) d.failure(t, peers, spec);
}

test("ejection after N consecutive failures; recovery after the ejection time", () => {
  const clock = new ManualClock();
  const events: HealthEvent[] = [];
  const d = new OutlierDetector(clock, (e) => events.push(e));
  const [a, b] = [target("a"), target("b")];
  const peers = [a, b];

  fail(d, a, peers, 2);
  a.consecutiveFailures = 0; // a success in between resets the run
  fail(d, a, peers, 2);
  assert.equal(a.ejected, false);
  fail(d, a, peers, 1);
  assert.equal(a.ejected, true);
  assert.equal(a.available, false);
  assert.deepEqual(events.at(-1), {
    url: "a",
    kind: "ejected",
    durationMs: 10_000,
    reason: "3 consecutive failures",
  });

  clock.advance(9_999);
  assert.equal(a.ejected, true);
  clock.advance(1);
  assert.equal(a.ejected, false);
  assert.equal(a.available, true);
  assert.equal(a.consecutiveFailures, 0);
  assert.equal(events.at(-1)?.kind, "unejected");
});

test("repeated ejections double, up to the cap; time in service decays the multiplier", () => {
  const clock = new ManualClock();
  const d = new OutlierDetector(clock);
  const [a, b] = [target("a"), target("b")];
  const durations: number[] = [];
  for (let i = 0; i < 8; i++) {
    fail(d, a, [a, b], 3);
    const start = clock.now();
    while (a.ejected) clock.advance(1000);
    durations.push(clock.now() - start);
  }
  assert.deepEqual(durations, [
    10_000,
    20_000,
    40_000,
    80_000,
    160_000,
    MAX_EJECTION_MS,
    MAX_EJECTION_MS,
    MAX_EJECTION_MS,
  ]);

  // Long in service: back to the base time.
  clock.advance(100 * 10_000);
  fail(d, a, [a, b], 3);
  const start = clock.now();
  while (a.ejected) clock.advance(1000);
  assert.equal(clock.now() - start, 10_000);
});

test("never more than maxEjectionPercent of a version (but at least one)", () => {
  const clock = new ManualClock();
  const d = new OutlierDetector(clock);
  const four = ["a", "b", "c", "d"].map(target);
  for (const t of four) fail(d, t, four, 3);
  assert.deepEqual(
    four.map((t) => t.ejected),
    [true, true, false, false],
  );
  // Still failing: it is ejected as soon as room is made.
  fail(d, four[2]!, four, 1);
  assert.equal(four[2]!.ejected, false);
  clock.advance(10_000);
  fail(d, four[2]!, four, 1);
  assert.equal(four[2]!.ejected, true);

  const one = [target("solo")];
  fail(d, one[0]!, one, 3);
  assert.equal(one[0]!.ejected, true, "one endpoint may be ejected (the balancer still uses it)");

  const off = [target("x"), target("y")];
  const none = new OutlierDetector(clock);
  for (let i = 0; i < 10; i++) none.failure(off[0]!, off, { ...spec, maxEjectionPercent: 0 });
  assert.equal(off[0]!.ejected, false);
});

test("the balancer skips ejected endpoints, and uses them when nothing else is left", () => {
  const clock = new ManualClock();
  const d = new OutlierDetector(clock);
  const eps = ["a", "b", "c"].map((u) => ({ ...target(u), outstanding: 0 }) as unknown as Endpoint);
  const b = { endpoints: eps, cursor: 0 };
  d.failure(eps[1]!, eps, { ...spec, consecutiveFailures: 1, maxEjectionPercent: 100 });
  const picks = Array.from({ length: 6 }, () => pickInstance(b, true, null)?.url);
  assert.deepEqual(picks, ["a", "c", "a", "c", "a", "c"]);
  for (const e of eps)
    d.failure(e, eps, { ...spec, consecutiveFailures: 1, maxEjectionPercent: 100 });
  assert.ok(eps.every((e) => e.ejected));
  const panic = new Set(Array.from({ length: 6 }, () => pickInstance(b, false, null)?.url));
  assert.deepEqual([...panic].sort(), ["a", "b", "c"]);
  // A retry excludes the endpoint that failed, even in panic mode.
  for (let i = 0; i < 6; i++) assert.notEqual(pickInstance(b, true, eps[0]!), eps[0]);
  assert.equal(pickInstance({ endpoints: [eps[0]!], cursor: 0 }, true, eps[0]!), null);
});

test("least request: fewest outstanding wins; equal load is spread round robin", () => {
  seedBalancer(42);
  const mk = (n: number) =>
    Array.from(
      { length: n },
      (_, i) => ({ ...target(`e${i}`), outstanding: 0 }) as unknown as Endpoint,
    );
  const eps = mk(3);
  const b = { endpoints: eps, cursor: 0 };
  assert.deepEqual(
    Array.from({ length: 6 }, () => pickInstance(b, true, null)?.url),
    ["e0", "e1", "e2", "e0", "e1", "e2"],
  );
  eps[0]!.outstanding = 5;
  eps[1]!.outstanding = 1;
  eps[2]!.outstanding = 3;
  assert.equal(pickInstance(b, true, null)?.url, "e1");
  // Holding each pick open fills the endpoints evenly.
  for (const e of eps) e.outstanding = 0;
  for (let i = 0; i < 30; i++) pickInstance(b, true, null)!.outstanding++;
  assert.deepEqual(
    eps.map((e) => e.outstanding),
    [10, 10, 10],
  );

  // Many endpoints: two random choices, still steering clear of the loaded ones.
  const many = mk(40);
  const mb = { endpoints: many, cursor: 0 };
  for (let i = 0; i < 4000; i++) pickInstance(mb, true, null)!.outstanding++;
  const loads = many.map((e) => e.outstanding);
  assert.ok(Math.max(...loads) - Math.min(...loads) <= 6, `spread ${loads.join(",")}`);
});

test("round robin skips unavailable endpoints", () => {
  const eps = ["a", "b", "c"].map((u) => ({ ...target(u), outstanding: 0 }) as unknown as Endpoint);
  eps[1]!.available = false;
  const b = { endpoints: eps, cursor: 0 };
  assert.deepEqual(
    Array.from({ length: 4 }, () => pickInstance(b, false, null)?.url),
    ["a", "c", "a", "c"],
  );
});

const check: HealthCheckSpec = {
  path: "/healthz",
  intervalSeconds: 5,
  timeoutSeconds: 1,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
};

/** A probe whose answers the test sets, counting calls; resolves on the next microtask. */
function scriptedProbe() {
  const state = { ok: true, calls: 0 };
  const probe = async (): Promise<ProbeResult> => {
    state.calls++;
    return state.ok ? { ok: true } : { ok: false, reason: "status 503" };
  };
  return { state, probe };
}

/** Advances the clock by one interval and lets the probe's promise settle. */
async function tick(clock: ManualClock, ms = check.intervalSeconds * 1000) {
  clock.advance(ms);
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

test("active checks: unhealthy after unhealthyThreshold failures, healthy after healthyThreshold passes", async () => {
  const clock = new ManualClock();
  const events: HealthEvent[] = [];
  const { state, probe } = scriptedProbe();
  const outliers = new OutlierDetector(clock);
  const m = new HealthMonitor({ clock, probe, outliers, onEvent: (e) => events.push(e) });
  const t = target("http://a");
  m.sync(new Map([[t.url, { target: t, spec: check }]]));
  await tick(clock, 0);
  assert.equal(state.calls, 1, "the first check runs at once");

  state.ok = false;
  await tick(clock);
  await tick(clock);
  assert.equal(t.activeHealthy, true);
  await tick(clock);
  assert.equal(t.activeHealthy, false);
  assert.equal(t.available, false);
  assert.deepEqual(events.at(-1), { url: "http://a", kind: "unhealthy", reason: "status 503" });

  state.ok = true;
  await tick(clock);
  assert.equal(t.available, false);
  await tick(clock);
  assert.equal(t.available, true);
  assert.equal(events.at(-1)?.kind, "healthy");
  assert.equal(state.calls, 6);

  // No table names it any more: checks stop, and no timer is left behind.
  m.sync(new Map());
  assert.deepEqual(m.checked(), []);
  assert.equal(clock.pending, 0);
  await tick(clock);
  assert.equal(state.calls, 6);
});

test("a passing active check ends a passive ejection early", async () => {
  const clock = new ManualClock();
  const { probe } = scriptedProbe();
  const outliers = new OutlierDetector(clock);
  const m = new HealthMonitor({ clock, probe, outliers });
  const [a, b] = [target("http://a"), target("http://b")];
  fail(outliers, a, [a, b], 3);
  assert.equal(a.ejected, true);
  m.sync(new Map([[a.url, { target: a, spec: check }]]));
  await tick(clock, 0);
  assert.equal(a.ejected, false);
  assert.equal(a.available, true);
  m.stopAll();
});

test("one checker per URL whatever the number of syncs; stopping restores the verdict", async () => {
  const clock = new ManualClock();
  const { state, probe } = scriptedProbe();
  const m = new HealthMonitor({ clock, probe, outliers: new OutlierDetector(clock) });
  const t = target("http://a");
  const wanted = new Map([[t.url, { target: t, spec: check }]]);
  m.sync(wanted);
  m.sync(wanted);
  m.sync(new Map([[t.url, { target: t, spec: { ...check, unhealthyThreshold: 1 } }]]));
  await tick(clock, 0);
  assert.equal(state.calls, 1);
  state.ok = false;
  await tick(clock);
  assert.equal(t.activeHealthy, false, "new settings apply from the next check");
  m.sync(new Map());
  assert.equal(t.activeHealthy, true);
  assert.equal(t.available, true);
});

test("httpProbe: 2xx passes, 5xx and timeouts fail", async (t) => {
  let mode = "ok";
  const server = http.createServer((req, res) => {
    if (mode === "ok") res.end("ok");
    else if (mode === "fail") {
      res.statusCode = 503;
      res.end();
    } else {
      req.resume(); // never answers
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const pool = new Pool(origin);
  t.after(async () => {
    await pool.destroy();
    server.closeAllConnections();
    server.close();
  });
  const tgt: ProbeTarget = { url: origin, pathPrefix: "", pool, ...initialHealth() };
  assert.deepEqual(await httpProbe(tgt, check), { ok: true });
  mode = "fail";
  assert.deepEqual(await httpProbe(tgt, check), { ok: false, reason: "status 503" });
  mode = "hang";
  assert.deepEqual(await httpProbe(tgt, { ...check, timeoutSeconds: 0.2 }), {
    ok: false,
    reason: "timeout",
  });
});

import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { request } from "undici";
import { Router } from "../router/router.js";
import { MeasurementFlusher, MeasurementRecorder } from "../router/stats.js";
import { MemoryRouteTableSource } from "../router/testing.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import {
  describeMeasurementSourceConformance,
  type RecordedRequest,
  seededTraffic,
  TRAFFIC_SECONDS,
  TRAFFIC_T0,
} from "./measurements.conformance.js";
import {
  type MeasurementSource,
  RouterMeasurementSource,
  StoreMeasurementSource,
  type WindowStats,
} from "./measurements.js";

const silent = { debug() {}, info() {}, warn() {}, error() {} };

/** Plays `traffic` into recorders on a manual clock (one recorder per router). */
function play(
  traffic: RecordedRequest[],
  recorders: MeasurementRecorder[],
  clock: { t: number },
  eachSecond?: () => Promise<void>,
): Promise<void> {
  return (async () => {
    let sec = Math.floor(traffic[0]!.atMs / 1000);
    for (let i = 0; i < traffic.length; i++) {
      const r = traffic[i]!;
      const s = Math.floor(r.atMs / 1000);
      if (s !== sec) {
        sec = s;
        clock.t = s * 1000;
        await eachSecond?.();
      }
      clock.t = r.atMs;
      // Requests alternate between routers, as behind a load balancer.
      const series = recorders[i % recorders.length]!.series("svc", r.version);
      series.start(performance.now());
      if (r.responded) series.respond();
      if (!r.hung) series.record(r.status, r.latencyMs, r.upstreamError, r.abandoned);
    }
  })();
}

describeMeasurementSourceConformance("router (in-process ring)", async (traffic) => {
  const clock = { t: TRAFFIC_T0 };
  const rec = new MeasurementRecorder({ now: () => clock.t });
  await play(traffic, [rec], clock);
  return { source: new RouterMeasurementSource(rec), cleanup: async () => {} };
});

describeMeasurementSourceConformance(
  "store (two routers, flushed every second)",
  async (traffic) => {
    const store = await openSqliteStore({ path: ":memory:" });
    const clock = { t: TRAFFIC_T0 };
    const now = () => clock.t;
    const routers = [
      new MeasurementRecorder({ now, routerId: "router-a" }),
      new MeasurementRecorder({ now, routerId: "router-b" }),
    ];
    const flushers = routers.map(
      (recorder) => new MeasurementFlusher({ recorder, sink: store, logger: silent }),
    );
    await play(traffic, routers, clock, async () => {
      for (const f of flushers) await f.flush();
    });
    // Shutdown writes the last, partial second.
    for (const f of flushers) await f.stop();
    return { source: new StoreMeasurementSource(store), cleanup: () => store.close() };
  },
);

/** Everything but the float sum, which depends on the order of additions. */
function comparable(m: Map<string, WindowStats>) {
  return [...m.values()].map(({ latency, ...rest }) => {
    const { sum, ...bins } = latency.toJSON();
    return { ...rest, bins, sum: Math.round(sum * 1e6) / 1e6 };
  });
}

describe("MeasurementSource: the two implementations agree", () => {
  it("on the same recorded traffic, every window gives the same numbers", async () => {
    const traffic = seededTraffic(99);
    const store = await openSqliteStore({ path: ":memory:" });
    try {
      const clock = { t: TRAFFIC_T0 };
      const rec = new MeasurementRecorder({ now: () => clock.t });
      const flusher = new MeasurementFlusher({ recorder: rec, sink: store, logger: silent });
      await play(traffic, [rec], clock, () => flusher.flush());
      clock.t = TRAFFIC_T0 + TRAFFIC_SECONDS * 1000;
      await flusher.flush();
      const sources: MeasurementSource[] = [
        new RouterMeasurementSource(rec),
        new StoreMeasurementSource(store),
      ];
      for (let from = 0; from < TRAFFIC_SECONDS; from += 7) {
        for (const version of [undefined, "v1", "v2"]) {
          const q = {
            service: "svc",
            fromMs: TRAFFIC_T0 + from * 1000,
            toMs: TRAFFIC_T0 + (from + 13) * 1000 + 500,
            ...(version ? { version } : {}),
          };
          const [a, b] = await Promise.all(sources.map((s) => s.window(q)));
          assert.deepEqual(comparable(a!), comparable(b!), JSON.stringify(q));
          assert.ok(a!.size > 0);
        }
      }
    } finally {
      await store.close();
    }
  });
});

describe("Router measurements, end to end", () => {
  it("a real router records each proxied request and flushes it to the store", async (t) => {
    const backend = http.createServer((req, res) => {
      req.resume();
      res.statusCode = req.url === "/missing" ? 404 : 200;
      res.end("ok");
    });
    backend.listen(0, "127.0.0.1");
    await once(backend, "listening");
    t.after(() => backend.close());
    const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;

    const store = await openSqliteStore({ path: ":memory:" });
    t.after(() => store.close());
    const source = new MemoryRouteTableSource();
    source.set({
      service: "svc",
      listen: { host: "127.0.0.1", port: 0 },
      backends: [
        { version: "v1", weight: 75, endpoints: [url] },
        { version: "v2", weight: 25, endpoints: [url] },
      ],
    });
    const router = new Router({
      source,
      measurements: { sink: store, routerId: "r-e2e", flushIntervalMs: 20 },
    });
    await router.start();
    let stopped = false;
    t.after(() => (stopped ? undefined : router.stop()));
    const port = router.listeners()[0]!.port;
    const startedAt = Date.now();
    for (let i = 0; i < 40; i++) {
      const r = await request(`http://127.0.0.1:${port}${i % 10 === 0 ? "/missing" : "/"}`);
      await r.body.text();
    }

    const inProcess = await new RouterMeasurementSource(router.measurements).window({
      service: "svc",
      fromMs: startedAt - 1000,
      toMs: Date.now() + 1000,
    });
    assert.equal(inProcess.get("v1")?.requests, 30);
    assert.equal(inProcess.get("v2")?.requests, 10);
    const total =
      (inProcess.get("v1")?.status["4xx"] ?? 0) + (inProcess.get("v2")?.status["4xx"] ?? 0);
    assert.equal(total, 4);
    assert.ok((inProcess.get("v1")?.p99Ms ?? 0) > 0);

    await router.stop();
    stopped = true;
    const fromStore = await new StoreMeasurementSource(store).window({
      service: "svc",
      fromMs: startedAt - 1000,
      toMs: Date.now() + 1000,
    });
    assert.deepEqual(comparable(fromStore), comparable(inProcess));
    const rows = await store.readMeasurements({ service: "svc", fromSec: 0, toSec: 2 ** 40 });
    assert.ok(rows.every((r) => r.routerId === "r-e2e"));
  });
});

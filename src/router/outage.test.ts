/**
 * A router through a PostgreSQL outage longer than its buffers hold (issue #14, item 4), in this
 * process so that the clock is injected and every count is exact: a real router (real HTTP, a
 * real upstream and shadow) writing measurements, A/B exposures, header events and shadow
 * reports to a real PostgreSQL store, which the test stops (`pg_ctl stop -m immediate`) and
 * starts again.
 *
 * With a 5-second measurement window and room for 10 exposures and 10 events, 12 seconds of
 * traffic during the outage must: keep every request served; hold the last 5 seconds, 10
 * exposures and 10 events and drop the rest, counted per kind in `buffers()`, in the heartbeat
 * report and in the /metrics families; log one warning when the outage begins and one info line
 * with the counts when it ends; and write everything held once the store is back.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { Registry } from "prom-client";
import { request } from "undici";
import { type PgCluster, requirePostgres, startCluster } from "../../test/support/postgres.js";
import { DEFAULT_MIRROR_LIMITS } from "../core/shadow/types.js";
import { ExperimentStore } from "../store/experiment-store.js";
import { openPostgresStore, type PostgresStore } from "../store/postgres/postgres-store.js";
import { ShadowStore } from "../store/shadow-store.js";
import type { RouterBuffers, RouterReport } from "../store/store.js";
import { withBufferMetrics } from "./buffer-metrics.js";
import { Router } from "./router.js";
import { captureLog, type LogLine, MemoryRouteTableSource, OUTAGE_SCENARIO } from "./testing.js";

const skip = requirePostgres();
const {
  t0: T0,
  windowSeconds: WINDOW_SECONDS,
  maxRows: MAX_ROWS,
  seconds: OUTAGE_SECONDS,
  perSecond: REQUESTS_PER_SECOND,
} = OUTAGE_SCENARIO;

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function serve(handler: http.RequestListener): Promise<{ url: string; close(): void }> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

describe("a router through a PostgreSQL outage longer than its buffers", { skip }, () => {
  let pg: PgCluster;
  let store: PostgresStore;
  const closers: (() => unknown)[] = [];

  before(async () => {
    pg = await startCluster({ crashSafe: true });
    store = await openPostgresStore({ url: await pg.createDatabase(), poolSize: 4 });
  });
  after(async () => {
    for (const c of closers.reverse()) await c();
    await store?.close();
    await pg?.stop();
  });

  it("serves every request, holds what fits, counts what does not, and writes it all when the store is back", async (t) => {
    // The primary answers a numeric header that the experiment records as an event per
    // response; the shadow answers the same body (so pairs match).
    const primary = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "application/json", "x-conf": "0.5" });
      res.end('{"ok":true}');
    });
    const shadow = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ok":true}');
    });
    closers.push(primary.close, shadow.close);

    let clock = T0;
    const lines: LogLine[] = [];
    // The registry in the real store; every report is also kept, failed or not, to read the
    // buffers it carried (the store keeps only what its schema has).
    const reports: RouterReport[] = [];
    const source = Object.assign(new MemoryRouteTableSource(), {
      reportRouter: (r: RouterReport) => {
        reports.push(structuredClone(r));
        return store.reportRouter(r);
      },
      removeRouter: (id: string) => store.removeRouter(id),
    });
    source.set({
      service: "svc",
      listen: { host: "127.0.0.1", port: 0 },
      backends: [{ version: "v1", weight: 100, endpoints: [primary.url] }],
      experiment: {
        name: "exp",
        arms: [{ name: "A", version: "v1", weight: 100 }],
        key: { header: "x-user" },
        salt: "s",
        responseHeaders: ["x-conf"],
      },
      mirror: {
        id: "phase-1",
        version: "v2",
        endpoints: [shadow.url],
        percent: 100,
        methods: ["GET"],
        stripHeaders: [],
        limits: { ...DEFAULT_MIRROR_LIMITS },
        compare: {},
      },
    });
    const router = new Router({
      source,
      routerId: "r-outage",
      logger: captureLog(lines),
      heartbeatMs: 50,
      pollIntervalMs: 50,
      maxBufferedRows: MAX_ROWS,
      exposures: new ExperimentStore(store),
      shadowSink: new ShadowStore(store),
      measurements: {
        sink: store,
        now: () => clock,
        windowSeconds: WINDOW_SECONDS,
        flushIntervalMs: 50,
        retentionSeconds: 0,
      },
    });
    const metrics = withBufferMetrics(new Registry(), router);
    await router.start();
    closers.push(() => router.stop());
    const port = router.listeners()[0]!.port;
    let users = 0;
    let sent = 0;
    const send = async () => {
      const r = await request(`http://127.0.0.1:${port}/`, {
        headers: { "x-user": `u${users++}` },
      });
      await r.body.text();
      sent++;
      assert.equal(r.statusCode, 200, "served");
    };
    const compared = () => router.mirrorStats("svc")?.compared ?? 0;
    const totals = (b: RouterBuffers, f: "buffered" | "dropped") =>
      Object.values(b).reduce((n, x) => n + x[f], 0);
    const sql = (q: string) => Number(pg.psql(q, new URL(store.url.url).pathname.slice(1)));

    // 1. The store is up: one second of traffic goes all the way.
    for (let i = 0; i < 3; i++) await send();
    clock += 1000;
    await until("the first second written", async () => {
      const b = router.buffers();
      return (
        totals(b, "buffered") === 0 &&
        compared() === 3 &&
        sql("select count(*) from measurements") === 1 &&
        sql("select count(*) from experiment_events") === 3
      );
    });
    assert.equal(router.storeReachable, true);

    // 2. The outage: 12 seconds of traffic by the router's clock, 2 new units a second.
    pg.down();
    await until("the router to notice the outage", () => !router.storeReachable);
    const firstOutageSec = clock / 1000;
    for (let s = 0; s < OUTAGE_SECONDS; s++) {
      for (let i = 0; i < REQUESTS_PER_SECOND; i++) await send();
      clock += 1000;
    }
    const outageRequests = OUTAGE_SECONDS * REQUESTS_PER_SECOND;
    await until("every pair compared", () => compared() === 3 + outageRequests);
    // The writers retry every 50 ms; wait for attempts that saw everything sent.
    await until("the buffers to fill", () => {
      const b = router.buffers();
      return b.exposures.buffered === MAX_ROWS && b.events.buffered === MAX_ROWS;
    });
    await until("failed writes of the last seconds and of the shadow report", () => {
      const b = router.buffers();
      return b.measurements.buffered === WINDOW_SECONDS && b.shadow.buffered === 1;
    });
    const during = router.buffers();
    // The ring holds 5 seconds: 12 seconds written into it lose the first 7.
    assert.deepEqual(during, {
      measurements: { buffered: WINDOW_SECONDS, dropped: OUTAGE_SECONDS - WINDOW_SECONDS },
      exposures: { buffered: MAX_ROWS, dropped: outageRequests - MAX_ROWS },
      events: { buffered: MAX_ROWS, dropped: outageRequests - MAX_ROWS },
      shadow: { buffered: 1, dropped: 0 },
    });
    assert.equal(sent, 3 + outageRequests, "every request served");
    // The same numbers in the heartbeat and in /metrics.
    await until("a heartbeat with them", () =>
      reports.some((r) => JSON.stringify(r.buffers) === JSON.stringify(during)),
    );
    const text = await metrics.metrics();
    assert.match(text, /^turnout_router_store_reachable 0$/m);
    assert.match(text, /^turnout_router_buffered_rows\{kind="measurements"\} 5$/m);
    assert.match(text, /^turnout_router_buffered_rows\{kind="exposures"\} 10$/m);
    assert.match(text, /^turnout_router_dropped_rows_total\{kind="measurements"\} 7$/m);
    assert.match(text, /^turnout_router_dropped_rows_total\{kind="exposures"\} 14$/m);
    assert.match(text, /^turnout_router_dropped_rows_total\{kind="events"\} 14$/m);
    assert.match(text, /^turnout_router_dropped_rows_total\{kind="shadow"\} 0$/m);
    const warnings = lines.filter((l) => l.level === "warn");
    assert.equal(warnings.length, 1, JSON.stringify(warnings.map((w) => w.msg)));
    assert.match(warnings[0]!.msg, /the store is unreachable; serving the last known route tables/);

    // 3. Back: everything held is written, the outage is told once with its counts.
    pg.up();
    await until("the held rows written", () => totals(router.buffers(), "buffered") === 0);
    await until("the end of the outage told", () =>
      lines.some((l) => l.level === "info" && /reachable again/.test(l.msg)),
    );
    const end = lines.find((l) => l.level === "info" && /reachable again/.test(l.msg))!;
    t.diagnostic(`${end.msg} ${JSON.stringify(end.obj)}`);
    assert.deepEqual(end.obj.dropped, {
      measurements: OUTAGE_SECONDS - WINDOW_SECONDS,
      exposures: outageRequests - MAX_ROWS,
      events: outageRequests - MAX_ROWS,
      shadow: 0,
    });
    const written = end.obj.written as Record<string, number>;
    assert.equal(written.exposures, MAX_ROWS);
    assert.equal(written.events, MAX_ROWS);
    assert.equal(written.measurements, WINDOW_SECONDS);
    assert.equal(router.storeReachable, true);
    assert.equal(lines.filter((l) => l.level === "warn").length, 1, "no further warning");

    await router.stop();
    // Stored: the second before the outage and the last 5 of it,
    // 3 + 10 exposures and events, and the shadow report with every pair.
    const seconds = pg
      .psql(
        "select second from measurements order by second",
        new URL(store.url.url).pathname.slice(1),
      )
      .trim()
      .split("\n")
      .map(Number);
    const lastSec = firstOutageSec + OUTAGE_SECONDS - 1;
    assert.deepEqual(seconds, [
      T0 / 1000,
      ...Array.from({ length: WINDOW_SECONDS }, (_, i) => lastSec - WINDOW_SECONDS + 1 + i),
    ]);
    assert.equal(sql("select sum(requests) from measurements"), 3 + WINDOW_SECONDS * 2);
    assert.equal(sql("select count(*) from experiment_exposures"), 3 + MAX_ROWS);
    assert.equal(sql("select count(*) from experiment_events"), 3 + MAX_ROWS);
    const report = await new ShadowStore(store).report("svc", "phase-1");
    assert.equal(report?.report.samples, 3 + outageRequests);
  });
});

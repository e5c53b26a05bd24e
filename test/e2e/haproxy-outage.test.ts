/**
 * HAProxy as a service's data plane through a PostgreSQL outage (issue #14, item 4), with real
 * processes: `turnout up` on a private cluster, a service with `traffic: {haproxy: {}}` (so a
 * real HAProxy serves it and logs to Turnout's intake), and PostgreSQL stopped (`pg_ctl stop -m
 * immediate`, every connection cut as in a crash) and started again while the service is under
 * load.
 *
 * HAProxy's side takes part in the router's account of the outage (src/router/outage.ts): not
 * one request fails; /metrics shows the store unreachable and HAProxy's measurements held (the
 * built-in router carries no service here, so the rows held are HAProxy's); the `haproxy` part
 * logs one warning when the outage begins and one info line with the counts when it ends; the
 * registry lists HAProxy's router role with its buffers; and every line HAProxy's intake
 * measured is in the store once it is back, the outage seconds included (the count is exact).
 *
 * Drops beyond the bounds are counted in src/traffic/haproxy/measurements.test.ts, with an
 * injected clock.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { needsHaproxy } from "../../src/traffic/haproxy/testing.js";
import {
  api,
  freePort,
  sendMany,
  startBackend,
  startUp,
  staticService,
  tempDir,
  waitFor,
} from "../helpers.js";
import { startLoad } from "../load.js";
import { type PgCluster, requirePostgres, startCluster } from "../support/postgres.js";

const skip = requirePostgres() ?? needsHaproxy().skip;
/** How long PostgreSQL stays down: several flushes, heartbeats and reconnect attempts. */
const OUTAGE_MS = 3000;

const NOTHING_HELD = {
  measurements: { buffered: 0, dropped: 0 },
  exposures: { buffered: 0, dropped: 0 },
  events: { buffered: 0, dropped: 0 },
  shadow: { buffered: 0, dropped: 0 },
};

describe("HAProxy's data plane through a PostgreSQL outage", { skip }, () => {
  let pg: PgCluster;
  let up: Awaited<ReturnType<typeof startUp>> | undefined;
  let backend: Awaited<ReturnType<typeof startBackend>> | undefined;
  const dir = tempDir("turnout-hx-outage-");

  before(async () => {
    pg = await startCluster({ crashSafe: true });
    backend = await startBackend("v1");
  });

  after(async () => {
    await up?.stop();
    await backend?.close();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves every request, holds and counts HAProxy's measurements, tells the outage once, and writes them all when the store is back", async (t) => {
    const url = await pg.createDatabase();
    const db = new URL(url).pathname.slice(1);
    up = await startUp(dir, { TURNOUT_LOG_LEVEL: "info" }, ["--store", url]);
    const u = up;
    const port = await freePort();
    const shop = staticService(port, { v1: [backend!.url] }, "v1");
    const r = await api(u, "POST", "/api/v1/apply", {
      ...shop,
      spec: { ...shop.spec, traffic: { haproxy: {} } },
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await waitFor("v1 served through HAProxy", async () => {
      const counts = await sendMany(port, 10, 2).catch(() => null);
      return counts?.get("v1") === 10;
    });
    const metric = async (name: string) => {
      const text = await (await fetch(`${u.url}/metrics`)).text();
      const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
      return m === null ? null : Number(m[1]);
    };
    const held = (kind: string) => metric(`turnout_router_buffered_rows\\{kind="${kind}"\\}`);
    const dropped = (kind: string) =>
      metric(`turnout_router_dropped_rows_total\\{kind="${kind}"\\}`);
    const haproxyLines = (level: number, msg: RegExp) =>
      u.logs().filter((l) => l.part === "haproxy" && l.level === level && msg.test(l.msg));
    const load = startLoad(port, { path: "/", keepAlive: 2, fresh: 1 });
    await load.waitFor(50);
    assert.equal(await metric("turnout_router_store_reachable"), 1);

    // The outage.
    const downAt = Date.now();
    pg.down();
    await waitFor(
      "HAProxy's warning",
      async () => haproxyLines(40, /^haproxy: .*store is unreachable/).length > 0,
    );
    await waitFor("HAProxy's measurements held, in /metrics", async () => {
      return (
        (await metric("turnout_router_store_reachable")) === 0 &&
        ((await held("measurements")) ?? 0) > 0
      );
    });
    await load.waitFor(100);
    await new Promise((res) => setTimeout(res, Math.max(0, downAt + OUTAGE_MS - Date.now())));
    assert.equal(load.stats().failed, 0, JSON.stringify(load.stats().failures));
    pg.up();
    const upAt = Date.now();

    // The end, told once with the counts; /metrics back to nothing held, nothing dropped.
    const end = await waitFor("HAProxy's info line", async () =>
      haproxyLines(30, /^haproxy: .*store is reachable again/).at(0),
    );
    const stats = await load.stop();
    await waitFor("its end in /metrics", async () => {
      return (
        (await metric("turnout_router_store_reachable")) === 1 && (await held("measurements")) === 0
      );
    });
    t.diagnostic(
      JSON.stringify({
        requests: stats.ok,
        failed: stats.failed,
        outageMs: upAt - downAt,
        end: { outageMs: end.outageMs, written: end.written, dropped: end.dropped },
      }),
    );
    assert.equal(stats.failed, 0, JSON.stringify(stats.failures));
    assert.equal(await dropped("measurements"), 0);
    assert.equal(haproxyLines(40, /^haproxy: .*store is unreachable/).length, 1, "one warning");
    assert.equal(
      haproxyLines(30, /^haproxy: .*store is reachable again/).length,
      1,
      "one info line",
    );
    assert.deepEqual(end.dropped, { measurements: 0, exposures: 0, events: 0, shadow: 0 });
    assert.ok((end.written as { measurements: number }).measurements > 0, JSON.stringify(end));
    assert.deepEqual(end.buffered, { measurements: 0, exposures: 0, events: 0, shadow: 0 });
    // HAProxy's router role told nothing else: neither a failed heartbeat nor a failed read.
    const warned = u
      .logs()
      .filter((l) => (l.part === "haproxy" || l.part === "traffic") && l.level >= 40);
    assert.equal(warned.length, 1, JSON.stringify(warned.map((l) => l.msg)));

    // Every line HAProxy's intake measured is in the store, the outage seconds included.
    const intake = async () =>
      (await api(u, "GET", "/api/v1/services/shop/status")).json.dataPlane.intake as {
        lines: number;
        lost: number;
        delayed: number;
      };
    const stored = () =>
      Number(
        pg.psql("select coalesce(sum(requests), 0) from measurements where service = 'shop'", db),
      );
    let last = { lines: 0, stored: 0 };
    const measured = await waitFor("every request measured and stored", async () => {
      const i = await intake();
      last = { lines: i.lines, stored: stored() };
      return i.lines >= stats.ok + 10 && last.stored === i.lines ? i : undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(last)}`);
    });
    assert.equal(measured.lost, 0);
    const downSec = Math.ceil(downAt / 1000);
    const upSec = Math.floor(upAt / 1000);
    const outageSeconds = Number(
      pg
        .psql(
          `select count(distinct second) from measurements where service = 'shop' and second >= ${downSec} and second < ${upSec}`,
          db,
        )
        .trim(),
    );
    assert.equal(outageSeconds, upSec - downSec, "a row for every second of the outage");

    // The registry lists HAProxy's router role with the counts of its last heartbeat.
    const routers = await waitFor("HAProxy's router role with its buffers", async () => {
      const items = (await api(u, "GET", "/api/v1/routers")).json.items as {
        id: string;
        buffers?: unknown;
      }[];
      const hx = items.find((x) => x.id.endsWith(":haproxy"));
      return hx?.buffers !== undefined ? hx : undefined;
    });
    assert.deepEqual(routers.buffers, NOTHING_HELD);
  });
});

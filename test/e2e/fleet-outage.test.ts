/**
 * Routers through a PostgreSQL outage (issue #14, item 4), with real processes on a private
 * cluster that the test stops (`pg_ctl stop -m immediate`, every connection cut as in a crash)
 * and starts again while a router serves load:
 *
 * - a fleet: a router process (`--roles router --router-address 127.0.0.2`) and an
 *   `api,controller` process. During the outage not one proxied request fails; once PostgreSQL
 *   is back, the router's LISTEN connections (its main thread's and its router thread's) are
 *   back within about a second, a route table committed then is in force within about a
 *   second, and every request of the outage seconds is in the store's measurements (nothing
 *   lost within the bound: the count is exact). The router logs one warning when the outage
 *   begins and one info line with the counts when it ends.
 * - all roles in one process on PostgreSQL: /metrics shows the router's side of the outage
 *   (store unreachable, measurements held) and its end (nothing held, nothing dropped).
 *
 * Drops beyond the bounds are counted in src/router/outage.test.ts, with an injected clock.
 */
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { api, freePort, startBackend, startUp, tempDir, type Up, waitFor } from "../helpers.js";
import { startLoad } from "../load.js";
import { type PgCluster, requirePostgres, startCluster } from "../support/postgres.js";

const skip = requirePostgres();
/** How long PostgreSQL stays down: several flushes, heartbeats and reconnect attempts. */
const OUTAGE_MS = 3000;

function service(port: number, upstreams: Record<string, string>, version: string) {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: "web" },
    spec: {
      listen: { port },
      runtime: {
        static: {
          versions: Object.fromEntries(
            Object.entries(upstreams).map(([v, url]) => [v, { upstreams: [url] }]),
          ),
        },
      },
      version,
      strategy: { canary: { steps: [{ setWeight: 50 }, { pause: {} }] } },
    },
  };
}

/**
 * Sends requests until one is answered by a version (a listener not bound yet refuses
 * connections, and a 503 before any instance is ready comes from no version: neither is
 * measured); returns how many versions answered, for the exact count later.
 */
async function firstAnswer(host: string, port: number): Promise<number> {
  let answered = 0;
  await waitFor(`${host}:${port} to answer`, async () => {
    try {
      const r = await request(`http://${host}:${port}/`);
      await r.body.text();
      // Only answers from a version are measured: the router's own 503 "no version with
      // traffic and a ready instance" (the table is in force, the static upstream not yet
      // probed ready) belongs to no version's series.
      if (r.statusCode === 200) answered++;
      return r.statusCode === 200;
    } catch {
      return false;
    }
  });
  return answered;
}

describe("routers through a PostgreSQL outage", { skip }, () => {
  let pg: PgCluster;
  const dirs: string[] = [];
  const ups: Up[] = [];
  const backends: Awaited<ReturnType<typeof startBackend>>[] = [];
  const dir = () => {
    const d = tempDir("turnout-outage-");
    dirs.push(d);
    return d;
  };

  before(async () => {
    pg = await startCluster({ crashSafe: true });
    for (const name of ["v1", "v2"]) backends.push(await startBackend(name));
  });

  after(async () => {
    for (const u of ups) await u.stop();
    for (const b of backends) await b.close();
    await pg?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const upstreams = () => ({ v1: backends[0]!.url, v2: backends[1]!.url });

  it("a router process serves every request while PostgreSQL is down and catches up when it is back", async (t) => {
    const url = await pg.createDatabase();
    const db = new URL(url).pathname.slice(1);
    const tokenFile = join(dir(), "token");
    writeFileSync(tokenFile, "outage-fleet-token-0123456789\n", { mode: 0o600 });
    const shared = ["--store", url, "--token-file", tokenFile];
    const [router, main] = await Promise.all([
      startUp(dir(), { TURNOUT_LOG_LEVEL: "info" }, [
        ...shared,
        "--roles",
        "router",
        "--router-address",
        "127.0.0.2",
      ]),
      startUp(dir(), {}, [...shared, "--roles", "api,controller"]),
    ]);
    ups.push(router, main);
    const port = await freePort();
    const status = async () => (await api(main, "GET", "/api/v1/services/web/status")).json;

    let r = await api(main, "POST", "/api/v1/apply", service(port, upstreams(), "v1"));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    let sent = await firstAnswer("127.0.0.2", port);

    const load = startLoad(port, { host: "127.0.0.2", path: "/", keepAlive: 4, fresh: 2 });
    await load.waitFor(100);

    // The outage.
    const downAt = Date.now();
    pg.down();
    await waitFor("the router's warning", async () =>
      router.logs().some((l) => l.level === 40 && /^router: .*store is unreachable/.test(l.msg)),
    );
    await load.waitFor(100);
    await new Promise((res) => setTimeout(res, Math.max(0, downAt + OUTAGE_MS - Date.now())));
    assert.equal(load.stats().failed, 0, JSON.stringify(load.stats().failures));
    pg.up();
    const upAt = Date.now();

    // Both LISTEN connections of the router process (its main thread's, its router thread's).
    const listening = () =>
      Number(
        pg.psql(
          "select count(*) from pg_stat_activity where application_name = 'turnout router listen'",
          db,
        ),
      );
    await waitFor("the router's LISTEN connections back", async () => listening() === 2, 5000);
    const listenBackMs = Date.now() - upAt;

    // A table committed now is in force at once (NOTIFY), at worst at the next poll (0.5 s).
    let v2SeenAt = 0;
    const watch = (async () => {
      while (v2SeenAt === 0) {
        if ((load.stats().byVersion.v2 ?? 0) > 0) v2SeenAt = Date.now();
        else await new Promise((res) => setTimeout(res, 5));
      }
    })();
    r = await waitFor("the API to write again", async () => {
      const res = await api(main, "POST", "/api/v1/apply", service(port, upstreams(), "v2"));
      return res.status === 200 ? res : undefined;
    });
    const paused = await waitFor("the canary at 50%", async () => {
      const s = await status();
      return s.status?.phase === "Paused" && s.status.canaryWeight === 50 ? s : undefined;
    });
    await watch;
    const inForceMs = v2SeenAt - paused.routeTable.updatedAt;

    // The end of the outage, told once with the counts.
    const end = await waitFor("the router's info line", async () =>
      router
        .logs()
        .find((l) => l.level === 30 && /^router: .*store is reachable again/.test(l.msg)),
    );
    const stats = await load.stop();
    sent += stats.ok + stats.failed;
    t.diagnostic(
      JSON.stringify({
        requests: stats.ok,
        failed: stats.failed,
        outageMs: upAt - downAt,
        listenBackMs,
        inForceMs,
        end: { outageMs: end.outageMs, written: end.written, dropped: end.dropped },
      }),
    );
    assert.equal(stats.failed, 0, JSON.stringify(stats.failures));
    assert.ok(listenBackMs < 2000, `LISTEN back ${listenBackMs} ms after the restart`);
    assert.ok(
      inForceMs < 1500,
      `a table committed after the restart in force after ${inForceMs} ms`,
    );
    // The router's own: the process's HAProxy side (idle here) keeps an account of its own.
    const warnings = router
      .logs()
      .filter((l) => l.level === 40 && /^router: .*store is unreachable/.test(l.msg));
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.deepEqual(end.dropped, { measurements: 0, exposures: 0, events: 0, shadow: 0 });
    assert.ok((end.written as { measurements: number }).measurements > 0, JSON.stringify(end));
    assert.deepEqual(end.buffered, { measurements: 0, exposures: 0, events: 0, shadow: 0 });

    // Every request the router answered is in the store, the outage seconds included.
    const stored = () =>
      Number(
        pg.psql("select coalesce(sum(requests), 0) from measurements where service = 'web'", db),
      );
    await waitFor(`${sent} requests in the store`, async () => stored() === sent).catch(
      (err: Error) => {
        throw new Error(`${err.message}: ${stored()} stored of ${sent} answered`);
      },
    );
    // The registry has the router's counts of its last heartbeat: nothing held, nothing dropped.
    const listed = (await api(main, "GET", "/api/v1/routers")).json.items as {
      pid: number;
      buffers?: unknown;
    }[];
    assert.deepEqual(listed.find((x) => x.pid === router.proc.pid)?.buffers, {
      measurements: { buffered: 0, dropped: 0 },
      exposures: { buffered: 0, dropped: 0 },
      events: { buffered: 0, dropped: 0 },
      shadow: { buffered: 0, dropped: 0 },
    });
    const downSec = Math.ceil(downAt / 1000);
    const upSec = Math.floor(upAt / 1000);
    const outageSeconds = pg
      .psql(
        `select count(distinct second) from measurements where service = 'web' and second >= ${downSec} and second < ${upSec}`,
        db,
      )
      .trim();
    assert.equal(Number(outageSeconds), upSec - downSec, "a row for every second of the outage");
  });

  it("all roles in one process: /metrics shows the outage and its end", async () => {
    const url = await pg.createDatabase();
    const up = await startUp(dir(), {}, ["--store", url]);
    ups.push(up);
    const port = await freePort();
    const r = await api(up, "POST", "/api/v1/apply", service(port, upstreams(), "v1"));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await firstAnswer("127.0.0.1", port);
    const metric = async (name: string) => {
      const text = await (await fetch(`${up.url}/metrics`)).text();
      const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
      return m === null ? null : Number(m[1]);
    };
    const load = startLoad(port, { path: "/", keepAlive: 2, fresh: 1 });
    await load.waitFor(50);
    assert.equal(await metric("turnout_router_store_reachable"), 1);

    pg.down();
    await waitFor("the router's outage in /metrics", async () => {
      return (
        (await metric("turnout_router_store_reachable")) === 0 &&
        ((await metric('turnout_router_buffered_rows\\{kind="measurements"\\}')) ?? 0) > 0
      );
    });
    assert.equal(await metric("turnout_store_up"), 0);
    await load.waitFor(50);
    pg.up();
    await waitFor("its end in /metrics", async () => {
      return (
        (await metric("turnout_router_store_reachable")) === 1 &&
        (await metric('turnout_router_buffered_rows\\{kind="measurements"\\}')) === 0
      );
    });
    assert.equal(await metric('turnout_router_dropped_rows_total\\{kind="measurements"\\}'), 0);
    const stats = await load.stop();
    assert.equal(stats.failed, 0, JSON.stringify(stats.failures));
  });
});

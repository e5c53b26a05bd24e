/**
 * DESIGN invariant 8 in the fleet configurations on PostgreSQL (issue #14, item 7): a maximal
 * admin request adds less than 10 ms at p99 to proxied requests. The method is the one of
 * isolation.test.ts (test/support/isolation.ts): idle and busy phases interleaved in one run,
 * busy p99 minus idle p99.
 *
 * - A router process (`turnout up --store postgres://... --roles router`) with the API and the
 *   controller elsewhere (in this process, `--roles api,controller` in effect): the admin work
 *   reaches the router only through the shared PostgreSQL (the big Service stored and its table
 *   read, the controller's commits).
 * - All roles in one process on PostgreSQL (the router on its own thread with its own
 *   connections, as `turnout up --store postgres://...` runs it).
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { startFleetMember, startTurnout } from "../../src/server.js";
import { api, freePort, startUp, tempDir } from "../helpers.js";
import {
  type IsolationRun,
  type IsolationSummary,
  LatencyClient,
  measureIsolation,
  routerServes,
  summarizeIsolation,
} from "../support/isolation.js";
import { type PgCluster, requirePostgres, sharedCluster } from "../support/postgres.js";

const skip = requirePostgres();
const BOUND_MS = 10;

/**
 * The method's measurement, and when it comes out over the bound a second one, the bound then
 * applying to both pooled (4000 requests a phase instead of 2000). Why: on a shared 2-core
 * machine the p99 of 2000 requests moves by several ms from run to run with nothing changed
 * (seen at a load average of 18: idle p99 from 10 to 22 ms, and the added p99 of one
 * configuration 17.6 ms in one run and 0.4 ms in the next). Latency that the admin work really
 * adds is in every busy phase of both measurements, so the pooled figure keeps it; a burst of
 * the machine's own noise weighs half as much.
 */
async function addedP99(
  run: IsolationRun,
  ctx: { diagnostic(msg: string): void },
  configuration: string,
): Promise<IsolationSummary> {
  const first = await measureIsolation(run);
  let summary = summarizeIsolation(first);
  ctx.diagnostic(JSON.stringify({ configuration, ...summary }));
  if (summary.addedP99Ms >= BOUND_MS) {
    const second = await measureIsolation(run);
    ctx.diagnostic(JSON.stringify({ configuration, second: summarizeIsolation(second) }));
    summary = summarizeIsolation(first, second);
    ctx.diagnostic(JSON.stringify({ configuration, pooled: summary }));
  }
  assert.ok(
    summary.addedP99Ms < BOUND_MS,
    `${configuration}: p99 added latency ${summary.addedP99Ms.toFixed(2)} ms: ${JSON.stringify(summary)}`,
  );
  return summary;
}

function webService(port: number, upstream: string) {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: "web" },
    spec: {
      listen: { port, host: "127.0.0.1" },
      runtime: { static: { versions: { v1: { upstreams: [upstream] } } } },
      version: "v1",
    },
  };
}

describe("isolation of the data plane in a fleet on PostgreSQL", { skip }, () => {
  let pg: PgCluster;
  let client: LatencyClient;
  let upstream: string;
  const dirs: string[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  const dir = () => {
    const d = tempDir("turnout-isolation-fleet-");
    dirs.push(d);
    return d;
  };
  const logger = () => pino({ level: "warn" }, pino.destination(2));

  before(async () => {
    pg = await sharedCluster();
    client = new LatencyClient();
    upstream = await client.upstream();
  });

  after(async () => {
    client?.stop();
    for (const c of closers.reverse()) await c();
    await pg?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("a router process: an admin request to the API elsewhere adds under 10 ms at p99", async (ctx) => {
    const url = await pg.createDatabase();
    const [router, main] = await Promise.all([
      startUp(dir(), {}, ["--store", url, "--roles", "router"]),
      startFleetMember({
        dataDir: dir(),
        port: 0,
        storeUrl: url,
        roles: ["api", "controller"],
        pollIntervalMs: 200,
        logger: logger(),
      }),
    ]);
    closers.push(
      () => router.stop(),
      () => main.stop(),
    );
    assert.equal(main.router, null, "no router in this process");
    assert.ok(main.url !== null && main.token !== null && main.controller !== null);
    const controller = main.controller;
    const mainApi = { url: main.url, token: main.token };
    const routerPort = await freePort();
    const r = await api(mainApi, "POST", "/api/v1/apply", webService(routerPort, upstream));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await client.target(routerPort);
    await routerServes(client);

    await addedP99(
      {
        api: mainApi,
        tick: () => controller.tick(),
        otherPort: await freePort(),
        upstream,
        client,
      },
      ctx,
      "router process",
    );
    // Not beside the next configuration.
    await Promise.all([router.stop(), main.stop()]);
  });

  it("all roles in one process: an admin request adds under 10 ms at p99", async (ctx) => {
    const url = await pg.createDatabase();
    const t = await startTurnout({
      dataDir: dir(),
      port: 0,
      storeUrl: url,
      pollIntervalMs: 200,
      logger: logger(),
      router: "thread",
    });
    closers.push(() => t.stop());
    const routerPort = await freePort();
    const r = await api(t, "POST", "/api/v1/apply", webService(routerPort, upstream));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await client.target(routerPort);
    await routerServes(client);

    await addedP99(
      { api: t, tick: () => t.controller.tick(), otherPort: await freePort(), upstream, client },
      ctx,
      "all roles, one process",
    );
  });
});

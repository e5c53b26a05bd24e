import assert from "node:assert/strict";
import { test } from "node:test";
import {
  API_VERSION,
  type RouteTable,
  type ServiceResource,
  type ServiceStatus,
} from "../core/model.js";
import { emptyStatus } from "../core/rollout.js";
import type { RouteFeature } from "../core/traffic.js";
import { StoreOutage } from "../router/outage.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { RouterBuffers } from "../store/store.js";
import { TrafficAgent, type TrafficAgentSource } from "./agent.js";
import type { TableOutcome, TrafficProvider } from "./provider.js";

// The agent's contract is with the TrafficProvider interface; real providers are checked by the
// conformance suite. Here a provider that records what it is handed, over a real SQLite store.
class RecordingProvider implements TrafficProvider {
  readonly kind = "haproxy" as const;
  readonly features: ReadonlySet<RouteFeature> = new Set(["split"]);
  applied: RouteTable[][] = [];
  refuse = new Set<string>();
  stopped = false;
  #inForce = new Map<string, number>();
  async start(): Promise<void> {}
  async stop(): Promise<void> {
    this.stopped = true;
  }
  async apply(tables: readonly RouteTable[]): Promise<TableOutcome[]> {
    this.applied.push([...tables]);
    const next = new Map<string, number>();
    const out: TableOutcome[] = [];
    for (const t of tables) {
      if (this.refuse.has(t.service)) {
        const kept = this.#inForce.get(t.service);
        if (kept !== undefined) next.set(t.service, kept);
        out.push({
          service: t.service,
          revision: t.revision,
          ok: false,
          error: new Error("refused"),
        });
      } else {
        next.set(t.service, t.revision);
        out.push({ service: t.service, revision: t.revision, ok: true });
      }
    }
    this.#inForce = next;
    return out;
  }
  inForce(): ReadonlyMap<string, number> {
    return this.#inForce;
  }
}

const T0 = 1_700_000_000_000;

function service(name: string, haproxy: boolean): ServiceResource {
  return {
    apiVersion: API_VERSION,
    kind: "Service",
    metadata: { name },
    spec: {
      listen: { port: 8080, host: "127.0.0.1" },
      runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9001"] } } } },
      version: "v1",
      ...(haproxy ? { traffic: { haproxy: {} } } : {}),
    },
  } as ServiceResource;
}

function status(): ServiceStatus {
  return {
    ...emptyStatus(T0),
    message: "v1 serves all traffic",
    observedGeneration: 1,
    stableVersion: "v1",
  };
}

function table(name: string, haproxy: boolean): Omit<RouteTable, "revision"> {
  return {
    service: name,
    listen: { host: "127.0.0.1", port: 8080 },
    hashVersion: 1,
    backends: [{ version: "v1", weight: 100, endpoints: ["http://127.0.0.1:9001"] }],
    updatedAt: T0,
    ...(haproxy ? { traffic: { haproxy: {} } } : {}),
  };
}

/** A store, a recording provider, and an agent carrying the services whose traffic is haproxy. */
async function agentOnStore(heartbeatMs?: number) {
  const store = await openSqliteStore({ path: ":memory:" });
  const provider = new RecordingProvider();
  const agent = new TrafficAgent({
    source: store,
    provider,
    select: (t) => t.traffic !== undefined && "haproxy" in t.traffic,
    pollIntervalMs: 20,
    ...(heartbeatMs !== undefined ? { heartbeatMs } : {}),
    id: "test-agent",
  });
  return { store, provider, agent };
}

test("the agent hands its provider only the tables it carries, follows changes, reports to the registry", async () => {
  const { store, provider, agent } = await agentOnStore();
  try {
    await store.applyResources([service("a", true), service("b", false)], { actor: "t", now: T0 });
    await store.commit({ service: "a", status: status(), routeTable: table("a", true), now: T0 });
    await store.commit({ service: "b", status: status(), routeTable: table("b", false), now: T0 });
    await agent.start();
    assert.deepEqual(
      provider.applied.at(-1)?.map((t) => t.service),
      ["a"],
      "the built-in router's table is not handed over",
    );
    assert.equal(agent.carries("a"), true);
    assert.equal(agent.carries("b"), false);

    // A new revision reaches the provider; inForce resolves once it is in force.
    const { routeTable } = await store.commit({
      service: "a",
      status: status(),
      routeTable: {
        ...table("a", true),
        backends: [{ version: "v1", weight: 100, endpoints: ["http://127.0.0.1:9002"] }],
      },
      now: T0 + 1,
    });
    assert.ok(routeTable);
    assert.equal(await agent.inForce("a", routeTable.revision, 5000), true);
    const routers = await store.listRouters();
    const me = routers.find((r) => r.id === "test-agent");
    assert.ok(me, "the agent registered");
    // The report after the apply carries the new revision (it may land a moment after inForce).
    for (let i = 0; i < 100; i++) {
      const r = (await store.listRouters()).find((x) => x.id === "test-agent");
      if (r?.revisions.a === routeTable.revision) break;
      await new Promise((res) => setTimeout(res, 10));
    }
    assert.equal(
      (await store.listRouters()).find((x) => x.id === "test-agent")?.revisions.a,
      routeTable.revision,
    );

    // A refused table: the provider keeps the old revision, inForce answers false at its deadline.
    provider.refuse.add("a");
    const refused = await store.commit({
      service: "a",
      status: status(),
      routeTable: table("a", true),
      now: T0 + 2,
    });
    assert.ok(refused.routeTable);
    assert.equal(await agent.inForce("a", refused.routeTable.revision, 300), false);
    assert.equal(
      agent.outcomes().find((o) => o.service === "a")?.ok,
      false,
      "the refusal is kept for status",
    );
  } finally {
    await agent.stop();
    assert.equal(provider.stopped, true);
    assert.equal(
      (await store.listRouters()).some((r) => r.id === "test-agent"),
      false,
      "deregistered",
    );
    await store.close();
  }
});

test("the agent is in the registry only while its provider has services in force", async () => {
  const { store, agent } = await agentOnStore(20);
  const listed = async () => (await store.listRouters()).find((r) => r.id === "test-agent");
  const until = async (what: string, cond: () => Promise<boolean>) => {
    for (let i = 0; i < 500 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(await cond(), `timed out waiting until ${what}`);
  };
  try {
    await store.applyResources([service("a", false)], { actor: "t", now: T0 });
    await store.commit({ service: "a", status: status(), routeTable: table("a", false), now: T0 });
    await agent.start();
    assert.equal(await listed(), undefined, "no row for an agent that carries nothing");

    // The service moves to HAProxy: the agent lists itself with its revision.
    await store.applyResources([service("a", true)], { actor: "t", now: T0 + 1 });
    const moved = await store.commit({
      service: "a",
      status: status(),
      routeTable: table("a", true),
      now: T0 + 1,
    });
    await until(
      "the agent is listed with a's revision",
      async () => (await listed())?.revisions.a === moved.routeTable?.revision,
    );
    assert.match((await listed())?.address ?? "", /\(haproxy: a\)$/);

    // And back to the built-in router: its row goes once nothing is in force.
    await store.applyResources([service("a", false)], { actor: "t", now: T0 + 2 });
    await store.commit({
      service: "a",
      status: status(),
      routeTable: table("a", false),
      now: T0 + 2,
    });
    await until("the agent's row is removed", async () => (await listed()) === undefined);
  } finally {
    await agent.stop();
    await store.close();
  }
});

test("a store outage is told once, by the provider's account; heartbeats carry what the provider holds", async () => {
  const store = await openSqliteStore({ path: ":memory:" });
  await store.applyResources([service("a", true)], { actor: "t", now: T0 });
  await store.commit({ service: "a", status: status(), routeTable: table("a", true), now: T0 });
  // The store behind a switch: down, every read and report fails as a cut connection does.
  let down = false;
  let failedReads = 0;
  let failedReports = 0;
  const refused = () => new Error("connect ECONNREFUSED 127.0.0.1:5432");
  const source: TrafficAgentSource = {
    onChange: (l) => store.onChange(l),
    routeTablesFingerprint: () => {
      if (!down) return store.routeTablesFingerprint();
      failedReads++;
      return Promise.reject(refused());
    },
    listRouteTables: () => (down ? Promise.reject(refused()) : store.listRouteTables()),
    reportRouter: (r) => {
      if (!down) return store.reportRouter(r);
      failedReports++;
      return Promise.reject(refused());
    },
    removeRouter: (id) => store.removeRouter(id),
  };
  const logs: { level: "info" | "warn"; obj: Record<string, unknown>; msg: string }[] = [];
  const logger = {
    info: (obj: object, msg: string) => logs.push({ level: "info", obj: { ...obj }, msg }),
    warn: (obj: object, msg: string) => logs.push({ level: "warn", obj: { ...obj }, msg }),
  };
  const held: RouterBuffers = {
    measurements: { buffered: 4, dropped: 2 },
    exposures: { buffered: 0, dropped: 9 },
    events: { buffered: 0, dropped: 0 },
    shadow: { buffered: 0, dropped: 0 },
  };
  const provider = Object.assign(new RecordingProvider(), {
    buffers: () => structuredClone(held),
    storeUse: new StoreOutage({ logger, now: Date.now, buffers: () => held }),
  });
  const agent = new TrafficAgent({
    source,
    provider,
    select: (t) => t.traffic !== undefined && "haproxy" in t.traffic,
    pollIntervalMs: 10,
    heartbeatMs: 10,
    id: "test-agent",
    // The agent's own lines: none expected, the provider's account tells the outage.
    logger,
  });
  const until = async (what: string, check: () => boolean | Promise<boolean>) => {
    const deadline = Date.now() + 10_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const registered = async () =>
    (await store.listRouters()).find((r) => r.id === "test-agent")?.buffers;
  try {
    await agent.start();
    await until(
      "a heartbeat with the provider's buffers",
      async () => JSON.stringify(await registered()) === JSON.stringify(held),
    );

    down = true;
    await until("polls and heartbeats failing", () => failedReads >= 5 && failedReports >= 5);
    assert.notEqual(provider.storeUse.since, null, "the outage is on the provider's account");
    // One warning, however many reads and heartbeats failed (whichever failed first names it).
    assert.equal(logs.length, 1, JSON.stringify(logs.map((l) => l.msg)));
    assert.equal(logs[0]!.level, "warn");
    assert.ok(["routeTables", "registry"].includes(String(logs[0]!.obj.use)));

    held.exposures.dropped = 11;
    down = false;
    await until("the end of the outage told", () => logs.some((l) => l.level === "info"));
    await until(
      "a heartbeat with the counts of the outage",
      async () => (await registered())?.exposures.dropped === 11,
    );
    assert.equal(logs.filter((l) => l.level === "warn").length, 1);
    assert.equal(logs.filter((l) => l.level === "info").length, 1);
    assert.match(logs[1]!.msg, /reachable again/);
    assert.deepEqual(logs[1]!.obj.dropped, { measurements: 0, exposures: 2, events: 0, shadow: 0 });
  } finally {
    await agent.stop();
    await store.close();
  }
});

/**
 * Scenario tests of the controller: a real SQLite file, the static runtime, a fake clock, and
 * ticks driven by the test (as Flagger's scheduler tests do), asserting what is persisted.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeClock } from "../core/clock.js";
import type { ServiceResource } from "../core/model.js";
import type { Instance, Runtime, VersionTarget } from "../runtime/runtime.js";
import { StaticRuntime } from "../runtime/static/static-runtime.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { RouterReport, Store } from "../store/store.js";
import { Controller } from "./controller.js";

function service(version: string): ServiceResource {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: "web" },
    spec: {
      listen: { host: "127.0.0.1", port: 18080 },
      runtime: {
        static: {
          versions: {
            v1: { upstreams: ["http://127.0.0.1:9001", "http://127.0.0.1:9002"] },
            v2: { upstreams: ["http://127.0.0.1:9003"] },
            v3: { upstreams: ["http://127.0.0.1:9004"] },
          },
        },
      },
      version,
      strategy: {
        canary: {
          steps: [
            { setWeight: 25 },
            { pause: { duration: "1m" } },
            { setWeight: 50 },
            { pause: {} },
          ],
        },
      },
    },
  };
}

/** Wraps a runtime to record what the controller asked of it. */
class RecordingRuntime implements Runtime {
  calls: VersionTarget[][] = [];
  constructor(private inner: Runtime) {}
  async ensure(
    service: string,
    spec: ServiceResource["spec"]["runtime"],
    targets: VersionTarget[],
  ) {
    this.calls.push(targets);
    return this.inner.ensure(service, spec, targets);
  }
  instances(service: string): Instance[] {
    return this.inner.instances(service);
  }
  remove(service: string) {
    return this.inner.remove(service);
  }
  shutdown() {
    return this.inner.shutdown();
  }
  onChange(l: () => void) {
    return this.inner.onChange(l);
  }
}

describe("controller (SQLite store, static runtime, fake clock)", () => {
  let dir: string;
  let store: Store;
  const clock = new FakeClock();
  let runtime: RecordingRuntime;
  let controller: Controller;
  const weights = async () =>
    Object.fromEntries(
      (await store.getRouteTable("web"))!.backends.map((b) => [b.version, b.weight]),
    );

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-ctl-"));
    store = await openSqliteStore({ path: join(dir, "t.db") });
    runtime = new RecordingRuntime(new StaticRuntime());
    controller = new Controller({ store, runtime, clock });
  });
  after(async () => {
    await controller.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("makes the first version stable, writes its route table with ready endpoints", async () => {
    await store.applyResources([service("v1")], { actor: "test", now: clock.now() });
    const r1 = await controller.tick();
    // The runtime learns of v1 during the first tick; the second puts its endpoints in force.
    const r2 = await controller.tick();
    assert.ok(r1.written.includes("web") || r2.written.includes("web"));
    const table = await store.getRouteTable("web");
    assert.deepEqual(table?.backends, [
      { version: "v1", weight: 100, endpoints: ["http://127.0.0.1:9001", "http://127.0.0.1:9002"] },
    ]);
    assert.equal((await store.getStatus("web"))?.phase, "Healthy");
    assert.deepEqual(runtime.calls.at(-1), [{ version: "v1", replicas: 1 }]);
  });

  it("writes nothing when nothing changed", async () => {
    const before = await store.routeTablesFingerprint();
    const events = (await store.listEvents("web")).length;
    const r = await controller.tick();
    assert.deepEqual(r.written, []);
    assert.equal(await store.routeTablesFingerprint(), before);
    assert.equal((await store.listEvents("web")).length, events);
  });

  it("runs the canary steps with the injected clock, and reports when to wake", async () => {
    await store.applyResources([service("v2")], { actor: "test", now: clock.now() });
    await controller.tick(); // starts the rollout; v2 instances appear
    const r = await controller.tick(); // v2 ready: setWeight 25, then the 1m pause
    assert.deepEqual(await weights(), { v1: 75, v2: 25 });
    assert.equal(r.wakeAt, clock.now() + 60_000);
    const s = await store.getStatus("web");
    assert.equal(s?.phase, "Progressing");
    assert.equal(s?.stepIndex, 1);
    clock.advance(60_000);
    await controller.tick();
    assert.deepEqual(await weights(), { v1: 50, v2: 50 });
    assert.equal((await store.getStatus("web"))?.phase, "Paused");
  });

  it("a new controller on the same store resumes at the same step (crash safety)", async () => {
    // The first one "crashed": the second claims the writer epoch and carries on alone.
    await controller.stop();
    runtime = new RecordingRuntime(new StaticRuntime());
    const second = new Controller({ store, runtime, clock });
    controller = second;
    await second.tick();
    await second.tick();
    const s = await store.getStatus("web");
    assert.equal(s?.phase, "Paused");
    assert.equal(s?.stepIndex, 3);
    assert.deepEqual(await weights(), { v1: 50, v2: 50 });
  });

  it("takes up queued commands and records their results", async () => {
    const cmd = await store.enqueueCommand(
      { service: "web", type: "abort", args: {}, actor: "ops", reason: "error budget" },
      clock.now(),
    );
    await controller.tick();
    const done = await store.getCommand(cmd.id);
    assert.equal(done?.result?.outcome, "applied");
    assert.deepEqual(await weights(), { v1: 100 });
    assert.equal((await store.getStatus("web"))?.phase, "Degraded");
    // The aborted v2 keeps running without traffic for the scale-down delay (default 30 s).
    assert.deepEqual(
      runtime.calls.at(-1)?.map((t) => t.version),
      ["v1", "v2"],
    );
    clock.advance(30_000);
    await controller.tick();
    assert.deepEqual(runtime.calls.at(-1), [{ version: "v1", replicas: 1 }]);
    const again = await store.enqueueCommand(
      { service: "web", type: "promote", args: {}, actor: "ops" },
      clock.now(),
    );
    await controller.tick();
    assert.equal((await store.getCommand(again.id))?.result?.outcome, "rejected");
    const aborted = (await store.listEvents("web")).find((e) => e.type === "RolloutAborted");
    assert.equal(aborted?.actor, "ops");
    assert.equal(aborted?.data.reason, "error budget");
    assert.equal(aborted?.data.fromWeight, 50);
  });

  // The router registry's `notServing` (a port another process holds, a table its data plane
  // refused): Degraded whatever the rollout says, and no rollout starts or moves meanwhile.
  const BIND = "cannot listen on 127.0.0.1:18080: address already in use (EADDRINUSE)";
  const report = (heartbeatAt: number, notServing?: RouterReport["notServing"]): RouterReport => ({
    id: "r1",
    address: "r1",
    pid: 1,
    startedAt: heartbeatAt,
    heartbeatAt,
    revisions: { web: 1 },
    ...(notServing ? { notServing } : {}),
  });

  it("a live router that cannot serve the service: Degraded, no rollout starts until it can", async () => {
    await store.reportRouter(report(clock.now(), { web: { revision: 1, reason: BIND } }));
    await controller.tick();
    let s = await store.getStatus("web");
    assert.equal(s?.phase, "Degraded");
    assert.equal(s?.message, `not serving: ${BIND} (router r1)`);
    assert.equal(s?.dataPlane?.since, clock.now());
    assert.equal(s?.dataPlane?.underlying.phase, "Degraded", "the aborted rollout underneath");

    // A new version is seen but does not start: no table with a split is written.
    const revision = (await store.getRouteTable("web"))?.revision;
    const applied = await store.applyResources([service("v3")], { actor: "t", now: clock.now() });
    await controller.tick();
    s = await store.getStatus("web");
    assert.equal(s?.canaryVersion, null);
    assert.equal(s?.observedGeneration, applied[0]?.generation);
    assert.match(s?.message ?? "", /; the rollout to v3 starts once it is served$/);
    assert.equal((await store.getRouteTable("web"))?.revision, revision);

    // The router binds at last: its next report says nothing, and the rollout starts.
    clock.advance(3000);
    await store.reportRouter(report(clock.now()));
    await controller.tick();
    await controller.tick();
    s = await store.getStatus("web");
    assert.equal(s?.dataPlane, null);
    assert.equal(s?.canaryVersion, "v3");
    assert.deepEqual(await weights(), { v1: 75, v3: 25 });
    const types = (await store.listEvents("web")).map((e) => e.type);
    assert.deepEqual(
      types.filter((t) => t.startsWith("DataPlane") || t === "RolloutStarted").slice(-3),
      ["DataPlaneNotServing", "RolloutStarted", "DataPlaneServing"],
    );
  });

  it("a router that went silent no longer counts", async () => {
    await store.reportRouter(report(clock.now(), { web: { revision: 9, reason: BIND } }));
    await controller.tick();
    assert.equal((await store.getStatus("web"))?.phase, "Degraded");
    clock.advance(5000);
    await controller.tick();
    const s = await store.getStatus("web");
    assert.equal(s?.dataPlane, null);
    assert.equal(s?.phase, "Progressing", "the rollout's own phase is back");
  });

  it("stops a deleted service's instances", async () => {
    await store.deleteResource("Service", "web", { actor: "test", now: clock.now() });
    await controller.tick();
    assert.deepEqual(runtime.instances("web"), []);
    assert.equal(await store.getRouteTable("web"), null);
  });
});

describe("controller fencing (two controllers on one store)", () => {
  let dir: string;
  let store: Store;
  const clock = new FakeClock();
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-ctl-fence-"));
    store = await openSqliteStore({ path: join(dir, "t.db") });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the superseded controller's tick is refused, mid-tick included; no event is recorded twice", async () => {
    const runtimeA = new RecordingRuntime(new StaticRuntime());
    const a = new Controller({ store, runtime: runtimeA, clock, holder: "controller A" });
    await store.applyResources([service("v1")], { actor: "test", now: clock.now() });
    await a.tick();
    await a.tick();
    assert.equal(a.writerEpoch, 1);
    assert.equal((await store.getStatus("web"))?.phase, "Healthy");

    // A second controller claims the store while A is in the middle of a tick: A has read
    // everything and decided to start the rollout when B takes over, so A's commit must be
    // refused inside its transaction (a check before the tick alone would let it through).
    await store.applyResources([service("v2")], { actor: "test", now: clock.now() });
    const runtimeB = new RecordingRuntime(new StaticRuntime());
    const b = new Controller({ store, runtime: runtimeB, clock, holder: "controller B" });
    let claimed = false;
    const racing = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === "getRouteTable" && !claimed) {
          return async (name: string) => {
            claimed = true;
            await b.tick(); // claims epoch 2 and starts the rollout itself
            return target.getRouteTable(name);
          };
        }
        const v = Reflect.get(target, prop, receiver);
        return typeof v === "function" ? v.bind(target) : v;
      },
    }) as Store;
    const a2 = new Controller({ store: racing, runtime: runtimeA, clock, holder: "controller A" });
    await a.stop();
    // A again (same runtime), now through the racing store: its claim (epoch 2) is overtaken.
    await assert.rejects(a2.tick(), { code: "TURNOUT_ERR_STORE_FENCED" });
    assert.ok(claimed);
    assert.equal(b.writerEpoch, 3);
    assert.equal(a2.isFenced, true);
    const callsAfterFence = runtimeA.calls.length;

    // Stopped for good: later ticks are refused at once and touch neither store nor runtime.
    const events = await store.listEvents("web");
    await assert.rejects(a2.tick(), { code: "TURNOUT_ERR_STORE_FENCED" });
    assert.equal(runtimeA.calls.length, callsAfterFence, "a fenced controller starts nothing");
    assert.deepEqual(await store.listEvents("web"), events);

    // B carries on; every event of the rollout is there exactly once.
    await b.tick();
    await b.tick();
    assert.equal((await store.getStatus("web"))?.canaryVersion, "v2");
    const types = (await store.listEvents("web")).map((e) => e.type);
    assert.equal(types.filter((t) => t === "RolloutStarted").length, 1, types.join(","));
    const seen = new Set<string>();
    for (const e of await store.listEvents("web")) {
      const key = `${e.type} ${e.message}`;
      assert.ok(!seen.has(key), `recorded twice: ${key}`);
      seen.add(key);
    }
    await b.stop();
  });

  it("a controller superseded between ticks stops before touching the runtime", async () => {
    const runtimeC = new RecordingRuntime(new StaticRuntime());
    const c = new Controller({ store, runtime: runtimeC, clock, holder: "controller C" });
    await c.tick();
    const calls = runtimeC.calls.length;
    assert.ok(calls > 0);
    const newer = await store.acquireWriterEpoch("controller D", clock.now());
    assert.ok(newer > (c.writerEpoch ?? 0));
    await assert.rejects(c.tick(), (err: { code?: string; message?: string }) => {
      assert.equal(err.code, "TURNOUT_ERR_STORE_FENCED");
      assert.match(err.message ?? "", /held by controller D/);
      return true;
    });
    assert.equal(runtimeC.calls.length, calls);
    // start() after being fenced does nothing either.
    c.start();
    await c.stop();
    assert.equal(runtimeC.calls.length, calls);
  });
});

/**
 * A Service whose stored spec never went through validation (written by an older Turnout, or
 * straight into the store) lacks the fields validation fills in (`listen.host`, the stickiness
 * salt...). Its route table must still be rebuilt to the same content tick after tick, so that
 * the revision (which every router reloads on) advances only when the content changes.
 */
describe("a Service stored without validation", () => {
  let dir: string;
  let store: Store;
  const clock = new FakeClock();
  let controller: Controller;
  const TICKS = 20;
  const unvalidated = (version: string): ServiceResource =>
    ({
      apiVersion: "turnout.dev/v1",
      kind: "Service",
      metadata: { name: "raw" },
      spec: {
        // No host (validation defaults it to 127.0.0.1), no salt.
        listen: { port: 18081 },
        stickiness: { header: "x-user-id" },
        routing: { matches: [{ header: { name: "x-canary", equals: "1" }, to: "canary" }] },
        runtime: {
          static: {
            versions: {
              v1: { upstreams: ["http://127.0.0.1:9001"] },
              v2: { upstreams: ["http://127.0.0.1:9002"] },
            },
          },
        },
        version,
        strategy: { canary: { steps: [{ setWeight: 25 }, { pause: {} }] } },
      },
    }) as unknown as ServiceResource;

  /** Ticks until nothing is written (the runtime's instances settle), then N more. */
  async function steadyRevision(): Promise<number> {
    for (let i = 0; i < 10 && (await controller.tick()).written.length > 0; i++)
      clock.advance(1000);
    const settled = (await store.getRouteTable("raw"))?.revision;
    assert.ok(settled !== undefined, "a route table was written");
    for (let i = 0; i < TICKS; i++) {
      clock.advance(1000);
      const r = await controller.tick();
      assert.deepEqual(r.written, [], `tick ${i + 1} wrote though nothing changed`);
    }
    assert.equal((await store.getRouteTable("raw"))?.revision, settled);
    return settled;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-ctl-raw-"));
    store = await openSqliteStore({ path: join(dir, "t.db") });
    controller = new Controller({ store, runtime: new StaticRuntime(), clock });
  });
  after(async () => {
    await controller.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("one that does not validate is left alone, and said so once, with the path", async () => {
    const logged: { obj: object; msg?: string }[] = [];
    const log = (obj: object, msg?: string) => logged.push({ obj, ...(msg ? { msg } : {}) });
    const own = new Controller({
      store,
      runtime: new StaticRuntime(),
      clock,
      logger: { info() {}, warn() {}, error: log },
    });
    const bad = unvalidated("v1");
    bad.metadata.name = "bad";
    (bad.spec.listen as { port: number }).port = 0;
    await store.applyResources([bad], { actor: "old", now: clock.now() });
    try {
      for (let i = 0; i < 3; i++) {
        clock.advance(1000);
        await own.tick();
      }
    } finally {
      await store.deleteResource("Service", "bad", { actor: "test", now: clock.now() });
      await own.stop();
    }
    assert.equal(await store.getStatus("bad"), null);
    assert.equal(await store.getRouteTable("bad"), null);
    const [said, ...more] = logged;
    assert.ok(said !== undefined && more.length === 0, JSON.stringify(logged));
    assert.match(said.msg ?? "", /Service\/bad as stored does not validate/);
    assert.deepEqual((said.obj as { issues: string[] }).issues, [
      "spec.listen.port: must be an integer 1..65535, got 0",
    ]);
  });

  it(`keeps its route-table revision over ${TICKS} ticks at rest and during a rollout`, async () => {
    await store.applyResources([unvalidated("v1")], { actor: "old", now: clock.now() });
    const atRest = await steadyRevision();
    const table = await store.getRouteTable("raw");
    // What the table says is what validation would have filled in.
    assert.deepEqual(table?.listen, { host: "127.0.0.1", port: 18081 });
    assert.equal(table?.stickiness?.salt, "raw");

    await store.applyResources([unvalidated("v2")], { actor: "old", now: clock.now() });
    const paused = await steadyRevision();
    assert.ok(paused > atRest, "the rollout changed the table");
    assert.equal((await store.getStatus("raw"))?.phase, "Paused");
    assert.deepEqual(
      (await store.getRouteTable("raw"))?.backends.map((b) => [b.version, b.weight]),
      [
        ["v2", 25],
        ["v1", 75],
      ],
    );
  });
});

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
import type { Store } from "../store/store.js";
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
    const second = new Controller({ store, runtime: new StaticRuntime(), clock });
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

  it("stops a deleted service's instances", async () => {
    await store.deleteResource("Service", "web", { actor: "test", now: clock.now() });
    await controller.tick();
    assert.deepEqual(runtime.instances("web"), []);
    assert.equal(await store.getRouteTable("web"), null);
  });
});

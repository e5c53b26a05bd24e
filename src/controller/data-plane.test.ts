/**
 * The router registry's `notServing` reports, read by the controller into each service's
 * status: a real SQLite store, the static runtime, a fake clock, ticks driven by the test.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeClock } from "../core/clock.js";
import type { ServiceResource } from "../core/model.js";
import { StaticRuntime } from "../runtime/static/static-runtime.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { RouterReport, Store } from "../store/store.js";
import { Controller } from "./controller.js";
import { dataPlanesOf } from "./data-plane.js";

const T0 = 1_700_000_000_000;
const BIND = "cannot listen on 127.0.0.1:18080: address already in use (EADDRINUSE)";

function router(id: string, heartbeatAt: number, notServing?: RouterReport["notServing"]) {
  return {
    id,
    address: `${id} (web 127.0.0.1:18080)`,
    pid: 1,
    startedAt: T0 - 60_000,
    heartbeatAt,
    revisions: { web: 1 },
    ...(notServing !== undefined ? { notServing } : {}),
  } satisfies RouterReport;
}

describe("dataPlanesOf", () => {
  it("names every live router that cannot serve a service, one reason each, and no other", () => {
    const out = dataPlanesOf(
      [
        router("a", T0, { web: { revision: 1, reason: BIND } }),
        router("b", T0 - 1000, { web: { revision: 1, reason: BIND } }),
        router("c", T0, { web: { revision: 1, reason: "haproxy refused route table revision 1" } }),
        // Silent for 5 s: not live, so not evidence of anything any more.
        router("d", T0 - 5000, { api: { revision: 2, reason: BIND } }),
        router("e", T0),
      ],
      T0,
      5000,
    );
    assert.deepEqual(
      [...out],
      [
        [
          "web",
          {
            serving: false,
            reason: `${BIND} (routers a, b); haproxy refused route table revision 1 (router c)`,
          },
        ],
      ],
    );
  });
});

describe("controller: a service whose data plane does not serve its table", () => {
  let dir: string;
  let store: Store;
  const clock = new FakeClock(T0);
  let controller: Controller;
  const web = (version: string): ServiceResource => ({
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: "web" },
    spec: {
      listen: { host: "127.0.0.1", port: 18080 },
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
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-ctl-dp-"));
    store = await openSqliteStore({ path: join(dir, "t.db") });
    controller = new Controller({ store, runtime: new StaticRuntime(), clock });
  });
  after(async () => {
    await controller.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("is Degraded while a live router reports it, and its rollout starts once it is served", async () => {
    await store.applyResources([web("v1")], { actor: "test", now: clock.now() });
    await controller.tick();
    await controller.tick();
    assert.equal((await store.getStatus("web"))?.phase, "Healthy");

    await store.reportRouter(router("r1", clock.now(), { web: { revision: 1, reason: BIND } }));
    await controller.tick();
    let s = await store.getStatus("web");
    assert.equal(s?.phase, "Degraded");
    assert.equal(s?.message, `not serving: ${BIND} (router r1)`);
    assert.equal(s?.dataPlane?.since, clock.now());

    // A new version is seen but its rollout does not start: no table with a split is written.
    const revision = (await store.getRouteTable("web"))?.revision;
    await store.applyResources([web("v2")], { actor: "test", now: clock.now() });
    await controller.tick();
    s = await store.getStatus("web");
    assert.equal(s?.canaryVersion, null);
    assert.equal(s?.observedGeneration, 2);
    assert.match(s?.message ?? "", /; the rollout to v2 starts once it is served$/);
    assert.equal((await store.getRouteTable("web"))?.revision, revision);

    // The router binds at last: its next report has nothing to say, and the rollout starts.
    clock.advance(3000);
    await store.reportRouter(router("r1", clock.now()));
    await controller.tick();
    await controller.tick();
    s = await store.getStatus("web");
    assert.equal(s?.dataPlane, null);
    assert.equal(s?.canaryVersion, "v2");
    assert.equal(s?.phase, "Paused");
    const types = (await store.listEvents("web")).map((e) => e.type);
    assert.deepEqual(
      types.filter((t) => t.startsWith("DataPlane") || t === "RolloutStarted"),
      ["DataPlaneNotServing", "RolloutStarted", "DataPlaneServing"],
    );
  });

  it("no longer counts a router that went silent", async () => {
    await store.reportRouter(router("r1", clock.now(), { web: { revision: 3, reason: BIND } }));
    await controller.tick();
    assert.equal((await store.getStatus("web"))?.phase, "Degraded");
    clock.advance(5000);
    await controller.tick();
    const s = await store.getStatus("web");
    assert.equal(s?.phase, "Paused", "the held rollout's own phase is back");
    assert.equal(s?.dataPlane, null);
  });
});

/**
 * Scenario tests of the stop gate (DESIGN invariant 9): a real SQLite store, the controller
 * ticked by hand with a fake clock, routers that report through the store's registry, and a
 * fake runtime that stops instances the way the process runtime does ("stopping" at once, the
 * signal only once the gate lets it). Each test asserts when the signal may and may not go.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { FakeClock } from "../core/clock.js";
import type { ServiceResource } from "../core/model.js";
import type { Instance, Runtime, StopGate, VersionTarget } from "../runtime/runtime.js";
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
      // Only its replicas matter: the fake runtime below runs nothing.
      runtime: {
        process: {
          command: ["server"],
          replicas: 2,
          readiness: {
            path: "/healthz",
            periodSeconds: 1,
            timeoutSeconds: 1,
            initialDelaySeconds: 0,
          },
          startupTimeoutSeconds: 30,
          terminationGracePeriodSeconds: 5,
        },
      },
      version,
      strategy: { blueGreen: { autoPromotionSeconds: 0, scaleDownDelaySeconds: 0 } },
    },
  };
}

/** Instances are ready as soon as they are wanted; a stop asks the gate, then "signals". */
class FakeRuntime implements Runtime {
  readonly running = new Map<string, Instance>();
  /** Urls signalled, in order. */
  readonly signalled: string[] = [];
  private gate: StopGate | null = null;
  private readonly listeners = new Set<() => void>();
  private port = 9000;

  async ensure(service: string, _spec: unknown, targets: VersionTarget[]): Promise<void> {
    for (const i of this.running.values()) {
      if (i.state !== "stopping" && !targets.some((t) => t.version === i.version)) {
        i.state = "stopping";
        const gate = this.gate;
        void (gate ? gate({ service, id: i.id, version: i.version, url: i.url }) : null)?.then(
          () => {
            this.signalled.push(i.url);
            this.running.delete(i.id);
            this.emit();
          },
        );
      }
    }
    for (const t of targets) {
      const have = [...this.running.values()].filter((i) => i.version === t.version).length;
      for (let n = have; n < t.replicas; n++) {
        const url = `http://127.0.0.1:${this.port++}`;
        const id = `${service}/${t.version}/${n}`;
        this.running.set(id, { id, version: t.version, url, state: "ready" });
      }
    }
    this.emit();
  }
  instances(): Instance[] {
    return [...this.running.values()].map((i) => ({ ...i }));
  }
  async remove(): Promise<void> {}
  async shutdown(): Promise<void> {}
  onChange(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  setStopGate(gate: StopGate | null): void {
    this.gate = gate;
  }
  urls(version: string): string[] {
    return [...this.running.values()].filter((i) => i.version === version).map((i) => i.url);
  }
  private emit(): void {
    for (const l of this.listeners) l();
  }
}

describe("stop gate: instances are signalled only once every live router confirmed", () => {
  let dir: string;
  let store: Store;
  let clock: FakeClock;
  let runtime: FakeRuntime;
  let controller: Controller;

  const revision = async () => (await store.getRouteTable("web"))?.revision ?? 0;
  const report = (id: string, rev: number, heartbeatAt = clock.now()) =>
    store.reportRouter({
      id,
      address: `${id}.local`,
      pid: 1,
      startedAt: 0,
      heartbeatAt,
      revisions: { web: rev },
    });
  /** Ticks until v2 serves everything and v1's instances are stopping; returns v1's urls. */
  const switchToV2 = async (): Promise<string[]> => {
    await store.applyResources([service("v1")], { actor: "test", now: clock.now() });
    await controller.tick();
    await controller.tick();
    const v1 = runtime.urls("v1");
    assert.equal(v1.length, 2);
    await report("a", await revision());
    await report("b", await revision());
    await store.applyResources([service("v2")], { actor: "test", now: clock.now() });
    for (let i = 0; i < 6; i++) await controller.tick();
    assert.equal((await store.getStatus("web"))?.stableVersion, "v2");
    const table = await store.getRouteTable("web");
    assert.deepEqual(
      table?.backends.map((b) => b.version),
      ["v2"],
      "the table in the store leaves v1 out",
    );
    assert.deepEqual(
      controller.release
        .waiting()
        .map((w) => w.url)
        .sort(),
      [...v1].sort(),
    );
    return v1;
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-gate-"));
    store = await openSqliteStore({ path: join(dir, "t.db") });
    clock = new FakeClock();
    runtime = new FakeRuntime();
    controller = new Controller({ store, runtime, clock });
  });
  afterEach(async () => {
    await controller.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("waits for every live router to report the table without the instance", async () => {
    const v1 = await switchToV2();
    const r = await revision();
    await controller.release.check();
    assert.deepEqual(runtime.signalled, [], "no router has the new table yet");

    await report("a", r);
    await controller.release.check();
    assert.deepEqual(runtime.signalled, [], "router b still serves an older table");

    await report("b", r - 1);
    await controller.release.check();
    assert.deepEqual(runtime.signalled, [], "b moved on, but not far enough");

    await report("b", r + 3);
    await controller.release.check();
    assert.deepEqual([...runtime.signalled].sort(), [...v1].sort());
    const types = (await store.listEvents("web")).map((e) => e.type);
    assert.ok(!types.includes("DrainTimedOut"), types.join(", "));
  });

  it("a router that stopped heartbeating is not waited for; one that serves no table of the service neither", async () => {
    const v1 = await switchToV2();
    const r = await revision();
    await report("a", r);
    // b serves other services only: it sends nothing to web's instances.
    await store.reportRouter({
      id: "b",
      address: "b.local",
      pid: 1,
      startedAt: 0,
      heartbeatAt: clock.now(),
      revisions: { other: 7 },
    });
    await report("c", r - 1, clock.now() - 6_000);
    await controller.release.check();
    assert.deepEqual([...runtime.signalled].sort(), [...v1].sort(), "c is not live: 6 s silent");
  });

  it("gives up after the timeout, stops the instance and records DrainTimedOut naming the laggard", async () => {
    const v1 = await switchToV2();
    const r = await revision();
    await report("a", r);
    await report("b", r - 1);
    // b stays live (it beats within every 5 s) but never moves on.
    for (const step of [4_000, 4_000, 1_999]) {
      clock.advance(step);
      await report("b", r - 1);
      await report("a", r);
    }
    await controller.release.check();
    assert.deepEqual(runtime.signalled, [], "not yet: 9.999 s");

    clock.advance(1);
    await controller.release.check();
    assert.deepEqual([...runtime.signalled].sort(), [...v1].sort());
    await controller.tick();
    const timedOut = (await store.listEvents("web")).filter((e) => e.type === "DrainTimedOut");
    assert.equal(timedOut.length, 2, "one per instance");
    const data = timedOut[0]?.data as {
      routers: { id: string; revision: number }[];
      revision: number;
      waitedMs: number;
      url: string;
    };
    assert.deepEqual(data.routers, [{ id: "b", address: "b.local", revision: r - 1 }]);
    assert.equal(data.revision, r);
    assert.equal(data.waitedMs, 10_000);
    assert.ok(v1.includes(data.url));
    assert.match(timedOut[0]?.message ?? "", /b at \d+/);
  });

  it("with no router registered, nothing holds the stop", async () => {
    await store.applyResources([service("v1")], { actor: "test", now: clock.now() });
    await controller.tick();
    await controller.tick();
    const v1 = runtime.urls("v1");
    await store.applyResources([service("v2")], { actor: "test", now: clock.now() });
    for (let i = 0; i < 6 && runtime.signalled.length < 2; i++) {
      await controller.tick();
      await controller.release.check();
    }
    assert.deepEqual([...runtime.signalled].sort(), [...v1].sort());
  });
});

/**
 * The router's side of the router registry: it reports the revision of every table it has in
 * force, at once after a swap (the controller holds instances until then), beats a heartbeat,
 * and deregisters when it stops. A source without the registry is served the same, silently.
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { describe, it } from "node:test";
import type { RouterReport } from "../store/store.js";
import { Router } from "./router.js";
import { MemoryRouteTableSource } from "./testing.js";

class RegistrySource extends MemoryRouteTableSource {
  readonly reports: RouterReport[] = [];
  readonly removed: string[] = [];
  #waiters: { check: (r: RouterReport) => boolean; resolve: (r: RouterReport) => void }[] = [];
  async reportRouter(r: RouterReport): Promise<void> {
    this.reports.push(structuredClone(r));
    const due = this.#waiters.filter((w) => w.check(r));
    this.#waiters = this.#waiters.filter((w) => !due.includes(w));
    for (const w of due) w.resolve(r);
  }
  async removeRouter(id: string): Promise<boolean> {
    this.removed.push(id);
    return true;
  }
  /** Resolves with the first report (from now on, or the last one) that satisfies `check`. */
  reported(check: (r: RouterReport) => boolean): Promise<RouterReport> {
    const last = this.reports.at(-1);
    if (last !== undefined && check(last)) return Promise.resolve(last);
    return new Promise((resolve) => this.#waiters.push({ check, resolve }));
  }
}

const table = (service: string, port: number, endpoints: string[]) => ({
  service,
  listen: { host: "127.0.0.1", port },
  backends: [{ version: "v1", weight: 100, endpoints }],
});

describe("router registry reports", () => {
  it("reports revisions in force at once after each swap, heartbeats, and deregisters", async () => {
    const source = new RegistrySource();
    source.set(table("web", 0, ["http://127.0.0.1:9001"]));
    const router = new Router({ source, routerId: "r-test", heartbeatMs: 20 });
    await router.start();
    try {
      const first = await source.reported((r) => r.revisions.web === 1);
      assert.equal(first.id, "r-test");
      assert.equal(first.pid, process.pid);
      assert.deepEqual(router.revisions(), { web: 1 });

      // The report follows the swap: when it says 2, the router already serves table 2.
      source.set(table("web", 0, ["http://127.0.0.1:9002"]));
      source.set(table("api", 0, ["http://127.0.0.1:9003"]));
      await source.reported((r) => r.revisions.web === 2 && r.revisions.api === 1);
      assert.deepEqual(
        router.endpoints("web").map((e) => e.url),
        ["http://127.0.0.1:9002"],
      );

      source.delete("api");
      const dropped = await source.reported((r) => r.revisions.api === undefined);
      assert.deepEqual(dropped.revisions, { web: 2 });

      // Heartbeats: further reports with the same revisions and later times.
      const n = source.reports.length;
      const beat = await source.reported(
        (r) => source.reports.length > n && r.heartbeatAt >= dropped.heartbeatAt,
      );
      assert.deepEqual(beat.revisions, { web: 2 });
    } finally {
      await router.stop();
    }
    assert.deepEqual(source.removed, ["r-test"]);
  });

  it("reports a listener that cannot bind as not serving, and stops once it binds", async () => {
    // Someone else holds the port first.
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
    const port = (holder.address() as AddressInfo).port;
    const source = new RegistrySource();
    source.set(table("web", port, ["http://127.0.0.1:9001"]));
    // A long heartbeat: the report that clears it is the one the bind itself sends.
    const router = new Router({ source, heartbeatMs: 60_000, pollIntervalMs: 20 });
    // No listener is bound and the router's timers are unref'd: this keeps the test alive.
    const alive = setInterval(() => {}, 1000);
    await router.start();
    try {
      const down = await source.reported((r) => r.notServing?.web !== undefined);
      assert.deepEqual(down.notServing, {
        web: {
          revision: 1,
          reason: `cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`,
        },
      });
      await new Promise<void>((r) => holder.close(() => r()));
      const up = await source.reported((r) => r.notServing === undefined);
      assert.deepEqual(up.revisions, { web: 1 });
      assert.equal(router.listeners()[0]?.error, undefined);
    } finally {
      clearInterval(alive);
      holder.close();
      await router.stop();
    }
  });

  it("a source without the registry is served all the same", async () => {
    const source = new MemoryRouteTableSource();
    source.set(table("web", 0, ["http://127.0.0.1:9001"]));
    const router = new Router({ source, heartbeatMs: 10 });
    await router.start();
    assert.deepEqual(router.revisions(), { web: 1 });
    await router.stop();
  });
});

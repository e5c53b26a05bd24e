/**
 * The controller lease (issue #14, controller HA) on a real SQLite store with a fake clock and
 * election steps driven by the test: when a standby may take over, that a leader cut off from
 * the store stops acting before anyone else can start, and two controllers handing a canary
 * over: it resumes at its step, no event is recorded twice, a command is taken up once, and the
 * deposed leader can write nothing.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { FakeClock } from "../core/clock.js";
import type { ServiceResource } from "../core/model.js";
import { StaticRuntime } from "../runtime/static/static-runtime.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Store } from "../store/store.js";
import { Controller } from "./controller.js";
import { Elector } from "./lease.js";

const LEASE = 5_000;
const INTERVAL = 1_000;

function service(version: string): ServiceResource {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: "web" },
    spec: {
      listen: { host: "127.0.0.1", port: 18081 },
      runtime: {
        static: {
          versions: {
            v1: { upstreams: ["http://127.0.0.1:9001"] },
            v2: { upstreams: ["http://127.0.0.1:9002"] },
          },
        },
      },
      version,
      strategy: {
        canary: {
          steps: [
            { setWeight: 20 },
            { pause: { duration: "1m" } },
            { setWeight: 40 },
            { pause: { duration: "1m" } },
            { setWeight: 60 },
            { pause: {} },
          ],
        },
      },
    },
  };
}

describe("controller lease", () => {
  let dir: string;
  let store: Store;
  let clock: FakeClock;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-lease-"));
    store = await openSqliteStore({ path: join(dir, "t.db") });
    clock = new FakeClock();
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const elector = (holder: string, s: Pick<Store, "leadController" | "releaseController">) =>
    new Elector({ store: s, clock, holder, leaseMs: LEASE, intervalMs: INTERVAL });

  it("a standby takes over only once the lease stood still for a whole lease on its clock", async () => {
    const a = elector("A", store);
    const b = elector("B", store);
    assert.equal((await a.step()).epoch, 1);
    assert.equal((await b.step()).epoch, null); // B first sees (epoch 1, 0 renewals) now
    const sawAt = clock.now();
    // A renews for a while: B keeps seeing the lease move, so never takes over.
    for (let i = 0; i < 10; i++) {
      clock.advance(INTERVAL);
      assert.equal((await a.step()).epoch, 1);
      assert.equal((await b.step()).epoch, null);
    }
    assert.ok(clock.now() - sawAt > LEASE);
    // A dies after its last renewal, just made. B takes over a whole lease after it saw it.
    const lastRenewal = clock.now();
    let tookAt: number | null = null;
    while (tookAt === null) {
      clock.advance(INTERVAL);
      if ((await b.step()).epoch !== null) tookAt = clock.now();
    }
    assert.equal(tookAt - lastRenewal, LEASE, "the first look a whole lease after it saw it");
    assert.equal((await store.controllerLease())?.holder, "B");
    assert.equal((await store.controllerLease())?.epoch, 2);
    // A wakes: it is past its acting deadline already, and its renewal finds B leading.
    assert.equal(a.acting(), null);
    assert.equal((await a.step()).epoch, null);
  });

  it("a leader cut off from the store stops acting before any standby can take over", async () => {
    let reachable = true;
    const flaky: Pick<Store, "leadController" | "releaseController"> = {
      leadController: async (req) => {
        if (!reachable) throw new Error("connection refused");
        return store.leadController(req);
      },
      releaseController: (...args) => store.releaseController(...args),
    };
    const changes: (number | null)[] = [];
    const a = new Elector({
      store: flaky,
      clock,
      holder: "A",
      leaseMs: LEASE,
      intervalMs: INTERVAL,
      onChange: (e) => changes.push(e),
    });
    const b = elector("B", store);
    await a.step();
    await b.step();
    const lastRenewal = clock.now();
    reachable = false;
    let stoppedAt: number | null = null;
    let tookAt: number | null = null;
    for (let t = 0; t < 20 && tookAt === null; t++) {
      clock.advance(INTERVAL / 2);
      await a.step();
      if (stoppedAt === null && a.acting() === null) stoppedAt = clock.now();
      if ((await b.step()).epoch !== null) tookAt = clock.now();
    }
    assert.ok(stoppedAt !== null && tookAt !== null);
    assert.equal(stoppedAt - lastRenewal, LEASE - INTERVAL);
    assert.ok(tookAt - stoppedAt >= INTERVAL, `stopped ${tookAt - stoppedAt} ms before takeover`);
    assert.deepEqual(changes, [1, null]);
    // Back online, A learns that B leads and stays a standby.
    reachable = true;
    assert.equal((await a.step()).epoch, null);
    assert.equal((await a.step()).lease?.holder, "B");
  });

  it("a claim that timed out here but went through there is renewed, not waited out", async () => {
    let slow = true;
    const lagging: Pick<Store, "leadController" | "releaseController"> = {
      leadController: async (req) => {
        const answer = await store.leadController(req);
        // The answer arrives after the elector gave up on it (its interval).
        if (slow) {
          slow = false;
          await new Promise((r) => setTimeout(r, 300));
        }
        return answer;
      },
      releaseController: (...args) => store.releaseController(...args),
    };
    const a = new Elector({ store: lagging, clock, holder: "A", leaseMs: 1_000, intervalMs: 200 });
    assert.equal((await a.step()).epoch, null, "the claim's answer came too late");
    assert.equal((await store.controllerLease())?.holder, "A", "but the store took it");
    clock.advance(200);
    assert.equal((await a.step()).epoch, null); // learns that it holds epoch 1
    clock.advance(200);
    assert.equal((await a.step()).epoch, 1, "renewed at once, without a lease of nobody leading");
    assert.equal((await store.controllerLease())?.epoch, 1);
  });

  it("a standby says once that it stands by, and who leads; again only for a new leader", async () => {
    const said: string[] = [];
    const logger = { info: (_: object, msg?: string) => said.push(msg ?? ""), warn: () => {} };
    const a = elector("A", store);
    const b = new Elector({
      store,
      clock,
      holder: "B",
      leaseMs: LEASE,
      intervalMs: INTERVAL,
      logger,
    });
    const c = elector("C", store);
    assert.equal((await a.step()).epoch, 1);
    for (let i = 0; i < 3; i++) {
      assert.equal((await b.step()).epoch, null);
      clock.advance(INTERVAL);
      await a.step();
    }
    assert.deepEqual(said, [
      "controller lease: standing by; A leads (epoch 1); this controller takes over if it stops renewing for 5000 ms",
    ]);
    // A stops cleanly; C, not B, is first to look and leads: B names the new leader, once.
    await a.stop();
    assert.equal((await c.step()).epoch, 2);
    await b.step();
    await b.step();
    assert.equal(said.length, 2, said.join("\n"));
    assert.match(said[1]!, /^controller lease: standing by; C leads \(epoch 2\)/);
  });

  it("a clean stop releases the lease: a standby leads at its next look", async () => {
    const a = elector("A", store);
    const b = elector("B", store);
    await a.step();
    await b.step();
    await a.stop();
    clock.advance(INTERVAL);
    const r = await b.step();
    assert.equal(r.epoch, 2);
    assert.equal(r.lease?.holder, "B");
  });

  it("a canary handed over between two controllers resumes at its step, nothing twice", async () => {
    const make = (holder: string) =>
      new Controller({
        store,
        runtime: new StaticRuntime(),
        clock,
        holder,
        lease: { leaseMs: LEASE, intervalMs: INTERVAL },
      });
    const a = make("controller A");
    const b = make("controller B");
    try {
      await store.applyResources([service("v1")], { actor: "test", now: clock.now() });
      assert.ok(a.elector && b.elector);
      await a.elector.step();
      await b.elector.step();
      // Only the leader ticks; the standby's ticks do nothing.
      assert.equal((await b.tick()).standby, true);
      await a.tick();
      await a.tick();
      assert.equal((await store.getStatus("web"))?.phase, "Healthy");
      await store.applyResources([service("v2")], { actor: "test", now: clock.now() });
      await a.tick();
      await a.tick();
      clock.advance(60_000); // both pauses' clocks run; nobody renews meanwhile...
      await a.elector.step(); // ...but A renews before it ticks
      await a.tick();
      const s1 = await store.getStatus("web");
      assert.equal(s1?.stepIndex, 3); // 40%, in the second pause
      const before = await store.listEvents("web");

      // A dies (no more steps). A promote is queued while nobody leads.
      const cmd = await store.enqueueCommand(
        { service: "web", type: "promote", args: {}, actor: "ops" },
        clock.now(),
      );
      await b.elector.step(); // B sees A's last renewal now
      for (let i = 0; i < 6; i++) {
        clock.advance(INTERVAL);
        await b.elector.step();
      }
      assert.equal(b.leadership?.epoch, 2);
      await b.tick();
      await b.tick();
      const after = await store.listEvents("web");
      const added = after.slice(before.length);
      // B says where it resumed, once; then takes up the promote, once.
      const started = added.filter((e) => e.type === "ControllerStarted");
      assert.equal(started.length, 1);
      assert.match(started[0]?.message ?? "", /controller B leads \(epoch 2\): resuming rollout/);
      assert.match(started[0]?.message ?? "", /at step 4/);
      assert.equal((await store.getCommand(cmd.id))?.result?.outcome, "applied");
      const promoted = added.filter((e) => e.type === "Promoted");
      assert.equal(promoted.length, 1, "the promote queued during the handover, taken up once");
      assert.equal(promoted[0]?.actor, "ops");
      // No step was taken twice: each weight change names a distinct step of rollout 1.
      const steps = after.filter((e) => e.type === "WeightChanged").map((e) => e.data.step);
      assert.ok(steps.length >= 3, JSON.stringify(steps));
      assert.equal(new Set(steps).size, steps.length, JSON.stringify(steps));
      // Nor paused twice at one step, nor started the rollout twice.
      const keyed = after
        .filter((e) => ["Paused", "RolloutStarted", "Promoted"].includes(e.type))
        .map((e) => `${e.type}:${JSON.stringify(e.data.stepIndex ?? e.data.rollout ?? null)}`);
      assert.equal(new Set(keyed).size, keyed.length, keyed.join(" "));

      // A comes back: it may not act (its deadline passed) and its commit would be refused.
      assert.equal((await a.tick()).standby, true);
      await assert.rejects(
        store.commit({ service: "web", epoch: 1, events: [], now: clock.now() }),
        { code: "TURNOUT_ERR_STORE_FENCED" },
      );
      await a.elector.step();
      assert.equal(a.leadership?.epoch, null);
      assert.equal(a.leadership?.lease?.holder, "controller B");
      assert.equal(a.isFenced, false, "a deposed leader stands by; it does not stop for good");
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

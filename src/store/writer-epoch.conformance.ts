/**
 * Writer-epoch fencing, part of the Store conformance suite (registered by
 * `describeStoreConformance`, so every implementation runs it): claims count up, only the
 * newest claim's commits are accepted, and a refused commit writes nothing at all.
 */
import assert from "node:assert/strict";
import type { EventDraft, RouteTable, ServiceResource, ServiceStatus } from "../core/model.js";
import type { ConformanceTest } from "./store.conformance.js";
import type { Store } from "./store.js";

/** The conformance suite's per-test wrapper and fixtures, passed in to keep one source. */
export interface WriterEpochSuiteDeps {
  test: ConformanceTest;
  service: (name: string, version?: string) => ServiceResource;
  status: (overrides?: Partial<ServiceStatus>) => ServiceStatus;
  table: (service: string, canaryWeight: number, now: number) => Omit<RouteTable, "revision">;
  event: (service: string, type: string, time: number) => EventDraft;
  T0: number;
}

export function describeWriterEpochConformance(d: WriterEpochSuiteDeps): void {
  const { test, service, status, table, event, T0 } = d;

  /** Everything a refused commit must leave as it was. */
  const snapshot = async (store: Store, svc: string) => ({
    status: await store.getStatus(svc),
    table: await store.getRouteTable(svc),
    events: await store.listEvents(svc),
    pending: await store.pendingCommands(svc),
    fingerprint: await store.routeTablesFingerprint(),
  });

  test("writer epoch: each claim gets the next epoch and names its holder", async ({ store }) => {
    assert.equal(await store.currentWriterEpoch(), null);
    assert.equal(await store.acquireWriterEpoch("controller A", T0), 1);
    assert.deepEqual(await store.currentWriterEpoch(), {
      epoch: 1,
      holder: "controller A",
      acquiredAt: T0,
    });
    assert.equal(await store.acquireWriterEpoch("controller B", T0 + 1), 2);
    assert.deepEqual(await store.currentWriterEpoch(), {
      epoch: 2,
      holder: "controller B",
      acquiredAt: T0 + 1,
    });
    // Claims at the same moment still get distinct epochs; the highest is the current one.
    const epochs = await Promise.all(
      ["c", "d", "e", "f"].map((h, i) => store.acquireWriterEpoch(h, T0 + 2 + i)),
    );
    assert.deepEqual(
      [...epochs].sort((a, b) => a - b),
      [3, 4, 5, 6],
    );
    assert.equal((await store.currentWriterEpoch())?.epoch, 6);
  });

  test("writer epoch: a commit with a stale epoch is refused and writes nothing", async ({
    store,
  }) => {
    await store.applyResources([service("a")], { actor: "alice", now: T0 });
    const old = await store.acquireWriterEpoch("controller A", T0);
    const cmd = await store.enqueueCommand(
      { service: "a", type: "promote", args: {}, actor: "cli" },
      T0 + 1,
    );
    // The old writer's last good commit, so that "untouched" has something to compare with.
    await store.commit({
      service: "a",
      epoch: old,
      status: status(),
      routeTable: table("a", 0, T0 + 2),
      events: [event("a", "RolloutStarted", T0 + 2)],
      now: T0 + 2,
    });
    const newest = await store.acquireWriterEpoch("controller B", T0 + 3);
    assert.ok(newest > old);

    const before = await snapshot(store, "a");
    const changes: string[] = [];
    store.onChange((what) => changes.push(what));
    await assert.rejects(
      store.commit({
        service: "a",
        epoch: old,
        status: status({ phase: "Progressing", canaryVersion: "v2", canaryWeight: 50 }),
        routeTable: table("a", 50, T0 + 4),
        events: [event("a", "StepAdvanced", T0 + 4)],
        commandResults: [{ id: cmd.id, outcome: "applied", message: "promoted" }],
        now: T0 + 4,
      }),
      (err: { code?: string; message?: string }) => {
        assert.equal(err.code, "TURNOUT_ERR_STORE_FENCED");
        assert.match(err.message ?? "", /writer epoch 1.*epoch 2 is held by controller B/);
        return true;
      },
    );
    // An events-only commit is fenced as well: the old writer cannot even add history.
    await assert.rejects(
      store.commit({ service: "a", epoch: old, events: [event("a", "X", T0 + 5)], now: T0 + 5 }),
      { code: "TURNOUT_ERR_STORE_FENCED" },
    );
    assert.deepEqual(await snapshot(store, "a"), before);
    assert.deepEqual(changes, [], "a refused commit notifies nobody");

    // The newest epoch wins: its commit goes through, command result included.
    const { routeTable } = await store.commit({
      service: "a",
      epoch: newest,
      status: status({ phase: "Progressing", canaryVersion: "v2", canaryWeight: 50 }),
      routeTable: table("a", 50, T0 + 6),
      events: [event("a", "StepAdvanced", T0 + 6)],
      commandResults: [{ id: cmd.id, outcome: "applied", message: "promoted" }],
      now: T0 + 6,
    });
    assert.equal(routeTable?.revision, 2);
    assert.equal((await store.getStatus("a"))?.canaryWeight, 50);
    assert.deepEqual(
      (await store.listEvents("a")).map((e) => e.type),
      ["ResourceApplied", "RolloutStarted", "StepAdvanced"],
    );
    assert.equal((await store.getCommand(cmd.id))?.result?.outcome, "applied");
  });

  test("writer epoch: a commit without an epoch is accepted only while nobody claimed one", async ({
    store,
  }) => {
    await store.applyResources([service("a")], { actor: "alice", now: T0 });
    await store.commit({ service: "a", status: status(), now: T0 + 1 });
    // An epoch nobody was given is refused too (no claim yet: nothing to hold).
    await assert.rejects(
      store.commit({ service: "a", epoch: 1, status: status({ message: "x" }), now: T0 + 2 }),
      { code: "TURNOUT_ERR_STORE_FENCED" },
    );
    const epoch = await store.acquireWriterEpoch("controller A", T0 + 3);
    await assert.rejects(
      store.commit({ service: "a", status: status({ message: "y" }), now: T0 + 4 }),
      { code: "TURNOUT_ERR_STORE_FENCED" },
    );
    assert.deepEqual(await store.getStatus("a"), status());
    await store.commit({ service: "a", epoch, status: status({ message: "z" }), now: T0 + 5 });
    assert.equal((await store.getStatus("a"))?.message, "z");
  });

  test("writer epoch: survives close and reopen", async (f, t) => {
    if (f.reopen === undefined) {
      t.skip("this store's data does not outlive it");
      return;
    }
    const epoch = await f.store.acquireWriterEpoch("controller A", T0);
    await f.store.close();
    const again = await f.reopen();
    try {
      assert.deepEqual(await again.currentWriterEpoch(), {
        epoch,
        holder: "controller A",
        acquiredAt: T0,
      });
      // A restarted writer claims anew and moves past every epoch handed out before.
      assert.equal(await again.acquireWriterEpoch("controller A again", T0 + 1), epoch + 1);
    } finally {
      await again.close();
    }
  });

  // ---- The controller lease (issue #14: several controllers, one leading) ----------------

  const LEASE = 5_000;

  test("controller lease: the first claimant leads; others do not, and see who does", async ({
    store,
  }) => {
    assert.equal(await store.controllerLease(), null);
    const a = await store.leadController({ holder: "A", now: T0, leaseMs: LEASE });
    assert.equal(a.leading, true);
    assert.deepEqual(a.lease, {
      epoch: 1,
      holder: "A",
      acquiredAt: T0,
      renewals: 0,
      renewedAt: T0,
      leaseMs: LEASE,
      released: false,
    });
    const b = await store.leadController({ holder: "B", now: T0 + 1, leaseMs: LEASE });
    assert.equal(b.leading, false);
    assert.deepEqual(b.lease, a.lease);
    assert.deepEqual(await store.controllerLease(), a.lease);
    // The writer epoch is the lease's: commits carry it.
    assert.deepEqual(await store.currentWriterEpoch(), { epoch: 1, holder: "A", acquiredAt: T0 });
  });

  test("controller lease: only the holder renews, and only with its epoch", async ({ store }) => {
    await store.leadController({ holder: "A", now: T0, leaseMs: LEASE });
    const r = await store.leadController({
      holder: "A",
      now: T0 + 1_000,
      leaseMs: LEASE,
      renew: 1,
    });
    assert.equal(r.leading, true);
    assert.equal(r.lease.renewals, 1);
    assert.equal(r.lease.renewedAt, T0 + 1_000);
    assert.equal(r.lease.acquiredAt, T0, "renewing keeps the time the lead was taken");
    // Another controller cannot renew a lease it does not hold, even with the right epoch.
    const b = await store.leadController({
      holder: "B",
      now: T0 + 1_001,
      leaseMs: LEASE,
      renew: 1,
    });
    assert.equal(b.leading, false);
    // Nor the holder with an epoch it no longer has.
    const stale = await store.leadController({
      holder: "A",
      now: T0 + 1_002,
      leaseMs: LEASE,
      renew: 7,
    });
    assert.equal(stale.leading, false);
    assert.equal((await store.controllerLease())?.renewals, 1);
  });

  test("controller lease: a takeover of an expired lease fences the old leader", async ({
    store,
  }) => {
    await store.applyResources([service("a")], { actor: "alice", now: T0 });
    const a = await store.leadController({ holder: "A", now: T0, leaseMs: LEASE });
    // B saw epoch 1 with 0 renewals stand still for a lease: it takes over with epoch 2.
    const b = await store.leadController({
      holder: "B",
      now: T0 + 6_000,
      leaseMs: LEASE,
      takeover: { epoch: 1, renewals: 0 },
    });
    assert.equal(b.leading, true);
    assert.equal(b.lease.epoch, 2);
    assert.equal(b.lease.holder, "B");
    assert.equal(b.lease.renewals, 0);
    // The old leader wakes up: its renewal fails and so does its commit, writing nothing.
    const late = await store.leadController({
      holder: "A",
      now: T0 + 6_001,
      leaseMs: LEASE,
      renew: a.lease.epoch,
    });
    assert.equal(late.leading, false);
    assert.equal(late.lease.holder, "B");
    await assert.rejects(
      store.commit({ service: "a", epoch: a.lease.epoch, status: status(), now: T0 + 6_002 }),
      { code: "TURNOUT_ERR_STORE_FENCED" },
    );
    assert.equal(await store.getStatus("a"), null);
    await store.commit({ service: "a", epoch: b.lease.epoch, status: status(), now: T0 + 6_003 });
    assert.deepEqual(await store.getStatus("a"), status());
  });

  test("controller lease: a takeover of a lease renewed meanwhile is refused", async ({
    store,
  }) => {
    await store.leadController({ holder: "A", now: T0, leaseMs: LEASE });
    await store.leadController({ holder: "A", now: T0 + 1_000, leaseMs: LEASE, renew: 1 });
    const b = await store.leadController({
      holder: "B",
      now: T0 + 6_000,
      leaseMs: LEASE,
      takeover: { epoch: 1, renewals: 0 },
    });
    assert.equal(b.leading, false);
    assert.equal(b.lease.holder, "A");
    assert.equal(b.lease.renewals, 1);
  });

  test("controller lease: of standbys that saw the same lease expire, exactly one leads", async ({
    store,
  }) => {
    await store.leadController({ holder: "A", now: T0, leaseMs: LEASE });
    const answers = await Promise.all(
      ["B", "C", "D", "E"].map((holder) =>
        store.leadController({
          holder,
          now: T0 + 6_000,
          leaseMs: LEASE,
          takeover: { epoch: 1, renewals: 0 },
        }),
      ),
    );
    const leaders = answers.filter((x) => x.leading);
    assert.equal(leaders.length, 1);
    const lease = await store.controllerLease();
    assert.equal(lease?.epoch, 2);
    assert.equal(lease?.holder, leaders[0]?.lease.holder);
  });

  test("controller lease: a released lease is taken at once; only its holder releases", async ({
    store,
  }) => {
    await store.leadController({ holder: "A", now: T0, leaseMs: LEASE });
    await store.releaseController("B", 1, T0 + 1); // not B's
    await store.releaseController("A", 2, T0 + 1); // not A's epoch
    assert.equal((await store.controllerLease())?.released, false);
    await store.releaseController("A", 1, T0 + 2);
    assert.equal((await store.controllerLease())?.released, true);
    const b = await store.leadController({ holder: "B", now: T0 + 3, leaseMs: LEASE });
    assert.equal(b.leading, true);
    assert.equal(b.lease.epoch, 2);
    assert.equal(b.lease.released, false);
  });

  test("controller lease: a claim without a lease clears the lease's fields", async ({ store }) => {
    await store.leadController({ holder: "A", now: T0, leaseMs: LEASE });
    await store.leadController({ holder: "A", now: T0 + 1, leaseMs: LEASE, renew: 1 });
    const epoch = await store.acquireWriterEpoch("single", T0 + 2);
    assert.deepEqual(await store.controllerLease(), {
      epoch,
      holder: "single",
      acquiredAt: T0 + 2,
      renewals: 0,
      renewedAt: T0 + 2,
      leaseMs: null,
      released: false,
    });
  });
}

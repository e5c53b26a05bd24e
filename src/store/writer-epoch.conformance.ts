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
}

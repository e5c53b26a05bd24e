/**
 * A tick is a transaction (CONVENTIONS 15): the controller, over a real SQLite store whose
 * writes are counted, writes at most once per service per tick (the commit, with the
 * experiment's row in it), reads write nothing, and a commit refused by fencing leaves
 * everything, the experiment's state included, as it was.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeClock } from "../core/clock.js";
import type { Resource } from "../core/model.js";
import { parseResources } from "../resources/load.js";
import { StaticRuntime } from "../runtime/static/static-runtime.js";
import { type FeatureStores, sqlFeatureStores } from "../store/features.js";
import type { SqlStore } from "../store/sql-store.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Store } from "../store/store.js";
import { Controller } from "./controller.js";

/** Every method of the SQL store that writes, the feature stores' `transact` included. */
const WRITES = new Set<string>([
  "applyResources",
  "deleteResource",
  "enqueueCommand",
  "appendEvents",
  "commit",
  "acquireWriterEpoch",
  "writeMeasurements",
  "pruneMeasurements",
  "reportRouter",
  "removeRouter",
  "pruneRouters",
  "transact",
]);

/**
 * The store with its writes counted, by method. The feature stores are built over it too, so
 * that their transactions are counted as well. `beforeCommit` runs inside `commit`, before the
 * real one (to make another controller claim the epoch at the worst moment).
 */
function counting(inner: SqlStore) {
  const writes: string[] = [];
  const hooks: { beforeCommit: (() => Promise<void>) | null } = { beforeCommit: null };
  const store = new Proxy(inner, {
    get(target, prop, _receiver) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== "function") return v;
      return async (...args: unknown[]) => {
        if (typeof prop === "string" && WRITES.has(prop)) writes.push(prop);
        if (prop === "commit" && hooks.beforeCommit) await hooks.beforeCommit();
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, writes, hooks };
}

function resources(yaml: string): Resource[] {
  const r = parseResources(yaml);
  assert.deepEqual(r.errors, []);
  return r.resources;
}

const shop = (version: string) =>
  resources(`
apiVersion: turnout.dev/v1
kind: Service
metadata: { name: shop }
spec:
  listen: { host: 127.0.0.1, port: 18181 }
  runtime:
    static:
      versions:
        v1: { upstreams: ["http://127.0.0.1:9101"] }
        v2: { upstreams: ["http://127.0.0.1:9102"] }
  version: ${version}
  strategy:
    abTest:
      name: checkout-v2
      split: 50
      assignment: { header: x-user }
      metrics:
        - { name: conversion, kind: binomial, role: goal, source: { event: buy } }
      minSamples: 200
      maxDuration: 10m
      decision: manual
`);

describe("one commit per controller tick", () => {
  let dir: string;
  let raw: SqlStore;
  let counted: ReturnType<typeof counting>;
  let store: Store;
  let features: FeatureStores;
  const clock = new FakeClock();
  let controller: Controller;
  // Shared by the controllers, as after a failover in one process: the instances stay up.
  const runtime = new StaticRuntime();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "turnout-tick-"));
    raw = await openSqliteStore({ path: join(dir, "t.db") });
    counted = counting(raw);
    store = counted.store;
    features = sqlFeatureStores(counted.store);
    controller = new Controller({
      store,
      runtime,
      clock,
      experiments: features.experiments,
      shadowReports: async (service, id) =>
        (await features.shadow.report(service, id))?.report ?? null,
    });
  });
  after(async () => {
    await controller.stop();
    await raw.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** One tick; returns the writes it made. */
  const tick = async () => {
    counted.writes.length = 0;
    const report = await controller.tick();
    return { report, writes: [...counted.writes] };
  };

  it("writes once when something changed and never otherwise, the experiment's row in the commit", async () => {
    await store.applyResources(shop("v1"), { actor: "test", now: clock.now() });
    // The first tick claims the writer epoch (its own transaction, once per controller).
    const first = await tick();
    assert.equal(first.writes[0], "acquireWriterEpoch");
    assert.ok(first.writes.slice(1).every((w) => w === "commit"));
    assert.ok(first.writes.length <= 2, first.writes.join(", "));

    await store.applyResources(shop("v2"), { actor: "test", now: clock.now() });
    let started = false;
    for (let i = 0; i < 10; i++) {
      clock.advance(1000);
      const { report, writes } = await tick();
      const expected = report.written.includes("shop") ? ["commit"] : [];
      assert.deepEqual(writes, expected, `tick ${i}: ${writes.join(", ")}`);
      const status = await store.getStatus("shop");
      if (status?.experiment && !started) {
        started = true;
        // Started in this tick's commit: the row is there at once, running.
        assert.deepEqual(writes, ["commit"]);
        const row = await features.experiments.getExperiment("checkout-v2");
        assert.equal(row?.state.status, "running");
        assert.equal(row?.startedAt, status.experiment.startedAt);
        assert.deepEqual(row?.arms, status.experiment.arms);
      }
    }
    assert.ok(started, "the experiment started");
    // Running with nothing new to say: ticks read the experiment's data and write nothing.
    const quiet = await tick();
    assert.deepEqual(quiet.writes, []);
    assert.deepEqual(quiet.report.written, []);
  });

  it("a commit refused by fencing leaves the status, history and experiment state untouched", async () => {
    const before = {
      status: await store.getStatus("shop"),
      table: await store.getRouteTable("shop"),
      events: await store.listEvents("shop"),
      experiment: await features.experiments.getExperiment("checkout-v2"),
    };
    assert.equal(before.experiment?.state.status, "running");
    // Past the experiment's maximum duration, this tick would conclude it (and roll back);
    // another controller claims the store just before the commit.
    clock.advance(11 * 60_000);
    counted.hooks.beforeCommit = async () => {
      counted.hooks.beforeCommit = null;
      await raw.acquireWriterEpoch("usurper", clock.now());
    };
    counted.writes.length = 0;
    await assert.rejects(controller.tick(), { code: "TURNOUT_ERR_STORE_FENCED" });
    assert.deepEqual(counted.writes, ["commit"], "the refused commit was the tick's only write");
    assert.ok(controller.isFenced);
    assert.deepEqual(
      {
        status: await store.getStatus("shop"),
        table: await store.getRouteTable("shop"),
        events: await store.listEvents("shop"),
        experiment: await features.experiments.getExperiment("checkout-v2"),
      },
      before,
    );
  });

  it("a superseded controller's tick writes nothing at all", async () => {
    counted.writes.length = 0;
    await assert.rejects(controller.tick(), { code: "TURNOUT_ERR_STORE_FENCED" });
    assert.deepEqual(counted.writes, []);
  });

  it("the next controller concludes the experiment: verdict, events and status in one commit", async () => {
    const next = new Controller({
      store,
      runtime,
      clock,
      experiments: features.experiments,
    });
    try {
      counted.writes.length = 0;
      await next.tick();
      assert.deepEqual(counted.writes, ["acquireWriterEpoch", "commit"]);
      const row = await features.experiments.getExperiment("checkout-v2");
      const concluded = (await store.listEvents("shop")).find(
        (e) => e.type === "ExperimentConcluded",
      );
      assert.match(concluded?.message ?? "", /inconclusive after 10m/);
      // The verdict the analysis had when time ran out (no units: still "running").
      assert.equal(row?.state.status, concluded?.data.verdict);
      assert.equal(row?.state.endedAt, clock.now());
      assert.equal(row?.state.summary, concluded?.message);
      assert.equal(row?.updatedAt, concluded?.time);
      assert.equal((await store.getStatus("shop"))?.experiment ?? null, null);
    } finally {
      await next.stop();
    }
  });
});

describe("a tick whose commit fails", () => {
  it("keeps the events it was to carry for the next tick (the restart notice here)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "turnout-tick-"));
    const raw = await openSqliteStore({ path: join(dir, "t.db") });
    const clock = new FakeClock();
    const runtime = new StaticRuntime();
    const first = new Controller({ store: raw, runtime, clock });
    const { store, hooks } = counting(raw);
    const second = new Controller({ store, runtime, clock });
    try {
      await raw.applyResources(shop("v1"), { actor: "test", now: clock.now() });
      await first.tick();
      await first.stop();
      // The next controller finds a stored status: its first commit would say so, but fails.
      hooks.beforeCommit = async () => {
        hooks.beforeCommit = null;
        throw new Error("the disk is full");
      };
      clock.advance(1000);
      await second.tick();
      const started = () =>
        raw.listEvents("shop").then((es) => es.filter((e) => e.type === "ControllerStarted"));
      assert.equal((await started()).length, 0, "nothing of the failed tick was written");
      clock.advance(1000);
      await second.tick();
      assert.equal((await started()).length, 1, "the notice rides the next commit, once");
      clock.advance(1000);
      await second.tick();
      assert.equal((await started()).length, 1);
    } finally {
      await second.stop();
      await raw.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

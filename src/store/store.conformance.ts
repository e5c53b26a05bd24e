/**
 * The conformance suite every Store passes (SQLite, PostgreSQL). An implementation's test file
 * calls `describeStoreConformance(name, open)` with a factory `open: () => Promise<StoreFixture>`
 * that opens a fresh, empty store and returns it with its feature stores (experiments, flags,
 * shadow reports: `FeatureStores`). The suite owns the behaviour that the API, the controller
 * and the routers rely on, the feature stores' included (`*-store.conformance.ts`, registered
 * here like the writer epoch's), and the implementation's own tests cover the rest (pragmas,
 * migrations, several processes...).
 *
 * Every time is an explicit `now`; nothing sleeps.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, it } from "node:test";
import {
  type AnalysisTemplateResource,
  API_VERSION,
  type EventDraft,
  type RouteTable,
  type ServiceResource,
  type ServiceStatus,
} from "../core/model.js";
import { describeExperimentStoreConformance } from "./experiment-store.conformance.js";
import type { FeatureStores } from "./features.js";
import { describeFlagStoreConformance } from "./flag-store.conformance.js";
import { describeShadowStoreConformance } from "./shadow-store.conformance.js";
import type { MeasurementRow, RouterReport, Store } from "./store.js";
import { describeWriterEpochConformance } from "./writer-epoch.conformance.js";

/**
 * What the factory returns: a fresh core store and the feature stores over the same data
 * (for a SQL store, `sqlFeatureStores(store)`), so that the feature stores' tests can set up
 * resources and commits through the core store.
 */
export interface StoreFixture {
  /** A fresh store with no data. */
  store: Store;
  /** The experiment, flag and shadow stores over `store`'s data. */
  features: FeatureStores;
  /**
   * Opens another store over the same data. The suite closes `store` before calling it and
   * closes the store it returns. Omit it when data does not outlive the store (":memory:");
   * the durability test is then skipped.
   */
  reopen?: () => Promise<Store>;
  /** Frees what the fixture made. `store` may already be closed (close is idempotent). */
  cleanup: () => Promise<void>;
}

const T0 = 1_700_000_000_000;

/** The suite's per-test wrapper: a fresh fixture for `fn`, cleaned up whatever happens. */
export type ConformanceTest = (
  title: string,
  fn: (f: StoreFixture, t: { skip(msg: string): void }) => Promise<void>,
) => void;

/** Registers the conformance tests for one Store implementation. */
export function describeStoreConformance(name: string, open: () => Promise<StoreFixture>): void {
  describe(`Store conformance: ${name}`, () => {
    /** Each test gets its own empty store, cleaned up even when the test fails. */
    const test = (
      title: string,
      fn: (f: StoreFixture, t: { skip(msg: string): void }) => Promise<void>,
    ) =>
      it(title, async (t) => {
        const f = await open();
        try {
          await fn(f, t);
        } finally {
          await f.cleanup();
        }
      });

    // -----------------------------------------------------------------------------------
    // Resources
    // -----------------------------------------------------------------------------------

    test("apply creates, configures and leaves unchanged, counting generations", async ({
      store,
    }) => {
      const created = await store.applyResources([service("fraud"), template("golden")], {
        actor: "alice",
        now: T0,
      });
      assert.deepEqual(created, [
        { kind: "Service", name: "fraud", action: "created", generation: 1 },
        { kind: "AnalysisTemplate", name: "golden", action: "created", generation: 1 },
      ]);
      const first = await store.getResource("Service", "fraud");
      assert.deepEqual(first, {
        kind: "Service",
        name: "fraud",
        generation: 1,
        resource: service("fraud"),
        createdAt: T0,
        updatedAt: T0,
      });

      const again = await store.applyResources([service("fraud")], {
        actor: "alice",
        now: T0 + 1000,
      });
      assert.deepEqual(again, [
        { kind: "Service", name: "fraud", action: "unchanged", generation: 1 },
      ]);
      // The same content with keys in another order is still the same content.
      const reordered = reverseKeys(service("fraud"));
      assert.deepEqual(await store.applyResources([reordered], { actor: "bob", now: T0 + 1500 }), [
        { kind: "Service", name: "fraud", action: "unchanged", generation: 1 },
      ]);
      assert.equal(
        (await store.getResource("Service", "fraud"))?.updatedAt,
        T0,
        "unchanged writes nothing",
      );

      const configured = await store.applyResources([service("fraud", "v2")], {
        actor: "bob",
        now: T0 + 2000,
      });
      assert.deepEqual(configured, [
        { kind: "Service", name: "fraud", action: "configured", generation: 2 },
      ]);
      const second = await store.getResource("Service", "fraud");
      assert.equal(second?.generation, 2);
      assert.equal(second?.resource.spec.version, "v2");
      assert.equal(second?.createdAt, T0);
      assert.equal(second?.updatedAt, T0 + 2000);

      // One event per created/configured resource; none for unchanged ones.
      const events = await store.listEvents("fraud");
      assert.deepEqual(
        events.map(({ id: _id, ...e }) => e),
        [
          {
            service: "fraud",
            type: "ResourceApplied",
            actor: "alice",
            message: "Service/fraud created (generation 1)",
            data: { kind: "Service", name: "fraud", generation: 1, action: "created" },
            time: T0,
          },
          {
            service: "fraud",
            type: "ResourceApplied",
            actor: "bob",
            message: "Service/fraud configured (generation 2)",
            data: { kind: "Service", name: "fraud", generation: 2, action: "configured" },
            time: T0 + 2000,
          },
        ],
      );
      // Events about other kinds belong to no service.
      const global = await store.listEvents("");
      assert.equal(global.length, 1);
      assert.equal(global[0]?.message, "AnalysisTemplate/golden created (generation 1)");
      assert.equal((await store.listEvents("golden")).length, 0);
    });

    test("apply is atomic: a resource that cannot be stored leaves nothing behind", async ({
      store,
    }) => {
      await store.applyResources([service("a")], { actor: "alice", now: T0 });
      const changes: string[] = [];
      store.onChange((what) => changes.push(what));
      // A BigInt has no JSON form, so the third resource fails after the first two were
      // written inside the transaction; the rollback must undo them.
      const bad = template("bad");
      bad.metadata.labels = { size: 1n as unknown as string };
      await assert.rejects(
        store.applyResources([service("a", "v2"), service("b"), bad], {
          actor: "alice",
          now: T0 + 1000,
        }),
      );

      const a = await store.getResource("Service", "a");
      assert.equal(a?.generation, 1);
      assert.equal(a?.resource.spec.version, "v1");
      assert.equal(await store.getResource("Service", "b"), null);
      assert.equal(await store.getResource("AnalysisTemplate", "bad"), null);
      assert.equal(
        (await store.listEvents("a")).length,
        1,
        "no event for the rolled-back configure",
      );
      assert.equal((await store.listEvents("b")).length, 0);
      assert.equal((await store.listEvents("")).length, 0);
      assert.deepEqual(changes, [], "no notification for a write that did not happen");

      // And the store still works afterwards.
      const ok = await store.applyResources([service("b")], { actor: "alice", now: T0 + 2000 });
      assert.deepEqual(ok, [{ kind: "Service", name: "b", action: "created", generation: 1 }]);
    });

    test("apply rejects a resource of an unknown kind", async ({ store }) => {
      const odd = { ...template("x"), kind: "Gadget" } as unknown as AnalysisTemplateResource;
      await assert.rejects(store.applyResources([service("a"), odd], { actor: "alice", now: T0 }), {
        code: "TURNOUT_ERR_RESOURCE_INVALID",
      });
      assert.equal(await store.getResource("Service", "a"), null);
    });

    test("get and list resources by kind", async ({ store }) => {
      await store.applyResources(
        [service("zeta"), template("alpha"), service("alpha"), service("mid")],
        {
          actor: "alice",
          now: T0,
        },
      );
      const services = await store.listResources("Service");
      assert.deepEqual(
        services.map((s) => s.name),
        ["alpha", "mid", "zeta"],
      );
      assert.ok(services.every((s) => s.kind === "Service" && s.resource.kind === "Service"));
      const templates = await store.listResources("AnalysisTemplate");
      assert.deepEqual(
        templates.map((s) => [s.kind, s.name]),
        [["AnalysisTemplate", "alpha"]],
      );
      assert.deepEqual(
        (await store.getResource("AnalysisTemplate", "alpha"))?.resource,
        template("alpha"),
      );
      assert.equal(
        await store.getResource("AnalysisTemplate", "zeta"),
        null,
        "kind is part of the key",
      );
      assert.equal(await store.getResource("Service", "nope"), null);
    });

    // -----------------------------------------------------------------------------------
    // Status, route tables, commit
    // -----------------------------------------------------------------------------------

    test("status round-trips through commit and is replaced by the next one", async ({ store }) => {
      await store.applyResources([service("a")], { actor: "alice", now: T0 });
      assert.equal(await store.getStatus("a"), null);
      const s1 = status({ observedGeneration: 1 });
      await store.commit({ service: "a", status: s1, now: T0 + 1 });
      assert.deepEqual(await store.getStatus("a"), s1);
      const s2 = status({
        phase: "Progressing",
        canaryVersion: "v2",
        canaryWeight: 12.5,
        stepIndex: 0,
      });
      await store.commit({ service: "a", status: s2, now: T0 + 2 });
      assert.deepEqual(await store.getStatus("a"), s2);
      assert.equal(await store.getStatus("b"), null);
    });

    test("commit writes status, route table, events and command results; revisions count up", async ({
      store,
    }) => {
      await store.applyResources([service("a"), service("b")], { actor: "alice", now: T0 });
      const cmd = await store.enqueueCommand(
        { service: "a", type: "promote", args: { full: true }, actor: "cli" },
        T0 + 10,
      );

      const first = await store.commit({
        service: "a",
        status: status(),
        routeTable: table("a", 0, T0 + 20),
        events: [event("a", "RolloutStarted", T0 + 20)],
        commandResults: [{ id: cmd.id, outcome: "applied", message: "promoted" }],
        now: T0 + 20,
      });
      assert.equal(first.routeTable?.revision, 1);
      assert.deepEqual(first.routeTable, { ...table("a", 0, T0 + 20), revision: 1 });
      assert.deepEqual(await store.getRouteTable("a"), first.routeTable);
      assert.deepEqual(await store.getStatus("a"), status());
      assert.deepEqual(
        (await store.listEvents("a")).map((e) => e.type),
        ["ResourceApplied", "RolloutStarted"],
      );
      const handled = await store.getCommand(cmd.id);
      assert.equal(handled?.handledAt, T0 + 20);
      assert.deepEqual(handled?.result, { id: cmd.id, outcome: "applied", message: "promoted" });

      // Any revision the caller passes is ignored: the store assigns previous + 1.
      const withStaleRevision = { ...table("a", 25, T0 + 30), revision: 42 } as Omit<
        RouteTable,
        "revision"
      >;
      const second = await store.commit({
        service: "a",
        routeTable: withStaleRevision,
        now: T0 + 30,
      });
      assert.equal(second.routeTable?.revision, 2);
      const third = await store.commit({
        service: "a",
        routeTable: table("a", 50, T0 + 40),
        now: T0 + 40,
      });
      assert.equal(third.routeTable?.revision, 3);
      assert.deepEqual(await store.getRouteTable("a"), { ...table("a", 50, T0 + 40), revision: 3 });

      // A commit without a route table leaves it as it is.
      const noTable = await store.commit({
        service: "a",
        status: status({ message: "x" }),
        now: T0 + 50,
      });
      assert.equal(noTable.routeTable, undefined);
      assert.equal((await store.getRouteTable("a"))?.revision, 3);

      // Revisions are per service.
      const b = await store.commit({
        service: "b",
        routeTable: table("b", 0, T0 + 60),
        now: T0 + 60,
      });
      assert.equal(b.routeTable?.revision, 1);
      assert.deepEqual(
        (await store.listRouteTables()).map((t) => [t.service, t.revision]),
        [
          ["a", 3],
          ["b", 1],
        ],
      );
      assert.equal(await store.getRouteTable("c"), null);
    });

    test("commit is atomic: a failing part leaves nothing behind", async ({ store }) => {
      await store.applyResources([service("a")], { actor: "alice", now: T0 });
      const fingerprint = await store.routeTablesFingerprint();
      const changes: string[] = [];
      store.onChange((what) => changes.push(what));
      // Command 424242 does not exist: a bug in the caller, found after everything else was
      // written in the transaction.
      await assert.rejects(
        store.commit({
          service: "a",
          status: status(),
          routeTable: table("a", 0, T0 + 1),
          events: [event("a", "RolloutStarted", T0 + 1)],
          commandResults: [{ id: 424242, outcome: "applied", message: "?" }],
          now: T0 + 1,
        }),
      );
      assert.equal(await store.getStatus("a"), null);
      assert.equal(await store.getRouteTable("a"), null);
      assert.deepEqual(
        (await store.listEvents("a")).map((e) => e.type),
        ["ResourceApplied"],
      );
      assert.equal(await store.routeTablesFingerprint(), fingerprint);
      assert.deepEqual(changes, []);

      // The first table written after the failure is still revision 1.
      const ok = await store.commit({
        service: "a",
        routeTable: table("a", 0, T0 + 2),
        now: T0 + 2,
      });
      assert.equal(ok.routeTable?.revision, 1);
    });

    test("commit refuses status or route table of a missing Service, but takes its events", async ({
      store,
    }) => {
      await assert.rejects(store.commit({ service: "ghost", status: status(), now: T0 }), {
        code: "TURNOUT_ERR_SERVICE_NOT_FOUND",
      });
      await assert.rejects(
        store.commit({ service: "ghost", routeTable: table("ghost", 0, T0), now: T0 }),
        {
          code: "TURNOUT_ERR_SERVICE_NOT_FOUND",
        },
      );
      assert.equal(await store.getStatus("ghost"), null);
      assert.equal(await store.getRouteTable("ghost"), null);
      assert.deepEqual(
        await store.commit({ service: "ghost", events: [event("ghost", "Cleanup", T0)], now: T0 }),
        {},
      );
      assert.deepEqual(
        (await store.listEvents("ghost")).map((e) => e.type),
        ["Cleanup"],
      );
    });

    test("commit with statusBefore refuses a decision made over a status changed since", async ({
      store,
    }) => {
      await store.applyResources([service("fraud")], { actor: "alice", now: T0 });
      // No status stored yet, as the tick read it: accepted.
      await store.commit({ service: "fraud", status: status(), statusBefore: null, now: T0 });
      const read = await store.getStatus("fraud");
      const next = status({ message: "next", lastTransitionAt: T0 + 1 });
      // The same status, with its keys in another order, is the same status.
      await store.commit({
        service: "fraud",
        status: next,
        statusBefore: reverseKeys(read),
        now: T0 + 1,
      });
      // The Service deleted and applied again meanwhile: the old decision must not land on it.
      await store.deleteResource("Service", "fraud", { actor: "alice", now: T0 + 2 });
      await store.applyResources([service("fraud")], { actor: "alice", now: T0 + 3 });
      for (const c of [
        { status: status({ message: "stale" }) },
        { routeTable: table("fraud", 0, T0) },
      ])
        await assert.rejects(
          store.commit({ service: "fraud", ...c, statusBefore: next, now: T0 + 4 }),
          { code: "TURNOUT_ERR_STORE_CONFLICT" },
        );
      assert.equal(await store.getStatus("fraud"), null);
      assert.equal(await store.getRouteTable("fraud"), null);
    });

    test("the route-table fingerprint changes on every route-table write and delete", async ({
      store,
    }) => {
      await store.applyResources([service("a"), service("b")], { actor: "alice", now: T0 });
      const seen = [await store.routeTablesFingerprint()];
      assert.equal(await store.routeTablesFingerprint(), seen[0], "reading does not change it");
      const write = async (svc: string, w: number, now: number) => {
        await store.commit({ service: svc, routeTable: table(svc, w, now), now });
        seen.push(await store.routeTablesFingerprint());
      };
      await write("a", 0, T0 + 1);
      await write("b", 0, T0 + 2);
      await write("a", 0, T0 + 3); // the same table again still counts as a write
      await write("a", 10, T0 + 4);
      await store.deleteResource("Service", "b", { actor: "alice", now: T0 + 5 });
      seen.push(await store.routeTablesFingerprint());
      // Recreating the deleted service's table must not bring back a value seen before.
      await store.applyResources([service("b")], { actor: "alice", now: T0 + 6 });
      await write("b", 0, T0 + 7);
      assert.equal(new Set(seen).size, seen.length, `all distinct: ${seen.join(", ")}`);
    });

    // -----------------------------------------------------------------------------------
    // Commands
    // -----------------------------------------------------------------------------------

    test("commands are queued, listed oldest first and marked handled", async ({ store }) => {
      await store.applyResources([service("a"), service("b")], { actor: "alice", now: T0 });
      const c1 = await store.enqueueCommand(
        { service: "a", type: "pause", args: {}, actor: "cli", reason: "looks odd" },
        T0 + 1,
      );
      const c2 = await store.enqueueCommand(
        { service: "b", type: "abort", args: {}, actor: "api" },
        T0 + 2,
      );
      const c3 = await store.enqueueCommand(
        { service: "a", type: "promote", args: { full: true }, actor: "cli" },
        T0 + 3,
      );
      assert.ok(c1.id < c2.id && c2.id < c3.id, "ids increase");
      assert.deepEqual(c1, {
        id: c1.id,
        service: "a",
        type: "pause",
        args: {},
        actor: "cli",
        reason: "looks odd",
        createdAt: T0 + 1,
        result: null,
        handledAt: null,
      });
      assert.equal(c3.reason, undefined);
      assert.deepEqual(await store.getCommand(c3.id), c3);
      assert.equal(await store.getCommand(c3.id + 1000), null);

      assert.deepEqual(
        (await store.pendingCommands()).map((c) => c.id),
        [c1.id, c2.id, c3.id],
      );
      assert.deepEqual(
        (await store.pendingCommands("a")).map((c) => c.id),
        [c1.id, c3.id],
      );
      assert.deepEqual(await store.pendingCommands("nobody"), []);

      await store.commit({
        service: "a",
        commandResults: [{ id: c1.id, outcome: "rejected", message: "nothing to pause" }],
        now: T0 + 4,
      });
      assert.deepEqual(
        (await store.pendingCommands()).map((c) => c.id),
        [c2.id, c3.id],
      );
      const h1 = await store.getCommand(c1.id);
      assert.equal(h1?.handledAt, T0 + 4);
      assert.deepEqual(h1?.result, { id: c1.id, outcome: "rejected", message: "nothing to pause" });

      // A second result for a handled command does not overwrite the first.
      await store.commit({
        service: "a",
        commandResults: [{ id: c1.id, outcome: "applied", message: "late" }],
        now: T0 + 5,
      });
      assert.deepEqual((await store.getCommand(c1.id))?.result, h1?.result);
      assert.equal((await store.getCommand(c1.id))?.handledAt, T0 + 4);

      // A result must belong to the committing service.
      await assert.rejects(
        store.commit({
          service: "a",
          commandResults: [{ id: c2.id, outcome: "applied", message: "" }],
          now: T0 + 6,
        }),
      );
      assert.equal((await store.getCommand(c2.id))?.handledAt, null);
    });

    // -----------------------------------------------------------------------------------
    // Events
    // -----------------------------------------------------------------------------------

    test("events are kept in order and paged with afterId and limit", async ({ store }) => {
      await store.appendEvents([]);
      await store.appendEvents([event("a", "E1", T0 + 1), event("b", "B1", T0 + 2)]);
      await store.appendEvents([
        event("a", "E2", T0 + 3, { weight: 5, nested: { p: 0.01, list: [1, "x", null] } }),
      ]);
      await store.appendEvents([
        event("a", "E3", T0 + 4),
        event("a", "E4", T0 + 5),
        event("b", "B2", T0 + 6),
      ]);

      const all = await store.listEvents("a");
      assert.deepEqual(
        all.map((e) => e.type),
        ["E1", "E2", "E3", "E4"],
      );
      assert.ok(
        all.every((e, i) => i === 0 || e.id > (all[i - 1]?.id ?? 0)),
        "ids increase",
      );
      assert.deepEqual(all[1], {
        id: all[1]?.id,
        ...event("a", "E2", T0 + 3, { weight: 5, nested: { p: 0.01, list: [1, "x", null] } }),
      });
      assert.deepEqual(
        (await store.listEvents("b")).map((e) => e.type),
        ["B1", "B2"],
      );

      const afterSecond = await store.listEvents("a", { afterId: all[1]?.id });
      assert.deepEqual(
        afterSecond.map((e) => e.type),
        ["E3", "E4"],
      );
      assert.deepEqual(
        (await store.listEvents("a", { limit: 2 })).map((e) => e.type),
        ["E1", "E2"],
      );
      assert.deepEqual(
        (await store.listEvents("a", { afterId: all[0]?.id, limit: 2 })).map((e) => e.type),
        ["E2", "E3"],
      );
      assert.deepEqual(await store.listEvents("a", { afterId: all[3]?.id }), []);
      assert.deepEqual(await store.listEvents("a", { limit: 0 }), []);
      assert.deepEqual(await store.listEvents("nobody"), []);
      await assert.rejects(store.listEvents("a", { limit: -1 }));

      // Paging by afterId walks the whole history without gaps or repeats.
      const paged: string[] = [];
      let cursor: number | undefined;
      for (;;) {
        const page = await store.listEvents("a", {
          ...(cursor !== undefined ? { afterId: cursor } : {}),
          limit: 3,
        });
        if (page.length === 0) break;
        paged.push(...page.map((e) => e.type));
        cursor = page[page.length - 1]?.id;
      }
      assert.deepEqual(paged, ["E1", "E2", "E3", "E4"]);
    });

    // -----------------------------------------------------------------------------------
    // Delete
    // -----------------------------------------------------------------------------------

    test("deleting a Service removes its status, table and pending commands, and keeps its history", async ({
      store,
    }) => {
      // A template with the same name as the Service must not be touched.
      await store.applyResources([service("a"), template("a"), service("b")], {
        actor: "alice",
        now: T0,
      });
      const done = await store.enqueueCommand(
        { service: "a", type: "pause", args: {}, actor: "cli" },
        T0 + 1,
      );
      await store.commit({
        service: "a",
        status: status(),
        routeTable: table("a", 0, T0 + 2),
        events: [event("a", "RolloutStarted", T0 + 2)],
        commandResults: [{ id: done.id, outcome: "applied", message: "paused" }],
        now: T0 + 2,
      });
      await store.commit({
        service: "b",
        status: status(),
        routeTable: table("b", 0, T0 + 2),
        now: T0 + 2,
      });
      const pending = await store.enqueueCommand(
        { service: "a", type: "resume", args: {}, actor: "cli" },
        T0 + 3,
      );
      const other = await store.enqueueCommand(
        { service: "b", type: "pause", args: {}, actor: "cli" },
        T0 + 3,
      );

      assert.equal(await store.deleteResource("Service", "a", { actor: "bob", now: T0 + 4 }), true);

      assert.equal(await store.getResource("Service", "a"), null);
      assert.equal(await store.getStatus("a"), null);
      assert.equal(await store.getRouteTable("a"), null);
      assert.deepEqual(
        (await store.listRouteTables()).map((t) => t.service),
        ["b"],
      );
      const rejected = await store.getCommand(pending.id);
      assert.equal(rejected?.handledAt, T0 + 4);
      assert.deepEqual(rejected?.result, {
        id: pending.id,
        outcome: "rejected",
        message: "service deleted",
      });
      assert.deepEqual((await store.getCommand(done.id))?.result, {
        id: done.id,
        outcome: "applied",
        message: "paused",
      });
      assert.deepEqual(
        (await store.pendingCommands()).map((c) => c.id),
        [other.id],
      );
      assert.notEqual(await store.getResource("AnalysisTemplate", "a"), null);
      assert.notEqual(await store.getStatus("b"), null);

      const history = await store.listEvents("a");
      assert.deepEqual(
        history.map((e) => e.type),
        ["ResourceApplied", "RolloutStarted", "ResourceDeleted"],
      );
      const deleted = history[2];
      assert.equal(deleted?.actor, "bob");
      assert.equal(deleted?.time, T0 + 4);
      assert.equal(deleted?.message, "Service/a deleted");
      assert.equal(deleted?.data.kind, "Service");
      assert.equal(deleted?.data.name, "a");

      // Absent: false, and nothing is recorded.
      assert.equal(
        await store.deleteResource("Service", "a", { actor: "bob", now: T0 + 5 }),
        false,
      );
      assert.equal(
        await store.deleteResource("Service", "never", { actor: "bob", now: T0 + 5 }),
        false,
      );
      assert.equal((await store.listEvents("a")).length, 3);
      assert.equal((await store.listEvents("never")).length, 0);

      // Applied again, it starts over.
      assert.deepEqual(
        await store.applyResources([service("a")], { actor: "alice", now: T0 + 6 }),
        [{ kind: "Service", name: "a", action: "created", generation: 1 }],
      );

      // Deleting another kind records the event without a service and touches no service.
      assert.equal(
        await store.deleteResource("AnalysisTemplate", "a", { actor: "bob", now: T0 + 7 }),
        true,
      );
      assert.equal(await store.getResource("AnalysisTemplate", "a"), null);
      assert.notEqual(await store.getResource("Service", "a"), null);
      assert.equal((await store.listEvents("")).at(-1)?.message, "AnalysisTemplate/a deleted");
    });

    // Fencing of the controller's write (its own file: this one is long enough).
    describeWriterEpochConformance({ test, service, status, table, event, T0 });
    describeExperimentStoreConformance(test);
    describeFlagStoreConformance(test);
    describeShadowStoreConformance(test);

    // -----------------------------------------------------------------------------------
    // Durability, notifications, lifecycle
    // -----------------------------------------------------------------------------------

    test("data survives close and reopen", async (f, t) => {
      const { store, reopen } = f;
      if (reopen === undefined) {
        t.skip("this store's data does not outlive it");
        return;
      }
      await store.applyResources([service("a"), template("g")], { actor: "alice", now: T0 });
      await store.applyResources([service("a", "v2")], { actor: "alice", now: T0 + 1 });
      const cmd = await store.enqueueCommand(
        { service: "a", type: "promote", args: {}, actor: "cli" },
        T0 + 2,
      );
      const { routeTable } = await store.commit({
        service: "a",
        status: status({ observedGeneration: 2 }),
        routeTable: table("a", 10, T0 + 3),
        events: [event("a", "RolloutStarted", T0 + 3)],
        now: T0 + 3,
      });
      const before = {
        resources: await store.listResources("Service"),
        templates: await store.listResources("AnalysisTemplate"),
        events: await store.listEvents("a"),
        fingerprint: await store.routeTablesFingerprint(),
      };
      await store.close();

      const again = await reopen();
      try {
        assert.deepEqual(await again.listResources("Service"), before.resources);
        assert.deepEqual(await again.listResources("AnalysisTemplate"), before.templates);
        assert.deepEqual(await again.getStatus("a"), status({ observedGeneration: 2 }));
        assert.deepEqual(await again.getRouteTable("a"), routeTable);
        assert.deepEqual(await again.getCommand(cmd.id), cmd);
        assert.deepEqual(await again.listEvents("a"), before.events);
        assert.equal(await again.routeTablesFingerprint(), before.fingerprint);

        // Counters carry on where they were.
        const next = await again.commit({
          service: "a",
          routeTable: table("a", 20, T0 + 4),
          now: T0 + 4,
        });
        assert.equal(next.routeTable?.revision, 2);
        assert.notEqual(await again.routeTablesFingerprint(), before.fingerprint);
        await again.appendEvents([event("a", "Later", T0 + 5)]);
        const events = await again.listEvents("a");
        assert.ok((events.at(-1)?.id ?? 0) > (before.events.at(-1)?.id ?? 0));
        const unchanged = await again.applyResources([service("a", "v2")], {
          actor: "alice",
          now: T0 + 6,
        });
        assert.deepEqual(unchanged, [
          { kind: "Service", name: "a", action: "unchanged", generation: 2 },
        ]);
      } finally {
        await again.close();
      }
    });

    test("onChange tells listeners what changed, after the write committed", async ({ store }) => {
      const seen: string[] = [];
      const reads: Promise<unknown>[] = [];
      const off = store.onChange((what) => {
        seen.push(what);
        // Reading from a listener must see the new data (and must not deadlock).
        if (what === "resources") reads.push(store.getResource("Service", "a"));
      });

      await store.applyResources([service("a")], { actor: "alice", now: T0 });
      assert.deepEqual(seen, ["resources"]);
      assert.notEqual(await reads[0], null);

      seen.length = 0;
      await store.applyResources([service("a")], { actor: "alice", now: T0 + 1 });
      assert.deepEqual(seen, [], "nothing changed, nobody is told");

      const cmd = await store.enqueueCommand(
        { service: "a", type: "pause", args: {}, actor: "cli" },
        T0 + 2,
      );
      assert.deepEqual(seen, ["commands"]);

      seen.length = 0;
      await store.commit({
        service: "a",
        status: status(),
        routeTable: table("a", 0, T0 + 3),
        commandResults: [{ id: cmd.id, outcome: "applied", message: "" }],
        now: T0 + 3,
      });
      assert.deepEqual([...seen].sort(), ["commands", "routeTables", "status"]);

      seen.length = 0;
      await store.deleteResource("Service", "a", { actor: "alice", now: T0 + 4 });
      assert.deepEqual([...seen].sort(), ["resources", "routeTables", "status"]);

      seen.length = 0;
      await assert.rejects(store.commit({ service: "a", status: status(), now: T0 + 5 }));
      assert.deepEqual(seen, [], "a rolled-back write tells nobody");

      off();
      await store.applyResources([service("b")], { actor: "alice", now: T0 + 6 });
      assert.deepEqual(seen, [], "unsubscribed");
    });

    test("a listener that throws does not fail the write or starve other listeners", async ({
      store,
    }) => {
      const seen: string[] = [];
      store.onChange(() => {
        throw new Error("listener bug");
      });
      store.onChange((what) => seen.push(what));
      const warned = once(process, "warning");
      const out = await store.applyResources([service("a")], { actor: "alice", now: T0 });
      assert.equal(out[0]?.action, "created");
      assert.deepEqual(seen, ["resources"]);
      const [warning] = (await warned) as [Error];
      assert.match(warning.message, /listener bug/);
    });

    // -----------------------------------------------------------------------------------
    // Measurements
    // -----------------------------------------------------------------------------------

    test("measurements: written rows read back by service, range and version, in key order", async ({
      store,
    }) => {
      const S = T0 / 1000;
      await store.writeMeasurements([
        measurement({ second: S + 1, version: "v2", routerId: "r2" }),
        measurement({ second: S + 1, version: "v2", routerId: "r1" }),
        measurement({ second: S, version: "v2" }),
        measurement({ second: S, version: "v1", labels: "arm=b" }),
        measurement({ second: S, version: "v1" }),
        measurement({ second: S + 2, version: "v1" }),
        measurement({ service: "other", second: S }),
      ]);
      const all = await store.readMeasurements({ service: "svc", fromSec: S, toSec: S + 2 });
      assert.deepEqual(
        all.map((r) => [r.second - S, r.version, r.labels, r.routerId]),
        [
          [0, "v1", "", "r1"],
          [0, "v1", "arm=b", "r1"],
          [0, "v2", "", "r1"],
          [1, "v2", "", "r1"],
          [1, "v2", "", "r2"],
        ],
        "toSec is exclusive; ordered by second, version, labels, router",
      );
      assert.deepEqual(
        all[0],
        measurement({ second: S, version: "v1" }),
        "every field round-trips",
      );
      const v2 = await store.readMeasurements({
        service: "svc",
        fromSec: S + 1,
        toSec: S + 10,
        version: "v2",
      });
      assert.equal(v2.length, 2);
      assert.deepEqual(
        await store.readMeasurements({ service: "none", fromSec: 0, toSec: S * 2 }),
        [],
      );
      await store.writeMeasurements([]);
    });

    test("measurements: a row with the same key replaces the old one (a second rewritten complete)", async ({
      store,
    }) => {
      const S = T0 / 1000;
      await store.writeMeasurements([measurement({ second: S, requests: 3, s2xx: 3 })]);
      const full = measurement({ second: S, requests: 9, s2xx: 8, s5xx: 1, upstreamErrors: 1 });
      full.latency = {
        v: 1,
        alpha: 0.01,
        zero: 0,
        sum: 90.5,
        min: 1,
        max: 40,
        i: [0, 3, 180],
        c: [4, 4, 1],
      };
      await store.writeMeasurements([full]);
      await store.writeMeasurements([full]);
      assert.deepEqual(await store.readMeasurements({ service: "svc", fromSec: S, toSec: S + 1 }), [
        full,
      ]);
    });

    test("measurements: requests abandoned by clients round-trip; a row without the count reads 0", async ({
      store,
    }) => {
      const S = T0 / 1000;
      const hung = measurement({ second: S, version: "v2", requests: 9, s2xx: 1, s4xx: 8 });
      hung.abandoned = 8;
      const { abandoned: _, ...older } = measurement({ second: S, version: "v1" });
      await store.writeMeasurements([hung, older as MeasurementRow]);
      assert.deepEqual(
        (await store.readMeasurements({ service: "svc", fromSec: S, toSec: S + 1 })).map((r) => [
          r.version,
          r.requests,
          r.s4xx,
          r.abandoned,
        ]),
        [
          ["v1", 10, 1, 0],
          ["v2", 9, 8, 8],
        ],
      );
      // A second written again, complete, replaces the count too.
      hung.abandoned = 7;
      await store.writeMeasurements([hung]);
      const [again] = await store.readMeasurements({
        service: "svc",
        fromSec: S,
        toSec: S + 1,
        version: "v2",
      });
      assert.deepEqual(again, hung);
    });

    test("measurements: requests started and responded round-trip; a row without them reads without them", async ({
      store,
    }) => {
      const S = T0 / 1000;
      // A second in which 37 requests went to a version that answered none yet: no request
      // ended, so only the counts of starts say anything.
      const sent = measurement({
        second: S,
        version: "v2",
        requests: 0,
        s2xx: 0,
        s3xx: 0,
        s4xx: 0,
        s5xx: 0,
        upstreamErrors: 0,
      });
      sent.started = 37;
      sent.responded = 0;
      // HAProxy's rows (and rows from before 0015) do not count starts: "not known".
      const notCounted = measurement({ second: S, version: "v1" });
      await store.writeMeasurements([sent, notCounted]);
      const rows = await store.readMeasurements({ service: "svc", fromSec: S, toSec: S + 1 });
      assert.deepEqual(
        rows.map((r) => [r.version, r.requests, r.started, r.responded]),
        [
          ["v1", 10, undefined, undefined],
          ["v2", 0, 37, 0],
        ],
      );
      assert.ok(!("started" in rows[0]!) && !("responded" in rows[0]!), JSON.stringify(rows[0]));
      assert.deepEqual(rows[1], sent);
      // A second written again, complete, replaces them too.
      sent.responded = 30;
      sent.requests = 30;
      sent.s2xx = 30;
      await store.writeMeasurements([sent]);
      const [again] = await store.readMeasurements({
        service: "svc",
        fromSec: S,
        toSec: S + 1,
        version: "v2",
      });
      assert.deepEqual(again, sent);
    });

    test("measurements: one transaction per write, large batches included", async ({ store }) => {
      const S = T0 / 1000;
      const rows = Array.from({ length: 1234 }, (_, i) =>
        measurement({ second: S + Math.floor(i / 2), version: i % 2 === 0 ? "v1" : "v2" }),
      );
      await store.writeMeasurements(rows);
      assert.equal(
        (await store.readMeasurements({ service: "svc", fromSec: S, toSec: S + 10_000 })).length,
        1234,
      );
      // A batch with a row that cannot be stored writes nothing.
      const bad = [
        measurement({ second: S - 1 }),
        { ...measurement({ second: S - 2 }), requests: undefined as unknown as number },
      ];
      await assert.rejects(store.writeMeasurements(bad));
      assert.deepEqual(
        await store.readMeasurements({ service: "svc", fromSec: S - 2, toSec: S }),
        [],
      );
    });

    test("measurements: pruning deletes rows older than a second and says how many", async ({
      store,
    }) => {
      const S = T0 / 1000;
      await store.writeMeasurements([0, 1, 2, 3].map((i) => measurement({ second: S + i })));
      assert.equal(await store.pruneMeasurements(S + 2), 2);
      assert.equal(await store.pruneMeasurements(S + 2), 0);
      const left = await store.readMeasurements({ service: "svc", fromSec: 0, toSec: S * 2 });
      assert.deepEqual(
        left.map((r) => r.second - S),
        [2, 3],
      );
    });

    // -----------------------------------------------------------------------------------
    // The router registry
    // -----------------------------------------------------------------------------------

    test("routers: a report registers a router; the next replaces it, revisions included", async ({
      store,
    }) => {
      assert.deepEqual(await store.listRouters(), []);
      const r1 = router("host-a:10", { web: 3, api: 1 });
      await store.reportRouter(r1);
      await store.reportRouter(router("host-b:20", {}, { heartbeatAt: T0 + 5 }));
      assert.deepEqual(await store.listRouters(), [
        r1,
        router("host-b:20", {}, { heartbeatAt: T0 + 5 }),
      ]);
      // A heartbeat with a newer revision of one service, and one service no longer served.
      const later = router("host-a:10", { web: 4 }, { heartbeatAt: T0 + 1000 });
      await store.reportRouter(later);
      const listed = await store.listRouters();
      assert.deepEqual(listed[0], later);
      assert.deepEqual(listed[0]?.revisions, { web: 4 }, "api is gone, not kept from before");
    });

    test("routers: the buffer counts of a report are kept, and replaced by the next", async ({
      store,
    }) => {
      const counts = (n: number) => ({
        measurements: { buffered: n, dropped: 0 },
        exposures: { buffered: 0, dropped: n },
        events: { buffered: 1, dropped: 2 },
        shadow: { buffered: 0, dropped: 0 },
      });
      await store.reportRouter({ ...router("r", { web: 1 }), buffers: counts(7) });
      assert.deepEqual((await store.listRouters())[0]?.buffers, counts(7));
      await store.reportRouter({
        ...router("r", { web: 1 }, { heartbeatAt: T0 + 1000 }),
        buffers: counts(0),
      });
      assert.deepEqual((await store.listRouters())[0]?.buffers, counts(0));
      await store.reportRouter(router("r", { web: 1 }, { heartbeatAt: T0 + 2000 }));
      assert.equal((await store.listRouters())[0]?.buffers, undefined, "a router without them");
    });

    test("routers: the services a router cannot serve are kept with why, and cleared by the next report", async ({
      store,
    }) => {
      const notServing = {
        web: { revision: 3, reason: "cannot listen on 0.0.0.0:8080: EADDRINUSE" },
      };
      await store.reportRouter({ ...router("r", { web: 3 }), notServing });
      assert.deepEqual((await store.listRouters())[0]?.notServing, notServing);
      await store.reportRouter(router("r", { web: 3 }, { heartbeatAt: T0 + 1000 }));
      assert.equal((await store.listRouters())[0]?.notServing, undefined, "bound at last");
      await store.reportRouter({
        ...router("r", { web: 3 }, { heartbeatAt: T0 + 2000 }),
        notServing: {},
      });
      assert.equal((await store.listRouters())[0]?.notServing, undefined, "empty is none");
    });

    test("routers: a revision change notifies 'routers'; a plain heartbeat notifies nobody", async ({
      store,
    }) => {
      const seen: string[] = [];
      store.onChange((what) => seen.push(what));
      await store.reportRouter(router("r", { web: 1 }));
      assert.deepEqual(seen, ["routers"], "a new router");
      seen.length = 0;
      await store.reportRouter(router("r", { web: 1 }, { heartbeatAt: T0 + 1000 }));
      assert.deepEqual(seen, [], "same revisions: a heartbeat");
      assert.equal((await store.listRouters())[0]?.heartbeatAt, T0 + 1000, "but it is stored");
      await store.reportRouter(router("r", { web: 2 }, { heartbeatAt: T0 + 2000 }));
      assert.deepEqual(seen, ["routers"]);
      seen.length = 0;
      await store.reportRouter(router("r", {}, { heartbeatAt: T0 + 3000 }));
      assert.deepEqual(seen, ["routers"], "a service dropped is a change too");
    });

    test("routers: remove and prune drop registrations with their revisions", async ({ store }) => {
      await store.reportRouter(router("old", { web: 1 }, { heartbeatAt: T0 }));
      await store.reportRouter(router("fresh", { web: 2 }, { heartbeatAt: T0 + 10_000 }));
      await store.reportRouter(router("gone", { web: 2 }, { heartbeatAt: T0 + 10_000 }));
      assert.equal(await store.removeRouter("gone"), true);
      assert.equal(await store.removeRouter("gone"), false);
      assert.equal(await store.pruneRouters(T0 + 5_000), 1);
      assert.equal(await store.pruneRouters(T0 + 5_000), 0);
      assert.deepEqual(
        (await store.listRouters()).map((r) => r.id),
        ["fresh"],
      );
      // Registered again under the same id, a pruned router starts without old revisions.
      await store.reportRouter(router("old", {}, { heartbeatAt: T0 + 20_000 }));
      assert.deepEqual((await store.listRouters()).find((r) => r.id === "old")?.revisions, {});
    });

    test("routers: many services in one report", async ({ store }) => {
      const revisions: Record<string, number> = {};
      for (let i = 0; i < 1200; i++) revisions[`svc-${String(i).padStart(4, "0")}`] = i + 1;
      await store.reportRouter(router("big", revisions));
      assert.deepEqual((await store.listRouters())[0]?.revisions, revisions);
    });

    test("close is idempotent and the store refuses work afterwards", async ({ store }) => {
      await store.applyResources([service("a")], { actor: "alice", now: T0 });
      await store.close();
      await store.close();
      await assert.rejects(store.getStatus("a"), { code: "TURNOUT_ERR_STORE_UNAVAILABLE" });
      await assert.rejects(store.applyResources([service("b")], { actor: "alice", now: T0 }), {
        code: "TURNOUT_ERR_STORE_UNAVAILABLE",
      });
    });
  });
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

function router(
  id: string,
  revisions: Record<string, number>,
  overrides: Partial<RouterReport> = {},
): RouterReport {
  return {
    id,
    address: `${id} (listeners 0.0.0.0:8080)`,
    pid: 4242,
    startedAt: T0 - 60_000,
    heartbeatAt: T0,
    revisions,
    ...overrides,
  };
}

function measurement(overrides: Partial<MeasurementRow> = {}): MeasurementRow {
  return {
    service: "svc",
    version: "v1",
    labels: "",
    second: T0 / 1000,
    routerId: "r1",
    requests: 10,
    s2xx: 7,
    s3xx: 1,
    s4xx: 1,
    s5xx: 1,
    upstreamErrors: 1,
    abandoned: 0,
    latency: {
      v: 1,
      alpha: 0.01,
      zero: 1,
      sum: 123.25,
      min: 0,
      max: 50,
      i: [-3, 1, 200],
      c: [2, 6, 1],
    },
    ...overrides,
  };
}

function service(name: string, version = "v1"): ServiceResource {
  return {
    apiVersion: API_VERSION,
    kind: "Service",
    metadata: { name, labels: { team: "risk" } },
    spec: {
      listen: { port: 8080, host: "127.0.0.1" },
      stickiness: { header: "x-user-id" },
      runtime: {
        static: {
          versions: {
            v1: { upstreams: ["http://127.0.0.1:9001", "http://127.0.0.1:9002"] },
            v2: { upstreams: ["http://127.0.0.1:9003"] },
          },
        },
      },
      version,
      strategy: {
        canary: { steps: [{ setWeight: 5 }, { pause: { duration: "30s" } }, { setWeight: 50 }] },
      },
    },
  };
}

function template(name: string): AnalysisTemplateResource {
  return {
    apiVersion: API_VERSION,
    kind: "AnalysisTemplate",
    metadata: { name },
    spec: {
      metrics: [
        {
          name: "errors",
          source: { builtin: "error_rate" },
          judge: { sequential: { maxIncrease: 0.01, alpha: 0.01 } },
          minSamples: 200,
        },
      ],
    },
  };
}

function status(overrides: Partial<ServiceStatus> = {}): ServiceStatus {
  return {
    phase: "Healthy",
    message: "v1 serves all traffic",
    observedGeneration: 1,
    stableVersion: "v1",
    canaryVersion: null,
    stepIndex: null,
    stepStartedAt: null,
    canaryWeight: 0,
    pausedByUser: false,
    abortedVersion: null,
    rolloutStartedAt: null,
    rolloutNumber: 0,
    previousStableVersions: [],
    lastTransitionAt: T0,
    ...overrides,
  };
}

function table(service: string, canaryWeight: number, now: number): Omit<RouteTable, "revision"> {
  return {
    service,
    listen: { host: "127.0.0.1", port: 8080 },
    stickiness: { header: "x-user-id", salt: service },
    hashVersion: 1,
    backends: [
      { version: "v1", weight: 100 - canaryWeight, endpoints: ["http://127.0.0.1:9001"] },
      ...(canaryWeight > 0
        ? [{ version: "v2", weight: canaryWeight, endpoints: ["http://127.0.0.1:9003"] }]
        : []),
    ],
    updatedAt: now,
  };
}

function event(
  service: string,
  type: string,
  time: number,
  data: Record<string, unknown> = {},
): EventDraft {
  return { service, type, actor: "controller", message: `${type} happened`, data, time };
}

/** A deep copy with every object's keys in reverse order. */
function reverseKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map(reverseKeys) as T;
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .reverse()
        .map((k) => [k, reverseKeys((value as Record<string, unknown>)[k])]),
    ) as T;
  }
  return value;
}

/**
 * The conformance suite of the notification outbox: every store that implements `OutboxStore`
 * (and writes outbox entries with its events) runs it, SQLite and PostgreSQL alike.
 *
 * What it pins down: entries are written in the transaction of the event (a refused commit
 * leaves none), one per Notifier that wants the event; a queue per (notifier, service) hands
 * out only its head, in order; marks apply once; a given-up entry leaves a NotificationFailed
 * event in the service's history; the summary counts what `turnout get notifiers` shows.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { EVENTS, eventDraft } from "../core/events.js";
import type { ServiceResource } from "../core/model.js";
import type { NotifierResource } from "../core/notify.js";
import type { OutboxStore } from "./outbox-store.js";
import type { Store } from "./store.js";

export interface OutboxSubject {
  store: Store;
  outbox: OutboxStore;
  close(): Promise<void>;
}

const T0 = 1_700_000_000_000;

export function notifier(
  name: string,
  spec: Partial<NotifierResource["spec"]> = {},
): NotifierResource {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Notifier",
    metadata: { name },
    spec: {
      webhook: { url: "http://127.0.0.1:9/hook", secret: "0123456789abcdef" },
      events: ["rolloutStarted", "rolloutAborted", "analysisFailed"],
      ...spec,
    },
  };
}

function service(name: string): ServiceResource {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name },
    spec: {
      listen: { port: 0 },
      version: "v1",
      runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9"] } } } },
      strategy: {},
    },
  } as unknown as ServiceResource;
}

const started = (service: string, n: number, time = T0) =>
  eventDraft({
    service,
    type: "RolloutStarted",
    actor: "controller",
    message: `rollout ${n} to v${n + 1} started`,
    time,
    data: {
      rollout: n,
      from: `v${n}`,
      to: `v${n + 1}`,
      replaced: null,
      steps: 2,
      rollbackWindow: false,
      generation: n + 1,
    },
  });

export function outboxConformance(name: string, open: () => Promise<OutboxSubject>): void {
  describe(`OutboxStore conformance: ${name}`, () => {
    let s: OutboxSubject;
    before(async () => {
      s = await open();
    });
    after(() => s.close());

    test("a commit writes one entry per Notifier that wants the event, in its transaction", async () => {
      const { store, outbox } = s;
      await store.applyResources(
        [
          service("pay"),
          service("search"),
          notifier("all"),
          notifier("pay-only", { services: ["pay*"] }),
          notifier("completions", { events: ["rolloutCompleted"] }),
        ],
        { actor: "test", now: T0 },
      );
      const epoch = await store.acquireWriterEpoch("test", T0);
      await store.commit({ service: "pay", epoch, events: [started("pay", 1)], now: T0 });
      await store.commit({ service: "search", epoch, events: [started("search", 1)], now: T0 });
      // Fenced: the commit is refused, and so are its notifications.
      await assert.rejects(
        store.commit({ service: "pay", epoch: epoch - 1, events: [started("pay", 9)], now: T0 }),
        /TURNOUT_ERR_STORE_FENCED|refused/,
      );
      // Not a subscription of anyone: nothing written.
      await store.appendEvents([
        eventDraft({
          service: "pay",
          type: "Resumed",
          actor: "ann",
          message: "resumed",
          time: T0,
          data: { stepIndex: 0, heldMs: null },
        }),
      ]);
      const entries = (await outbox.list()).reverse();
      assert.deepEqual(
        entries.map((e) => [e.notifier, e.service, e.eventType, e.state]),
        [
          ["all", "pay", "RolloutStarted", "pending"],
          ["pay-only", "pay", "RolloutStarted", "pending"],
          ["all", "search", "RolloutStarted", "pending"],
        ],
      );
      const [first] = entries;
      assert.ok(first);
      const history = await store.listEvents("pay");
      const ev = history.find((e) => e.type === "RolloutStarted");
      assert.equal(first.eventId, ev?.id, "the entry names the events row it carries");
      assert.equal(first.notification.event.message, "rollout 1 to v2 started");
      assert.equal(first.notification.subscription, "rolloutStarted");
      assert.equal(first.notification.idempotencyKey, first.idempotencyKey);
      assert.equal(new Set(entries.map((e) => e.idempotencyKey)).size, 3, "keys are unique");
      assert.equal(first.attempts, 0);
      assert.equal(first.nextAttemptAt, T0);
    });

    test("each (notifier, service) queue hands out its head only, oldest first", async () => {
      const { store, outbox } = s;
      const epoch = (await store.currentWriterEpoch())?.epoch;
      await store.commit({ service: "pay", epoch, events: [started("pay", 2)], now: T0 + 1 });
      const heads = await outbox.dueHeads(T0 + 1, 100);
      assert.deepEqual(
        heads.map((h) => [h.notifier, h.service, h.notification.event.data.rollout]),
        [
          ["all", "pay", 1],
          ["pay-only", "pay", 1],
          ["all", "search", 1],
        ],
      );
      assert.equal((await outbox.dueHeads(T0 + 1, 2)).length, 2, "limit");
      assert.equal((await outbox.dueHeads(T0 - 1, 100)).length, 0, "not yet due");
      assert.equal(await outbox.nextDueAt(), T0);

      // all/pay's head backs off: its queue hands out nothing, the others go on.
      const allPay = heads[0]!;
      assert.equal(
        await outbox.markRetry(allPay.id, {
          now: T0 + 1,
          status: 500,
          error: "HTTP 500",
          nextAttemptAt: T0 + 5_000,
        }),
        true,
      );
      const later = await outbox.dueHeads(T0 + 2, 100);
      assert.deepEqual(
        later.map((h) => [h.notifier, h.service]),
        [
          ["pay-only", "pay"],
          ["all", "search"],
        ],
      );
      assert.equal(await outbox.nextDueAt(), T0, "other heads are due since T0");
      const [retried] = await outbox.list({ notifier: "all", service: "pay", limit: 2 });
      assert.equal(retried?.notification.event.data.rollout, 2, "newest first");
      const head = (await outbox.list({ notifier: "all", service: "pay" })).at(-1);
      assert.equal(head?.attempts, 1);
      assert.equal(head?.lastStatus, 500);
      assert.equal(head?.lastError, "HTTP 500");

      // Once it is delivered, the next of its queue is the head.
      assert.equal(await outbox.markDelivered(allPay.id, T0 + 5_000, 200), true);
      assert.equal(await outbox.markDelivered(allPay.id, T0 + 5_000, 200), false, "once");
      assert.equal(
        await outbox.markRetry(allPay.id, {
          now: T0,
          status: 500,
          error: "late",
          nextAttemptAt: T0,
        }),
        false,
        "a delivered entry is not retried",
      );
      const next = await outbox.dueHeads(T0 + 5_000, 100);
      assert.deepEqual(
        next.map((h) => [h.notifier, h.service, h.notification.event.data.rollout]),
        [
          ["pay-only", "pay", 1],
          ["all", "search", 1],
          ["all", "pay", 2],
        ],
      );
    });

    test("a given-up entry leaves NotificationFailed in the history and frees its queue", async () => {
      const { store, outbox } = s;
      const [head] = (await outbox.dueHeads(T0 + 5_000, 100)).filter(
        (h) => h.notifier === "pay-only",
      );
      assert.ok(head);
      assert.equal(
        await outbox.markFailed(head.id, { now: T0 + 6_000, status: 400, error: "HTTP 400: bad" }),
        true,
      );
      assert.equal(
        await outbox.markFailed(head.id, { now: T0 + 6_000, status: 400, error: "again" }),
        false,
      );
      const failed = (await store.listEvents("pay")).filter((e) => e.type === "NotificationFailed");
      assert.equal(failed.length, 1);
      assert.deepEqual(failed[0]?.data, {
        notifier: "pay-only",
        event: "RolloutStarted",
        eventId: head.eventId,
        idempotencyKey: head.idempotencyKey,
        attempts: 1,
        status: 400,
        error: "HTTP 400: bad",
      });
      assert.ok(Object.keys(EVENTS.NotificationFailed.fields).every((f) => f in failed[0]!.data));
      const heads = await outbox.dueHeads(T0 + 6_000, 100);
      assert.ok(
        heads.some((h) => h.notifier === "pay-only" && h.notification.event.data.rollout === 2),
      );
    });

    test("the summary counts each notifier's entries and shows its last failure", async () => {
      const summary = await s.outbox.summary();
      assert.deepEqual(
        summary.map((x) => [x.notifier, x.pending, x.delivered, x.failed]),
        [
          ["all", 2, 1, 0],
          ["pay-only", 1, 0, 1],
        ],
      );
      const payOnly = summary.find((x) => x.notifier === "pay-only");
      assert.deepEqual(payOnly?.lastError, {
        at: T0 + 6_000,
        status: 400,
        error: "HTTP 400: bad",
        state: "failed",
      });
      assert.equal(summary[0]?.lastDeliveredAt, T0 + 5_000);
      assert.equal(summary[0]?.oldestPendingAt, T0);
    });

    test("a rollback carries the failing verdicts of the analysis committed with it", async () => {
      const { store, outbox } = s;
      await store.applyResources([service("risk"), notifier("risk", { services: ["risk"] })], {
        actor: "test",
        now: T0,
      });
      const epoch = (await store.currentWriterEpoch())?.epoch;
      const last = (outcome: "fail" | "pass", explanation: string) => ({
        outcome,
        explanation,
        pValue: 0.001,
        statistic: null,
        bound: null,
        effect: null,
        inputs: { judge: { threshold: { max: 0.01 } }, minSamples: 100 },
      });
      await store.commit({
        service: "risk",
        epoch,
        now: T0 + 10,
        events: [
          eventDraft({
            service: "risk",
            type: "AnalysisFailed",
            actor: "controller",
            message: "analysis at step 2/3 failed: 1 of 2 metrics failed",
            time: T0 + 10,
            data: {
              run: "analysis at step 2/3",
              phase: "Failed",
              metrics: [
                {
                  name: "errors",
                  phase: "Failed",
                  dryRun: false,
                  counters: {},
                  last: last("fail", "error rate 4.1% > 1% + baseline 0.2%"),
                },
                {
                  name: "latency",
                  phase: "Successful",
                  dryRun: false,
                  counters: {},
                  last: last("pass", "p99 fine"),
                },
              ],
            },
          }),
          eventDraft({
            service: "risk",
            type: "RolloutAborted",
            actor: "controller",
            message: "rolled back: analysis at step 2/3 failed",
            time: T0 + 10,
            data: { version: "v2", stable: "v1", fromWeight: 20, analysis: "analysis at step 2/3" },
          }),
        ],
      });
      const entries = (await outbox.list({ notifier: "risk" })).reverse();
      assert.deepEqual(
        entries.map((e) => e.eventType),
        ["AnalysisFailed", "RolloutAborted"],
      );
      for (const e of entries) {
        assert.deepEqual(e.notification.verdicts, [
          {
            metric: "errors",
            outcome: "fail",
            explanation: "error rate 4.1% > 1% + baseline 0.2%",
          },
        ]);
        assert.match(e.notification.explanation, /errors: error rate 4\.1% > 1%/);
      }
      assert.equal(entries[1]?.notification.subscription, "rolloutAborted");
    });

    test("prune deletes settled entries changed before a time, never pending ones", async () => {
      const { outbox } = s;
      const before = await outbox.list({ limit: 1000 });
      const settled = before.filter((e) => e.state !== "pending" && e.updatedAt < T0 + 6_001);
      assert.equal(await outbox.prune(T0 + 6_001), settled.length);
      const afterPrune = await outbox.list({ limit: 1000 });
      assert.equal(afterPrune.length, before.length - settled.length);
      assert.ok(afterPrune.filter((e) => e.state === "pending").length > 0);
    });
  });
}

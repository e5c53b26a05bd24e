/**
 * The notification outbox: what Notifiers are to be told, written in the same transaction as
 * the event (`enqueueNotifications`, called by the store wherever events are appended and by
 * the kill switch), and worked off by the deliverer (`src/notify/deliverer.ts`) through the
 * small `OutboxStore` interface, which a PostgreSQL store implements the same way (the SQL
 * below is portable kysely; `outbox.conformance.ts` is the shared suite).
 *
 * Queues: one per (notifier, service). Only the oldest pending entry of a queue (its head) is
 * ever handed out, so a service's notifications reach a receiver in the order they happened,
 * and a head that keeps failing holds back only its own queue. Delivery is at least once: an
 * entry is marked delivered after the receiver acknowledged it, so a crash in between sends it
 * again, with the same idempotency key.
 */
import { randomUUID } from "node:crypto";
import type { Transaction } from "kysely";
import type { EventData } from "../core/events.js";
import {
  type NotifierEvent,
  type NotifierResource,
  notifierEventOf,
  notifierWants,
} from "../core/notify.js";
import { canonicalJson } from "./json.js";
import type { Database, NotificationOutboxTable } from "./schema.js";
import type { SqlStore } from "./sql-store.js";

// ---------------------------------------------------------------------------------------
// What is stored and handed out
// ---------------------------------------------------------------------------------------

export type OutboxState = "pending" | "delivered" | "failed";

/** What a notification says, whatever the transport (webhook JSON, Slack text). */
export interface Notification {
  /** Made once when the notification is written; the same on every retry. */
  idempotencyKey: string;
  notifier: string;
  /** The subscription it matched (`rolloutAborted`...). */
  subscription: NotifierEvent;
  event: {
    /** The `events` row; null for a change without one (a person's kill switch). */
    id: number | null;
    type: string;
    /** "" for events of no service. */
    service: string;
    time: number;
    actor: string;
    message: string;
    data: Record<string, unknown>;
  };
  /** Why, in words: the event's message and, for a failed analysis, each failing verdict. */
  explanation: string;
  /** The verdicts that failed (analysisFailed, and a rollback an analysis caused). */
  verdicts?: { metric: string; outcome: string; explanation: string }[];
}

export interface OutboxEntry {
  id: number;
  notifier: string;
  service: string;
  eventId: number | null;
  eventType: string;
  idempotencyKey: string;
  notification: Notification;
  state: OutboxState;
  /** Sends so far (answered or not). */
  attempts: number;
  /** Clock ms before which a pending entry is not handed out (back-off). */
  nextAttemptAt: number;
  createdAt: number;
  updatedAt: number;
  /** The receiver's last HTTP status; null when it did not answer. */
  lastStatus: number | null;
  lastError: string | null;
}

/** Per notifier, for `turnout get notifiers`. */
export interface OutboxSummary {
  notifier: string;
  pending: number;
  delivered: number;
  failed: number;
  /** The oldest pending entry's creation time (how far behind the receiver is), or null. */
  oldestPendingAt: number | null;
  lastDeliveredAt: number | null;
  /** The latest failure, given up or still retried. */
  lastError: { at: number; status: number | null; error: string; state: OutboxState } | null;
}

export interface AttemptResult {
  now: number;
  /** The receiver's HTTP status, or null when it did not answer. */
  status: number | null;
  error: string;
}

/**
 * What the deliverer needs. Every mark applies only to a pending entry and returns false
 * otherwise (another deliverer got there first, or it was already given up).
 */
export interface OutboxStore {
  /**
   * The head (oldest pending entry) of each (notifier, service) queue whose `nextAttemptAt` is
   * at or before `now`, oldest first, at most `limit`. A queue whose head waits out a back-off
   * hands out nothing, so its later entries wait behind it.
   */
  dueHeads(now: number, limit: number): Promise<OutboxEntry[]>;
  /** The earliest `nextAttemptAt` among the queues' heads, or null when nothing is pending. */
  nextDueAt(): Promise<number | null>;
  /** The receiver acknowledged it (2xx). */
  markDelivered(id: number, now: number, status: number): Promise<boolean>;
  /** Not this time (5xx, 408, 429, no answer): counts the attempt and waits until `nextAttemptAt`. */
  markRetry(id: number, r: AttemptResult & { nextAttemptAt: number }): Promise<boolean>;
  /**
   * Given up (a 4xx other than 408/429, or unreachable for too long): counts the attempt and
   * appends a NotificationFailed event to the service's history in the same transaction.
   */
  markFailed(id: number, r: AttemptResult): Promise<boolean>;
  /** Entries, newest first. */
  list(q?: {
    notifier?: string;
    service?: string;
    state?: OutboxState;
    limit?: number;
  }): Promise<OutboxEntry[]>;
  /** One line per notifier that has entries, by name. */
  summary(): Promise<OutboxSummary[]>;
  /** Deletes delivered and failed entries last changed before `before`; returns how many. */
  prune(before: number): Promise<number>;
}

// ---------------------------------------------------------------------------------------
// The table (migration 0009)
// ---------------------------------------------------------------------------------------

type OutboxTable = NotificationOutboxTable;

function mapEntry(r: OutboxTable): OutboxEntry {
  return {
    id: Number(r.id),
    notifier: r.notifier,
    service: r.service,
    eventId: r.event_id === null ? null : Number(r.event_id),
    eventType: r.event_type,
    idempotencyKey: r.idempotency_key,
    notification: JSON.parse(r.body) as Notification,
    state: r.state as OutboxState,
    attempts: Number(r.attempts),
    nextAttemptAt: Number(r.next_attempt_at),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    lastStatus: r.last_status === null ? null : Number(r.last_status),
    lastError: r.last_error,
  };
}

// ---------------------------------------------------------------------------------------
// Writing: in the transaction that appends the events
// ---------------------------------------------------------------------------------------

/** An event as it was appended (an `events` row), or a change without one (`id` null). */
export interface AppendedEvent {
  id: number | null;
  service: string;
  type: string;
  time: number;
  actor: string;
  message: string;
  /** The data, or its JSON as stored. */
  data: Record<string, unknown> | string;
}

/**
 * Writes one outbox entry per event and Notifier that wants it, inside `trx` (the transaction
 * that appends the events), so both commit or neither does. Costs nothing for events no
 * Notifier can subscribe to; otherwise one read of the Notifiers. Returns how many were written.
 */
export async function enqueueNotifications(
  trx: Transaction<Database>,
  events: readonly AppendedEvent[],
): Promise<number> {
  const wanted = events.filter((e) => notifierEventOf(e.type) !== undefined);
  if (wanted.length === 0) return 0;
  const notifiers = (
    await trx.selectFrom("resources").select("body").where("kind", "=", "Notifier").execute()
  ).map((r) => JSON.parse(r.body) as NotifierResource);
  if (notifiers.length === 0) return 0;
  // A failed analysis and the rollback it caused are appended together: the rollback's
  // notification carries the verdicts that caused it.
  const failedVerdicts = new Map<string, Notification["verdicts"]>();
  for (const e of events)
    if (e.type === "AnalysisFailed") failedVerdicts.set(e.service, verdictsOf(dataOf(e)));

  const rows: OutboxTable[] = [];
  for (const e of wanted) {
    const subscription = notifierEventOf(e.type) as NotifierEvent;
    const data = dataOf(e);
    for (const n of notifiers) {
      if (!notifierWants(n.spec, e.type, e.service)) continue;
      const verdicts =
        e.type === "AnalysisFailed"
          ? verdictsOf(data)
          : e.type === "RolloutAborted"
            ? failedVerdicts.get(e.service)
            : undefined;
      const notification: Notification = {
        idempotencyKey: randomUUID(),
        notifier: n.metadata.name,
        subscription,
        event: {
          id: e.id,
          type: e.type,
          service: e.service,
          time: e.time,
          actor: e.actor,
          message: e.message,
          data,
        },
        explanation: explain(e.message, verdicts),
        ...(verdicts && verdicts.length > 0 ? { verdicts } : {}),
      };
      rows.push({
        notifier: n.metadata.name,
        service: e.service,
        event_id: e.id,
        event_type: e.type,
        idempotency_key: notification.idempotencyKey,
        body: canonicalJson(notification),
        state: "pending",
        attempts: 0,
        next_attempt_at: e.time,
        created_at: e.time,
        updated_at: e.time,
        last_status: null,
        last_error: null,
      });
    }
  }
  // Rows go in event order, notifier by notifier: ids then order each queue as events were.
  for (let i = 0; i < rows.length; i += BATCH)
    await trx
      .insertInto("notification_outbox")
      .values(rows.slice(i, i + BATCH))
      .execute();
  return rows.length;
}

/** A person's kill switch as a FlagKilled event for the outbox (it has no `events` row). */
export function flagKillEvent(
  flag: string,
  o: { actor: string; reason?: string; now: number; message: string },
): AppendedEvent {
  const data: EventData["FlagKilled"] = { flags: [flag], version: null, reason: o.reason ?? "" };
  return {
    id: null,
    service: "",
    type: "FlagKilled" satisfies keyof EventData,
    time: o.now,
    actor: o.actor,
    message: o.message,
    data,
  };
}

/** Rows per INSERT: 13 parameters each, far below SQLite's limit. */
const BATCH = 200;

function dataOf(e: AppendedEvent): Record<string, unknown> {
  return typeof e.data === "string" ? (JSON.parse(e.data) as Record<string, unknown>) : e.data;
}

function verdictsOf(data: Record<string, unknown>): NonNullable<Notification["verdicts"]> {
  const metrics = (data as Partial<EventData["AnalysisFailed"]>).metrics ?? [];
  return metrics
    .filter((m) => m.last !== null && m.last.outcome === "fail")
    .map((m) => ({
      metric: m.name,
      outcome: m.last?.outcome ?? "fail",
      explanation: m.last?.explanation ?? "",
    }));
}

function explain(message: string, verdicts: Notification["verdicts"]): string {
  if (!verdicts || verdicts.length === 0) return message;
  return `${message}\n${verdicts.map((v) => `- ${v.metric}: ${v.explanation}`).join("\n")}`;
}

// ---------------------------------------------------------------------------------------
// Reading and marking: the SQL implementation
// ---------------------------------------------------------------------------------------

/** The outbox over the store's own database (SQLite; PostgreSQL through the same kysely). */
export class SqlOutboxStore implements OutboxStore {
  constructor(private readonly store: Pick<SqlStore, "transact" | "query">) {}

  async dueHeads(now: number, limit: number): Promise<OutboxEntry[]> {
    return this.store.query(async (db) => {
      const t = db;
      const heads = t
        .selectFrom("notification_outbox")
        .select((eb) => eb.fn.min("id").as("head"))
        .where("state", "=", "pending")
        .groupBy(["notifier", "service"]);
      const rows = await t
        .selectFrom("notification_outbox")
        .selectAll()
        .where("id", "in", heads)
        .where("next_attempt_at", "<=", now)
        .orderBy("id")
        .limit(limit)
        .execute();
      return rows.map(mapEntry);
    });
  }

  async nextDueAt(): Promise<number | null> {
    return this.store.query(async (db) => {
      const t = db;
      const heads = t
        .selectFrom("notification_outbox")
        .select((eb) => eb.fn.min("id").as("head"))
        .where("state", "=", "pending")
        .groupBy(["notifier", "service"]);
      const row = await t
        .selectFrom("notification_outbox")
        .select((eb) => eb.fn.min("next_attempt_at").as("at"))
        .where("id", "in", heads)
        .executeTakeFirst();
      return row?.at === null || row?.at === undefined ? null : Number(row.at);
    });
  }

  async markDelivered(id: number, now: number, status: number): Promise<boolean> {
    return this.store.transact(async (trx) => {
      const r = await trx
        .updateTable("notification_outbox")
        .set((eb) => ({
          state: "delivered",
          attempts: eb("attempts", "+", 1),
          updated_at: now,
          last_status: status,
        }))
        .where("id", "=", id)
        .where("state", "=", "pending")
        .executeTakeFirst();
      return Number(r.numUpdatedRows) > 0;
    });
  }

  async markRetry(id: number, r: AttemptResult & { nextAttemptAt: number }): Promise<boolean> {
    return this.store.transact(async (trx) => {
      const u = await trx
        .updateTable("notification_outbox")
        .set((eb) => ({
          attempts: eb("attempts", "+", 1),
          next_attempt_at: r.nextAttemptAt,
          updated_at: r.now,
          last_status: r.status,
          last_error: r.error,
        }))
        .where("id", "=", id)
        .where("state", "=", "pending")
        .executeTakeFirst();
      return Number(u.numUpdatedRows) > 0;
    });
  }

  async markFailed(id: number, r: AttemptResult): Promise<boolean> {
    return this.store.transact(async (trx) => {
      const row = await trx
        .updateTable("notification_outbox")
        .set((eb) => ({
          state: "failed",
          attempts: eb("attempts", "+", 1),
          updated_at: r.now,
          last_status: r.status,
          last_error: r.error,
        }))
        .where("id", "=", id)
        .where("state", "=", "pending")
        .returningAll()
        .executeTakeFirst();
      if (row === undefined) return false;
      const e = mapEntry(row);
      const data: EventData["NotificationFailed"] = {
        notifier: e.notifier,
        event: e.eventType,
        eventId: e.eventId,
        idempotencyKey: e.idempotencyKey,
        attempts: e.attempts,
        status: r.status,
        error: r.error,
      };
      // Straight into `events`: NotificationFailed is no subscription, so it needs no outbox.
      await trx
        .insertInto("events")
        .values({
          service: e.service,
          time: r.now,
          type: "NotificationFailed" satisfies keyof EventData,
          actor: "notifier",
          message: `notification of ${e.eventType} to ${e.notifier} given up after ${e.attempts} attempt(s): ${r.error}`,
          data: canonicalJson(data),
        })
        .execute();
      return true;
    });
  }

  async list(
    q: { notifier?: string; service?: string; state?: OutboxState; limit?: number } = {},
  ): Promise<OutboxEntry[]> {
    return this.store.query(async (db) => {
      let s = db.selectFrom("notification_outbox").selectAll();
      if (q.notifier !== undefined) s = s.where("notifier", "=", q.notifier);
      if (q.service !== undefined) s = s.where("service", "=", q.service);
      if (q.state !== undefined) s = s.where("state", "=", q.state);
      const rows = await s
        .orderBy("id", "desc")
        .limit(q.limit ?? 100)
        .execute();
      return rows.map(mapEntry);
    });
  }

  async summary(): Promise<OutboxSummary[]> {
    return this.store.query(async (db) => {
      const t = db;
      const counts = await t
        .selectFrom("notification_outbox")
        .select((eb) => [
          "notifier",
          "state",
          eb.fn.countAll().as("n"),
          eb.fn.min("created_at").as("oldest"),
          eb.fn.max("updated_at").as("latest"),
        ])
        .groupBy(["notifier", "state"])
        .orderBy("notifier")
        .execute();
      const out = new Map<string, OutboxSummary>();
      for (const c of counts) {
        const s = out.get(c.notifier) ?? {
          notifier: c.notifier,
          pending: 0,
          delivered: 0,
          failed: 0,
          oldestPendingAt: null,
          lastDeliveredAt: null,
          lastError: null,
        };
        const n = Number(c.n);
        if (c.state === "pending") {
          s.pending = n;
          s.oldestPendingAt = Number(c.oldest);
        } else if (c.state === "delivered") {
          s.delivered = n;
          s.lastDeliveredAt = Number(c.latest);
        } else if (c.state === "failed") s.failed = n;
        out.set(c.notifier, s);
      }
      for (const s of out.values()) {
        const e = await t
          .selectFrom("notification_outbox")
          .select(["updated_at", "last_status", "last_error", "state"])
          .where("notifier", "=", s.notifier)
          .where("last_error", "is not", null)
          .where("state", "!=", "delivered")
          .orderBy("updated_at", "desc")
          .orderBy("id", "desc")
          .limit(1)
          .executeTakeFirst();
        if (e !== undefined && e.last_error !== null)
          s.lastError = {
            at: Number(e.updated_at),
            status: e.last_status === null ? null : Number(e.last_status),
            error: e.last_error,
            state: e.state as OutboxState,
          };
      }
      return [...out.values()];
    });
  }

  async prune(before: number): Promise<number> {
    return this.store.transact(async (trx) => {
      const r = await trx
        .deleteFrom("notification_outbox")
        .where("state", "in", ["delivered", "failed"])
        .where("updated_at", "<", before)
        .executeTakeFirst();
      return Number(r.numDeletedRows);
    });
  }
}

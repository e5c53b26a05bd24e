/**
 * 0009: the notification outbox. One row per notification (one event for one Notifier),
 * written in the same transaction as the event it carries, so that an event is never
 * committed without its notifications nor a notification sent for an event that rolled back.
 * The deliverer (`src/notify/`) takes the oldest pending row of each (notifier, service) queue,
 * which keeps each service's notifications in order. Numbered 0009: 0008 is kept free for
 * other work in flight. Columns are repeated here, not imported (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import { addIdColumn, type SqlDialectName } from "./dialect.js";

export function notifications(dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await addIdColumn(db.schema.createTable("notification_outbox"), dialect)
        .addColumn("notifier", "text", (c) => c.notNull())
        // The ordering key: "" for events of no service (a person's kill switch).
        .addColumn("service", "text", (c) => c.notNull())
        // The `events` row it carries; null when the change has no event row (kill switch).
        .addColumn("event_id", "bigint")
        .addColumn("event_type", "text", (c) => c.notNull())
        // Random, made once at enqueue time: the same on every retry, never reused by
        // another database (event ids restart at 1 in a new data dir).
        .addColumn("idempotency_key", "text", (c) => c.notNull().unique())
        // Canonical JSON of what is sent (the event and its explanation), not of the transport.
        .addColumn("body", "text", (c) => c.notNull())
        // pending | delivered | failed
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("attempts", "integer", (c) => c.notNull())
        .addColumn("next_attempt_at", "bigint", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addColumn("last_status", "integer")
        .addColumn("last_error", "text")
        .execute();
      // The heads of the queues: pending rows by notifier and service, oldest first.
      await db.schema
        .createIndex("notification_outbox_queue")
        .on("notification_outbox")
        .columns(["state", "notifier", "service", "id"])
        .execute();
      await db.schema
        .createIndex("notification_outbox_by_notifier")
        .on("notification_outbox")
        .columns(["notifier", "state", "updated_at"])
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable("notification_outbox").execute();
    },
  };
}

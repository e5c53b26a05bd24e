/**
 * The `events` table of the SQL store (`SqlStore`): appended, never changed or deleted. Every
 * write that appends events (resources applied or deleted, the controller's commit, events on
 * their own) goes through `insertEvents`, which also writes their notifications to the outbox
 * in the same transaction.
 */
import type { Kysely, Transaction } from "kysely";
import type { EventDraft, TurnoutEvent } from "../core/model.js";
import { TurnoutError } from "../errors.js";
import { batches } from "./batches.js";
import { canonicalJson } from "./json.js";
import { mapEvent } from "./mappers.js";
import { type AppendedEvent, enqueueNotifications } from "./outbox-store.js";
import type { Database } from "./schema.js";

/** Rows per INSERT: 6 parameters each, far below SQLite's limit (`batches.ts`). */
const EVENT_BATCH = 500;

/** A page of a service's events: after the id last seen, at most `limit`. */
export interface EventPage {
  afterId?: number;
  limit?: number;
}

export async function insertEvents(
  trx: Transaction<Database>,
  events: readonly EventDraft[],
): Promise<void> {
  const appended: AppendedEvent[] = [];
  for (const batch of batches(events, EVENT_BATCH)) {
    const rows = await trx
      .insertInto("events")
      .values(
        batch.map((e) => ({
          service: e.service,
          time: e.time,
          type: e.type,
          actor: e.actor,
          message: e.message,
          data: canonicalJson(e.data),
        })),
      )
      .returning(["id", "service", "type", "time", "actor", "message", "data"])
      .execute();
    for (const r of rows) appended.push({ ...r, id: Number(r.id), time: Number(r.time) });
  }
  // Notifications go out from the outbox, written with the events or not at all.
  await enqueueNotifications(trx, appended);
}

/**
 * The page's limit, checked; throws TURNOUT_ERR_API_BAD_REQUEST unless it is a whole number
 * >= 0. Called before the store is touched: a bad limit is the caller's error, whatever state
 * the store is in.
 */
export function eventPageLimit(page: EventPage): number | undefined {
  const { limit } = page;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
    throw new TurnoutError(
      "TURNOUT_ERR_API_BAD_REQUEST",
      `limit must be a whole number >= 0, got ${limit}`,
      {
        path: "limit",
      },
    );
  }
  return limit;
}

/**
 * Events of a service in id order (the order they were appended). Ids increase across all
 * services, so `afterId` = the last id seen is a stable cursor for paging and watching.
 */
export async function listEvents(
  db: Kysely<Database>,
  service: string,
  page: EventPage,
): Promise<TurnoutEvent[]> {
  const { afterId, limit } = page;
  let q = db.selectFrom("events").selectAll().where("service", "=", service);
  if (afterId !== undefined) q = q.where("id", ">", afterId);
  q = q.orderBy("id");
  if (limit !== undefined) q = q.limit(limit);
  const rows = await q.execute();
  return rows.map(mapEvent);
}

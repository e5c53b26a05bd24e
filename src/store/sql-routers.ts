/**
 * The router registry of the SQL store (`SqlStore`): `routers` (one row per router, refreshed
 * by its heartbeat) and `router_revisions` (the route-table revision each one has in force per
 * service). Written by routers, read by the controller before it stops instances.
 */
import type { Kysely, Transaction } from "kysely";
import { batches } from "./batches.js";
import { mapRouter } from "./mappers.js";
import type { Database } from "./schema.js";
import type { RouterReport, StoreChange } from "./store.js";

/** Router revision rows per INSERT: 3 parameters each. */
const REVISION_BATCH = 500;

/**
 * Upserts the router and replaces its revisions. "routers" is notified only when the set of
 * revisions changed (or the router is new): a plain heartbeat tells nobody anything, and would
 * otherwise wake every listener once a second per router.
 */
export async function reportRouter(
  trx: Transaction<Database>,
  changed: Set<StoreChange>,
  r: RouterReport,
): Promise<void> {
  const known = await trx
    .selectFrom("routers")
    .select("id")
    .where("id", "=", r.id)
    .executeTakeFirst();
  const before = await trx
    .selectFrom("router_revisions")
    .select(["service", "revision"])
    .where("router_id", "=", r.id)
    .execute();
  const row = {
    id: r.id,
    address: r.address,
    pid: r.pid,
    started_at: r.startedAt,
    heartbeat_at: r.heartbeatAt,
    buffers: r.buffers === undefined ? null : JSON.stringify(r.buffers),
    not_serving:
      r.notServing === undefined || Object.keys(r.notServing).length === 0
        ? null
        : JSON.stringify(r.notServing),
  };
  const { id: _key, ...update } = row;
  await trx
    .insertInto("routers")
    .values(row)
    .onConflict((oc) => oc.column("id").doUpdateSet(update))
    .execute();
  const entries = Object.entries(r.revisions);
  const same =
    before.length === entries.length &&
    before.every((b) => r.revisions[b.service] === Number(b.revision));
  if (same && known) return;
  await trx.deleteFrom("router_revisions").where("router_id", "=", r.id).execute();
  for (const batch of batches(entries, REVISION_BATCH)) {
    await trx
      .insertInto("router_revisions")
      .values(batch.map(([service, revision]) => ({ router_id: r.id, service, revision })))
      .execute();
  }
  changed.add("routers");
}

export async function listRouters(db: Kysely<Database>): Promise<RouterReport[]> {
  const rows = await db.selectFrom("routers").selectAll().orderBy("id").execute();
  const revisions = await db
    .selectFrom("router_revisions")
    .selectAll()
    .orderBy("router_id")
    .orderBy("service")
    .execute();
  const by = new Map<string, Record<string, number>>();
  for (const v of revisions) {
    const m = by.get(v.router_id) ?? {};
    m[v.service] = Number(v.revision);
    by.set(v.router_id, m);
  }
  return rows.map((row) => mapRouter(row, by.get(row.id) ?? {}));
}

export async function removeRouter(
  trx: Transaction<Database>,
  changed: Set<StoreChange>,
  id: string,
): Promise<boolean> {
  await trx.deleteFrom("router_revisions").where("router_id", "=", id).execute();
  const r = await trx.deleteFrom("routers").where("id", "=", id).executeTakeFirst();
  const removed = Number(r.numDeletedRows) > 0;
  if (removed) changed.add("routers");
  return removed;
}

export async function pruneRouters(
  trx: Transaction<Database>,
  changed: Set<StoreChange>,
  heartbeatBefore: number,
): Promise<number> {
  const stale = await trx
    .selectFrom("routers")
    .select("id")
    .where("heartbeat_at", "<", heartbeatBefore)
    .execute();
  if (stale.length === 0) return 0;
  const ids = stale.map((s) => s.id);
  await trx.deleteFrom("router_revisions").where("router_id", "in", ids).execute();
  await trx.deleteFrom("routers").where("id", "in", ids).execute();
  changed.add("routers");
  return ids.length;
}

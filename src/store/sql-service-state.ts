/**
 * What the controller keeps per Service in the SQL store (`SqlStore`): its status
 * (`service_status`) and its route table (`route_tables`), with the counter that routers poll
 * to know when to reload (`store_counters`). Written only by the controller's commit
 * (`sql-controller.ts`), deleted with their Service (`sql-resources.ts`).
 */
import type { Kysely, Transaction } from "kysely";
import type { RouteTable, ServiceStatus } from "../core/model.js";
import { TurnoutError } from "../errors.js";
import { canonicalJson } from "./json.js";
import { mapRouteTable, mapStatus, type RouteTableBody } from "./mappers.js";
import { COUNTER_ROUTE_TABLES, type Database } from "./schema.js";
import type { StoreChange } from "./store.js";

export async function getStatus(
  db: Kysely<Database>,
  service: string,
): Promise<ServiceStatus | null> {
  const row = await db
    .selectFrom("service_status")
    .select("body")
    .where("service", "=", service)
    .executeTakeFirst();
  return row === undefined ? null : mapStatus(row);
}

export async function getRouteTable(
  db: Kysely<Database>,
  service: string,
): Promise<RouteTable | null> {
  const row = await db
    .selectFrom("route_tables")
    .selectAll()
    .where("service", "=", service)
    .executeTakeFirst();
  return row === undefined ? null : mapRouteTable(row);
}

/** All route tables, by service name. */
export async function listRouteTables(db: Kysely<Database>): Promise<RouteTable[]> {
  const rows = await db.selectFrom("route_tables").selectAll().orderBy("service").execute();
  return rows.map(mapRouteTable);
}

/**
 * A counter bumped in the same transaction as every route-table write or delete: one
 * primary-key lookup, and, unlike a sum of revisions, it never returns to a value a router
 * has already seen.
 */
export async function routeTablesFingerprint(db: Kysely<Database>): Promise<string> {
  const row = await db
    .selectFrom("store_counters")
    .select("value")
    .where("name", "=", COUNTER_ROUTE_TABLES)
    .executeTakeFirst();
  return String(row === undefined ? 0 : Number(row.value));
}

/**
 * Throws TURNOUT_ERR_SERVICE_NOT_FOUND unless the Service exists: it was deleted while the
 * tick ran, and writing its status or route table would resurrect a route table that routers
 * would serve.
 */
export async function requireService(trx: Transaction<Database>, service: string): Promise<void> {
  const row = await trx
    .selectFrom("resources")
    .select("name")
    .where("kind", "=", "Service")
    .where("name", "=", service)
    .executeTakeFirst();
  if (row === undefined) {
    throw new TurnoutError(
      "TURNOUT_ERR_SERVICE_NOT_FOUND",
      `cannot write the status or route table of ${service}: no Service of that name (deleted meanwhile?)`,
      { service },
    );
  }
}

/**
 * Throws TURNOUT_ERR_STORE_CONFLICT unless the stored status is `expected` (null: none stored):
 * it changed since the tick read it (a deleted Flag's entries taken out of `status.flags`, the
 * Service deleted and applied again), and a decision made over the old one must not land.
 * Compared as canonical JSON of the parsed body, not as stored text: a body written by an older
 * version in another key order is still the same status.
 */
export async function requireStatus(
  trx: Transaction<Database>,
  service: string,
  expected: ServiceStatus | null,
): Promise<void> {
  const row = await trx
    .selectFrom("service_status")
    .select("body")
    .where("service", "=", service)
    .executeTakeFirst();
  const stored = row === undefined ? null : canonicalJson(mapStatus(row));
  if (stored !== (expected === null ? null : canonicalJson(expected))) {
    throw new TurnoutError(
      "TURNOUT_ERR_STORE_CONFLICT",
      `commit for ${service} refused: its status changed since the tick read it; the next tick decides again`,
      { service },
    );
  }
}

export async function writeStatus(
  trx: Transaction<Database>,
  changed: Set<StoreChange>,
  service: string,
  status: ServiceStatus,
  now: number,
): Promise<void> {
  const body = canonicalJson(status);
  await trx
    .insertInto("service_status")
    .values({ service, body, updated_at: now })
    .onConflict((oc) =>
      oc.column("service").doUpdateSet({
        body: (eb) => eb.ref("excluded.body"),
        updated_at: (eb) => eb.ref("excluded.updated_at"),
      }),
    )
    .execute();
  changed.add("status");
}

/**
 * Writes the Service's route table with revision = previous + 1 (1 for the first), assigned by
 * an atomic upsert, and moves the fingerprint. Any `revision` on the input is ignored. The
 * table is written even when equal to the current one: skipping unchanged tables is the
 * controller's job (it writes once per tick, only on change).
 */
export async function writeRouteTable(
  trx: Transaction<Database>,
  changed: Set<StoreChange>,
  service: string,
  table: Omit<RouteTable, "revision">,
): Promise<RouteTable> {
  if (table.service !== service) {
    throw new TurnoutError(
      "TURNOUT_ERR_INTERNAL_BUG",
      `commit for ${service} carries a route table for ${table.service}`,
    );
  }
  // Callers may pass a table they got from the store, revision included; the store
  // alone assigns revisions, and updatedAt lives in its own column.
  const {
    revision: _ignored,
    updatedAt,
    ...rest
  } = table as Partial<Pick<RouteTable, "revision">> & Omit<RouteTable, "revision">;
  const body: RouteTableBody = rest;
  const row = await trx
    .insertInto("route_tables")
    .values({
      service,
      revision: 1,
      body: canonicalJson(body),
      updated_at: updatedAt,
    })
    .onConflict((oc) =>
      oc.column("service").doUpdateSet({
        revision: (eb) => eb("route_tables.revision", "+", 1),
        body: (eb) => eb.ref("excluded.body"),
        updated_at: (eb) => eb.ref("excluded.updated_at"),
      }),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
  await bumpRouteTablesCounter(trx);
  changed.add("routeTables");
  return mapRouteTable(row);
}

/**
 * Deletes a deleted Service's status and route table: routers stop serving it at their next
 * reload.
 */
export async function deleteServiceState(
  trx: Transaction<Database>,
  changed: Set<StoreChange>,
  service: string,
): Promise<void> {
  const status = await trx
    .deleteFrom("service_status")
    .where("service", "=", service)
    .executeTakeFirst();
  if (status.numDeletedRows > 0n) changed.add("status");
  const table = await trx
    .deleteFrom("route_tables")
    .where("service", "=", service)
    .executeTakeFirst();
  if (table.numDeletedRows > 0n) {
    await bumpRouteTablesCounter(trx);
    changed.add("routeTables");
  }
}

async function bumpRouteTablesCounter(trx: Transaction<Database>): Promise<void> {
  await trx
    .insertInto("store_counters")
    .values({ name: COUNTER_ROUTE_TABLES, value: 1 })
    .onConflict((oc) =>
      oc.column("name").doUpdateSet({ value: (eb) => eb("store_counters.value", "+", 1) }),
    )
    .execute();
}

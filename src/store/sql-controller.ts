/**
 * The controller's side of the SQL store (`SqlStore`): its write (`commit`), and the row of
 * `writer_epochs` that fences it, with the lease that elects one controller among several.
 *
 * Sound only because the dialect serializes write transactions against every other writer
 * (see the top of `sql-store.ts`): a claim cannot commit between `commit`'s epoch check and
 * its writes, and two standbys cannot both take one expired lease.
 */
import type { Kysely, Transaction } from "kysely";
import type { RouteTable } from "../core/model.js";
import { TurnoutError } from "../errors.js";
import { experimentRow, mapControllerLease, mapWriterEpoch } from "./mappers.js";
import { type Database, WRITER_ROLE_CONTROLLER } from "./schema.js";
import { recordCommandResults } from "./sql-commands.js";
import { insertEvents } from "./sql-events.js";
import {
  requireService,
  requireStatus,
  writeRouteTable,
  writeStatus,
} from "./sql-service-state.js";
import type {
  ControllerCommit,
  ControllerLease,
  LeadAnswer,
  LeadRequest,
  StoreChange,
  WriterEpoch,
} from "./store.js";

/**
 * Writes status, route table, events, command results and experiment rows in the caller's one
 * transaction.
 *
 * - Fencing first: unless `epoch` is the current writer epoch (or there is none and the
 *   commit carries none), TURNOUT_ERR_STORE_FENCED and nothing is written. The check reads
 *   the epoch inside the write transaction, which the dialect serializes against every other
 *   writer, so a claim can never slip between check and write.
 * - Status or route table for a Service that no longer exists throws
 *   TURNOUT_ERR_SERVICE_NOT_FOUND and writes nothing (`requireService`). A commit of only
 *   events (e.g. a cleanup message) is accepted for any service.
 * - With `statusBefore`, status or route table over a stored status that is no longer the one
 *   the tick read throws TURNOUT_ERR_STORE_CONFLICT and writes nothing (`requireStatus`).
 * - The route table gets the next revision and moves the fingerprint (`writeRouteTable`).
 * - Command results: see `recordCommandResults` (the first result stands).
 */
export async function commit(
  trx: Transaction<Database>,
  changed: Set<StoreChange>,
  c: ControllerCommit,
): Promise<{ routeTable?: RouteTable }> {
  await checkWriterEpoch(trx, c);
  if (c.status !== undefined || c.routeTable !== undefined) {
    await requireService(trx, c.service);
    if (c.statusBefore !== undefined) await requireStatus(trx, c.service, c.statusBefore);
  }
  if (c.status !== undefined) await writeStatus(trx, changed, c.service, c.status, c.now);
  const routeTable =
    c.routeTable === undefined
      ? undefined
      : await writeRouteTable(trx, changed, c.service, c.routeTable);

  await insertEvents(trx, c.events ?? []);

  for (const e of c.experiments ?? []) {
    const row = experimentRow(e);
    const { name: _key, ...update } = row;
    await trx
      .insertInto("experiments")
      .values(row)
      .onConflict((oc) => oc.column("name").doUpdateSet(update))
      .execute();
  }

  await recordCommandResults(trx, changed, c.service, c.commandResults ?? [], c.now);
  return routeTable === undefined ? {} : { routeTable };
}

/**
 * One atomic upsert: concurrent claims get distinct, increasing epochs, and the last one to
 * commit holds the role. Lease-based election adds a condition here (the lease expired, or
 * the claimant already holds it) and leaves `commit`'s check unchanged.
 */
export async function acquireWriterEpoch(
  trx: Transaction<Database>,
  holder: string,
  now: number,
): Promise<number> {
  const row = await trx
    .insertInto("writer_epochs")
    .values({ role: WRITER_ROLE_CONTROLLER, epoch: 1, holder, acquired_at: now })
    .onConflict((oc) =>
      oc.column("role").doUpdateSet({
        epoch: (eb) => eb("writer_epochs.epoch", "+", 1),
        holder: (eb) => eb.ref("excluded.holder"),
        acquired_at: (eb) => eb.ref("excluded.acquired_at"),
        // A claim without a lease (one controller by the data dir's lock).
        renewals: 0,
        renewed_at: (eb) => eb.ref("excluded.acquired_at"),
        lease_ms: null,
        released: 0,
      }),
    )
    .returning("epoch")
    .executeTakeFirstOrThrow();
  return Number(row.epoch);
}

/**
 * The election step (see `Store.leadController`). The decision is made on the row read in
 * the same write transaction, which the dialect serializes with every other write (the
 * PostgreSQL store takes its writers' lock), so two standbys that saw the same lease expire
 * cannot both take it: the second finds the epoch moved on. No clock is compared here:
 * whether a lease expired is the standby's judgement on its own clock (`takeover`).
 */
export async function leadController(
  trx: Transaction<Database>,
  req: LeadRequest,
): Promise<LeadAnswer> {
  const row = await controllerRow(trx);
  const current = row === undefined ? null : mapControllerLease(row);
  const take = async (epoch: number): Promise<LeadAnswer> => {
    const values = {
      epoch,
      holder: req.holder,
      acquired_at: req.now,
      renewals: 0,
      renewed_at: req.now,
      lease_ms: req.leaseMs,
      released: 0,
    };
    if (current === null)
      await trx
        .insertInto("writer_epochs")
        .values({ role: WRITER_ROLE_CONTROLLER, ...values })
        .execute();
    else
      await trx
        .updateTable("writer_epochs")
        .set(values)
        .where("role", "=", WRITER_ROLE_CONTROLLER)
        .execute();
    return {
      leading: true,
      lease: {
        epoch,
        holder: req.holder,
        acquiredAt: req.now,
        renewals: 0,
        renewedAt: req.now,
        leaseMs: req.leaseMs,
        released: false,
      },
    };
  };
  if (current === null) return take(1);
  if (current.released) return take(current.epoch + 1);
  if (req.renew === current.epoch && req.holder === current.holder) {
    const renewals = current.renewals + 1;
    await trx
      .updateTable("writer_epochs")
      .set({ renewals, renewed_at: req.now, lease_ms: req.leaseMs })
      .where("role", "=", WRITER_ROLE_CONTROLLER)
      .execute();
    return {
      leading: true,
      lease: { ...current, renewals, renewedAt: req.now, leaseMs: req.leaseMs },
    };
  }
  if (
    req.takeover !== undefined &&
    req.takeover.epoch === current.epoch &&
    req.takeover.renewals === current.renewals
  )
    return take(current.epoch + 1);
  return { leading: false, lease: current };
}

export async function releaseController(
  trx: Transaction<Database>,
  holder: string,
  epoch: number,
  now: number,
): Promise<void> {
  await trx
    .updateTable("writer_epochs")
    .set({ released: 1, renewed_at: now })
    .where("role", "=", WRITER_ROLE_CONTROLLER)
    .where("epoch", "=", epoch)
    .where("holder", "=", holder)
    .execute();
}

export async function controllerLease(db: Kysely<Database>): Promise<ControllerLease | null> {
  const row = await controllerRow(db);
  return row === undefined ? null : mapControllerLease(row);
}

export async function currentWriterEpoch(db: Kysely<Database>): Promise<WriterEpoch | null> {
  const row = await controllerRow(db);
  return row === undefined ? null : mapWriterEpoch(row);
}

/** The controller role's row of `writer_epochs` (its epoch and lease), if any. */
function controllerRow(db: Kysely<Database>) {
  return db
    .selectFrom("writer_epochs")
    .selectAll()
    .where("role", "=", WRITER_ROLE_CONTROLLER)
    .executeTakeFirst();
}

/**
 * Throws TURNOUT_ERR_STORE_FENCED unless the commit carries the current writer epoch. Sound
 * because write transactions are serialized (top of `sql-store.ts`): a claim cannot commit
 * between this read and the commit's writes. A dialect that runs writers side by side
 * (PostgreSQL at READ COMMITTED) must lock the row here (`FOR SHARE`) so that a claim waits for
 * the commit.
 */
async function checkWriterEpoch(trx: Transaction<Database>, c: ControllerCommit): Promise<void> {
  const row = await trx
    .selectFrom("writer_epochs")
    .select(["epoch", "holder"])
    .where("role", "=", WRITER_ROLE_CONTROLLER)
    .executeTakeFirst();
  const current = row === undefined ? undefined : Number(row.epoch);
  if (c.epoch === current) return;
  const held =
    row === undefined ? "no writer has claimed one" : `epoch ${current} is held by ${row.holder}`;
  const given = c.epoch === undefined ? "no writer epoch" : `writer epoch ${c.epoch}`;
  throw new TurnoutError(
    "TURNOUT_ERR_STORE_FENCED",
    `commit for ${c.service} refused: it carries ${given}, but ${held}; another controller took over, so this one must stop acting`,
    { service: c.service, epoch: c.epoch ?? null, currentEpoch: current ?? null },
  );
}

/**
 * The `commands` table of the SQL store (`SqlStore`): commands queued by the API (promote,
 * abort...), handled by the controller's commit (`sql-controller.ts`), or rejected when their
 * Service is deleted (`sql-resources.ts`), so that a CLI waiting on one always gets an answer.
 */
import type { Kysely, Transaction } from "kysely";
import type { CommandDraft, CommandResult } from "../core/model.js";
import { TurnoutError } from "../errors.js";
import { canonicalJson } from "./json.js";
import { mapCommand } from "./mappers.js";
import type { Database } from "./schema.js";
import type { StoreChange, StoredCommand } from "./store.js";

/** Message of commands rejected because their Service was deleted. */
export const SERVICE_DELETED_MESSAGE = "service deleted";

export async function enqueueCommand(
  trx: Transaction<Database>,
  changed: Set<StoreChange>,
  cmd: CommandDraft,
  now: number,
): Promise<StoredCommand> {
  const row = await trx
    .insertInto("commands")
    .values({
      service: cmd.service,
      type: cmd.type,
      args: canonicalJson(cmd.args),
      actor: cmd.actor,
      reason: cmd.reason ?? null,
      created_at: now,
      handled_at: null,
      outcome: null,
      result_message: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  changed.add("commands");
  return mapCommand(row);
}

export async function getCommand(db: Kysely<Database>, id: number): Promise<StoredCommand | null> {
  const row = await db.selectFrom("commands").selectAll().where("id", "=", id).executeTakeFirst();
  return row === undefined ? null : mapCommand(row);
}

export async function pendingCommands(
  db: Kysely<Database>,
  service?: string,
): Promise<StoredCommand[]> {
  let q = db.selectFrom("commands").selectAll().where("handled_at", "is", null);
  if (service !== undefined) q = q.where("service", "=", service);
  const rows = await q.orderBy("id").execute();
  return rows.map(mapCommand);
}

/**
 * Rejects the pending commands of a deleted Service with SERVICE_DELETED_MESSAGE; returns
 * their ids.
 */
export async function rejectPendingCommands(
  trx: Transaction<Database>,
  changed: Set<StoreChange>,
  service: string,
  now: number,
): Promise<number[]> {
  const rejected = await trx
    .updateTable("commands")
    .set({
      handled_at: now,
      outcome: "rejected",
      result_message: SERVICE_DELETED_MESSAGE,
    })
    .where("service", "=", service)
    .where("handled_at", "is", null)
    .returning("id")
    .execute();
  if (rejected.length > 0) changed.add("commands");
  return rejected.map((r) => Number(r.id));
}

/**
 * Records the controller's results for commands of `service`, with handled_at = now. A result
 * for a command that was already handled (say, rejected when its Service was deleted) is
 * ignored: the first result stands. A result for an unknown command, or one of another
 * service, is a bug and throws.
 */
export async function recordCommandResults(
  trx: Transaction<Database>,
  changed: Set<StoreChange>,
  service: string,
  results: readonly CommandResult[],
  now: number,
): Promise<void> {
  for (const r of results) {
    const updated = await trx
      .updateTable("commands")
      .set({ handled_at: now, outcome: r.outcome, result_message: r.message })
      .where("id", "=", r.id)
      .where("service", "=", service)
      .where("handled_at", "is", null)
      .executeTakeFirst();
    if (updated.numUpdatedRows > 0n) {
      changed.add("commands");
      continue;
    }
    const cmd = await trx
      .selectFrom("commands")
      .select("service")
      .where("id", "=", r.id)
      .executeTakeFirst();
    if (cmd === undefined || cmd.service !== service) {
      throw new TurnoutError(
        "TURNOUT_ERR_INTERNAL_BUG",
        `commit for ${service} carries a result for command ${r.id}, which is not one of its commands`,
      );
    }
  }
}

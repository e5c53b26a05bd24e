/**
 * `FlagStore` over the SQL store (SQLite, PostgreSQL): `flag_overrides` and `flag_history`
 * (migration 0005, declared in `schema.ts`) beside the core store's resources, statuses and
 * events, through `SqlStore.transact` and `SqlStore.query`; and `forgetFlag`, which the core
 * store's `deleteResource` runs in the deletion's transaction.
 */
import type { Transaction } from "kysely";
import type { FlagOverride, FlagStepOverride } from "../core/flags/types.js";
import { loadFlagSnapshot } from "./flag-snapshot.js";
import type {
  FlagHistoryEntry,
  FlagSnapshot,
  FlagStore,
  StoredFlagOverride,
} from "./flag-store.js";
import { canonicalJson } from "./json.js";
import {
  mapEvent,
  mapFlagHistory,
  mapFlagOverride,
  mapResourceRevision,
  mapStatus,
} from "./mappers.js";
import { enqueueNotifications, flagKillEvent } from "./outbox-store.js";
import type { Database } from "./schema.js";
import type { SqlStore } from "./sql-store.js";
import type { Store } from "./store.js";

export class SqlFlagStore implements FlagStore {
  readonly #sql: SqlStore;

  constructor(store: SqlStore) {
    this.#sql = store;
  }

  get store(): Store {
    return this.#sql;
  }

  async listOverrides(): Promise<StoredFlagOverride[]> {
    return this.#sql.query(async (db) => {
      const rows = await db.selectFrom("flag_overrides").selectAll().orderBy("flag").execute();
      return rows.map(mapFlagOverride);
    });
  }

  async getOverride(flag: string): Promise<StoredFlagOverride | null> {
    return this.#sql.query(async (db) => {
      const row = await db
        .selectFrom("flag_overrides")
        .selectAll()
        .where("flag", "=", flag)
        .executeTakeFirst();
      return row === undefined ? null : mapFlagOverride(row);
    });
  }

  /**
   * Merges `patch` into the flag's override (`null` removes it: the resource and rollouts
   * decide again) and appends a history entry, in one transaction. Tells this process's
   * listeners that resources changed, so that snapshots reload at once.
   */
  async changeOverride(
    flag: string,
    patch: FlagOverride | null,
    opts: { actor: string; reason?: string; now: number; action: string; message: string },
  ): Promise<StoredFlagOverride | null> {
    return this.#sql.transact(async (trx, changed) => {
      const t = trx;
      const row = await t
        .selectFrom("flag_overrides")
        .selectAll()
        .where("flag", "=", flag)
        .executeTakeFirst();
      const before = row === undefined ? {} : mapFlagOverride(row).override;
      let after: FlagOverride | null = null;
      if (patch !== null) {
        after = { ...before, ...patch };
        // A variant alone and a percentage are two different things: the newer wins.
        if (patch.variant !== undefined && patch.percentage === undefined) delete after.percentage;
        for (const k of Object.keys(after) as (keyof FlagOverride)[])
          if (after[k] === undefined) delete after[k];
      }
      if (after === null) {
        await t.deleteFrom("flag_overrides").where("flag", "=", flag).execute();
      } else {
        const values = {
          flag,
          body: canonicalJson(after),
          actor: opts.actor,
          reason: opts.reason ?? null,
          updated_at: opts.now,
        };
        await t
          .insertInto("flag_overrides")
          .values(values)
          .onConflict((oc) =>
            oc.column("flag").doUpdateSet({
              body: values.body,
              actor: values.actor,
              reason: values.reason,
              updated_at: values.updated_at,
            }),
          )
          .execute();
      }
      await t
        .insertInto("flag_history")
        .values({
          flag,
          time: opts.now,
          actor: opts.actor,
          action: opts.action,
          message: opts.message,
          data: canonicalJson({ before, after, reason: opts.reason ?? null }),
        })
        .execute();
      // The kill switch: notifiers hear of it as of a rollout's FlagKilled (no event row).
      if (after?.state === "DISABLED" && before.state !== "DISABLED")
        await enqueueNotifications(trx, [flagKillEvent(flag, opts)]);
      changed.add("resources");
      return after === null
        ? null
        : {
            flag,
            override: after,
            actor: opts.actor,
            reason: opts.reason ?? null,
            updatedAt: opts.now,
          };
    });
  }

  /**
   * The flag's history, oldest first: every generation of its resource, every change a person
   * made, and what rollouts did to it (from the services' histories: setFlag steps and the
   * kills after a rollback).
   */
  async history(flag: string, limit = 200): Promise<FlagHistoryEntry[]> {
    const out: FlagHistoryEntry[] = [];
    await this.#sql.query(async (db) => {
      const revisions = await db
        .selectFrom("resource_revisions")
        .selectAll()
        .where("kind", "=", "Flag")
        .where("name", "=", flag)
        .orderBy("id")
        .execute();
      for (const r of revisions.map(mapResourceRevision)) {
        out.push({
          time: r.appliedAt,
          actor: r.actor,
          action: "applied",
          message: `Flag/${flag} generation ${r.generation} applied`,
          data: { generation: r.generation, resource: r.resource },
        });
      }
      const rows = await db
        .selectFrom("flag_history")
        .selectAll()
        .where("flag", "=", flag)
        .orderBy("id")
        .execute();
      for (const r of rows) out.push(mapFlagHistory(r));
      // What rollouts did: the services' FlagChanged events, and the kills recorded in their
      // statuses (a rollback turns flags off in the same write as the RolloutAborted event).
      const events = await db
        .selectFrom("events")
        .selectAll()
        .where("type", "=", "FlagChanged")
        .orderBy("id")
        .execute();
      for (const row of events) {
        const e = mapEvent(row);
        const data = e.data;
        if (data.flag !== flag) continue;
        out.push({
          time: e.time,
          actor: `${e.actor} (service ${e.service})`,
          action: "rollout",
          message: e.message,
          data,
        });
      }
    });
    for (const s of await this.#sql.listResources("Service")) {
      const st = await this.#sql.getStatus(s.name);
      const e = st?.flags?.[flag];
      if (e?.state === "DISABLED" && e.reason.startsWith("turned off:")) {
        out.push({
          time: e.at,
          actor: `controller (service ${s.name})`,
          action: "rollout-kill",
          message: `flag ${flag} ${e.reason}`,
          data: { ...e, service: s.name },
        });
      }
    }
    out.sort((a, b) => a.time - b.time);
    return out.slice(-limit);
  }

  loadSnapshot(): Promise<FlagSnapshot> {
    return loadFlagSnapshot(this.#sql, this);
  }
}

/**
 * Removes every piece of state keyed by a flag whose resource is being deleted, inside the
 * deletion's transaction (`SqlStore.deleteResource`): a person's override (the kill switch
 * included) and what rollouts put on it (`status.flags[flag]` of every service; the deletion
 * is refused while a Service still refers to the flag, so no rollout can set it again). A
 * flag applied again under the same name then starts from its resource alone, as Unleash and
 * GrowthBook users expect. The history is kept, as an audit trail: a "deleted" entry records
 * what was removed. Returns whether a status changed.
 *
 * The status is the controller's to write; a tick that read it before this transaction is
 * refused at its commit (`ControllerCommit.statusBefore`) rather than writing the entry back.
 */
export async function forgetFlag(
  trx: Transaction<Database>,
  flag: string,
  opts: { actor: string; now: number },
): Promise<boolean> {
  const override = await trx
    .deleteFrom("flag_overrides")
    .where("flag", "=", flag)
    .returningAll()
    .executeTakeFirst();
  const rollouts: Record<string, FlagStepOverride> = {};
  // Every status is read: statuses are one row per service, and a JSON body cannot be
  // filtered portably across the two dialects.
  const rows = await trx.selectFrom("service_status").select(["service", "body"]).execute();
  for (const row of rows) {
    const status = mapStatus(row);
    const entry = status.flags?.[flag];
    if (entry === undefined || status.flags === undefined) continue;
    rollouts[row.service] = entry;
    const { [flag]: _removed, ...rest } = status.flags;
    const { flags: _all, ...withoutFlags } = status;
    const next = Object.keys(rest).length > 0 ? { ...withoutFlags, flags: rest } : withoutFlags;
    await trx
      .updateTable("service_status")
      .set({ body: canonicalJson(next), updated_at: opts.now })
      .where("service", "=", row.service)
      .execute();
  }
  const services = Object.keys(rollouts);
  const removed = [
    ...(override === undefined ? [] : ["its override"]),
    ...(services.length === 0 ? [] : [`what rollouts of ${services.join(", ")} put on it`]),
  ];
  await trx
    .insertInto("flag_history")
    .values({
      flag,
      time: opts.now,
      actor: opts.actor,
      action: "deleted",
      message: `Flag/${flag} deleted${removed.length > 0 ? `, with ${removed.join(" and ")}` : ""}`,
      data: canonicalJson({
        override: override === undefined ? null : mapFlagOverride(override).override,
        rollouts,
      }),
    })
    .execute();
  return services.length > 0;
}

/**
 * 0011: the controller's lease (issue #14, controller HA). Several controllers share one
 * PostgreSQL store; one leads. The lease lives on the writer epoch's row (0006), so that taking
 * the lead and bumping the fencing epoch are one write, and `commit`'s epoch check stays
 * exactly as it was: a deposed leader's commit is refused by the store.
 *
 * - `renewals` counts the leader's renewals since it took the lead. A standby decides that the
 *   lease expired by watching this counter stand still for `lease_ms` on its own clock (the
 *   way Kubernetes' leader election does), so the machines' clocks need not agree.
 * - `renewed_at` is the leader's clock at its last renewal: for people (`turnout status`).
 * - `lease_ms` is the leader's lease duration; null for a claim without a lease (a single
 *   `turnout up` on SQLite, whose data dir lock admits one controller).
 * - `released` is set by a leader that stops cleanly, so that a standby takes over at once
 *   instead of waiting for the lease to run out (rolling upgrades of controllers).
 *
 * Columns are repeated here, not imported (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import type { SqlDialectName } from "./dialect.js";

export function controllerLease(_dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .alterTable("writer_epochs")
        .addColumn("renewals", "bigint", (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.alterTable("writer_epochs").addColumn("renewed_at", "bigint").execute();
      await db.schema.alterTable("writer_epochs").addColumn("lease_ms", "bigint").execute();
      await db.schema
        .alterTable("writer_epochs")
        .addColumn("released", "integer", (c) => c.notNull().defaultTo(0))
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      for (const column of ["renewals", "renewed_at", "lease_ms", "released"])
        await db.schema.alterTable("writer_epochs").dropColumn(column).execute();
    },
  };
}

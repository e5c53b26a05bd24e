/**
 * 0006: the writer epoch that fences controller commits (DESIGN invariant 7). One row per
 * fenced role (today only "controller"): `epoch` goes up by one each time a writer claims the
 * role, and the store accepts a controller commit only when it carries the current epoch, in
 * the same transaction as the check. A controller that was superseded (a second `turnout up`,
 * a paused process that wakes up after another took over) is refused and stops acting.
 *
 * `holder` and `acquired_at` say who claimed the role and when, for error messages and
 * diagnostics. Leader election by lease (several controllers on PostgreSQL) reuses this row:
 * a later migration adds the lease's expiry, and claiming becomes "increment where the lease
 * expired"; the commit check stays exactly as it is. Columns are repeated here, not imported
 * from `schema.ts` (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import type { SqlDialectName } from "./dialect.js";

export function writerEpoch(_dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("writer_epochs")
        .addColumn("role", "text", (c) => c.primaryKey())
        .addColumn("epoch", "bigint", (c) => c.notNull())
        .addColumn("holder", "text", (c) => c.notNull())
        .addColumn("acquired_at", "bigint", (c) => c.notNull())
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable("writer_epochs").execute();
    },
  };
}

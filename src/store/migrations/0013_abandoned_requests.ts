/**
 * 0013: `measurements.abandoned`, the requests whose client closed the connection after a
 * version was picked and before its response head came (`Counts.abandoned`). Default 0, so rows
 * written before it, and rows from a router of an earlier Turnout still running in a fleet
 * during an upgrade, read as none abandoned. Columns are repeated here, not imported from
 * `schema.ts` (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import type { SqlDialectName } from "./dialect.js";

export function abandonedRequests(_dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .alterTable("measurements")
        .addColumn("abandoned", "integer", (c) => c.notNull().defaultTo(0))
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable("measurements").dropColumn("abandoned").execute();
    },
  };
}

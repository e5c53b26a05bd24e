/**
 * 0015: `measurements.started` and `measurements.responded`, what a data plane counts of
 * requests as they happen (`StartCounts`): requests sent to the version in that second, and
 * response heads that came back from it. Nullable, no default: NULL is "not counted", which rows
 * written before it, rows of a router of an earlier Turnout still running in a fleet during an
 * upgrade, and rows from HAProxy's log (which sees a request only when it ends) all are. Analysis
 * must not read those as "no request sent". Columns are repeated here, not imported from
 * `schema.ts` (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import type { SqlDialectName } from "./dialect.js";

export function requestsStarted(_dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // One column per statement: SQLite adds one at a time.
      await db.schema.alterTable("measurements").addColumn("started", "integer").execute();
      await db.schema.alterTable("measurements").addColumn("responded", "integer").execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable("measurements").dropColumn("responded").execute();
      await db.schema.alterTable("measurements").dropColumn("started").execute();
    },
  };
}

/**
 * 0002: the `measurements` table, where routers write what they measured, one row per
 * service, second, version, labels and router. Analysis reads one service over a range of
 * seconds, which the primary key's order serves; pruning deletes by age, hence the index on
 * `second`. Columns are repeated here, not imported from `schema.ts` (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import type { SqlDialectName } from "./dialect.js";

export function measurements(_dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("measurements")
        .addColumn("service", "text", (c) => c.notNull())
        // Epoch seconds pass 2^31 in 2038: bigint, like every clock column.
        .addColumn("second", "bigint", (c) => c.notNull())
        .addColumn("version", "text", (c) => c.notNull())
        .addColumn("labels", "text", (c) => c.notNull().defaultTo(""))
        .addColumn("router_id", "text", (c) => c.notNull())
        .addColumn("requests", "integer", (c) => c.notNull())
        .addColumn("s2xx", "integer", (c) => c.notNull())
        .addColumn("s3xx", "integer", (c) => c.notNull())
        .addColumn("s4xx", "integer", (c) => c.notNull())
        .addColumn("s5xx", "integer", (c) => c.notNull())
        .addColumn("upstream_errors", "integer", (c) => c.notNull())
        .addColumn("latency", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("measurements_pk", [
          "service",
          "second",
          "version",
          "labels",
          "router_id",
        ])
        .execute();
      await db.schema
        .createIndex("measurements_by_second")
        .on("measurements")
        .column("second")
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable("measurements").execute();
    },
  };
}

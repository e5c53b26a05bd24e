/**
 * 0003: shadow reports. Each router upserts its cumulative aggregate of a mirror phase (one
 * row per service, phase and router; the state is JSON, see core/shadow/aggregate.ts), and
 * readers merge the rows of a phase into one report. Cumulative rows, not deltas: a flush
 * retried after a failure cannot count a pair twice. Columns are repeated here, not imported
 * (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import type { SqlDialectName } from "./dialect.js";

export function shadow(_dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("shadow_reports")
        .addColumn("service", "text", (c) => c.notNull())
        .addColumn("phase", "text", (c) => c.notNull())
        .addColumn("router_id", "text", (c) => c.notNull())
        .addColumn("version", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("shadow_reports_pk", ["service", "phase", "router_id"])
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable("shadow_reports").execute();
    },
  };
}

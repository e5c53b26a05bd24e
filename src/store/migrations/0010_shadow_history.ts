/**
 * 0010: the shadow comparison over time. `shadow_reports` (0003) holds each router's
 * cumulative aggregate, overwritten in place, so it has no past; this table gets one point per
 * phase at each flush of routers' aggregates (the merged report's pairs, mismatches and
 * agreement at that moment), so that a chart of agreement can start before the page that
 * draws it was opened. Bounded per phase by the shadow store (older points thinned). Numbered
 * 0010: 0008 is kept free for other work in flight, 0009 is the notification outbox. Columns
 * are repeated here, not imported (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import { addIdColumn, type SqlDialectName } from "./dialect.js";

export function shadowHistory(dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await addIdColumn(db.schema.createTable("shadow_history"), dialect)
        .addColumn("service", "text", (c) => c.notNull())
        .addColumn("phase", "text", (c) => c.notNull())
        .addColumn("version", "text", (c) => c.notNull())
        // The flush's clock ms (the latest `updated_at` of the rows it wrote for the phase).
        .addColumn("at", "bigint", (c) => c.notNull())
        // Routers whose numbers are merged into the point.
        .addColumn("routers", "integer", (c) => c.notNull())
        .addColumn("samples", "integer", (c) => c.notNull())
        .addColumn("mismatches", "integer", (c) => c.notNull())
        // Null while no pair was compared (as in the report).
        .addColumn("mismatch_rate", "double precision")
        .addColumn("agreement", "double precision")
        .execute();
      await db.schema
        .createIndex("shadow_history_by_phase")
        .on("shadow_history")
        .columns(["service", "phase", "at"])
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable("shadow_history").execute();
    },
  };
}

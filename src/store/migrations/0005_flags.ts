/**
 * 0005: feature flags' own state beside their resources. Flag and Segment definitions are
 * ordinary resources (with `resource_revisions` as their history); what is kept here is what a
 * person changed on top of a definition without editing it (`turnout flags enable|disable|set`,
 * the kill switch), and the history of those changes. Columns are repeated here, not imported
 * from `schema.ts` (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import { addIdColumn, type SqlDialectName } from "./dialect.js";

export function flags(dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("flag_overrides")
        .addColumn("flag", "text", (c) => c.primaryKey())
        // Canonical JSON of the override (state, percentage, variant).
        .addColumn("body", "text", (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("reason", "text")
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .execute();
      await addIdColumn(db.schema.createTable("flag_history"), dialect)
        .addColumn("flag", "text", (c) => c.notNull())
        .addColumn("time", "bigint", (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("action", "text", (c) => c.notNull())
        .addColumn("message", "text", (c) => c.notNull())
        .addColumn("data", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("flag_history_by_flag")
        .on("flag_history")
        .columns(["flag", "id"])
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable("flag_history").execute();
      await db.schema.dropTable("flag_overrides").execute();
    },
  };
}

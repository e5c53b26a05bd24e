/**
 * 0001: the first schema. Written with kysely's schema builder so PostgreSQL runs the same
 * migration; the one thing the two spell differently (an auto-increment id) comes from
 * `dialect.ts`. Table and column names are repeated here rather than imported from
 * `schema.ts` because a migration must keep describing the schema as of its own number.
 */
import { type Kysely, type Migration, sql } from "kysely";
import { addIdColumn, type SqlDialectName } from "./dialect.js";

export function initial(dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("resources")
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("generation", "integer", (c) => c.notNull())
        .addColumn("body", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("resources_pk", ["kind", "name"])
        .execute();

      await addIdColumn(db.schema.createTable("resource_revisions"), dialect)
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("generation", "integer", (c) => c.notNull())
        .addColumn("body", "text", (c) => c.notNull())
        .addColumn("applied_at", "bigint", (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("resource_revisions_by_resource")
        .on("resource_revisions")
        .columns(["kind", "name", "generation"])
        .execute();

      await db.schema
        .createTable("service_status")
        .addColumn("service", "text", (c) => c.primaryKey())
        .addColumn("body", "text", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .execute();

      await db.schema
        .createTable("route_tables")
        .addColumn("service", "text", (c) => c.primaryKey())
        .addColumn("revision", "integer", (c) => c.notNull())
        .addColumn("body", "text", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .execute();

      await addIdColumn(db.schema.createTable("events"), dialect)
        .addColumn("service", "text", (c) => c.notNull())
        .addColumn("time", "bigint", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("message", "text", (c) => c.notNull())
        .addColumn("data", "text", (c) => c.notNull())
        .execute();
      // listEvents reads one service's events in id order, often after a given id.
      await db.schema
        .createIndex("events_by_service")
        .on("events")
        .columns(["service", "id"])
        .execute();

      await addIdColumn(db.schema.createTable("commands"), dialect)
        .addColumn("service", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("args", "text", (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("reason", "text")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("handled_at", "bigint")
        .addColumn("outcome", "text")
        .addColumn("result_message", "text")
        .execute();
      // The controller polls for pending commands every tick; handled ones pile up forever,
      // so the index covers only the pending few.
      await db.schema
        .createIndex("commands_pending")
        .on("commands")
        .columns(["service", "id"])
        .where(sql.ref("handled_at"), "is", null)
        .execute();

      await db.schema
        .createTable("store_counters")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("value", "bigint", (c) => c.notNull())
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      for (const table of [
        "store_counters",
        "commands",
        "events",
        "route_tables",
        "service_status",
        "resource_revisions",
        "resources",
      ]) {
        await db.schema.dropTable(table).execute();
      }
    },
  };
}

/**
 * 0007: the router registry. Each router registers itself (`routers`), beats a heartbeat every
 * second or so, and says which route-table revision of each service it has in force
 * (`router_revisions`), so that the controller stops an instance only once every live router
 * serves a table without it (DESIGN invariant 9). Revisions are rows, not a JSON column, so
 * that with many routers on PostgreSQL "which live routers lag on service S" is one indexed
 * query. Columns are repeated here, not imported from `schema.ts` (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import type { SqlDialectName } from "./dialect.js";

export function routers(_dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("routers")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("address", "text", (c) => c.notNull())
        .addColumn("pid", "integer", (c) => c.notNull())
        .addColumn("started_at", "bigint", (c) => c.notNull())
        .addColumn("heartbeat_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("router_revisions")
        .addColumn("router_id", "text", (c) => c.notNull())
        .addColumn("service", "text", (c) => c.notNull())
        .addColumn("revision", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("router_revisions_pk", ["router_id", "service"])
        .execute();
      await db.schema
        .createIndex("router_revisions_by_service")
        .on("router_revisions")
        .columns(["service", "router_id"])
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable("router_revisions").execute();
      await db.schema.dropTable("routers").execute();
    },
  };
}

/**
 * 0012: what each router holds for the store while it cannot write (`RouterReport.buffers`),
 * as JSON, null for routers that do not report it. Columns are repeated here, not imported
 * from `schema.ts` (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import type { SqlDialectName } from "./dialect.js";

export function routerBuffers(_dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable("routers").addColumn("buffers", "text").execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable("routers").dropColumn("buffers").execute();
    },
  };
}

/**
 * 0014: the services each router was given but cannot serve as their route table says, and
 * why (`RouterReport.notServing`: a listener that cannot bind, a table its data plane refused),
 * as JSON, null when it reports none. Columns are repeated here, not imported from `schema.ts`
 * (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import type { SqlDialectName } from "./dialect.js";

export function routerNotServing(_dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable("routers").addColumn("not_serving", "text").execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable("routers").dropColumn("not_serving").execute();
    },
  };
}

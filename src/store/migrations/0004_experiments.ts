/**
 * 0004: A/B experiments. `experiments` keeps each experiment's declaration (written by the
 * controller while it runs, so results can be computed after it ended); `experiment_exposures`
 * the first exposure of each unit in each experiment (the primary key makes the first one win,
 * whichever router logs it); `experiment_events` the outcome events applications post, keyed by
 * their idempotency key so a retried batch is never counted twice. Analysis joins events to
 * exposures by unit, hence the index on (metric, unit). Columns are repeated here, not
 * imported from a schema file (see 0001).
 */
import type { Kysely, Migration } from "kysely";
import type { SqlDialectName } from "./dialect.js";

export function experiments(_dialect: SqlDialectName): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("experiments")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("service", "text", (c) => c.notNull())
        // Canonical JSON of the experiment step's body, its resolved arms and its status.
        .addColumn("spec", "text", (c) => c.notNull())
        .addColumn("arms", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("started_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("experiment_exposures")
        .addColumn("experiment", "text", (c) => c.notNull())
        .addColumn("unit", "text", (c) => c.notNull())
        .addColumn("arm", "text", (c) => c.notNull())
        .addColumn("first_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("experiment_exposures_pk", ["experiment", "unit"])
        .execute();
      await db.schema
        .createTable("experiment_events")
        .addColumn("idempotency_key", "text", (c) => c.primaryKey())
        .addColumn("unit", "text", (c) => c.notNull())
        .addColumn("metric", "text", (c) => c.notNull())
        .addColumn("value", "double precision", (c) => c.notNull())
        .addColumn("ts", "bigint", (c) => c.notNull())
        .addColumn("received_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("experiment_events_by_metric_unit")
        .on("experiment_events")
        .columns(["metric", "unit"])
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable("experiment_events").execute();
      await db.schema.dropTable("experiment_exposures").execute();
      await db.schema.dropTable("experiments").execute();
    },
  };
}

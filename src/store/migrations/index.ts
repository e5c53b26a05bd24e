/**
 * Versioned schema migrations, run by kysely's `Migrator` from a static list: no directory
 * scanning, so they work the same from `src/` under tsx and from the compiled `dist/`.
 *
 * Rules for adding one: give it the next number (`0002_...`; kysely sorts names as strings),
 * never edit a migration that has shipped, and keep it portable (see `dialect.ts`).
 */
import { type Kysely, type Migration, type MigrationResult, Migrator } from "kysely";
import { TurnoutError } from "../../errors.js";
import { initial } from "./0001_initial.js";
import { measurements } from "./0002_measurements.js";
import { shadow } from "./0003_shadow.js";
import { experiments } from "./0004_experiments.js";
import { flags } from "./0005_flags.js";
import { writerEpoch } from "./0006_writer_epoch.js";
import { routers } from "./0007_routers.js";
import { notifications } from "./0009_notifications.js";
import type { SqlDialectName } from "./dialect.js";

export type { SqlDialectName } from "./dialect.js";

/** Every migration, by name, for one dialect. */
export function turnoutMigrations(dialect: SqlDialectName): Record<string, Migration> {
  return {
    "0001_initial": initial(dialect),
    "0002_measurements": measurements(dialect),
    "0003_shadow": shadow(dialect),
    "0004_experiments": experiments(dialect),
    "0005_flags": flags(dialect),
    "0006_writer_epoch": writerEpoch(dialect),
    "0007_routers": routers(dialect),
    "0009_notifications": notifications(dialect),
  };
}

/**
 * Brings the schema up to date and returns the names of the migrations it ran (empty when the
 * database was current). Throws TURNOUT_ERR_STORE_UNAVAILABLE when a migration fails or the
 * database was written by a newer Turnout (it has migrations this code does not know).
 *
 * Concurrency is the dialect's job: the SQLite store runs the Migrator inside one
 * `BEGIN IMMEDIATE` transaction, so a second process opening the same file waits and then
 * finds nothing left to do.
 */
export async function migrateToLatest(
  db: Kysely<unknown>,
  dialect: SqlDialectName,
): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => turnoutMigrations(dialect) },
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r: MigrationResult) => r.status === "Error")?.migrationName;
    const message = error instanceof Error ? error.message : String(error);
    const hint = message.includes("is missing")
      ? " (was the database written by a newer Turnout?)"
      : "";
    const what = failed !== undefined ? `store migration ${failed}` : "store migrations";
    const e = new TurnoutError(
      "TURNOUT_ERR_STORE_UNAVAILABLE",
      `${what} failed: ${message}${hint}`,
      {
        migration: failed,
      },
    );
    e.cause = error;
    throw e;
  }
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}

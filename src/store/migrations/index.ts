/**
 * Versioned schema migrations, run by kysely's `Migrator` from a static list: no directory
 * scanning, so they work the same from `src/` under tsx and from the compiled `dist/`.
 *
 * Rules for adding one: give it the next number (`0002_...`; kysely sorts names as strings),
 * never edit a migration that has shipped, and keep it portable (see `dialect.ts`).
 */
import { type Kysely, type Migration, type MigrationResult, Migrator, sql } from "kysely";
import { TurnoutError } from "../../errors.js";
import { initial } from "./0001_initial.js";
import { measurements } from "./0002_measurements.js";
import { shadow } from "./0003_shadow.js";
import { experiments } from "./0004_experiments.js";
import { flags } from "./0005_flags.js";
import { writerEpoch } from "./0006_writer_epoch.js";
import { routers } from "./0007_routers.js";
import { notifications } from "./0009_notifications.js";
import { shadowHistory } from "./0010_shadow_history.js";
import { controllerLease } from "./0011_controller_lease.js";
import { routerBuffers } from "./0012_router_buffers.js";
import { abandonedRequests } from "./0013_abandoned_requests.js";
import { routerNotServing } from "./0014_router_not_serving.js";
import { requestsStarted } from "./0015_requests_started.js";
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
    "0010_shadow_history": shadowHistory(dialect),
    "0011_controller_lease": controllerLease(dialect),
    "0012_router_buffers": routerBuffers(dialect),
    "0013_abandoned_requests": abandonedRequests(dialect),
    "0014_router_not_serving": routerNotServing(dialect),
    "0015_requests_started": requestsStarted(dialect),
  };
}

/**
 * Brings the schema up to date and returns the names of the migrations it ran (empty when the
 * database was current). Throws TURNOUT_ERR_STORE_SCHEMA_NEWER, running nothing, when the
 * database was written by a newer Turnout (it has migrations this code does not know), and
 * TURNOUT_ERR_STORE_UNAVAILABLE when a migration fails.
 *
 * Concurrency is the dialect's job: the SQLite store runs the Migrator inside one
 * `BEGIN IMMEDIATE` transaction, so a second process opening the same file waits and then
 * finds nothing left to do. On PostgreSQL, kysely takes a session advisory lock around one
 * transaction holding every pending migration (DDL is transactional there): a failed
 * migration leaves nothing half-made, and concurrent openers run them once.
 */
export async function migrateToLatest(
  db: Kysely<unknown>,
  dialect: SqlDialectName,
): Promise<string[]> {
  const known = Object.keys(turnoutMigrations(dialect)).sort();
  // The common case, every process start: the schema is current. One small read instead of
  // the Migrator's catalog introspection and locks (hundreds of ms on a busy PostgreSQL).
  const recorded = await recordedMigrations(db);
  if (recorded !== undefined) {
    const unknown = recorded.find((n) => !known.includes(n));
    if (unknown !== undefined) throw schemaNewer(unknown, known);
    if (known.every((n) => recorded.includes(n))) return [];
  }

  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => turnoutMigrations(dialect) },
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r: MigrationResult) => r.status === "Error")?.migrationName;
    const message = error instanceof Error ? error.message : String(error);
    // kysely refuses to run when the database records a migration this code does not have
    // (here only if a newer Turnout migrated it since the check above). Its own error says
    // "corrupted", which would send people looking for damage. Nothing ran.
    const unknown = /previously executed migration (\S+) is missing/.exec(message)?.[1];
    if (unknown !== undefined) {
      const e = schemaNewer(unknown, known);
      e.cause = error;
      throw e;
    }
    const what = failed !== undefined ? `store migration ${failed}` : "store migrations";
    // PostgreSQL's insufficient_privilege: since version 15 a role that does not own the
    // database may not create tables in `public`; say the fix rather than only the refusal.
    const hint =
      (error as { code?: unknown }).code === "42501"
        ? "; Turnout's role must be able to create tables: make it the database's owner (createdb --owner ROLE) or GRANT CREATE ON SCHEMA public TO ROLE (docs/fleet.md#postgresql)"
        : "";
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

/** Names in kysely's migration table, or undefined when there is none yet (a new database). */
async function recordedMigrations(db: Kysely<unknown>): Promise<string[] | undefined> {
  try {
    const r = await sql<{ name: string }>`select name from kysely_migration`.execute(db);
    return r.rows.map((row) => row.name);
  } catch {
    // No table yet, or the database cannot be read: the Migrator finds out which, and reports it.
    return undefined;
  }
}

/** The database was migrated by a newer Turnout: say so, and what to do. */
function schemaNewer(unknown: string, known: string[]): TurnoutError {
  return new TurnoutError(
    "TURNOUT_ERR_STORE_SCHEMA_NEWER",
    `the store's schema is newer than this Turnout: it has migration ${unknown}, and this binary knows up to ${known.at(-1)}; run a newer Turnout (the one that wrote the store) or point it at another store; nothing was changed`,
    { migration: unknown, latestKnown: known.at(-1) ?? null },
  );
}

/**
 * The embedded default store: one SQLite file (better-sqlite3 12 under kysely), safe to share
 * between processes on one machine (a controller and routers each opening the same file).
 *
 * How it stays correct across processes:
 * - WAL journal: readers never block the writer and the writer never blocks readers.
 * - Every write transaction starts with BEGIN IMMEDIATE, taking the file's write lock up front.
 *   With SQLite's default deferred BEGIN, a transaction that reads and then writes can fail
 *   with SQLITE_BUSY_SNAPSHOT (no waiting, no retry) when another process wrote in between;
 *   immediate transactions simply queue behind each other.
 * - busy_timeout: a writer waits that long for another process's transaction before giving up
 *   with TURNOUT_ERR_STORE_UNAVAILABLE. better-sqlite3 waits synchronously, so the wait blocks
 *   this process's event loop; transactions here are short (milliseconds), so waits are too.
 *
 * Within one process, share one store instance: kysely gives it a single connection whose
 * queries run one at a time. Two instances on one file in one process work, but if their
 * write transactions interleave, the second blocks the event loop that the first needs to
 * finish, and fails after busy_timeout.
 *
 * Not for network file systems (NFS, SMB): SQLite's WAL needs shared memory on one host.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import {
  CompiledQuery,
  type DatabaseConnection,
  type DialectAdapter,
  type Driver,
  Kysely,
  SqliteAdapter,
  SqliteDialect,
  SqliteDriver,
} from "kysely";
import { TurnoutError } from "../../errors.js";
import { migrateToLatest } from "../migrations/index.js";
import type { Database } from "../schema.js";
import { SqlStore } from "../sql-store.js";

export interface SqliteStoreOptions {
  /** File path (its directory is created if missing), or ":memory:" for a private database. */
  path: string;
  /** How long a write waits for another process's transaction, in ms. Default 5000. */
  busyTimeoutMs?: number;
}

export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/**
 * Opens (creating if needed) a SQLite store and brings its schema up to date.
 *
 * @example const store = await openSqliteStore({ path: ".turnout/turnout.db" });
 */
export async function openSqliteStore(opts: SqliteStoreOptions): Promise<SqlStore> {
  const { db } = await openSqliteDatabase(opts);
  return new SqlStore({ db, mapError: mapSqliteError });
}

/**
 * The database under the store: configured, migrated, and typed by `schema.ts`. Exported for
 * tests and diagnostics; everything else should go through `openSqliteStore`. Destroying the
 * returned `db` closes the file.
 */
export async function openSqliteDatabase(
  opts: SqliteStoreOptions,
): Promise<{ db: Kysely<Database>; raw: BetterSqlite3.Database; migrated: string[] }> {
  const inMemory = opts.path === ":memory:" || opts.path === "";
  let raw: BetterSqlite3.Database;
  try {
    if (!inMemory) mkdirSync(dirname(opts.path), { recursive: true });
    // `timeout` is better-sqlite3's name for SQLite's busy_timeout.
    raw = new BetterSqlite3(opts.path, { timeout: opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS });
  } catch (err) {
    throw toUnavailable(err, `cannot open the store at ${opts.path}`);
  }

  let db: Kysely<Database> | undefined;
  try {
    // WAL persists in the file; the other three are per connection, so every open sets them.
    raw.pragma("journal_mode = WAL");
    // In WAL mode NORMAL survives a crash of the process without corruption or lost commits;
    // only a power loss may drop the last commits. FULL would fsync on every commit.
    raw.pragma("synchronous = NORMAL");
    raw.pragma("foreign_keys = ON");

    db = new Kysely<Database>({ dialect: new TurnoutSqliteDialect(raw) });
    const migrated = await migrateToLatest(db as Kysely<unknown>, "sqlite");
    return { db, raw, migrated };
  } catch (err) {
    if (db !== undefined) await db.destroy();
    else raw.close();
    throw mapSqliteError(err);
  }
}

/**
 * SQLite errors that mean "the database cannot be used right now" (locked by another process
 * for longer than busy_timeout, disk full, unreadable file...) become
 * TURNOUT_ERR_STORE_UNAVAILABLE. Everything else (constraint violations, SQL errors) is a bug
 * and passes through unchanged.
 */
export function mapSqliteError(err: unknown): unknown {
  if (err instanceof BetterSqlite3.SqliteError && UNAVAILABLE_CODES.test(err.code)) {
    return toUnavailable(err, "the store could not be used");
  }
  return err;
}

const UNAVAILABLE_CODES =
  /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|CORRUPT|NOTADB|PROTOCOL)/;

function toUnavailable(err: unknown, what: string): TurnoutError {
  const message = err instanceof Error ? err.message : String(err);
  const code = err instanceof BetterSqlite3.SqliteError ? err.code : undefined;
  const e = new TurnoutError("TURNOUT_ERR_STORE_UNAVAILABLE", `${what}: ${message}`, {
    ...(code !== undefined ? { sqliteCode: code } : {}),
  });
  e.cause = err;
  return e;
}

/** kysely's SQLite dialect with immediate transactions and transactional migrations. */
class TurnoutSqliteDialect extends SqliteDialect {
  readonly #raw: BetterSqlite3.Database;

  constructor(raw: BetterSqlite3.Database) {
    super({ database: raw });
    this.#raw = raw;
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#raw);
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

class ImmediateSqliteDriver extends SqliteDriver {
  readonly #raw: BetterSqlite3.Database;

  constructor(raw: BetterSqlite3.Database) {
    super({ database: raw });
    this.#raw = raw;
  }

  /** Takes the write lock at BEGIN (see the top of this file for why). */
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"));
  }

  /**
   * Some errors (SQLITE_FULL, SQLITE_IOERR, a BUSY during COMMIT...) make SQLite roll the
   * transaction back itself; a second ROLLBACK would then throw "no transaction is active"
   * and hide the error that matters.
   */
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (this.#raw.inTransaction) await super.rollbackTransaction(connection);
  }
}

/**
 * SQLite runs DDL inside transactions, but kysely's adapter says it does not, which would make
 * the Migrator run each statement on its own. Saying it does makes the Migrator wrap the
 * whole run in one (immediate) transaction: a failed migration leaves nothing half-made, and
 * a second process opening the same file waits for the first, then finds nothing to do.
 */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

/**
 * The PostgreSQL store: the same `SqlStore` as SQLite, over node-postgres (`pg`) through
 * kysely, for fleets where routers and controllers run on several machines.
 *
 * How it stays correct with many processes:
 * - Writers are serialized by a transaction-level advisory lock, taken in the same round trip
 *   as BEGIN (`pg_advisory_xact_lock`, released by COMMIT or ROLLBACK). This is PostgreSQL's
 *   equivalent of SQLite's BEGIN IMMEDIATE, which `SqlStore`'s read-then-write steps rely on
 *   (see the top of sql-store.ts). Chosen over SERIALIZABLE with retry because every write is
 *   short and the lock makes a write wait instead of fail: no retry loop around transactions
 *   that must not run twice (events would be appended twice), and no serialization failures
 *   to tell apart from real errors. The isolation level stays READ COMMITTED on purpose: each
 *   statement after the lock sees everything the previous lock holder committed (at
 *   REPEATABLE READ the snapshot would be taken before the wait and miss it). Reads take no
 *   lock and never wait for writers (MVCC).
 * - A write that waits longer than `lockTimeoutMs` for the lock gives up with
 *   TURNOUT_ERR_STORE_UNAVAILABLE, like SQLite's busy_timeout.
 * - Migrations run in one transaction under kysely's session advisory lock (and this store's
 *   write lock, since they begin like every transaction): concurrent openers run them once,
 *   and a failed one leaves nothing behind. A database with migrations this binary does not
 *   know is refused (TURNOUT_ERR_STORE_SCHEMA_NEWER) before anything runs.
 * - `onChange` hears other processes' writes: each write transaction that changed something
 *   sends one NOTIFY (delivered only if it commits) naming the kinds of change and the store
 *   instance it came from; one dedicated connection per store LISTENs, reconnects with backoff
 *   when it is lost (at most `RECONNECT_MAX_MS` between attempts, so that it is back within
 *   about a second of the server), and on reconnecting tells listeners that everything may
 *   have changed, since notifications sent meanwhile are gone. Routers keep polling the route-table
 *   fingerprint as well, so a lost notification only delays a reload.
 * - Connections come from a pool (`poolSize`, default 10); a lost connection is replaced by
 *   the pool, and a query on one that broke fails with TURNOUT_ERR_STORE_UNAVAILABLE.
 *
 * BIGINT and NUMERIC values (clock milliseconds, ids, counts, sums) are parsed to JS numbers:
 * every value Turnout stores in them is an integer below 2^53 or a sum that is a float anyway.
 *
 * Lists ordered by name (resources, routers, measurements' labels) follow the database's
 * collation. Create the database with the C collation (`createdb --locale=C` or
 * `LC_COLLATE 'C'`) to get the same byte order as SQLite; the tests' cluster uses C.
 */
import { randomUUID } from "node:crypto";
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  PostgresDialect,
  PostgresDriver,
  sql,
  type Transaction,
  type TransactionSettings,
} from "kysely";
import pg from "pg";
import { TurnoutError } from "../../errors.js";
import { migrateToLatest } from "../migrations/index.js";
import type { Database } from "../schema.js";
import { type ChangeFeed, SqlStore } from "../sql-store.js";
import type { StoreChange } from "../store.js";

export interface PostgresStoreOptions {
  /** `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...]` (or `postgresql://`). */
  url: string;
  /** Connections in the pool. Default 10. */
  poolSize?: number;
  /** How long to wait for a new connection, in ms. Default 5000. */
  connectTimeoutMs?: number;
  /** How long a write waits for another writer's transaction, in ms. Default 5000. */
  lockTimeoutMs?: number;
  /**
   * LISTEN for other processes' changes (default true). Without it, onChange hears only this
   * store's writes (which other stores still hear: every store NOTIFYs).
   */
  listen?: boolean;
  /** How often the listening connection is checked, in ms (default 5000). */
  listenCheckMs?: number;
  /** Shown in pg_stat_activity. Default "turnout". */
  applicationName?: string;
}

export const DEFAULT_POOL_SIZE = 10;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
export const DEFAULT_LOCK_TIMEOUT_MS = 5000;

/**
 * Longest wait between two attempts to bring the listening connection back. The back-off
 * starts at 100 ms and doubles up to this: an attempt against a server that is down costs one
 * refused connection, while a longer wait would leave routers deaf to new route tables (on
 * their fingerprint polling alone) for that long after the server is back. Each wait is
 * jittered down by up to half, so that a fleet does not reconnect in lockstep.
 */
export const RECONNECT_MAX_MS = 1000;

/** The channel every Turnout store on a database NOTIFYs and LISTENs on. */
export const CHANGE_CHANNEL = "turnout_changes";

/**
 * Key of the advisory lock that serializes writers (one per database: advisory locks are
 * scoped to the database). An arbitrary constant, distinct from kysely's migration lock.
 */
export const WRITE_LOCK_KEY = 7_215_148_237_605_902_001n;

const ALL_CHANGES: readonly StoreChange[] = [
  "resources",
  "commands",
  "routeTables",
  "status",
  "routers",
];

/** A PostgreSQL URL, checked, with the password hidden for messages. */
export interface PostgresUrl {
  url: string;
  /** The URL with any password replaced by "***". */
  redacted: string;
  host: string;
  port: number;
  database: string;
  user: string | undefined;
}

/**
 * Checks a `--store` URL before anything connects. Throws TURNOUT_ERR_STORE_URL_INVALID
 * naming what is wrong.
 */
export function parsePostgresUrl(url: string): PostgresUrl {
  const bad = (why: string) =>
    new TurnoutError(
      "TURNOUT_ERR_STORE_URL_INVALID",
      `invalid store URL ${JSON.stringify(redact(url))}: ${why}; expected postgres://USER@HOST:PORT/DB`,
      { path: "store" },
    );
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad("it is not a URL");
  }
  if (u.protocol !== "postgres:" && u.protocol !== "postgresql:")
    throw bad(`the scheme must be postgres:// or postgresql://, not ${u.protocol}//`);
  if (u.hostname === "") throw bad("it names no host");
  const database = decodeURIComponent(u.pathname.replace(/^\//, ""));
  if (database === "") throw bad("it names no database (the path after the host)");
  if (database.includes("/")) throw bad(`the database name ${JSON.stringify(database)} has a /`);
  const port = u.port === "" ? 5432 : Number(u.port);
  return {
    url,
    redacted: redact(url),
    host: u.hostname,
    port,
    database,
    user: u.username === "" ? undefined : decodeURIComponent(u.username),
  };
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    // Not a URL: hide whatever sits between "://user:" and "@".
    return url.replace(/(\/\/[^/:@]*:)[^/@]*@/, "$1***@");
  }
}

/** node-postgres type parsers: BIGINT and NUMERIC as numbers (see the top of this file). */
const INT8_OID = 20;
const NUMERIC_OID = 1700;
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if ((format ?? "text") === "text" && (oid === INT8_OID || oid === NUMERIC_OID)) {
      return (value: string) => Number(value);
    }
    return pg.types.getTypeParser(oid, format as "text");
  },
} as pg.CustomTypesConfig;

/** A store over PostgreSQL; `openPostgresStore` makes one. */
export class PostgresStore extends SqlStore {
  readonly url: PostgresUrl;
  readonly #feed: NotifyChangeFeed | undefined;

  constructor(opts: { db: Kysely<Database>; url: PostgresUrl; feed?: NotifyChangeFeed }) {
    super({
      db: opts.db,
      mapError: (err) => mapPostgresError(err, opts.url),
      ...(opts.feed !== undefined ? { changeFeed: opts.feed } : {}),
    });
    this.url = opts.url;
    this.#feed = opts.feed;
  }

  /** Whether the listening connection is up (always false with `listen: false`). */
  get listening(): boolean {
    return this.#feed?.connected ?? false;
  }

  /** The listening connection's backend pid (diagnostics and tests), or null when down. */
  get listenerPid(): number | null {
    return this.#feed?.backendPid ?? null;
  }
}

/**
 * Opens a PostgreSQL store: checks the URL, connects, brings the schema up to date and starts
 * listening for other processes' changes. Nothing is written to the database when it fails.
 *
 * @example const store = await openPostgresStore({ url: "postgres://turnout@db:5432/turnout" });
 */
export async function openPostgresStore(opts: PostgresStoreOptions): Promise<PostgresStore> {
  const { db, url } = await openPostgresDatabase(opts);
  // Every store announces its writes; only listening ones hear the others'.
  const feed = new NotifyChangeFeed(url, {
    applicationName: `${opts.applicationName ?? "turnout"} listen`,
    connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    checkMs: opts.listenCheckMs ?? 5000,
  });
  try {
    // Listening before the store is handed out: a write by another process after open
    // returns is never missed.
    if (opts.listen !== false) await feed.connectFirst();
  } catch (err) {
    await feed.close();
    await db.destroy();
    throw mapPostgresError(err, url);
  }
  return new PostgresStore({ db, url, feed });
}

/**
 * How long a session may sit idle inside a transaction before the server ends it. Long enough
 * for a process whose event loop is starved for a moment; short beside the 5 s lease.
 */
const IDLE_IN_TRANSACTION_MS = 3_000;

/**
 * The database under the store: pooled, migrated, typed by `schema.ts`. Exported for tests and
 * diagnostics; everything else should use `openPostgresStore`. Destroying `db` ends the pool.
 */
export async function openPostgresDatabase(
  opts: PostgresStoreOptions,
): Promise<{ db: Kysely<Database>; pool: pg.Pool; url: PostgresUrl; migrated: string[] }> {
  const url = parsePostgresUrl(opts.url);
  const pool = new pg.Pool({
    connectionString: url.url,
    max: opts.poolSize ?? DEFAULT_POOL_SIZE,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
    application_name: opts.applicationName ?? "turnout",
    keepAlive: true,
    // Writers are serialized by an advisory lock held until COMMIT. A process cut off by the
    // network between BEGIN and COMMIT (silent: no FIN reaches the server) would hold it until
    // the server's TCP keepalive gave up, hours later, and every write of the fleet (route
    // tables, the controller lease, applies) would fail meanwhile. Turnout's transactions are
    // statements sent back to back, so a session idle inside one for this long is gone: the
    // server ends it and the lock is free (seen in test/e2e/fleet-netns.test.ts).
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
    types,
  });
  // An idle connection that breaks (server restart, network cut) is reported here; without a
  // handler it would crash the process. The pool drops it and opens a new one when needed.
  pool.on("error", () => undefined);
  // A connection that breaks while checked out (mid-query) also emits "error" on its client,
  // where the pool listens only while it is idle: unheard, that would crash the process. The
  // query in flight gets the error anyway (TURNOUT_ERR_STORE_UNAVAILABLE), and the pool
  // discards the broken client when it comes back.
  pool.on("connect", (client) => {
    client.on("error", () => undefined);
  });
  const db = new Kysely<Database>({
    dialect: new SerializedPostgresDialect(pool, opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS),
  });
  try {
    // Connect first, so that an unreachable server, refused credentials or a missing database
    // are reported as such, not as a failed migration.
    await sql`select 1`.execute(db);
    const migrated = await migrateToLatest(db as Kysely<unknown>, "postgres");
    return { db, pool, url, migrated };
  } catch (err) {
    await db.destroy().catch(() => undefined);
    throw mapPostgresError(err, url);
  }
}

/** kysely's PostgreSQL dialect whose transactions take the writers' lock first. */
class SerializedPostgresDialect extends PostgresDialect {
  readonly #pool: pg.Pool;
  readonly #lockTimeoutMs: number;

  constructor(pool: pg.Pool, lockTimeoutMs: number) {
    super({ pool });
    this.#pool = pool;
    this.#lockTimeoutMs = lockTimeoutMs;
  }

  override createDriver(): Driver {
    return new SerializedPostgresDriver(this.#pool, this.#lockTimeoutMs);
  }
}

class SerializedPostgresDriver extends PostgresDriver {
  readonly #begin: string;

  constructor(pool: pg.Pool, lockTimeoutMs: number) {
    super({ pool });
    if (!Number.isInteger(lockTimeoutMs) || lockTimeoutMs < 1)
      throw new Error(`lockTimeoutMs must be a whole number >= 1, got ${lockTimeoutMs}`);
    // One round trip (a simple-protocol query may hold several statements). lock_timeout is
    // local to the transaction and also bounds waits for row locks after the advisory lock.
    this.#begin = [
      "begin isolation level read committed",
      `set local lock_timeout = ${lockTimeoutMs}`,
      `select pg_advisory_xact_lock(${WRITE_LOCK_KEY})`,
    ].join("; ");
  }

  /** See the top of this file for why every transaction takes the same lock. */
  override async beginTransaction(
    connection: DatabaseConnection,
    settings: TransactionSettings,
  ): Promise<void> {
    if (settings.isolationLevel !== undefined || settings.accessMode !== undefined) {
      throw new Error("the PostgreSQL store runs every transaction at READ COMMITTED");
    }
    try {
      await connection.executeQuery(CompiledQuery.raw(this.#begin));
    } catch (err) {
      // BEGIN went through but the lock did not (lock_timeout, cancel): the connection is in
      // an aborted transaction, and kysely does not roll back a failed BEGIN. Roll back here so
      // that the pool never hands out a connection stuck in one.
      await super
        .rollbackTransaction(connection as Parameters<PostgresDriver["rollbackTransaction"]>[0])
        .catch(() => undefined);
      throw err;
    }
  }
}

/**
 * NOTIFY inside write transactions, LISTEN on a connection of its own. Payload: the sending
 * store's id and the kinds of change, e.g. `3f2c... routeTables,status`; a store ignores its own
 * notifications (its listeners were told directly, after the commit).
 */
class NotifyChangeFeed implements ChangeFeed {
  readonly id = randomUUID();
  readonly #url: PostgresUrl;
  readonly #opts: { applicationName: string; connectTimeoutMs: number; checkMs: number };
  #emit: ((what: StoreChange) => void) | undefined;
  #client: pg.Client | undefined;
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #checkTimer: NodeJS.Timeout | undefined;
  #backoffMs = 0;
  backendPid: number | null = null;

  constructor(
    url: PostgresUrl,
    opts: { applicationName: string; connectTimeoutMs: number; checkMs: number },
  ) {
    this.#url = url;
    this.#opts = opts;
  }

  get connected(): boolean {
    return this.#client !== undefined;
  }

  async publish(trx: Transaction<Database>, changed: ReadonlySet<StoreChange>): Promise<void> {
    await sql`select pg_notify(${CHANGE_CHANNEL}, ${`${this.id} ${[...changed].join(",")}`})`.execute(
      trx,
    );
  }

  start(emit: (what: StoreChange) => void): void {
    this.#emit = emit;
  }

  /** The first connection: failures here fail the open (bad URL, server down, credentials). */
  async connectFirst(): Promise<void> {
    await this.#connect();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#checkTimer);
    const c = this.#client;
    this.#client = undefined;
    this.backendPid = null;
    await c?.end().catch(() => undefined);
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.#url.url,
      application_name: this.#opts.applicationName,
      connectionTimeoutMillis: this.#opts.connectTimeoutMs,
      keepAlive: true,
      types,
    });
    const lost = () => this.#lost(client);
    client.on("error", lost);
    client.on("end", lost);
    client.on("notification", (msg) => {
      if (msg.channel !== CHANGE_CHANNEL || msg.payload === undefined) return;
      const space = msg.payload.indexOf(" ");
      if (space < 0 || msg.payload.slice(0, space) === this.id) return;
      for (const what of msg.payload.slice(space + 1).split(",")) {
        if ((ALL_CHANGES as readonly string[]).includes(what)) this.#emit?.(what as StoreChange);
      }
    });
    try {
      await client.connect();
      await client.query(`listen ${CHANGE_CHANNEL}`);
      const r = await client.query<{ pid: number }>("select pg_backend_pid() as pid");
      this.backendPid = r.rows[0]?.pid ?? null;
    } catch (err) {
      client.removeAllListeners("end");
      client.on("error", () => undefined);
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
    this.#backoffMs = 0;
    this.#scheduleCheck(client);
  }

  /**
   * A connection can die silently (a cut network sends no FIN): check it now and then with a
   * trivial query, and treat one that does not answer within the interval as lost.
   */
  #scheduleCheck(client: pg.Client): void {
    this.#checkTimer = setTimeout(() => {
      if (this.#client !== client) return;
      let answered = false;
      const deadline = setTimeout(() => {
        if (!answered) this.#lost(client);
      }, this.#opts.checkMs);
      deadline.unref();
      client.query("select 1").then(
        () => {
          answered = true;
          clearTimeout(deadline);
          this.#scheduleCheck(client);
        },
        () => this.#lost(client),
      );
    }, this.#opts.checkMs);
    this.#checkTimer.unref();
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    this.backendPid = null;
    clearTimeout(this.#checkTimer);
    client.removeAllListeners("end");
    client.removeAllListeners("notification");
    client.on("error", () => undefined);
    // A stuck socket would otherwise keep the process alive and the server's slot taken.
    (
      client as unknown as { connection?: { stream?: { destroy(): void } } }
    ).connection?.stream?.destroy();
    client.end().catch(() => undefined);
    this.#retry();
  }

  #retry(): void {
    if (this.#closed) return;
    this.#backoffMs = Math.min(RECONNECT_MAX_MS, this.#backoffMs === 0 ? 100 : this.#backoffMs * 2);
    const delayMs = this.#backoffMs * (0.5 + Math.random() / 2);
    this.#retryTimer = setTimeout(() => {
      this.#connect().then(
        () => {
          // Whatever was notified while we were away is lost: everything may have changed.
          if (!this.#closed) for (const what of ALL_CHANGES) this.#emit?.(what);
        },
        () => this.#retry(),
      );
    }, delayMs);
    this.#retryTimer.unref();
  }
}

/** SQLSTATE classes and codes that mean "cannot use the database now", not "a bug". */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0[1-4]|55P03|40P01|40001|58)/;
const AUTH_SQLSTATE = /^28/;
/** Errors of the socket or of node-postgres itself (no SQLSTATE). */
const NET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);
const CLIENT_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|not queryable|Client was closed|Cannot use a pool after calling end/;

/**
 * Turns PostgreSQL and connection errors into Turnout's: unreachable or overloaded ->
 * TURNOUT_ERR_STORE_UNAVAILABLE, refused credentials -> TURNOUT_ERR_STORE_AUTH_FAILED, each with
 * a message that says what to check. Anything else (constraint violations, SQL errors,
 * TurnoutErrors) passes through unchanged: it is a bug, and retrying would not help.
 */
export function mapPostgresError(err: unknown, url: PostgresUrl): unknown {
  if (err instanceof TurnoutError || !(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  const sqlState = typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  const where = `PostgreSQL at ${url.host}:${url.port} (database ${url.database})`;
  let out: TurnoutError | undefined;
  if (
    (sqlState !== undefined && AUTH_SQLSTATE.test(sqlState)) ||
    /client password must be a string|SASL/.test(err.message)
  ) {
    out = new TurnoutError(
      "TURNOUT_ERR_STORE_AUTH_FAILED",
      `${where} refused the credentials of ${url.user ?? "the default user"}: ${err.message}; check the user and password in the store URL (${url.redacted}) and the server's pg_hba.conf`,
      { ...(sqlState !== undefined ? { sqlState } : {}) },
    );
  } else if (sqlState === "3D000") {
    out = new TurnoutError(
      "TURNOUT_ERR_STORE_UNAVAILABLE",
      `${where}: ${err.message}; create it (createdb ${url.database}) or fix the store URL`,
      { sqlState },
    );
  } else if (sqlState !== undefined && UNAVAILABLE_SQLSTATE.test(sqlState)) {
    out = new TurnoutError("TURNOUT_ERR_STORE_UNAVAILABLE", `${where}: ${err.message}`, {
      sqlState,
    });
  } else if (
    (typeof code === "string" && NET_CODES.has(code)) ||
    CLIENT_MESSAGES.test(err.message) ||
    (err instanceof AggregateError && err.errors.some((e) => NET_CODES.has(e?.code)))
  ) {
    out = new TurnoutError(
      "TURNOUT_ERR_STORE_UNAVAILABLE",
      `cannot reach ${where}: ${err.message || String(code)}; is the server running, and are the host and port in the store URL right?`,
      { ...(typeof code === "string" ? { errno: code } : {}) },
    );
  }
  if (out === undefined) return err;
  out.cause = err;
  return out;
}

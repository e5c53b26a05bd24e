/**
 * The `Store` written once over kysely, for every SQL database Turnout supports. A dialect
 * module (`sqlite/`, `postgres/`) opens the connection, runs the migrations and hands
 * the `Kysely` instance here.
 *
 * What this class needs from the dialect: write transactions (`db.transaction()`) that are
 * serialized against every other writer, in this process or another. Several read-then-write
 * steps in the query modules (generations, "is the Service still there?") rely on it. SQLite
 * gets it from `BEGIN IMMEDIATE`; PostgreSQL (`postgres/`) from a transaction-level advisory
 * lock taken right after BEGIN, at READ COMMITTED. Route-table revisions and the fingerprint
 * counter are bumped with single atomic upserts, so they would stay correct even without it.
 *
 * Optionally, a `ChangeFeed` from the dialect: it announces each write's changes to other
 * processes inside the write's transaction, and hands theirs to this store's listeners.
 *
 * Everything correctness depends on lives in the database, never in this object, because
 * routers and the controller may each open the same database from their own process.
 *
 * This class holds what every operation shares (transactions, error mapping, close tracking,
 * change notification); the queries live beside it, one module per group of tables:
 * `sql-resources.ts`, `sql-service-state.ts` (status, route tables), `sql-commands.ts`,
 * `sql-events.ts`, `sql-controller.ts` (the commit, writer epochs and the lease),
 * `sql-measurements.ts` and `sql-routers.ts`. Feature stores (`features.ts`) reach the same
 * database through `transact` and `query`.
 */
import type { Kysely, Transaction } from "kysely";
import type {
  CommandDraft,
  EventDraft,
  Resource,
  ResourceKind,
  RouteTable,
  ServiceStatus,
  TurnoutEvent,
} from "../core/model.js";
import { TurnoutError } from "../errors.js";
import type { Database } from "./schema.js";
import * as commands from "./sql-commands.js";
import * as controller from "./sql-controller.js";
import * as events from "./sql-events.js";
import * as measurements from "./sql-measurements.js";
import * as resources from "./sql-resources.js";
import * as routers from "./sql-routers.js";
import * as serviceState from "./sql-service-state.js";
import type {
  ApplyOutcome,
  ControllerCommit,
  ControllerLease,
  LeadAnswer,
  LeadRequest,
  MeasurementQuery,
  MeasurementRow,
  RouterReport,
  Store,
  StoreChange,
  StoredCommand,
  StoredResource,
  WriterEpoch,
} from "./store.js";

type ChangeListener = (what: StoreChange) => void;

export interface SqlStoreOptions {
  db: Kysely<Database>;
  /**
   * Turns a driver error into what callers should see, e.g. SQLite's SQLITE_BUSY into
   * TURNOUT_ERR_STORE_UNAVAILABLE. Errors it does not recognise should come back unchanged:
   * a constraint violation is a bug, and hiding it behind "unavailable" would invite retries.
   */
  mapError?: (err: unknown) => unknown;
  /** Cross-process change notification (PostgreSQL's LISTEN/NOTIFY); none for SQLite. */
  changeFeed?: ChangeFeed;
}

/**
 * How a dialect tells other processes about this store's writes and hears about theirs, so
 * that `onChange` fires for changes written anywhere, not only through this instance.
 */
export interface ChangeFeed {
  /**
   * Runs inside every write transaction that changed something, after its writes and just
   * before its commit, so that the announcement commits (or rolls back) with them.
   */
  publish(trx: Transaction<Database>, changed: ReadonlySet<StoreChange>): Promise<void>;
  /** Called once, by the store's constructor: deliver other processes' changes to `emit`. */
  start(emit: (what: StoreChange) => void): void;
  /** Stops listening; called by `close()` before the database is closed. */
  close(): Promise<void>;
}

export { SERVICE_DELETED_MESSAGE } from "./sql-commands.js";

export class SqlStore implements Store {
  readonly #db: Kysely<Database>;
  readonly #mapError: (err: unknown) => unknown;
  readonly #listeners = new Set<{ listener: ChangeListener }>();
  /** Operations in flight, so that close() lets them finish instead of cutting them off. */
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;
  readonly #changeFeed: ChangeFeed | undefined;

  constructor(opts: SqlStoreOptions) {
    this.#db = opts.db;
    this.#mapError = opts.mapError ?? ((e) => e);
    this.#changeFeed = opts.changeFeed;
    this.#changeFeed?.start((what) => this.#notify(new Set([what])));
  }

  // The Store's operations: each one transaction (`#write`) or read (`#read`) around the
  // queries of its module, where its behaviour is documented.

  /** One transaction for all: if any resource cannot be stored, none is, and nobody is told. */
  applyResources(batch: Resource[], opts: resources.ResourceChange): Promise<ApplyOutcome[]> {
    return this.#write((trx, changed) => resources.applyResources(trx, changed, batch, opts));
  }

  getResource<K extends ResourceKind>(
    kind: K,
    name: string,
  ): Promise<StoredResource<Extract<Resource, { kind: K }>> | null> {
    return this.#read((db) => resources.getResource(db, kind, name));
  }

  listResources<K extends ResourceKind>(
    kind: K,
  ): Promise<StoredResource<Extract<Resource, { kind: K }>>[]> {
    return this.#read((db) => resources.listResources(db, kind));
  }

  deleteResource(
    kind: ResourceKind,
    name: string,
    opts: resources.ResourceChange,
  ): Promise<boolean> {
    return this.#write((trx, changed) => resources.deleteResource(trx, changed, kind, name, opts));
  }

  getStatus(service: string): Promise<ServiceStatus | null> {
    return this.#read((db) => serviceState.getStatus(db, service));
  }

  getRouteTable(service: string): Promise<RouteTable | null> {
    return this.#read((db) => serviceState.getRouteTable(db, service));
  }

  listRouteTables(): Promise<RouteTable[]> {
    return this.#read((db) => serviceState.listRouteTables(db));
  }

  routeTablesFingerprint(): Promise<string> {
    return this.#read((db) => serviceState.routeTablesFingerprint(db));
  }

  enqueueCommand(cmd: CommandDraft, now: number): Promise<StoredCommand> {
    return this.#write((trx, changed) => commands.enqueueCommand(trx, changed, cmd, now));
  }

  getCommand(id: number): Promise<StoredCommand | null> {
    return this.#read((db) => commands.getCommand(db, id));
  }

  pendingCommands(service?: string): Promise<StoredCommand[]> {
    return this.#read((db) => commands.pendingCommands(db, service));
  }

  async appendEvents(drafts: EventDraft[]): Promise<void> {
    if (drafts.length === 0) return;
    await this.#write((trx) => events.insertEvents(trx, drafts));
  }

  async listEvents(service: string, page: events.EventPage = {}): Promise<TurnoutEvent[]> {
    if (events.eventPageLimit(page) === 0) return [];
    return this.#read((db) => events.listEvents(db, service, page));
  }

  commit(c: ControllerCommit): Promise<{ routeTable?: RouteTable }> {
    return this.#write((trx, changed) => controller.commit(trx, changed, c));
  }

  acquireWriterEpoch(holder: string, now: number): Promise<number> {
    return this.#write((trx) => controller.acquireWriterEpoch(trx, holder, now));
  }

  leadController(req: LeadRequest): Promise<LeadAnswer> {
    return this.#write((trx) => controller.leadController(trx, req));
  }

  async releaseController(holder: string, epoch: number, now: number): Promise<void> {
    await this.#write((trx) => controller.releaseController(trx, holder, epoch, now));
  }

  controllerLease(): Promise<ControllerLease | null> {
    return this.#read((db) => controller.controllerLease(db));
  }

  currentWriterEpoch(): Promise<WriterEpoch | null> {
    return this.#read((db) => controller.currentWriterEpoch(db));
  }

  /** One transaction for all rows; notifies nobody. */
  async writeMeasurements(rows: MeasurementRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.#write((trx) => measurements.writeMeasurements(trx, rows));
  }

  readMeasurements(q: MeasurementQuery): Promise<MeasurementRow[]> {
    return this.#read((db) => measurements.readMeasurements(db, q));
  }

  pruneMeasurements(olderThanSec: number): Promise<number> {
    return this.#write((trx) => measurements.pruneMeasurements(trx, olderThanSec));
  }

  async reportRouter(r: RouterReport): Promise<void> {
    await this.#write((trx, changed) => routers.reportRouter(trx, changed, r));
  }

  listRouters(): Promise<RouterReport[]> {
    return this.#read((db) => routers.listRouters(db));
  }

  removeRouter(id: string): Promise<boolean> {
    return this.#write((trx, changed) => routers.removeRouter(trx, changed, id));
  }

  pruneRouters(heartbeatBefore: number): Promise<number> {
    return this.#write((trx, changed) => routers.pruneRouters(trx, changed, heartbeatBefore));
  }

  // -------------------------------------------------------------------------------------
  // Notifications and lifecycle
  // -------------------------------------------------------------------------------------

  /**
   * Calls `listener` after each committed write through this instance that changed
   * something: once per kind of change, after the transaction has committed (never from
   * inside one, so a listener may read the store and sees the new data; a rolled-back write
   * calls nothing). A listener that throws is reported as a process warning and does not fail
   * the write, which has already happened: an error there would invite a duplicate retry.
   */
  onChange(listener: ChangeListener): () => void {
    // Wrapped so that subscribing the same function twice gives two independent subscriptions.
    const entry = { listener };
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** Waits for operations in flight, then closes the database. Calling it again does nothing. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    await Promise.allSettled([...this.#inflight]);
    await this.#changeFeed?.close();
    await this.#db.destroy();
  }

  async #read<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.#track(() => fn(this.#db));
  }

  /**
   * For feature stores (experiments, flags, shadow reports: `features.ts`) that keep their own
   * tables in the same database: a write transaction with this store's error mapping, close
   * tracking and change notification (add what changed to `changed`). Their tables are declared
   * in `schema.ts` with the others; their migrations go in `migrations/`.
   */
  transact<T>(
    fn: (trx: Transaction<Database>, changed: Set<StoreChange>) => Promise<T>,
  ): Promise<T> {
    return this.#write(fn);
  }

  /** A read for feature stores, like `transact` (no transaction, no notification). */
  query<T>(fn: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.#read(fn);
  }

  /**
   * Runs `fn` in a write transaction, then tells listeners what it changed. `changed` is only
   * read after the commit succeeded, so a rollback notifies nobody.
   */
  async #write<T>(
    fn: (trx: Transaction<Database>, changed: Set<StoreChange>) => Promise<T>,
  ): Promise<T> {
    const changed = new Set<StoreChange>();
    const feed = this.#changeFeed;
    const result = await this.#track(() =>
      this.#db.transaction().execute(async (trx) => {
        const r = await fn(trx, changed);
        if (feed !== undefined && changed.size > 0) await feed.publish(trx, changed);
        return r;
      }),
    );
    this.#notify(changed);
    return result;
  }

  async #track<T>(op: () => Promise<T>): Promise<T> {
    if (this.#closed)
      throw new TurnoutError("TURNOUT_ERR_STORE_UNAVAILABLE", "the store is closed");
    const p = op();
    this.#inflight.add(p);
    try {
      return await p;
    } catch (err) {
      throw this.#mapError(err);
    } finally {
      this.#inflight.delete(p);
    }
  }

  #notify(changed: Set<StoreChange>): void {
    if (changed.size === 0) return;
    // A copy, so that a listener unsubscribing (itself or another) does not skip anyone.
    const entries = [...this.#listeners];
    for (const what of changed) {
      for (const { listener } of entries) {
        try {
          listener(what);
        } catch (err) {
          process.emitWarning(err instanceof Error ? err : String(err), {
            type: "TurnoutStoreListenerError",
          });
        }
      }
    }
  }
}

/**
 * The `Store` written once over kysely, for every SQL database Turnout supports. A dialect
 * module (`sqlite/`, `postgres/`) opens the connection, runs the migrations and hands
 * the `Kysely` instance here.
 *
 * What this class needs from the dialect: write transactions (`db.transaction()`) that are
 * serialized against every other writer, in this process or another. Several read-then-write
 * steps below (generations, "is the Service still there?") rely on it. SQLite gets it from
 * `BEGIN IMMEDIATE`; PostgreSQL (`postgres/`) from a transaction-level advisory lock taken
 * right after BEGIN, at READ COMMITTED. Route-table revisions and the fingerprint counter are
 * bumped with single atomic upserts, so they would stay correct even without it.
 *
 * Optionally, a `ChangeFeed` from the dialect: it announces each write's changes to other
 * processes inside the write's transaction, and hands theirs to this store's listeners.
 *
 * Everything correctness depends on lives in the database, never in this object, because
 * routers and the controller may each open the same database from their own process.
 */
import type { Kysely, Transaction } from "kysely";
import {
  type CommandDraft,
  type EventDraft,
  RESOURCE_KINDS,
  type Resource,
  type ResourceKind,
  type RouteTable,
  type ServiceStatus,
  type TurnoutEvent,
} from "../core/model.js";
import { TurnoutError } from "../errors.js";
import { canonicalJson } from "./json.js";
import {
  experimentRow,
  mapCommand,
  mapControllerLease,
  mapEvent,
  mapMeasurement,
  mapResource,
  mapRouter,
  mapRouteTable,
  mapStatus,
  mapWriterEpoch,
  type RouteTableBody,
} from "./mappers.js";
import { type AppendedEvent, enqueueNotifications } from "./outbox-store.js";
import { COUNTER_ROUTE_TABLES, type Database, WRITER_ROLE_CONTROLLER } from "./schema.js";
import type {
  ApplyAction,
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

/** Message of commands rejected because their Service was deleted. */
export const SERVICE_DELETED_MESSAGE = "service deleted";

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

  // -------------------------------------------------------------------------------------
  // Resources
  // -------------------------------------------------------------------------------------

  /**
   * Applies all resources in ONE transaction; if any of them throws (invalid key, a value JSON
   * cannot hold, a database error), nothing of the call is stored and no listener is told.
   *
   * Content is compared as canonical JSON of the whole resource (keys sorted at every level),
   * so the order of keys in the user's YAML never counts as a change:
   * - new: generation 1, action "created";
   * - different content: generation + 1, action "configured";
   * - same content: action "unchanged", same generation, nothing written, no event.
   * Each created/configured resource also gets a `resource_revisions` row and a
   * "ResourceApplied" event. Events of a Service carry the Service's name as `service`; events
   * of other kinds (AnalysisTemplate...) carry service "", so that a template that happens to
   * share a Service's name does not show up in that Service's history.
   *
   * Outcomes come back in input order. The same resource twice in one call is applied twice
   * in order (the second sees the first), which validation upstream is expected to reject.
   */
  async applyResources(
    resources: Resource[],
    opts: { actor: string; now: number },
  ): Promise<ApplyOutcome[]> {
    return this.#write(async (trx, changed) => {
      const outcomes: ApplyOutcome[] = [];
      for (const resource of resources) {
        const { kind, name } = resourceKey(resource);
        // Serialized inside the transaction, one by one: a resource that cannot be stored
        // fails the call after earlier ones were written, and the rollback undoes those.
        const body = canonicalJson(resource);
        const existing = await trx
          .selectFrom("resources")
          .select(["generation", "body"])
          .where("kind", "=", kind)
          .where("name", "=", name)
          .executeTakeFirst();

        let action: ApplyAction;
        let generation: number;
        if (existing === undefined) {
          action = "created";
          generation = 1;
          await trx
            .insertInto("resources")
            .values({ kind, name, generation, body, created_at: opts.now, updated_at: opts.now })
            .execute();
        } else if (existing.body === body) {
          outcomes.push({
            kind,
            name,
            action: "unchanged",
            generation: Number(existing.generation),
          });
          continue;
        } else {
          action = "configured";
          generation = Number(existing.generation) + 1;
          await trx
            .updateTable("resources")
            .set({ generation, body, updated_at: opts.now })
            .where("kind", "=", kind)
            .where("name", "=", name)
            .execute();
        }

        await trx
          .insertInto("resource_revisions")
          .values({ kind, name, generation, body, applied_at: opts.now, actor: opts.actor })
          .execute();
        await insertEvents(trx, [
          {
            service: eventService(kind, name),
            type: "ResourceApplied",
            actor: opts.actor,
            message: `${kind}/${name} ${action} (generation ${generation})`,
            data: { kind, name, generation, action },
            time: opts.now,
          },
        ]);
        changed.add("resources");
        outcomes.push({ kind, name, action, generation });
      }
      return outcomes;
    });
  }

  async getResource<K extends ResourceKind>(
    kind: K,
    name: string,
  ): Promise<StoredResource<Extract<Resource, { kind: K }>> | null> {
    return this.#read(async (db) => {
      const row = await db
        .selectFrom("resources")
        .selectAll()
        .where("kind", "=", kind)
        .where("name", "=", name)
        .executeTakeFirst();
      return row === undefined
        ? null
        : (mapResource(row) as StoredResource<Extract<Resource, { kind: K }>>);
    });
  }

  /** Resources of one kind, by name. */
  async listResources<K extends ResourceKind>(
    kind: K,
  ): Promise<StoredResource<Extract<Resource, { kind: K }>>[]> {
    return this.#read(async (db) => {
      const rows = await db
        .selectFrom("resources")
        .selectAll()
        .where("kind", "=", kind)
        .orderBy("name")
        .execute();
      return rows.map((r) => mapResource(r) as StoredResource<Extract<Resource, { kind: K }>>);
    });
  }

  /**
   * Deletes a resource; false when there was none. Deleting a Service also deletes its status
   * and route table (routers stop serving it at their next reload) and rejects its pending
   * commands with message "service deleted", so that a CLI waiting on one gets an answer.
   * Events are kept: the history of a deleted service survives, and a "ResourceDeleted" event
   * is appended to it. Revisions are kept too. Applying the resource again starts over at
   * generation 1, as Kubernetes does.
   */
  async deleteResource(
    kind: ResourceKind,
    name: string,
    opts: { actor: string; now: number },
  ): Promise<boolean> {
    return this.#write(async (trx, changed) => {
      const deleted = await trx
        .deleteFrom("resources")
        .where("kind", "=", kind)
        .where("name", "=", name)
        .returning("generation")
        .executeTakeFirst();
      if (deleted === undefined) return false;
      changed.add("resources");
      const data: Record<string, unknown> = { kind, name, generation: Number(deleted.generation) };

      if (kind === "Service") {
        const status = await trx
          .deleteFrom("service_status")
          .where("service", "=", name)
          .executeTakeFirst();
        if (status.numDeletedRows > 0n) changed.add("status");
        const table = await trx
          .deleteFrom("route_tables")
          .where("service", "=", name)
          .executeTakeFirst();
        if (table.numDeletedRows > 0n) {
          await bumpRouteTablesCounter(trx);
          changed.add("routeTables");
        }
        const rejected = await trx
          .updateTable("commands")
          .set({
            handled_at: opts.now,
            outcome: "rejected",
            result_message: SERVICE_DELETED_MESSAGE,
          })
          .where("service", "=", name)
          .where("handled_at", "is", null)
          .returning("id")
          .execute();
        if (rejected.length > 0) changed.add("commands");
        data.rejectedCommands = rejected.map((r) => Number(r.id));
      }

      await insertEvents(trx, [
        {
          service: eventService(kind, name),
          type: "ResourceDeleted",
          actor: opts.actor,
          message: `${kind}/${name} deleted`,
          data,
          time: opts.now,
        },
      ]);
      return true;
    });
  }

  // -------------------------------------------------------------------------------------
  // Status and route tables
  // -------------------------------------------------------------------------------------

  async getStatus(service: string): Promise<ServiceStatus | null> {
    return this.#read(async (db) => {
      const row = await db
        .selectFrom("service_status")
        .select("body")
        .where("service", "=", service)
        .executeTakeFirst();
      return row === undefined ? null : mapStatus(row);
    });
  }

  async getRouteTable(service: string): Promise<RouteTable | null> {
    return this.#read(async (db) => {
      const row = await db
        .selectFrom("route_tables")
        .selectAll()
        .where("service", "=", service)
        .executeTakeFirst();
      return row === undefined ? null : mapRouteTable(row);
    });
  }

  /** All route tables, by service name. */
  async listRouteTables(): Promise<RouteTable[]> {
    return this.#read(async (db) => {
      const rows = await db.selectFrom("route_tables").selectAll().orderBy("service").execute();
      return rows.map(mapRouteTable);
    });
  }

  /**
   * A counter bumped in the same transaction as every route-table write or delete: one
   * primary-key lookup, and, unlike a sum of revisions, it never returns to a value a router
   * has already seen.
   */
  async routeTablesFingerprint(): Promise<string> {
    return this.#read(async (db) => {
      const row = await db
        .selectFrom("store_counters")
        .select("value")
        .where("name", "=", COUNTER_ROUTE_TABLES)
        .executeTakeFirst();
      return String(row === undefined ? 0 : Number(row.value));
    });
  }

  // -------------------------------------------------------------------------------------
  // Commands
  // -------------------------------------------------------------------------------------

  async enqueueCommand(cmd: CommandDraft, now: number): Promise<StoredCommand> {
    return this.#write(async (trx, changed) => {
      const row = await trx
        .insertInto("commands")
        .values({
          service: cmd.service,
          type: cmd.type,
          args: canonicalJson(cmd.args),
          actor: cmd.actor,
          reason: cmd.reason ?? null,
          created_at: now,
          handled_at: null,
          outcome: null,
          result_message: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      changed.add("commands");
      return mapCommand(row);
    });
  }

  async getCommand(id: number): Promise<StoredCommand | null> {
    return this.#read(async (db) => {
      const row = await db
        .selectFrom("commands")
        .selectAll()
        .where("id", "=", id)
        .executeTakeFirst();
      return row === undefined ? null : mapCommand(row);
    });
  }

  async pendingCommands(service?: string): Promise<StoredCommand[]> {
    return this.#read(async (db) => {
      let q = db.selectFrom("commands").selectAll().where("handled_at", "is", null);
      if (service !== undefined) q = q.where("service", "=", service);
      const rows = await q.orderBy("id").execute();
      return rows.map(mapCommand);
    });
  }

  // -------------------------------------------------------------------------------------
  // Events (append-only: there is no API to change or delete one)
  // -------------------------------------------------------------------------------------

  async appendEvents(events: EventDraft[]): Promise<void> {
    if (events.length === 0) return;
    await this.#write((trx) => insertEvents(trx, events));
  }

  /**
   * Events of a service in id order (the order they were appended). Ids increase across all
   * services, so `afterId` = the last id seen is a stable cursor for paging and watching.
   */
  async listEvents(
    service: string,
    opts: { afterId?: number; limit?: number } = {},
  ): Promise<TurnoutEvent[]> {
    const { afterId, limit } = opts;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
      throw new TurnoutError(
        "TURNOUT_ERR_API_BAD_REQUEST",
        `limit must be a whole number >= 0, got ${limit}`,
        {
          path: "limit",
        },
      );
    }
    if (limit === 0) return [];
    return this.#read(async (db) => {
      let q = db.selectFrom("events").selectAll().where("service", "=", service);
      if (afterId !== undefined) q = q.where("id", ">", afterId);
      q = q.orderBy("id");
      if (limit !== undefined) q = q.limit(limit);
      const rows = await q.execute();
      return rows.map(mapEvent);
    });
  }

  // -------------------------------------------------------------------------------------
  // The controller's write
  // -------------------------------------------------------------------------------------

  /**
   * Writes status, route table, events, command results and experiment rows in one transaction.
   *
   * - The route table gets revision = previous + 1 (1 for the first), assigned by an atomic
   *   upsert, and the fingerprint moves. Any `revision` on the input is ignored. The table is
   *   written even when equal to the current one: skipping unchanged tables is the
   *   controller's job (it writes once per tick, only on change).
   * - Status or route table for a Service that no longer exists throws
   *   TURNOUT_ERR_SERVICE_NOT_FOUND and writes nothing: the Service was deleted while the tick
   *   ran, and writing would resurrect a route table that routers would serve. A commit of
   *   only events (e.g. a cleanup message) is accepted for any service.
   * - Fencing first: unless `epoch` is the current writer epoch (or there is none and the
   *   commit carries none), TURNOUT_ERR_STORE_FENCED and nothing is written. The check reads
   *   the epoch inside the write transaction, which the dialect serializes against every other
   *   writer (see the top of this file), so a claim can never slip between check and write.
   * - Command results set handled_at = now. A result for a command that was already handled
   *   (say, rejected when its Service was deleted) is ignored: the first result stands. A
   *   result for an unknown command, or one of another service, is a bug and throws.
   */
  async commit(c: ControllerCommit): Promise<{ routeTable?: RouteTable }> {
    return this.#write(async (trx, changed) => {
      await checkWriterEpoch(trx, c);
      if (c.status !== undefined || c.routeTable !== undefined) {
        const service = await trx
          .selectFrom("resources")
          .select("name")
          .where("kind", "=", "Service")
          .where("name", "=", c.service)
          .executeTakeFirst();
        if (service === undefined) {
          throw new TurnoutError(
            "TURNOUT_ERR_SERVICE_NOT_FOUND",
            `cannot write the status or route table of ${c.service}: no Service of that name (deleted meanwhile?)`,
            { service: c.service },
          );
        }
      }

      if (c.status !== undefined) {
        const body = canonicalJson(c.status);
        await trx
          .insertInto("service_status")
          .values({ service: c.service, body, updated_at: c.now })
          .onConflict((oc) =>
            oc.column("service").doUpdateSet({
              body: (eb) => eb.ref("excluded.body"),
              updated_at: (eb) => eb.ref("excluded.updated_at"),
            }),
          )
          .execute();
        changed.add("status");
      }

      let routeTable: RouteTable | undefined;
      if (c.routeTable !== undefined) {
        if (c.routeTable.service !== c.service) {
          throw new TurnoutError(
            "TURNOUT_ERR_INTERNAL_BUG",
            `commit for ${c.service} carries a route table for ${c.routeTable.service}`,
          );
        }
        // Callers may pass a table they got from the store, revision included; the store
        // alone assigns revisions, and updatedAt lives in its own column.
        const {
          revision: _ignored,
          updatedAt,
          ...rest
        } = c.routeTable as Partial<Pick<RouteTable, "revision">> & Omit<RouteTable, "revision">;
        const body: RouteTableBody = rest;
        const row = await trx
          .insertInto("route_tables")
          .values({
            service: c.service,
            revision: 1,
            body: canonicalJson(body),
            updated_at: updatedAt,
          })
          .onConflict((oc) =>
            oc.column("service").doUpdateSet({
              revision: (eb) => eb("route_tables.revision", "+", 1),
              body: (eb) => eb.ref("excluded.body"),
              updated_at: (eb) => eb.ref("excluded.updated_at"),
            }),
          )
          .returningAll()
          .executeTakeFirstOrThrow();
        await bumpRouteTablesCounter(trx);
        changed.add("routeTables");
        routeTable = mapRouteTable(row);
      }

      await insertEvents(trx, c.events ?? []);

      for (const e of c.experiments ?? []) {
        const row = experimentRow(e);
        const { name: _key, ...update } = row;
        await trx
          .insertInto("experiments")
          .values(row)
          .onConflict((oc) => oc.column("name").doUpdateSet(update))
          .execute();
      }

      for (const r of c.commandResults ?? []) {
        const updated = await trx
          .updateTable("commands")
          .set({ handled_at: c.now, outcome: r.outcome, result_message: r.message })
          .where("id", "=", r.id)
          .where("service", "=", c.service)
          .where("handled_at", "is", null)
          .executeTakeFirst();
        if (updated.numUpdatedRows > 0n) {
          changed.add("commands");
          continue;
        }
        const cmd = await trx
          .selectFrom("commands")
          .select("service")
          .where("id", "=", r.id)
          .executeTakeFirst();
        if (cmd === undefined || cmd.service !== c.service) {
          throw new TurnoutError(
            "TURNOUT_ERR_INTERNAL_BUG",
            `commit for ${c.service} carries a result for command ${r.id}, which is not one of its commands`,
          );
        }
      }

      return routeTable === undefined ? {} : { routeTable };
    });
  }

  // -------------------------------------------------------------------------------------
  // Writer epoch (fencing of the controller's write)
  // -------------------------------------------------------------------------------------

  /**
   * One atomic upsert: concurrent claims get distinct, increasing epochs, and the last one to
   * commit holds the role. Lease-based election adds a condition here (the lease expired, or
   * the claimant already holds it) and leaves `commit`'s check unchanged.
   */
  async acquireWriterEpoch(holder: string, now: number): Promise<number> {
    return this.#write(async (trx) => {
      const row = await trx
        .insertInto("writer_epochs")
        .values({ role: WRITER_ROLE_CONTROLLER, epoch: 1, holder, acquired_at: now })
        .onConflict((oc) =>
          oc.column("role").doUpdateSet({
            epoch: (eb) => eb("writer_epochs.epoch", "+", 1),
            holder: (eb) => eb.ref("excluded.holder"),
            acquired_at: (eb) => eb.ref("excluded.acquired_at"),
            // A claim without a lease (one controller by the data dir's lock).
            renewals: 0,
            renewed_at: (eb) => eb.ref("excluded.acquired_at"),
            lease_ms: null,
            released: 0,
          }),
        )
        .returning("epoch")
        .executeTakeFirstOrThrow();
      return Number(row.epoch);
    });
  }

  /**
   * The election step (see `Store.leadController`). The decision is made on the row read in
   * the same write transaction, which the dialect serializes with every other write (the
   * PostgreSQL store takes its writers' lock), so two standbys that saw the same lease expire
   * cannot both take it: the second finds the epoch moved on. No clock is compared here:
   * whether a lease expired is the standby's judgement on its own clock (`takeover`).
   */
  async leadController(req: LeadRequest): Promise<LeadAnswer> {
    return this.#write(async (trx) => {
      const row = await controllerRow(trx);
      const current = row === undefined ? null : mapControllerLease(row);
      const take = async (epoch: number): Promise<LeadAnswer> => {
        const values = {
          epoch,
          holder: req.holder,
          acquired_at: req.now,
          renewals: 0,
          renewed_at: req.now,
          lease_ms: req.leaseMs,
          released: 0,
        };
        if (current === null)
          await trx
            .insertInto("writer_epochs")
            .values({ role: WRITER_ROLE_CONTROLLER, ...values })
            .execute();
        else
          await trx
            .updateTable("writer_epochs")
            .set(values)
            .where("role", "=", WRITER_ROLE_CONTROLLER)
            .execute();
        return {
          leading: true,
          lease: {
            epoch,
            holder: req.holder,
            acquiredAt: req.now,
            renewals: 0,
            renewedAt: req.now,
            leaseMs: req.leaseMs,
            released: false,
          },
        };
      };
      if (current === null) return take(1);
      if (current.released) return take(current.epoch + 1);
      if (req.renew === current.epoch && req.holder === current.holder) {
        const renewals = current.renewals + 1;
        await trx
          .updateTable("writer_epochs")
          .set({ renewals, renewed_at: req.now, lease_ms: req.leaseMs })
          .where("role", "=", WRITER_ROLE_CONTROLLER)
          .execute();
        return {
          leading: true,
          lease: { ...current, renewals, renewedAt: req.now, leaseMs: req.leaseMs },
        };
      }
      if (
        req.takeover !== undefined &&
        req.takeover.epoch === current.epoch &&
        req.takeover.renewals === current.renewals
      )
        return take(current.epoch + 1);
      return { leading: false, lease: current };
    });
  }

  async releaseController(holder: string, epoch: number, now: number): Promise<void> {
    await this.#write(async (trx) => {
      await trx
        .updateTable("writer_epochs")
        .set({ released: 1, renewed_at: now })
        .where("role", "=", WRITER_ROLE_CONTROLLER)
        .where("epoch", "=", epoch)
        .where("holder", "=", holder)
        .execute();
    });
  }

  async controllerLease(): Promise<ControllerLease | null> {
    return this.#read(async (db) => {
      const row = await controllerRow(db);
      return row === undefined ? null : mapControllerLease(row);
    });
  }

  async currentWriterEpoch(): Promise<WriterEpoch | null> {
    return this.#read(async (db) => {
      const row = await controllerRow(db);
      return row === undefined ? null : mapWriterEpoch(row);
    });
  }

  // -------------------------------------------------------------------------------------
  // Measurements (written by routers, read by analysis)
  // -------------------------------------------------------------------------------------

  /**
   * Upserts rows in one transaction, in batches of MEASUREMENT_BATCH. A row with an existing
   * key replaces it (never adds to it), so writing a second again, complete after partial or
   * again after a failed commit, is idempotent.
   */
  async writeMeasurements(rows: MeasurementRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.#write(async (trx) => {
      for (let i = 0; i < rows.length; i += MEASUREMENT_BATCH) {
        await trx
          .insertInto("measurements")
          .values(
            rows.slice(i, i + MEASUREMENT_BATCH).map((r) => ({
              service: r.service,
              second: r.second,
              version: r.version,
              labels: r.labels,
              router_id: r.routerId,
              requests: r.requests,
              s2xx: r.s2xx,
              s3xx: r.s3xx,
              s4xx: r.s4xx,
              s5xx: r.s5xx,
              upstream_errors: r.upstreamErrors,
              // Sketch.toJSON() has a fixed key order: plain JSON is canonical enough.
              latency: JSON.stringify(r.latency),
            })),
          )
          .onConflict((oc) =>
            oc.columns(["service", "second", "version", "labels", "router_id"]).doUpdateSet({
              requests: (eb) => eb.ref("excluded.requests"),
              s2xx: (eb) => eb.ref("excluded.s2xx"),
              s3xx: (eb) => eb.ref("excluded.s3xx"),
              s4xx: (eb) => eb.ref("excluded.s4xx"),
              s5xx: (eb) => eb.ref("excluded.s5xx"),
              upstream_errors: (eb) => eb.ref("excluded.upstream_errors"),
              latency: (eb) => eb.ref("excluded.latency"),
            }),
          )
          .execute();
      }
    });
  }

  async readMeasurements(q: MeasurementQuery): Promise<MeasurementRow[]> {
    return this.#read(async (db) => {
      let query = db
        .selectFrom("measurements")
        .selectAll()
        .where("service", "=", q.service)
        .where("second", ">=", q.fromSec)
        .where("second", "<", q.toSec);
      if (q.version !== undefined) query = query.where("version", "=", q.version);
      const rows = await query
        .orderBy("second")
        .orderBy("version")
        .orderBy("labels")
        .orderBy("router_id")
        .execute();
      return rows.map(mapMeasurement);
    });
  }

  async pruneMeasurements(olderThanSec: number): Promise<number> {
    return this.#write(async (trx) => {
      const r = await trx
        .deleteFrom("measurements")
        .where("second", "<", olderThanSec)
        .executeTakeFirst();
      return Number(r.numDeletedRows);
    });
  }

  // -------------------------------------------------------------------------------------
  // The router registry (written by routers, read by the controller before it stops instances)
  // -------------------------------------------------------------------------------------

  /**
   * Upserts the router and replaces its revisions. "routers" is notified only when the set of
   * revisions changed (or the router is new): a plain heartbeat tells nobody anything, and would
   * otherwise wake every listener once a second per router.
   */
  async reportRouter(r: RouterReport): Promise<void> {
    await this.#write(async (trx, changed) => {
      const known = await trx
        .selectFrom("routers")
        .select("id")
        .where("id", "=", r.id)
        .executeTakeFirst();
      const before = await trx
        .selectFrom("router_revisions")
        .select(["service", "revision"])
        .where("router_id", "=", r.id)
        .execute();
      await trx
        .insertInto("routers")
        .values({
          id: r.id,
          address: r.address,
          pid: r.pid,
          started_at: r.startedAt,
          heartbeat_at: r.heartbeatAt,
          buffers: r.buffers === undefined ? null : JSON.stringify(r.buffers),
        })
        .onConflict((oc) =>
          oc.column("id").doUpdateSet({
            address: r.address,
            pid: r.pid,
            started_at: r.startedAt,
            heartbeat_at: r.heartbeatAt,
            buffers: r.buffers === undefined ? null : JSON.stringify(r.buffers),
          }),
        )
        .execute();
      const entries = Object.entries(r.revisions);
      const same =
        before.length === entries.length &&
        before.every((b) => r.revisions[b.service] === Number(b.revision));
      if (same && known) return;
      await trx.deleteFrom("router_revisions").where("router_id", "=", r.id).execute();
      for (let i = 0; i < entries.length; i += REVISION_BATCH) {
        await trx
          .insertInto("router_revisions")
          .values(
            entries
              .slice(i, i + REVISION_BATCH)
              .map(([service, revision]) => ({ router_id: r.id, service, revision })),
          )
          .execute();
      }
      changed.add("routers");
    });
  }

  async listRouters(): Promise<RouterReport[]> {
    return this.#read(async (db) => {
      const rows = await db.selectFrom("routers").selectAll().orderBy("id").execute();
      const revisions = await db
        .selectFrom("router_revisions")
        .selectAll()
        .orderBy("router_id")
        .orderBy("service")
        .execute();
      const by = new Map<string, Record<string, number>>();
      for (const v of revisions) {
        const m = by.get(v.router_id) ?? {};
        m[v.service] = Number(v.revision);
        by.set(v.router_id, m);
      }
      return rows.map((row) => mapRouter(row, by.get(row.id) ?? {}));
    });
  }

  async removeRouter(id: string): Promise<boolean> {
    return this.#write(async (trx, changed) => {
      await trx.deleteFrom("router_revisions").where("router_id", "=", id).execute();
      const r = await trx.deleteFrom("routers").where("id", "=", id).executeTakeFirst();
      const removed = Number(r.numDeletedRows) > 0;
      if (removed) changed.add("routers");
      return removed;
    });
  }

  async pruneRouters(heartbeatBefore: number): Promise<number> {
    return this.#write(async (trx, changed) => {
      const stale = await trx
        .selectFrom("routers")
        .select("id")
        .where("heartbeat_at", "<", heartbeatBefore)
        .execute();
      if (stale.length === 0) return 0;
      const ids = stale.map((s) => s.id);
      await trx.deleteFrom("router_revisions").where("router_id", "in", ids).execute();
      await trx.deleteFrom("routers").where("id", "in", ids).execute();
      changed.add("routers");
      return ids.length;
    });
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

/** Kind and name, checked: the store is the last line before bad keys become rows. */
function resourceKey(resource: Resource): { kind: ResourceKind; name: string } {
  const kind: unknown = resource.kind;
  const name: unknown = resource.metadata?.name;
  if (!RESOURCE_KINDS.includes(kind as ResourceKind)) {
    throw new TurnoutError("TURNOUT_ERR_RESOURCE_INVALID", `unknown kind ${JSON.stringify(kind)}`, {
      path: "kind",
    });
  }
  if (typeof name !== "string" || name === "") {
    throw new TurnoutError(
      "TURNOUT_ERR_RESOURCE_INVALID",
      `${String(kind)} without metadata.name`,
      {
        path: "metadata.name",
      },
    );
  }
  return { kind: kind as ResourceKind, name };
}

/** The service an event about a resource belongs to ("" for non-Service kinds). */
function eventService(kind: ResourceKind, name: string): string {
  return kind === "Service" ? name : "";
}

/** Rows per INSERT: keeps the bound parameters far below SQLite's limit (32766). */
const EVENT_BATCH = 500;
/** Router revision rows per INSERT: 3 parameters each. */
const REVISION_BATCH = 500;
/** Measurement rows per INSERT: 12 parameters each, 6000 per statement. */
const MEASUREMENT_BATCH = 500;

async function insertEvents(trx: Transaction<Database>, events: EventDraft[]): Promise<void> {
  const appended: AppendedEvent[] = [];
  for (let i = 0; i < events.length; i += EVENT_BATCH) {
    const rows = await trx
      .insertInto("events")
      .values(
        events.slice(i, i + EVENT_BATCH).map((e) => ({
          service: e.service,
          time: e.time,
          type: e.type,
          actor: e.actor,
          message: e.message,
          data: canonicalJson(e.data),
        })),
      )
      .returning(["id", "service", "type", "time", "actor", "message", "data"])
      .execute();
    for (const r of rows) appended.push({ ...r, id: Number(r.id), time: Number(r.time) });
  }
  // Notifications go out from the outbox, written with the events or not at all.
  await enqueueNotifications(trx, appended);
}

/** The controller role's row of `writer_epochs` (its epoch and lease), if any. */
function controllerRow(db: Kysely<Database> | Transaction<Database>) {
  return db
    .selectFrom("writer_epochs")
    .selectAll()
    .where("role", "=", WRITER_ROLE_CONTROLLER)
    .executeTakeFirst();
}

/**
 * Throws TURNOUT_ERR_STORE_FENCED unless the commit carries the current writer epoch. Sound
 * because write transactions are serialized (top of this file): a claim cannot commit between
 * this read and the commit's writes. A dialect that runs writers side by side (PostgreSQL at
 * READ COMMITTED) must lock the row here (`FOR SHARE`) so that a claim waits for the commit.
 */
async function checkWriterEpoch(trx: Transaction<Database>, c: ControllerCommit): Promise<void> {
  const row = await trx
    .selectFrom("writer_epochs")
    .select(["epoch", "holder"])
    .where("role", "=", WRITER_ROLE_CONTROLLER)
    .executeTakeFirst();
  const current = row === undefined ? undefined : Number(row.epoch);
  if (c.epoch === current) return;
  const held =
    row === undefined ? "no writer has claimed one" : `epoch ${current} is held by ${row.holder}`;
  const given = c.epoch === undefined ? "no writer epoch" : `writer epoch ${c.epoch}`;
  throw new TurnoutError(
    "TURNOUT_ERR_STORE_FENCED",
    `commit for ${c.service} refused: it carries ${given}, but ${held}; another controller took over, so this one must stop acting`,
    { service: c.service, epoch: c.epoch ?? null, currentEpoch: current ?? null },
  );
}

async function bumpRouteTablesCounter(trx: Transaction<Database>): Promise<void> {
  await trx
    .insertInto("store_counters")
    .values({ name: COUNTER_ROUTE_TABLES, value: 1 })
    .onConflict((oc) =>
      oc.column("name").doUpdateSet({ value: (eb) => eb("store_counters.value", "+", 1) }),
    )
    .execute();
}

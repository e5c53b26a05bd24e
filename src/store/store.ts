/**
 * The store is Turnout's one source of truth (DESIGN invariant 1). The API writes resources
 * and commands; the controller is the only writer of status and route tables; routers read
 * route tables. Implementations: `sqlite/` (embedded default) and `postgres/`. All of them
 * pass the shared conformance suite in `store.conformance.ts`, which covers the feature stores
 * beside this one too (`features.ts`: experiments, flags, shadow reports).
 */

import type { MeasurementRow } from "../core/measurements.js";
import type {
  Command,
  CommandDraft,
  CommandResult,
  EventDraft,
  Resource,
  ResourceKind,
  RouteTable,
  ServiceStatus,
  TurnoutEvent,
} from "../core/model.js";
import type { StoredExperiment } from "./experiment-store.js";

export interface StoredResource<R extends Resource = Resource> {
  kind: R["kind"];
  name: string;
  /** Starts at 1; increases each time the resource's content changes. */
  generation: number;
  resource: R;
  createdAt: number;
  updatedAt: number;
}

/** What `onChange` listeners are told changed. */
export type StoreChange = "resources" | "commands" | "routeTables" | "status" | "routers";

export type ApplyAction = "created" | "configured" | "unchanged";

export interface ApplyOutcome {
  kind: ResourceKind;
  name: string;
  action: ApplyAction;
  generation: number;
}

export interface StoredCommand extends Command {
  /** Null while pending. */
  result: CommandResult | null;
  handledAt: number | null;
}

/** Everything one controller tick writes for one service, committed in one transaction. */
export interface ControllerCommit {
  service: string;
  /**
   * The writer epoch the controller holds (`acquireWriterEpoch`). The commit is refused with
   * TURNOUT_ERR_STORE_FENCED, writing nothing, unless it is the current epoch. Omitted only by
   * tools and tests on a store that no writer has claimed yet: once one has, a commit without
   * an epoch is refused as well.
   */
  epoch?: number;
  status?: ServiceStatus;
  /**
   * The stored status the tick decided from, as it read it (null: none was stored). When given
   * with `status` or `routeTable`, the commit is refused with TURNOUT_ERR_STORE_CONFLICT,
   * writing nothing, if the stored status is no longer that one: it was changed meanwhile by
   * other than this commit (a deleted Flag's entries taken out of `status.flags`, the Service
   * deleted and applied again), and the next tick decides again from what is stored.
   */
  statusBefore?: ServiceStatus | null;
  /** The table to put in force; the store assigns `revision` = previous + 1. */
  routeTable?: Omit<RouteTable, "revision">;
  events?: EventDraft[];
  commandResults?: CommandResult[];
  /**
   * Experiment rows to create or replace (by name): the tick's decision about the service's
   * A/B experiment, in the same transaction as the status that carries it. The controller is
   * their only writer; everyone else reads them through the `ExperimentStore`.
   */
  experiments?: StoredExperiment[];
  /** Clock ms, for handledAt. */
  now: number;
}

/** One second of one series as a router measured it (declared with the other measurement shapes). */
export type { MeasurementRow } from "../core/measurements.js";

/** Which measurements to read: one service, seconds in [fromSec, toSec), optionally one version. */
export interface MeasurementQuery {
  service: string;
  fromSec: number;
  /** Exclusive. */
  toSec: number;
  version?: string;
}

/** Who holds the controller role's writer epoch, and since when. */
export interface WriterEpoch {
  epoch: number;
  /** Free text naming the claimant, e.g. "controller 3f9a1c (pid 4242 on host-a)". */
  holder: string;
  /** Clock ms of the claim. */
  acquiredAt: number;
}

/**
 * The controller lease (several controllers on one store, one leading): the writer epoch's row
 * with the lease's fields. A standby sees the lease expire when `renewals` stands still for
 * `leaseMs` on its own clock (`src/controller/lease.ts`).
 */
export interface ControllerLease extends WriterEpoch {
  /** Renewals since `acquiredAt`; changes at each renewal. */
  renewals: number;
  /** The leader's clock ms at its last renewal (or its claim); null for a claim without lease. */
  renewedAt: number | null;
  /** The lease's duration; null for a claim without a lease (`acquireWriterEpoch`). */
  leaseMs: number | null;
  /** The holder gave the lease up (a clean stop): any controller may take it at once. */
  released: boolean;
}

/** One step of the election (`Store.leadController`). */
export interface LeadRequest {
  holder: string;
  /** The caller's clock ms (recorded, never compared with another machine's). */
  now: number;
  leaseMs: number;
  /** The epoch the caller leads with: renew it. */
  renew?: number;
  /**
   * The lease the caller saw expire: take it, if it is still exactly that one (the same epoch
   * and renewals: the leader did not renew meanwhile).
   */
  takeover?: { epoch: number; renewals: number };
}

export interface LeadAnswer {
  /** True when the caller leads after this step (with `lease.epoch`). */
  leading: boolean;
  /** The lease after this step. */
  lease: ControllerLease;
}

/**
 * What a router says about itself (the router registry): who it is, that it is alive, and
 * which route-table revision of each service it has in force. The controller stops an instance
 * only once every live router serves a table without it (DESIGN invariant 9).
 */
export interface RouterReport {
  /** Unique per router process (default `<hostname>:<pid>`); several per machine are fine. */
  id: string;
  /** Where it runs, for people (`turnout get routers`): host name and its listeners. */
  address: string;
  pid: number;
  /** Epoch ms the router started. */
  startedAt: number;
  /** Epoch ms of this report; a router is live while its last one is recent (`ROUTER_LIVE_MS`). */
  heartbeatAt: number;
  /**
   * Revision of the route table in force per service, for every service it serves. A service
   * missing here has no listener on this router, so this router sends it no request.
   */
  revisions: Record<string, number>;
  /**
   * What the router holds for the store, per kind, at this report: rows waiting to be written
   * (a store outage) and rows dropped since it started because the bound was reached. Absent
   * from routers that do not buffer (and from stores that do not keep it yet).
   */
  buffers?: RouterBuffers;
  /**
   * Services this router was given but cannot serve as their route table says, with why: a
   * listener that cannot bind its port, a table its data plane refused (an HAProxy runtime API
   * that does not answer). The controller reads it into the service's status
   * (`status.dataPlane`) and holds a rollout while any live router reports its service here.
   * Absent: none.
   */
  notServing?: RouterNotServing;
}

/** By service (a preview listener's problem is its service's): the revision and why. */
export type RouterNotServing = Record<string, { revision: number | null; reason: string }>;

/** Rows a router keeps for the store while it cannot write them, per kind (see `RouterReport`). */
export type RouterBuffers = Record<RouterBufferKind, { buffered: number; dropped: number }>;

/**
 * measurements: one row per series and second; exposures: first exposures of A/B units;
 * events: outcome events from response headers; shadow: mirror comparison aggregates.
 */
export type RouterBufferKind = "measurements" | "exposures" | "events" | "shadow";

/** A router whose last report is older than this is not live (missed ~5 heartbeats). */
export const ROUTER_LIVE_MS = 5_000;

export interface Store {
  /**
   * Applies resources in one transaction: either all are stored or none is. Content is compared
   * as canonical JSON (key order never counts): new -> generation 1 "created"; changed ->
   * generation + 1 "configured"; same -> "unchanged", same generation, nothing written. One
   * "ResourceApplied" event per created/configured resource is appended in the same transaction
   * (`service` = the name for a Service, "" for other kinds). Outcomes are in input order.
   */
  applyResources(
    resources: Resource[],
    opts: { actor: string; now: number },
  ): Promise<ApplyOutcome[]>;
  getResource<K extends ResourceKind>(
    kind: K,
    name: string,
  ): Promise<StoredResource<Extract<Resource, { kind: K }>> | null>;
  listResources<K extends ResourceKind>(
    kind: K,
  ): Promise<StoredResource<Extract<Resource, { kind: K }>>[]>;
  /**
   * Deletes a resource; false when there was none. For a Service, also deletes its status and
   * route table and rejects its pending commands ("service deleted"). For a Flag, also deletes
   * every piece of state keyed by it: a person's override (the kill switch) and what rollouts
   * put on it (`status.flags[name]` of every service), so that a flag applied again starts
   * clean; its history is kept, with a "deleted" entry. All in one transaction. Its events are
   * kept and a "ResourceDeleted" event is appended. Applied again later, it restarts at
   * generation 1.
   */
  deleteResource(
    kind: ResourceKind,
    name: string,
    opts: { actor: string; now: number },
  ): Promise<boolean>;

  getStatus(service: string): Promise<ServiceStatus | null>;

  getRouteTable(service: string): Promise<RouteTable | null>;
  listRouteTables(): Promise<RouteTable[]>;
  /**
   * A cheap, opaque fingerprint of all route tables that changes whenever any table is written
   * or deleted, and never returns to an earlier value; routers poll it to know when to reload.
   * Compare it for equality only.
   */
  routeTablesFingerprint(): Promise<string>;

  enqueueCommand(cmd: CommandDraft, now: number): Promise<StoredCommand>;
  getCommand(id: number): Promise<StoredCommand | null>;
  /** Pending commands, oldest first; all services when `service` is omitted. */
  pendingCommands(service?: string): Promise<StoredCommand[]>;

  /** Appends events on their own (e.g. the API recording an `undo`). */
  appendEvents(events: EventDraft[]): Promise<void>;
  /**
   * Events of a service, oldest first (ascending id). `afterId` (the last id seen) for paging
   * or watching. Events of non-Service resources are under service "".
   */
  listEvents(service: string, opts?: { afterId?: number; limit?: number }): Promise<TurnoutEvent[]>;

  /**
   * The controller's write: status, route table, events, command results and experiment rows,
   * atomically (one transaction per service per tick).
   * Status or route table for a Service that no longer exists fails with
   * TURNOUT_ERR_SERVICE_NOT_FOUND (it was deleted during the tick). A result for an already
   * handled command is ignored (the first result stands).
   */
  commit(c: ControllerCommit): Promise<{ routeTable?: RouteTable }>;

  /**
   * Claims the controller role: increments the writer epoch (1 for the first claim) in one
   * transaction and returns the new value, recording `holder`. From then on only commits that
   * carry this epoch are accepted; the previous holder's are refused with
   * TURNOUT_ERR_STORE_FENCED (fencing, DESIGN invariant 7). Claiming always succeeds: who may
   * claim is decided above the store (the data dir lock for `turnout up`; a lease for several
   * controllers), and the epoch makes sure that a superseded writer can never write again.
   */
  acquireWriterEpoch(holder: string, now: number): Promise<number>;
  /** The current claim of the controller role, or null when no writer has claimed it. */
  currentWriterEpoch(): Promise<WriterEpoch | null>;

  /**
   * One step of the controllers' election, in one transaction (claims are serialized with each
   * other and with `commit`'s epoch check):
   * - nobody claimed the role yet, or the holder released it: the caller takes it;
   * - `renew` is the current epoch and the caller holds it: the lease is renewed;
   * - `takeover` is exactly the current lease (the same epoch and renewals): the caller takes
   *   it, with the next epoch, which fences the old leader's commits;
   * - otherwise nothing changes and the caller does not lead.
   * Taking the role bumps the epoch (as `acquireWriterEpoch`) and restarts `renewals` at 0.
   */
  leadController(req: LeadRequest): Promise<LeadAnswer>;
  /** The leader gives the lease up (a clean stop), if it still holds `epoch`; else nothing. */
  releaseController(holder: string, epoch: number, now: number): Promise<void>;
  /** The controller role's lease, or null when no controller has claimed it. */
  controllerLease(): Promise<ControllerLease | null>;

  /**
   * Stores measurement rows in one transaction. A row whose key (service, version, labels,
   * second, router) exists replaces it: a router writes a partial second at shutdown or retries
   * after a failure, and the last write of a second is the complete one. Notifies nobody.
   */
  writeMeasurements(rows: MeasurementRow[]): Promise<void>;
  /**
   * Rows of one service with `fromSec <= second < toSec` (and the version, when given), ordered
   * by second, version, labels and router id.
   */
  readMeasurements(q: MeasurementQuery): Promise<MeasurementRow[]>;
  /** Deletes rows with `second < olderThanSec`; returns how many. */
  pruneMeasurements(olderThanSec: number): Promise<number>;

  /**
   * Registers a router or refreshes its registration (its heartbeat): replaces everything
   * stored for `report.id` in one transaction. Notifies "routers".
   */
  reportRouter(report: RouterReport): Promise<void>;
  /** Every registered router, live or not (the caller judges `heartbeatAt`), ordered by id. */
  listRouters(): Promise<RouterReport[]>;
  /**
   * Drops a router's registration (it stopped, or it has been silent long enough to forget);
   * false when there was none. Notifies "routers" when something was removed.
   */
  removeRouter(id: string): Promise<boolean>;
  /** Drops routers whose last heartbeat is before `heartbeatBefore`; returns how many. */
  pruneRouters(heartbeatBefore: number): Promise<number>;

  /**
   * Subscribe to changes written through this store instance (same process). Other processes
   * learn of changes by polling; this only makes the single-process case immediate. Listeners
   * run after the transaction committed (never for a rolled-back write), once per kind of
   * change; appending events alone notifies nobody. Returns the unsubscribe function.
   */
  onChange(listener: (what: StoreChange) => void): () => void;

  /**
   * Waits for operations in flight, then closes. Idempotent; later calls fail with
   * TURNOUT_ERR_STORE_UNAVAILABLE.
   */
  close(): Promise<void>;
}

/**
 * The store's tables as the code sees them today: every table the migrations create, with its
 * columns, is declared here once (the core store's and the feature stores': experiments,
 * flags, shadow reports, notifications; `migrations.test.ts` checks that the migrations create
 * exactly `TABLE_NAMES`). Not declared: Kysely's own bookkeeping, `kysely_migration` and
 * `kysely_migration_lock`, which its `Migrator` creates and owns. `mappers.ts` turns rows into
 * model objects. Code reads and writes them only through `Kysely<Database>`, so a column
 * renamed here fails to compile wherever it is used. Migrations do not import these types on
 * purpose: a migration describes the schema as it was when it was written, and must keep
 * compiling and meaning the same thing after this file moves on.
 *
 * Portable choices (the same schema on SQLite and PostgreSQL):
 * - JSON is stored as TEXT (canonical JSON, see `json.ts`), never as a JSON column type, so
 *   the same bytes compare equal on both databases.
 * - Clock milliseconds are BIGINT. node-postgres returns BIGINT as a string, so mappers
 *   always pass numeric columns through `Number()` rather than trusting the driver.
 */
import type { Generated } from "kysely";

/** Current content of each applied resource; one row per kind and name. */
export interface ResourcesTable {
  kind: string;
  name: string;
  /** Starts at 1; +1 whenever the canonical JSON of the resource changes. */
  generation: number;
  /** Canonical JSON of the whole resource (apiVersion, kind, metadata, spec). */
  body: string;
  created_at: number;
  updated_at: number;
}

/**
 * Every generation ever stored, kept after the resource is deleted (history survives).
 * Keyed by its own id because a resource deleted and applied again restarts at generation 1,
 * so (kind, name, generation) is not unique over time.
 */
export interface ResourceRevisionsTable {
  id: Generated<number>;
  kind: string;
  name: string;
  generation: number;
  body: string;
  applied_at: number;
  actor: string;
}

/** The controller's status of each service (JSON of `ServiceStatus`). */
export interface ServiceStatusTable {
  service: string;
  body: string;
  updated_at: number;
}

/**
 * The route table in force for each service. `revision` and `updated_at` are the only source
 * of those two fields; `body` holds the rest of the `RouteTable`.
 */
export interface RouteTablesTable {
  service: string;
  revision: number;
  body: string;
  updated_at: number;
}

/** Append-only history. `service` is "" for events about non-Service resources. */
export interface EventsTable {
  id: Generated<number>;
  service: string;
  time: number;
  type: string;
  actor: string;
  message: string;
  data: string;
}

/** Commands from the API to the controller; pending while `handled_at` is null. */
export interface CommandsTable {
  id: Generated<number>;
  service: string;
  type: string;
  args: string;
  actor: string;
  reason: string | null;
  created_at: number;
  handled_at: number | null;
  outcome: string | null;
  result_message: string | null;
}

/**
 * Monotonic counters bumped inside write transactions. `route_tables` backs
 * `routeTablesFingerprint()`: a counter (not a sum of revisions) because a delete followed by
 * other writes could bring a sum back to an earlier value that a router already saw.
 */
export interface StoreCountersTable {
  name: string;
  value: number;
}

/**
 * One row per service, version, labels, second and router: what a router measured in that
 * second. Key order (service, second, ...) serves the analysis read, one service over a range
 * of seconds; `latency` is the sketch as JSON (`SketchJson`).
 */
export interface MeasurementsTable {
  service: string;
  second: number;
  version: string;
  labels: string;
  router_id: string;
  requests: number;
  s2xx: number;
  s3xx: number;
  s4xx: number;
  s5xx: number;
  upstream_errors: number;
  /** Requests abandoned by their clients (0013; 0 in rows written before it). */
  abandoned: Generated<number>;
  /**
   * Requests sent to the version and response heads from it in that second (0015; null: not
   * counted by the writer, see `StartCounts`).
   */
  started: number | null;
  responded: number | null;
  latency: string;
}

/**
 * The fencing epoch of each single-writer role ("controller"): bumped by every claim, checked
 * by every commit of that role (see `SqlStore.acquireWriterEpoch`).
 */
export interface WriterEpochsTable {
  role: string;
  epoch: number;
  holder: string;
  acquired_at: number;
  /** The controller lease (migration 0011): see `SqlStore.leadController`. */
  renewals: Generated<number>;
  renewed_at: number | null;
  lease_ms: number | null;
  /** 1 once the holder gave the lease up (a clean stop). */
  released: Generated<number>;
}

/** One row per registered router (migration 0007); `heartbeat_at` says whether it is live. */
export interface RoutersTable {
  id: string;
  address: string;
  pid: number;
  started_at: number;
  heartbeat_at: number;
  /** JSON of `RouterBuffers` (migration 0012); null when the router did not report it. */
  buffers: string | null;
  /** JSON of `RouterReport.notServing` (migration 0014); null when it reports none. */
  not_serving: string | null;
}

/** The route-table revision each router has in force, per service it serves. */
export interface RouterRevisionsTable {
  router_id: string;
  service: string;
  revision: number;
}

/** Routers' cumulative aggregates of one mirror phase (migration 0003): one row per router. */
export interface ShadowReportsTable {
  service: string;
  /** The phase (`ShadowStatus.id`). */
  phase: string;
  router_id: string;
  version: string;
  /** JSON of `ShadowAggregateState`. */
  state: string;
  updated_at: number;
}

/**
 * The shadow comparison over time (migration 0010): one point per phase at each flush of
 * routers' aggregates, the merged report's numbers at that moment. Bounded per phase.
 */
export interface ShadowHistoryTable {
  id: Generated<number>;
  service: string;
  phase: string;
  version: string;
  at: number;
  routers: number;
  samples: number;
  mismatches: number;
  mismatch_rate: number | null;
  agreement: number | null;
}

/** One row per A/B experiment (migration 0004), written by the controller's commit. */
export interface ExperimentsTable {
  name: string;
  service: string;
  /** Canonical JSON of the experiment step's body, its resolved arms and its state. */
  spec: string;
  arms: string;
  state: string;
  started_at: number;
  updated_at: number;
}

/** A unit's first exposure to an experiment; the (experiment, unit) key keeps the first. */
export interface ExperimentExposuresTable {
  experiment: string;
  unit: string;
  arm: string;
  first_at: number;
}

/** Outcome events, keyed by their idempotency key so that a retried batch counts once. */
export interface ExperimentEventsTable {
  idempotency_key: string;
  unit: string;
  metric: string;
  value: number;
  ts: number;
  received_at: number;
}

/** A person's override of one flag (migration 0005); canonical JSON in `body`. */
export interface FlagOverridesTable {
  flag: string;
  body: string;
  actor: string;
  reason: string | null;
  updated_at: number;
}

/** One row per change a person made to a flag's override. */
export interface FlagHistoryTable {
  id: Generated<number>;
  flag: string;
  time: number;
  actor: string;
  action: string;
  message: string;
  data: string;
}

/** Notifications waiting for (or done with) delivery, one per Notifier and event (migration 0009). */
export interface NotificationOutboxTable {
  id?: number;
  notifier: string;
  service: string;
  event_id: number | null;
  event_type: string;
  idempotency_key: string;
  body: string;
  state: string;
  attempts: number;
  next_attempt_at: number;
  created_at: number;
  updated_at: number;
  last_status: number | null;
  last_error: string | null;
}

export interface Database {
  resources: ResourcesTable;
  resource_revisions: ResourceRevisionsTable;
  service_status: ServiceStatusTable;
  route_tables: RouteTablesTable;
  events: EventsTable;
  commands: CommandsTable;
  store_counters: StoreCountersTable;
  measurements: MeasurementsTable;
  writer_epochs: WriterEpochsTable;
  routers: RoutersTable;
  router_revisions: RouterRevisionsTable;
  shadow_reports: ShadowReportsTable;
  shadow_history: ShadowHistoryTable;
  experiments: ExperimentsTable;
  experiment_exposures: ExperimentExposuresTable;
  experiment_events: ExperimentEventsTable;
  flag_overrides: FlagOverridesTable;
  flag_history: FlagHistoryTable;
  notification_outbox: NotificationOutboxTable;
}

/**
 * Every table's name, for the test that checks this file against what the migrations create.
 * Keyed by `Database`: a table missing here, or here but not there, fails to compile.
 */
export const TABLE_NAMES = Object.keys({
  resources: true,
  resource_revisions: true,
  service_status: true,
  route_tables: true,
  events: true,
  commands: true,
  store_counters: true,
  measurements: true,
  writer_epochs: true,
  routers: true,
  router_revisions: true,
  shadow_reports: true,
  shadow_history: true,
  experiments: true,
  experiment_exposures: true,
  experiment_events: true,
  flag_overrides: true,
  flag_history: true,
  notification_outbox: true,
} satisfies Record<keyof Database, true>) as (keyof Database)[];

/** Names of the rows in `store_counters`. */
export const COUNTER_ROUTE_TABLES = "route_tables";

/** The role whose writer epoch fences `commit` (the controller's write). */
export const WRITER_ROLE_CONTROLLER = "controller";

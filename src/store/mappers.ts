/**
 * One row-to-object mapper per table: the only place that knows how a stored row becomes a
 * model object. Numeric columns go through `Number()` because PostgreSQL drivers return
 * BIGINT (and identity ids) as strings.
 */
import type { Selectable } from "kysely";
import type { ResolvedArm } from "../core/experiment/index.js";
import type { ExperimentSpec } from "../core/experiment/types.js";
import type { FlagOverride } from "../core/flags/types.js";
import type {
  CommandOutcome,
  CommandType,
  Resource,
  ResourceKind,
  RouteTable,
  ServiceStatus,
  TurnoutEvent,
} from "../core/model.js";
import type { ShadowAggregateState } from "../core/shadow/aggregate.js";
import type { SketchJson } from "../core/sketch.js";
import type { StoredExperiment } from "./experiment-store.js";
import type { FlagHistoryEntry, StoredFlagOverride } from "./flag-store.js";
import { canonicalJson, parseJson } from "./json.js";
import type {
  CommandsTable,
  EventsTable,
  ExperimentsTable,
  FlagHistoryTable,
  FlagOverridesTable,
  MeasurementsTable,
  ResourceRevisionsTable,
  ResourcesTable,
  RoutersTable,
  RouteTablesTable,
  ServiceStatusTable,
  ShadowReportsTable,
  WriterEpochsTable,
} from "./schema.js";
import type {
  ControllerLease,
  MeasurementRow,
  RouterBuffers,
  RouterNotServing,
  RouterReport,
  StoredCommand,
  StoredResource,
  WriterEpoch,
} from "./store.js";

export function mapRouter(
  row: Selectable<RoutersTable>,
  revisions: Record<string, number>,
): RouterReport {
  return {
    id: row.id,
    address: row.address,
    pid: Number(row.pid),
    startedAt: Number(row.started_at),
    heartbeatAt: Number(row.heartbeat_at),
    revisions,
    ...(row.buffers !== null ? { buffers: JSON.parse(row.buffers) as RouterBuffers } : {}),
    ...(row.not_serving !== null
      ? { notServing: JSON.parse(row.not_serving) as RouterNotServing }
      : {}),
  };
}

export function mapResource(row: Selectable<ResourcesTable>): StoredResource {
  return {
    kind: row.kind as ResourceKind,
    name: row.name,
    generation: Number(row.generation),
    resource: parseJson<Resource>(row.body),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

export function mapStatus(row: Pick<Selectable<ServiceStatusTable>, "body">): ServiceStatus {
  return parseJson<ServiceStatus>(row.body);
}

/** The body of a route table as stored: everything but the two fields that have columns. */
export type RouteTableBody = Omit<RouteTable, "revision" | "updatedAt">;

export function mapRouteTable(row: Selectable<RouteTablesTable>): RouteTable {
  return {
    ...parseJson<RouteTableBody>(row.body),
    revision: Number(row.revision),
    updatedAt: Number(row.updated_at),
  };
}

export function mapEvent(row: Selectable<EventsTable>): TurnoutEvent {
  return {
    id: Number(row.id),
    service: row.service,
    type: row.type,
    actor: row.actor,
    message: row.message,
    data: parseJson<Record<string, unknown>>(row.data),
    time: Number(row.time),
  };
}

export function mapCommand(row: Selectable<CommandsTable>): StoredCommand {
  const id = Number(row.id);
  return {
    id,
    service: row.service,
    type: row.type as CommandType,
    args: parseJson<Record<string, unknown>>(row.args),
    actor: row.actor,
    // Absent, not null, when none was given, so a command reads back as it was enqueued.
    ...(row.reason !== null ? { reason: row.reason } : {}),
    createdAt: Number(row.created_at),
    handledAt: row.handled_at === null ? null : Number(row.handled_at),
    result:
      row.handled_at === null
        ? null
        : { id, outcome: row.outcome as CommandOutcome, message: row.result_message ?? "" },
  };
}

export function mapMeasurement(row: Selectable<MeasurementsTable>): MeasurementRow {
  return {
    service: row.service,
    version: row.version,
    labels: row.labels,
    second: Number(row.second),
    routerId: row.router_id,
    requests: Number(row.requests),
    s2xx: Number(row.s2xx),
    s3xx: Number(row.s3xx),
    s4xx: Number(row.s4xx),
    s5xx: Number(row.s5xx),
    upstreamErrors: Number(row.upstream_errors),
    abandoned: Number(row.abandoned),
    // NULL: the writer does not count requests as they start (HAProxy, rows from before 0015).
    ...(row.started === null || row.started === undefined
      ? {}
      : { started: Number(row.started), responded: Number(row.responded ?? 0) }),
    latency: parseJson<SketchJson>(row.latency),
  };
}

export function mapExperiment(row: Selectable<ExperimentsTable>): StoredExperiment {
  return {
    name: row.name,
    service: row.service,
    spec: parseJson<ExperimentSpec>(row.spec),
    arms: parseJson<ResolvedArm[]>(row.arms),
    state: parseJson<StoredExperiment["state"]>(row.state),
    startedAt: Number(row.started_at),
    updatedAt: Number(row.updated_at),
  };
}

/** The other way, for the controller's commit: the row an experiment is stored as. */
export function experimentRow(e: StoredExperiment): ExperimentsTable {
  return {
    name: e.name,
    service: e.service,
    spec: canonicalJson(e.spec),
    arms: canonicalJson(e.arms),
    state: canonicalJson(e.state),
    started_at: e.startedAt,
    updated_at: e.updatedAt,
  };
}

export function mapFlagOverride(row: Selectable<FlagOverridesTable>): StoredFlagOverride {
  return {
    flag: row.flag,
    override: parseJson<FlagOverride>(row.body),
    actor: row.actor,
    reason: row.reason,
    updatedAt: Number(row.updated_at),
  };
}

export function mapFlagHistory(row: Selectable<FlagHistoryTable>): FlagHistoryEntry {
  return {
    time: Number(row.time),
    actor: row.actor,
    action: row.action,
    message: row.message,
    data: parseJson<Record<string, unknown>>(row.data),
  };
}

/** One router's aggregate of one mirror phase. */
export interface ShadowReportRow {
  service: string;
  phase: string;
  routerId: string;
  version: string;
  state: ShadowAggregateState;
  updatedAt: number;
}

export function mapShadowReport(row: Selectable<ShadowReportsTable>): ShadowReportRow {
  return {
    service: row.service,
    phase: row.phase,
    routerId: row.router_id,
    version: row.version,
    state: parseJson<ShadowAggregateState>(row.state),
    updatedAt: Number(row.updated_at),
  };
}

/** One stored generation of a resource (`resource_revisions`). */
export interface ResourceRevision {
  kind: ResourceKind;
  name: string;
  generation: number;
  resource: Resource;
  appliedAt: number;
  actor: string;
}

export function mapResourceRevision(row: Selectable<ResourceRevisionsTable>): ResourceRevision {
  return {
    kind: row.kind as ResourceKind,
    name: row.name,
    generation: Number(row.generation),
    resource: parseJson<Resource>(row.body),
    appliedAt: Number(row.applied_at),
    actor: row.actor,
  };
}

export function mapWriterEpoch(row: Selectable<WriterEpochsTable>): WriterEpoch {
  return { epoch: Number(row.epoch), holder: row.holder, acquiredAt: Number(row.acquired_at) };
}

export function mapControllerLease(row: Selectable<WriterEpochsTable>): ControllerLease {
  return {
    ...mapWriterEpoch(row),
    renewals: Number(row.renewals),
    renewedAt: row.renewed_at === null ? null : Number(row.renewed_at),
    leaseMs: row.lease_ms === null ? null : Number(row.lease_ms),
    released: Number(row.released) !== 0,
  };
}

/**
 * One row-to-object mapper per table: the only place that knows how a stored row becomes a
 * model object. Numeric columns go through `Number()` because PostgreSQL drivers return
 * BIGINT (and identity ids) as strings.
 */
import type { Selectable } from "kysely";
import type {
  CommandOutcome,
  CommandType,
  Resource,
  ResourceKind,
  RouteTable,
  ServiceStatus,
  TurnoutEvent,
} from "../core/model.js";
import type { SketchJson } from "../core/sketch.js";
import { parseJson } from "./json.js";
import type {
  CommandsTable,
  EventsTable,
  MeasurementsTable,
  ResourcesTable,
  RoutersTable,
  RouteTablesTable,
  ServiceStatusTable,
} from "./schema.js";
import type { MeasurementRow, RouterReport, StoredCommand, StoredResource } from "./store.js";

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
    latency: parseJson<SketchJson>(row.latency),
  };
}

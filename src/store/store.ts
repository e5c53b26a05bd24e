/**
 * The store is Turnout's one source of truth (DESIGN invariant 1). The API writes resources
 * and commands; the controller is the only writer of status and route tables; routers read
 * route tables. Implementations: `sqlite/` (embedded default) and, later, `postgres/`. All
 * of them pass the shared conformance suite in `store.conformance.ts`.
 */
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

export interface StoredResource<R extends Resource = Resource> {
  kind: R["kind"];
  name: string;
  /** Starts at 1; increases each time the resource's content changes. */
  generation: number;
  resource: R;
  createdAt: number;
  updatedAt: number;
}

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
  status?: ServiceStatus;
  /** The table to put in force; the store assigns `revision` = previous + 1. */
  routeTable?: Omit<RouteTable, "revision">;
  events?: EventDraft[];
  commandResults?: CommandResult[];
  /** Clock ms, for handledAt. */
  now: number;
}

export interface Store {
  /**
   * Applies resources in one transaction: either all are stored or none is. Unchanged content
   * keeps its generation. Events (one per created/configured resource) are appended in the same
   * transaction.
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
  /** Deletes a resource (and, for a Service, its status, route table and pending commands). */
  deleteResource(
    kind: ResourceKind,
    name: string,
    opts: { actor: string; now: number },
  ): Promise<boolean>;

  getStatus(service: string): Promise<ServiceStatus | null>;

  getRouteTable(service: string): Promise<RouteTable | null>;
  listRouteTables(): Promise<RouteTable[]>;
  /**
   * A cheap fingerprint of all route tables (e.g. sum or max of revisions plus count) that
   * changes whenever any table is written or deleted; routers poll it to know when to reload.
   */
  routeTablesFingerprint(): Promise<string>;

  enqueueCommand(cmd: CommandDraft, now: number): Promise<StoredCommand>;
  getCommand(id: number): Promise<StoredCommand | null>;
  /** Pending commands, oldest first; all services when `service` is omitted. */
  pendingCommands(service?: string): Promise<StoredCommand[]>;

  /** Appends events on their own (e.g. the API recording an `undo`). */
  appendEvents(events: EventDraft[]): Promise<void>;
  /** Events of a service, oldest first. `afterId` for paging or watching. */
  listEvents(service: string, opts?: { afterId?: number; limit?: number }): Promise<TurnoutEvent[]>;

  /** The controller's write: status, route table, events and command results, atomically. */
  commit(c: ControllerCommit): Promise<{ routeTable?: RouteTable }>;

  /**
   * Subscribe to changes written through this store instance (same process). Other processes
   * learn of changes by polling; this only makes the single-process case immediate.
   */
  onChange(
    listener: (what: "resources" | "commands" | "routeTables" | "status") => void,
  ): () => void;

  close(): Promise<void>;
}

/**
 * One service's tick, the loop the controller and the simulator (`src/sim/`) both run, so that
 * what the simulator measures is what the controller does. A tick is a transaction
 * (CONVENTIONS 15): read, decide (pure), write once.
 *
 *   1. due -> measure: the measurements this tick hands to the core (`ports.observations`: the
 *      controller's analysis executor hands over what it finished since the last tick; the
 *      simulator measures what is due now).
 *   2. read: the running experiment's aggregates and the mirror phase's report. Reads only:
 *      nothing is written before the commit.
 *   3. reconcile: the pure core decides the new status, events, command results, weights and
 *      runtime targets.
 *   4. derive: the route table and the experiment's row, from that decision.
 *   5. commit: everything that changed (status, route table, events, command results,
 *      experiment rows) in ONE `ports.commit` (the controller's: `Store.commit`, one
 *      transaction, fenced by the writer epoch and checked against the status read), and
 *      nothing when nothing changed. When the commit is refused (fenced, the Service deleted
 *      meanwhile, its status changed meanwhile), the tick has changed nothing.
 *
 * The strategy is compiled once, here, and handed to every step that needs it. What a driver
 * does after the commit (start the measurements now due, tell the runtime which versions to
 * run) is its own business: the commit has happened by then.
 */
import { isEvent } from "../core/events.js";
import type { ExperimentData } from "../core/experiment/index.js";
import type { ExperimentStatus } from "../core/experiment/types.js";
import type {
  AnalysisTemplateSpec,
  Command,
  EventDraft,
  RouteTable,
  ServiceSpec,
  ServiceStatus,
} from "../core/model.js";
import {
  type AnalysisObservation,
  type ReconcileInput,
  type ReconcileOutput,
  reconcile,
  type VersionReadiness,
} from "../core/rollout.js";
import { buildRouteTable } from "../core/routes.js";
import type { ShadowReport } from "../core/shadow/aggregate.js";
import { type CompiledStrategy, compileStrategy } from "../core/strategies/index.js";
import type { StoredExperiment } from "../store/experiment-store.js";
import { canonicalJson } from "../store/json.js";
import type { ControllerCommit } from "../store/store.js";

/** What a tick knows about one service before it starts. */
export interface ServiceTickInput {
  now: number;
  service: { name: string; generation: number; spec: ServiceSpec };
  /** As stored; null for a service never reconciled. */
  status: ServiceStatus | null;
  /** Its pending commands, oldest first. */
  commands: Command[];
  readiness: Record<string, VersionReadiness>;
  templates: Record<string, AnalysisTemplateSpec>;
  /** Ready endpoints of a version, for the route table. */
  endpoints: (version: string) => string[];
  /** Events to write before the decision's (a restart notice, a stop that timed out). */
  leadingEvents?: EventDraft[];
  /** The writer epoch the commit carries (the controller's). */
  epoch?: number;
  /** What the router registry says of the service's data plane (absent: serving). */
  dataPlane?: ReconcileInput["dataPlane"];
}

/** Where a tick reads from and writes to. Reads must not write; `commit` is the one write. */
export interface TickPorts {
  /** Step 1: the measurements for this service's analysis runs, to hand to the core now. */
  observations(
    service: string,
    status: ServiceStatus | null,
    now: number,
  ): AnalysisObservation[] | Promise<AnalysisObservation[]>;
  /** The route table in force; null when there is none. */
  routeTable(service: string): Promise<RouteTable | null> | RouteTable | null;
  /** Step 2: a running experiment's aggregates (absent: experiments get no data). */
  experimentData?(e: ExperimentRef, now: number): Promise<ExperimentData>;
  /** The experiment's stored row, to write it only when it changed. */
  storedExperiment?(name: string): Promise<StoredExperiment | null>;
  /** Step 2: a mirror phase's report, merged over routers (absent: none). */
  shadowReport?(service: string, id: string): Promise<ShadowReport | null>;
  /** Step 5: the one write of the tick. Throws when refused; nothing is written then. */
  commit(c: ControllerCommit): Promise<unknown>;
}

/** An experiment as the store's aggregation needs it. */
export type ExperimentRef = Pick<
  StoredExperiment,
  "name" | "service" | "spec" | "arms" | "startedAt"
>;

export interface ServiceTickResult {
  out: ReconcileOutput;
  /** The route table built from the decision (written only when it changed). */
  table: Omit<RouteTable, "revision">;
  /** The commit, when something changed; null when the tick wrote nothing. */
  commit: ControllerCommit | null;
}

/** Runs steps 1 to 5 for one service; see the module comment. */
export async function tickService(
  i: ServiceTickInput,
  ports: TickPorts,
): Promise<ServiceTickResult> {
  const { now, status } = i;
  const { name, spec } = i.service;
  const strategy = compileStrategy(spec);

  // 1. due -> measure.
  const observations = await ports.observations(name, status, now);

  // 2. read (the experiment and mirror phase the stored status is in).
  const running = status?.experiment ? experimentRef(name, strategy, status.experiment) : null;
  const experimentData =
    running && ports.experimentData ? await ports.experimentData(running, now) : undefined;
  const shadowId = status?.shadow?.id;
  const shadowReport =
    shadowId && ports.shadowReport ? await ports.shadowReport(name, shadowId) : null;

  // 3. reconcile.
  const out = reconcile({
    ...(experimentData ? { experimentData } : {}),
    ...(shadowId && shadowReport ? { shadowReport: { id: shadowId, report: shadowReport } } : {}),
    now,
    service: i.service,
    status,
    commands: i.commands,
    readiness: i.readiness,
    templates: i.templates,
    observations,
    strategy,
    ...(i.dataPlane !== undefined ? { dataPlane: i.dataPlane } : {}),
  });
  if (i.leadingEvents && i.leadingEvents.length > 0) out.events.unshift(...i.leadingEvents);

  // 4. derive.
  const table = buildRouteTable({
    service: name,
    spec,
    status: out.status,
    weights: out.weights,
    endpoints: i.endpoints,
    now,
    strategy,
  });
  const current = await ports.routeTable(name);
  const tableChanged = !current || !sameTable(current, table);
  // As stored, for the reason `sameTable` gives.
  const statusChanged = !status || canonicalJson(status) !== canonicalJson(out.status);
  const experiments: StoredExperiment[] = [];
  for (const row of experimentRows(name, strategy, status, out, now)) {
    const stored = ports.storedExperiment ? await ports.storedExperiment(row.name) : null;
    if (!stored || !sameExperiment(stored, row)) experiments.push(row);
  }

  // 5. commit, once, when anything changed.
  if (
    !tableChanged &&
    !statusChanged &&
    out.events.length === 0 &&
    out.commandResults.length === 0 &&
    experiments.length === 0
  ) {
    return { out, table, commit: null };
  }
  const commit: ControllerCommit = {
    service: name,
    ...(i.epoch !== undefined ? { epoch: i.epoch } : {}),
    // The decision holds only over the status it was made from: refused if that changed.
    statusBefore: status,
    ...(statusChanged ? { status: out.status } : {}),
    ...(tableChanged ? { routeTable: table } : {}),
    events: out.events,
    commandResults: out.commandResults,
    ...(experiments.length > 0 ? { experiments } : {}),
    now,
  };
  await ports.commit(commit);
  return { out, table, commit };
}

/** The experiment step's declaration behind a status's experiment; null when the step is gone. */
function experimentRef(
  service: string,
  strategy: CompiledStrategy,
  x: ExperimentStatus,
): ExperimentRef | null {
  const step = strategy.steps[x.stepIndex];
  if (!step || !("experiment" in step)) return null;
  return { name: x.name, service, spec: step.experiment, arms: x.arms, startedAt: x.startedAt };
}

/**
 * The experiment rows a decision implies: the running experiment's state (its verdict so far
 * and why), and for each experiment the decision concluded, the verdict it ended with, the
 * event's message and when. A rollout aborted by a person leaves the row as it was.
 */
export function experimentRows(
  service: string,
  strategy: CompiledStrategy,
  before: ServiceStatus | null,
  out: Pick<ReconcileOutput, "status" | "events">,
  now: number,
): StoredExperiment[] {
  const rows = new Map<string, StoredExperiment>();
  const x = out.status.experiment;
  const ref = x ? experimentRef(service, strategy, x) : null;
  if (x && ref) {
    rows.set(x.name, {
      ...ref,
      state: { status: x.verdict ?? "running", ...(x.summary ? { summary: x.summary } : {}) },
      updatedAt: now,
    });
  }
  for (const e of out.events) {
    if (!isEvent(e, "ExperimentConcluded")) continue;
    const name = e.data.experiment;
    const ended = [x, before?.experiment].find((s) => s?.name === name);
    const r = ended ? experimentRef(service, strategy, ended) : null;
    if (!r) continue;
    rows.set(name, {
      ...r,
      state: { status: String(e.data.verdict ?? "concluded"), summary: e.message, endedAt: now },
      updatedAt: now,
    });
  }
  return [...rows.values()];
}

/** Same content, whenever it was written (`updatedAt` is the time of the last change). */
function sameExperiment(a: StoredExperiment, b: StoredExperiment): boolean {
  return canonicalJson({ ...a, updatedAt: 0 }) === canonicalJson({ ...b, updatedAt: 0 });
}

/**
 * Same content as stored, whenever it was written. Compared as the store writes it (canonical
 * JSON): the stored copy went through JSON, so a field that is `undefined` in the fresh table
 * (a spec field validation would have filled in) is missing there, its keys may be in another
 * order, -0 is 0. Compared as objects, such a table would differ from its stored copy at every
 * tick, and each tick would write it again under a new revision, which every router reloads.
 */
function sameTable(a: RouteTable, b: Omit<RouteTable, "revision">): boolean {
  const key = (t: Omit<RouteTable, "revision">) =>
    canonicalJson({ ...t, revision: 0, updatedAt: 0 });
  return key(a) === key(b);
}

/**
 * A/B experiments at the edge: the router assigns each unit (user) to an arm, serves it from
 * the arm's version, and logs the unit's FIRST exposure in each experiment; it also records
 * numeric response headers that metrics name (a model's confidence) as events of the unit.
 *
 * For a request to a service whose route table has an `experiment`, in order:
 *   1. Forced arm (QA): the experiment's `force` header or query parameter naming an arm picks
 *      it; the request is not an exposure (forced units would bias the results).
 *   2. Unit id from the experiment's key (header, cookie or query). A request without a cookie
 *      key gets a new id (a random UUID) and a `Set-Cookie` for it, so its first request is
 *      already assigned where the following ones will be.
 *   3. Arm: `bucket = hashScheme(hashVersion).bucket(salt, unit)` in [0, 1,000,000) (the
 *      router's versioned hashing, core/hashing.ts, with the experiment's own salt), and the arm
 *      whose range holds it (arms in order own consecutive ranges proportional to weights).
 *   4. The first time this router sees the unit in the experiment, an exposure is buffered;
 *      buffers go to the store every `flushIntervalMs` (the store keeps the first exposure of a
 *      unit whichever router writes it, so a restart or a second router never double counts).
 *   Requests without a unit id (no header or query key), and units whose arm has no ready
 *   instance, fall through to the normal selection and are not exposures.
 *
 * Memory: the set of units already logged is per experiment and capped (`maxUnitsPerExperiment`);
 * past the cap it is cleared, which only means a few duplicate inserts the store ignores.
 */
import { randomUUID } from "node:crypto";
import { responseHeaderMetric } from "../core/experiment/spec.js";
import { hashScheme } from "../core/hashing.js";
import type { RouteTable } from "../core/model.js";
import type { Exposure, OutcomeEvent } from "../store/experiment-store.js";
import type { StoreUseReporter } from "./outage.js";
import { cookieValue, headerValue, queryValue } from "./request.js";
import {
  type CompiledBackend,
  type ExchangeObserver,
  type ExchangeView,
  ISSUED_COOKIE_ATTRIBUTES,
  type RequestFacts,
  type RouterLogger,
  type SelectableRequest,
  type TableCore,
  type TableFeature,
  type UpstreamHeaders,
} from "./types.js";

/** Where exposures and header events go (the experiment store). */
export interface ExposureSink {
  recordExposures(x: readonly Exposure[]): Promise<void>;
  recordEvents(e: readonly OutcomeEvent[], receivedAt: number): Promise<unknown>;
}

/** What the exchange carries besides the backend: a cookie to set, the unit being served. */
export type ExperimentOutput = Pick<RequestFacts, "setCookie" | "experimentUnit">;

export interface ExposureLogOptions {
  sink?: ExposureSink | undefined;
  logger: RouterLogger;
  /** Clock ms (the controller's clock in tests). */
  now?: () => number;
  flushIntervalMs?: number;
  maxUnitsPerExperiment?: number;
  /**
   * Rows of each kind (exposures, events) buffered beyond which new ones are dropped, and
   * counted, while the store is down. Default 200,000 each.
   */
  maxBuffered?: number;
  /** Told how each write went (the router's outage account); without one the log logs itself. */
  health?: StoreUseReporter;
}

/** Buffers first exposures and header events, and writes them to the store in batches. */
export class ExposureLog {
  readonly #sink: ExposureSink | undefined;
  readonly #logger: RouterLogger;
  readonly #now: () => number;
  readonly #intervalMs: number;
  readonly #maxUnits: number;
  readonly #maxBuffered: number;
  readonly #seen = new Map<string, Set<string>>();
  readonly #health: StoreUseReporter | undefined;
  #exposures: Exposure[] = [];
  #events: OutcomeEvent[] = [];
  /** Dropped since the last successful write (for this log's own outage line). */
  #dropped = 0;
  /** Dropped since start, per kind (`buffers()`). */
  #droppedExposures = 0;
  #droppedEvents = 0;
  /** Rows taken out for the write in flight, still held until it succeeds. */
  #inFlight = { exposures: 0, events: 0 };
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> | null = null;
  #outage = false;

  constructor(opts: ExposureLogOptions) {
    this.#sink = opts.sink;
    this.#logger = opts.logger;
    this.#now = opts.now ?? Date.now;
    this.#intervalMs = opts.flushIntervalMs ?? 500;
    this.#maxUnits = opts.maxUnitsPerExperiment ?? 1_000_000;
    this.#maxBuffered = opts.maxBuffered ?? 200_000;
    this.#health = opts.health;
  }

  /** Rows held for the store per kind, and rows dropped since start because a buffer was full. */
  buffers(): {
    exposures: { buffered: number; dropped: number };
    events: { buffered: number; dropped: number };
  } {
    return {
      exposures: {
        buffered: this.#exposures.length + this.#inFlight.exposures,
        dropped: this.#droppedExposures,
      },
      events: {
        buffered: this.#events.length + this.#inFlight.events,
        dropped: this.#droppedEvents,
      },
    };
  }

  /** Logs the unit's exposure unless this router already did. */
  expose(experiment: string, unit: string, arm: string): void {
    let seen = this.#seen.get(experiment);
    if (seen === undefined) {
      seen = new Set();
      this.#seen.set(experiment, seen);
    }
    if (seen.has(unit)) return;
    if (seen.size >= this.#maxUnits) seen.clear();
    seen.add(unit);
    if (this.#exposures.length + this.#inFlight.exposures >= this.#maxBuffered) {
      this.#dropped++;
      this.#droppedExposures++;
      seen.delete(unit); // logged again at its next request
      return;
    }
    this.#exposures.push({ experiment, unit, arm, at: this.#now() });
  }

  /** Records a numeric response header of an exposed unit's response as an event. */
  headerEvent(unit: string, header: string, value: number, requestId: string): void {
    if (this.#events.length + this.#inFlight.events >= this.#maxBuffered) {
      this.#dropped++;
      this.#droppedEvents++;
      return;
    }
    this.#events.push({
      idempotencyKey: `router:${requestId}:${header}`,
      unit,
      metric: responseHeaderMetric(header),
      value,
      timestamp: this.#now(),
    });
  }

  /** Buffered rows (tests, status). */
  get pending(): number {
    return this.#exposures.length + this.#events.length;
  }

  start(): void {
    if (this.#timer !== null || this.#sink === undefined) return;
    this.#timer = setInterval(() => void this.flush(), this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.flush();
  }

  /** Writes what is buffered; on failure keeps it for the next flush (and logs once). */
  flush(): Promise<void> {
    if (this.#flushing !== null) return this.#flushing;
    this.#flushing = this.#flushOnce().finally(() => {
      this.#flushing = null;
    });
    return this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    const sink = this.#sink;
    if (sink === undefined) {
      this.#exposures = [];
      this.#events = [];
      return;
    }
    const exposures = this.#exposures;
    const events = this.#events;
    if (exposures.length === 0 && events.length === 0) return;
    this.#exposures = [];
    this.#events = [];
    this.#inFlight = { exposures: exposures.length, events: events.length };
    try {
      await sink.recordExposures(exposures);
      await sink.recordEvents(events, this.#now());
      // Written: no longer held, also for the outage's closing line.
      this.#inFlight = { exposures: 0, events: 0 };
      if (this.#health !== undefined) {
        this.#health.succeeded("exposures", { exposures: exposures.length, events: events.length });
      } else if (this.#outage || this.#dropped > 0) {
        this.#logger.info({ dropped: this.#dropped }, "router: exposures written again");
      }
      this.#outage = false;
      this.#dropped = 0;
    } catch (err) {
      // Kept (ahead of newer rows) for the next flush; both writes are idempotent.
      this.#exposures = exposures.concat(this.#exposures);
      this.#events = events.concat(this.#events);
      if (this.#health !== undefined) this.#health.failed("exposures", err);
      else if (!this.#outage)
        this.#logger.warn({ err }, "router: could not write exposures; keeping them");
      this.#outage = true;
    } finally {
      this.#inFlight = { exposures: 0, events: 0 };
    }
  }
}

/**
 * A table's experiment, compiled once per table (the compiled table's `experiment`). Its
 * hooks: `select` assigns the unit to an arm before the table's own selection; `request`
 * watches the response of an exposed unit when the experiment's metrics read response headers.
 */
export class CompiledExperiment {
  constructor(
    readonly name: string,
    readonly source: "header" | "cookie" | "query",
    /** Lower-case header name, cookie name or query parameter. */
    readonly keyName: string,
    readonly cookiePrefix: string,
    readonly salt: string,
    readonly bucket: (salt: string, key: string) => number,
    /** Exclusive bucket ends per arm, in order. */
    readonly ends: readonly number[],
    readonly arms: readonly { name: string; backend: CompiledBackend | null }[],
    readonly byName: ReadonlyMap<string, CompiledBackend>,
    readonly forceHeader: string | null,
    readonly forceQuery: string | null,
    readonly responseHeaders: readonly string[],
    readonly log: ExposureLog | null,
  ) {}

  select(req: SelectableRequest, facts: RequestFacts): CompiledBackend | null {
    return selectArm(this, req, facts);
  }

  request(ex: ExchangeView): ExchangeObserver | null {
    const unit = ex.experimentUnit;
    if (unit === null || this.log === null || this.responseHeaders.length === 0) return null;
    return new ResponseHeaderEvents(this, unit, ex.requestId);
  }
}

/** Records an exposed unit's numeric response headers (the experiment's header metrics). */
class ResponseHeaderEvents implements ExchangeObserver {
  constructor(
    readonly x: CompiledExperiment,
    readonly unit: string,
    readonly requestId: string,
  ) {}

  responseStart(_status: number, headers: UpstreamHeaders): void {
    recordResponseHeaders(this.x, this.unit, headers, this.requestId);
  }

  requestStart(): void {}
  responseData(): void {}
  responseEnd(): void {}
  clientClose(): void {}
}

/** The experiment compiled for a table, if its route table has one. */
export function experimentOf(table: {
  readonly experiment: CompiledExperiment | null;
}): CompiledExperiment | undefined {
  return table.experiment ?? undefined;
}

/**
 * Compiles the experiment of a route table; null without one. Problems (an arm whose version
 * has no backend) go to `problems` for the router's log; such arms fall through.
 */
export function compileExperiment(
  raw: RouteTable,
  core: TableCore,
  log: ExposureLog | null,
  problems: string[],
): CompiledExperiment | null {
  const x = raw.experiment;
  if (x === undefined) return null;
  const backendOf = (version: string): CompiledBackend | null =>
    core.byVersion.get(version) ?? core.backends.find((b) => b.version === version) ?? null;
  const total = x.arms.reduce((s, a) => s + a.weight, 0);
  const ends: number[] = [];
  let acc = 0;
  const arms = x.arms.map((a, i) => {
    acc += a.weight;
    ends.push(i === x.arms.length - 1 ? 1_000_000 : Math.round((acc / total) * 1_000_000));
    const backend = backendOf(a.version);
    if (backend === null)
      problems.push(`experiment ${x.name}: arm ${a.name} (${a.version}) has no ready instance`);
    return { name: a.name, backend };
  });
  const byName = new Map<string, CompiledBackend>();
  for (const a of arms) if (a.backend !== null) byName.set(a.name, a.backend);
  const source = "header" in x.key ? "header" : "cookie" in x.key ? "cookie" : "query";
  const keyName =
    "header" in x.key ? x.key.header.toLowerCase() : "cookie" in x.key ? x.key.cookie : x.key.query;
  return new CompiledExperiment(
    x.name,
    source,
    keyName,
    `${keyName}=`,
    x.salt,
    hashScheme(raw.hashVersion).bucket,
    ends,
    arms,
    byName,
    x.force?.header?.toLowerCase() ?? null,
    x.force?.query ?? null,
    x.responseHeaders ?? [],
    log,
  );
}

/**
 * The experiment feature (features.ts): its environment is the router's exposure log; a table
 * compiled without one still assigns arms, and logs nothing.
 */
export const experimentFeature: TableFeature<ExposureLog | null, CompiledExperiment> = {
  compile: (raw, core, log, problems) => compileExperiment(raw, core, log ?? null, problems),
};

/**
 * The arm's backend for a request (see the module comment), or null to fall through to the
 * normal selection. Sets `out.setCookie` when it issues a unit id and `out.experimentUnit` when
 * the request is an exposure.
 */
export function selectArm(
  x: CompiledExperiment,
  req: SelectableRequest,
  out: ExperimentOutput,
): CompiledBackend | null {
  out.experimentUnit = null;
  const raw = req.rawHeaders;
  // 1. Forced arm: served, never logged.
  if (x.forceHeader !== null) {
    const arm = headerValue(raw, x.forceHeader);
    const b = arm !== undefined ? x.byName.get(arm) : undefined;
    if (b !== undefined) return b;
  }
  if (x.forceQuery !== null) {
    const arm = queryValue(req.url, x.forceQuery);
    const b = arm !== undefined ? x.byName.get(arm) : undefined;
    if (b !== undefined) return b;
  }
  // 2. The unit id.
  let unit: string | undefined;
  if (x.source === "header") unit = headerValue(raw, x.keyName);
  else if (x.source === "query") unit = queryValue(req.url, x.keyName);
  else {
    unit = cookieValue(raw, x.keyName);
    if (unit === undefined || unit.length === 0) {
      unit = randomUUID();
      out.setCookie = x.cookiePrefix + unit + ISSUED_COOKIE_ATTRIBUTES;
    }
  }
  if (unit === undefined || unit.length === 0) return null;
  // 3. The arm by bucket.
  const bucket = x.bucket(x.salt, unit);
  const ends = x.ends;
  let i = 0;
  while (i < ends.length - 1 && bucket >= ends[i]!) i++;
  const arm = x.arms[i]!;
  if (arm.backend === null) return null;
  // 4. The first exposure.
  x.log?.expose(x.name, unit, arm.name);
  out.experimentUnit = unit;
  return arm.backend;
}

/** Records the numeric response headers the experiment's metrics name, for an exposed unit. */
export function recordResponseHeaders(
  x: CompiledExperiment,
  unit: string,
  headers: UpstreamHeaders,
  requestId: string,
): void {
  if (x.log === null) return;
  for (const name of x.responseHeaders) {
    const v = headers[name];
    if (typeof v !== "string") continue;
    const n = Number(v);
    if (v.trim() !== "" && Number.isFinite(n)) x.log.headerEvent(unit, name, n, requestId);
  }
}

import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { DEFAULT_TRAFFIC_POLICY, type RouteTable, type TrafficPolicySpec } from "../core/model.js";
import { expandPreviews } from "../core/routes.js";
import { MAX_REQUEST_HEAD_BYTES } from "../defaults.js";
import type { RouterBuffers, RouterReport, Store } from "../store/store.js";
import { ExposureLog, type ExposureSink } from "./exposures.js";
import type { EdgeFlags } from "./flags-edge.js";
import {
  type Clock,
  type HealthCheckSpec,
  type HealthEvent,
  HealthMonitor,
  OutlierDetector,
  type Probe,
  systemClock,
} from "./health.js";
import {
  applyServerPolicy,
  type BoundServer,
  closeServer,
  createListenerServer,
  notServingOf,
} from "./listener-server.js";
import { type MirrorStats, Mirrors, type ShadowAggregateSink } from "./mirror.js";
import { StoreOutage, writerBuffers } from "./outage.js";
import { type Endpoint, UpstreamPools } from "./pools.js";
import type { ProxyContext } from "./proxy.js";
import {
  MeasurementFlusher,
  MeasurementRecorder,
  type RouterMeasurementOptions,
  type SeriesCounters,
  type VersionStats,
} from "./stats.js";
import { type CompiledTable, compileTable } from "./table.js";
import type { RouterLogger } from "./types.js";

export type { VersionStats } from "./stats.js";

/**
 * What the router reads from the store; tests use `MemoryRouteTableSource` (`testing.ts`). A
 * source with the router registry (`reportRouter`) also learns which table revisions this
 * router has in force, which is what lets the controller stop instances safely (DESIGN
 * invariant 9); without it the router serves the same, unregistered.
 */
export type RouteTableSource = Pick<
  Store,
  "listRouteTables" | "routeTablesFingerprint" | "onChange"
> &
  Partial<Pick<Store, "reportRouter" | "removeRouter">>;

/** The logging methods the router uses; a pino logger fits. */
export type { RouterLogger } from "./types.js";

/**
 * The time a client has to send a whole request, head and body: Node's default, kept. Model
 * inputs may be large and links slow, so it is generous (the default 10 MiB body limit at
 * 35 KB/s); it bounds a client that trickles a body forever, which nothing else does (the
 * idle timeout applies between requests, the upstream's once the body is sent). An upload
 * that needs longer is cut with a 408.
 */
export const ROUTER_REQUEST_TIMEOUT_MS = 300_000;

export interface RouterOptions {
  source: RouteTableSource;
  logger?: RouterLogger;
  /** How often the store's fingerprint is polled for changes made by other processes. Default 500. */
  pollIntervalMs?: number;
  /**
   * How long an upstream may take to send its response headers before the client gets a 504,
   * for tables without a traffic policy (a table's `policy.timeouts.upstreamSeconds` wins).
   * Default 30 s.
   */
  upstreamTimeoutMs?: number;
  /** How long a closing listener waits for in-flight requests before cutting them. Default 10 s. */
  drainTimeoutMs?: number;
  /** How long the pool of an endpoint that left every table is kept, in case it returns. Default 10 s. */
  poolIdleGraceMs?: number;
  /** Largest request head (request line and headers) accepted; larger gets a 431. Default 16 KiB. */
  maxHeaderBytes?: number;
  /**
   * The time a client has to send a whole request, head and body, before a 408 and the close
   * (never less than the table's `requestHeadersSeconds`). Default `ROUTER_REQUEST_TIMEOUT_MS`.
   */
  requestTimeoutMs?: number;
  /** Time for ejections and health checks (tests pass a manual clock). */
  clock?: Clock;
  /** The active health check's probe (tests pass a fake). Default: GET through the endpoint's pool. */
  healthProbe?: Probe;
  /**
   * Measurements: the ring's window and clock, and the store (`sink`) that completed seconds
   * are flushed to every second. Without a sink they stay in memory only.
   */
  measurements?: RouterMeasurementOptions;
  /** Edge evaluation of the flags that tables name (flags-edge.ts); none without it. */
  edgeFlags?: EdgeFlags;
  /** Where mirror comparisons are flushed every second (the shadow store); memory only without. */
  shadowSink?: ShadowAggregateSink;
  /** Where A/B exposures and response-header events go (the experiment store); memory only without. */
  exposures?: ExposureSink;
  /**
   * This router's id in the registry and in its measurement rows; unique per router process.
   * Default `measurements.routerId`, else `<hostname>:<pid>[:<n>]`.
   */
  routerId?: string;
  /** How often the router renews its registration (heartbeat). Default 1000 ms. */
  heartbeatMs?: number;
  /**
   * Exposures, and header events, each held in memory at most while the store is down; beyond
   * that new ones are dropped and counted (`buffers()`). Default 200,000. Measurements are held
   * for `measurements.windowSeconds` (default 300 s).
   */
  maxBufferedRows?: number;
}

/** One endpoint's state as `Router.endpoints()` reports it. */
export interface EndpointInfo {
  url: string;
  /** Whether the balancer picks it (not ejected, not failing active checks). */
  available: boolean;
  ejected: boolean;
  activeHealthy: boolean;
  outstanding: number;
  consecutiveFailures: number;
}

/** One service's listener as `Router.listeners()` reports it. */
export interface ListenerInfo {
  service: string;
  host: string;
  /** The bound port (the ephemeral one when the table asks for port 0), or the requested one when not bound. */
  port: number;
  /** Why the listener is not bound (e.g. "EADDRINUSE: ..."); retried at each poll. */
  error?: string;
}

/** What one reload did; see `Router.onReload`. */
export interface ReloadEvent {
  /** False when the source could not be read (the last known tables stay in force). */
  ok: boolean;
  /** Services whose table was applied or removed, or whose listener got bound at last. */
  changed: string[];
  error?: unknown;
}

interface ServiceListener {
  service: string;
  /** The address the table asks for. */
  host: string;
  port: number;
  bound: BoundServer | null;
  boundPort: number | null;
  error: string | undefined;
  /** The table in force; replaced (never mutated) on every change. */
  table: CompiledTable;
  /** The source table as JSON, to skip recompiling unchanged tables. */
  signature: string;
}

const noop = (): void => {};
const silentLogger: RouterLogger = { debug: noop, info: noop, warn: noop, error: noop };

/**
 * Serves every service that has a route table.
 *
 * @example
 * const router = new Router({ source: store, logger });
 * await router.start();
 * router.listeners(); // [{ service: "fraud-model", host: "0.0.0.0", port: 8080 }]
 * router.stats("fraud-model"); // [{ version: "v1", requests: 9000, ... }, ...]
 * await router.stop();
 */
export class Router {
  readonly #source: RouteTableSource;
  readonly #logger: RouterLogger;
  readonly #pollIntervalMs: number;
  readonly #drainTimeoutMs: number;
  readonly #ctx: ProxyContext;
  readonly #pools: UpstreamPools;
  readonly #outliers: OutlierDetector;
  readonly #health: HealthMonitor;
  /** The policy of tables that carry none (tables from older controllers, tests). */
  readonly #defaultPolicy: TrafficPolicySpec;
  readonly #maxHeaderBytes: number;
  readonly #requestTimeoutMs: number;
  readonly #listeners = new Map<string, ServiceListener>();
  /** Counters per service and series; they outlive tables so swaps keep the numbers. */
  readonly #recorder: MeasurementRecorder;
  readonly #flusher: MeasurementFlusher;
  /** Shadow mirrors of every service (mirror.ts). */
  readonly #mirrors: Mirrors;
  /** First exposures of A/B experiment units, flushed to the store (exposures.ts). */
  readonly #exposures: ExposureLog;
  /** Edge flag evaluation (flags-edge.ts); tables compile their flags with it. */
  readonly #edgeFlags: EdgeFlags | null;
  readonly #closing = new Set<Promise<void>>();
  readonly #reloadListeners = new Set<(e: ReloadEvent) => void>();
  /** Revision in force per service (source tables, previews aside), as the registry is told. */
  readonly #revisions = new Map<string, number>();
  readonly #heartbeatMs: number;
  /** Epoch ms, for heartbeats: the clock the controller judges liveness with. */
  readonly #wallNow: () => number;
  readonly #startedAt: number;
  #heartbeat: NodeJS.Timeout | null = null;
  /** A report in flight, and whether another is wanted after it (reports never overlap). */
  #reporting: Promise<void> | null = null;
  #reportAgain = false;
  /** Store outages: one warning when one begins, one line with the counts when it ends. */
  readonly #storeOutage: StoreOutage;

  #started = false;
  #stopped = false;
  #unsubscribe: (() => void) | null = null;
  #pollTimer: NodeJS.Timeout | null = null;
  /** Fingerprint of the tables last applied; null until a reload succeeds. */
  #fingerprint: string | null = null;
  /** Tail of the queue that runs reloads and bind retries one at a time. */
  #queue: Promise<void> = Promise.resolve();
  /** A reload that is queued but not started yet; further requests join it. */
  #pendingReload: Promise<void> | null = null;

  constructor(opts: RouterOptions) {
    this.#source = opts.source;
    this.#logger = opts.logger ?? silentLogger;
    this.#pollIntervalMs = opts.pollIntervalMs ?? 500;
    this.#drainTimeoutMs = opts.drainTimeoutMs ?? 10_000;
    this.#maxHeaderBytes = opts.maxHeaderBytes ?? MAX_REQUEST_HEAD_BYTES;
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? ROUTER_REQUEST_TIMEOUT_MS;
    const headersTimeoutMs = opts.upstreamTimeoutMs ?? 30_000;
    this.#defaultPolicy = {
      ...DEFAULT_TRAFFIC_POLICY,
      timeouts: { ...DEFAULT_TRAFFIC_POLICY.timeouts, upstreamSeconds: headersTimeoutMs / 1000 },
    };
    const clock = opts.clock ?? systemClock;
    const onHealth = (e: HealthEvent) => this.#logHealth(e);
    this.#outliers = new OutlierDetector(clock, onHealth);
    this.#health = new HealthMonitor({
      clock,
      outliers: this.#outliers,
      onEvent: onHealth,
      ...(opts.healthProbe ? { probe: opts.healthProbe } : {}),
    });
    this.#pools = new UpstreamPools({
      headersTimeoutMs,
      // Longest silence between body chunks (undici's default); long enough for streamed
      // responses that pause, short enough that a stuck upstream frees its connection.
      bodyTimeoutMs: 300_000,
      connectTimeoutMs: Math.min(10_000, headersTimeoutMs),
      idleGraceMs: opts.poolIdleGraceMs ?? 10_000,
      clock,
      onRetire: (ep) => this.#outliers.dispose(ep),
    });
    this.#ctx = { logger: this.#logger, outliers: this.#outliers };
    this.#edgeFlags = opts.edgeFlags ?? null;
    const m = opts.measurements ?? {};
    const routerId = opts.routerId ?? m.routerId;
    this.#recorder = new MeasurementRecorder(routerId !== undefined ? { ...m, routerId } : m);
    this.#heartbeatMs = opts.heartbeatMs ?? 1000;
    this.#wallNow = m.now ?? Date.now;
    this.#startedAt = this.#wallNow();
    opts.edgeFlags?.bindRecorder(this.#recorder);
    this.#storeOutage = new StoreOutage({
      logger: this.#logger,
      now: this.#wallNow,
      buffers: () => this.buffers(),
    });
    const health = this.#storeOutage;
    this.#flusher = new MeasurementFlusher({
      recorder: this.#recorder,
      sink: m.sink,
      logger: this.#logger,
      health,
      ...(m.flushIntervalMs !== undefined ? { intervalMs: m.flushIntervalMs } : {}),
      ...(m.retentionSeconds !== undefined ? { retentionSeconds: m.retentionSeconds } : {}),
    });
    this.#exposures = new ExposureLog({
      sink: opts.exposures,
      logger: this.#logger,
      health,
      ...(m.now !== undefined ? { now: m.now } : {}),
      ...(opts.maxBufferedRows !== undefined ? { maxBuffered: opts.maxBufferedRows } : {}),
    });
    this.#mirrors = new Mirrors({
      logger: this.#logger,
      routerId: this.#recorder.routerId,
      sink: opts.shadowSink,
      health,
      ...(m.now !== undefined ? { now: m.now } : {}),
    });
  }

  /**
   * Reads the tables, binds their listeners and starts watching. Resolves once the first
   * reload is done, even if the source could not be read (the router then serves nothing yet
   * and retries at each poll).
   */
  async start(): Promise<void> {
    if (this.#started) throw new Error("Router.start() called twice");
    this.#started = true;
    this.#unsubscribe = this.#source.onChange((what) => {
      if (what === "routeTables") void this.#requestReload();
    });
    await this.#requestReload();
    this.#schedulePoll();
    this.#scheduleHeartbeat();
    this.#flusher.start();
    this.#exposures.start();
    this.#mirrors.start();
  }

  /**
   * Stops watching, closes every listener gracefully (in-flight requests finish, up to
   * `drainTimeoutMs`), then closes the upstream pools.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (this.#pollTimer !== null) clearTimeout(this.#pollTimer);
    this.#pollTimer = null;
    if (this.#heartbeat !== null) clearTimeout(this.#heartbeat);
    this.#heartbeat = null;
    await this.#queue;
    for (const l of this.#listeners.values()) {
      if (l.bound !== null) closeServer(this.#closing, this.#drainTimeoutMs, l.bound);
      l.bound = null;
    }
    this.#listeners.clear();
    this.#health.stopAll();
    await Promise.all([...this.#closing]);
    // After the drain, so the last requests' second (partial) is written too.
    await this.#flusher.stop();
    await this.#exposures.stop();
    await this.#mirrors.stop();
    // Their last writes failed (the store is down): what they held goes with this process.
    this.#storeOutage.stopped();
    await this.#pools.closeAll();
    // Last: a router that serves nothing has nothing for the controller to wait on.
    await this.#reporting?.catch(() => undefined);
    await this.#source.removeRouter?.(this.id).catch((err: unknown) => {
      this.#logger.warn({ err }, "router: cannot deregister; the registry forgets it when stale");
    });
  }

  /** This router's id in the registry and its measurement rows. */
  get id(): string {
    return this.#recorder.routerId;
  }

  /**
   * What this router holds for the store, per kind: rows waiting to be written and rows dropped
   * since start because a bound was reached. Reported with every heartbeat and in /metrics.
   */
  buffers(): RouterBuffers {
    return writerBuffers({
      measurements: this.#flusher,
      exposures: this.#exposures,
      shadow: this.#mirrors,
    });
  }

  /** Whether the store is reachable as far as this router can tell (false during an outage). */
  get storeReachable(): boolean {
    return this.#storeOutage.since === null;
  }

  /** The route-table revision in force per service (what the registry is told). */
  revisions(): Record<string, number> {
    return Object.fromEntries(this.#revisions);
  }

  /** One entry per service with a table, sorted by service. */
  listeners(): ListenerInfo[] {
    return [...this.#listeners.values()]
      .sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0))
      .map((l) => ({
        service: l.service,
        host: l.host,
        port: l.boundPort ?? l.port,
        ...(l.error !== undefined ? { error: l.error } : {}),
      }));
  }

  /** Counters of every version the service has routed to since its table appeared. */
  stats(service: string): VersionStats[] {
    return this.#recorder.stats(service);
  }

  /** The mirror's counters for a service (copies, drops by reason); null without a mirror. */
  mirrorStats(service: string): MirrorStats | null {
    return this.#mirrors.stats(service);
  }

  /** The mirrors: live reports (this router's pairs) and flushing, for tests and the API. */
  get mirrors(): Mirrors {
    return this.#mirrors;
  }

  /** The measurement recorder: 1-second buckets by series (`RouterMeasurementSource`, /metrics). */
  get measurements(): MeasurementRecorder {
    return this.#recorder;
  }

  /** The endpoints of a service's table in force, with what the balancer knows of them. */
  endpoints(service: string): EndpointInfo[] {
    const l = this.#listeners.get(service);
    if (l === undefined) return [];
    const seen = new Set<Endpoint>();
    for (const b of l.table.backends) for (const ep of b.endpoints) seen.add(ep);
    return [...seen].map((ep) => ({
      url: ep.url,
      available: ep.available,
      ejected: ep.ejected,
      activeHealthy: ep.activeHealthy,
      outstanding: ep.outstanding,
      consecutiveFailures: ep.consecutiveFailures,
    }));
  }

  /** Subscribes to the outcome of every reload (for logs, dashboards and tests). */
  onReload(listener: (e: ReloadEvent) => void): () => void {
    this.#reloadListeners.add(listener);
    return () => this.#reloadListeners.delete(listener);
  }

  // -------------------------------------------------------------------------------------
  // Watching the source
  // -------------------------------------------------------------------------------------

  /** Runs `job` after every job queued before it (reloads and binds never overlap). */
  #serial(job: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(job);
    this.#queue = run.catch((err) => this.#logger.error({ err }, "router: reload failed"));
    return this.#queue;
  }

  #requestReload(): Promise<void> {
    // A burst of writes (the controller updating many services) costs at most one reload
    // running and one queued.
    if (this.#pendingReload !== null) return this.#pendingReload;
    const p = this.#serial(async () => {
      this.#pendingReload = null;
      await this.#reload();
    });
    this.#pendingReload = p;
    return p;
  }

  #schedulePoll(): void {
    if (this.#stopped) return;
    this.#pollTimer = setTimeout(() => void this.#poll(), this.#pollIntervalMs);
    // Listeners keep the process alive; the poll timer alone should not.
    this.#pollTimer.unref();
  }

  async #poll(): Promise<void> {
    try {
      let fingerprint: string | undefined;
      try {
        fingerprint = await this.#source.routeTablesFingerprint();
      } catch (err) {
        this.#sourceFailed(err);
        this.#emit({ ok: false, changed: [], error: err });
      }
      if (this.#stopped) return;
      // Unchanged tables after an outage: nothing to reload, but the source is back.
      if (fingerprint !== undefined && fingerprint === this.#fingerprint) {
        this.#storeOutage.succeeded("routeTables");
      }
      if (fingerprint !== undefined && fingerprint !== this.#fingerprint) {
        await this.#requestReload();
      } else if ([...this.#listeners.values()].some((l) => l.bound === null)) {
        await this.#serial(() => this.#retryBinds());
      }
    } finally {
      this.#schedulePoll();
    }
  }

  async #reload(): Promise<void> {
    if (this.#stopped) return;
    let fingerprint: string;
    let tables: RouteTable[];
    try {
      // Fingerprint first: a write landing between the two reads shows up as a changed
      // fingerprint at the next poll, so it is never missed (at worst read twice).
      fingerprint = await this.#source.routeTablesFingerprint();
      tables = await this.#source.listRouteTables();
    } catch (err) {
      this.#sourceFailed(err);
      this.#emit({ ok: false, changed: [], error: err });
      return;
    }
    if (this.#stopped) return;
    this.#storeOutage.succeeded("routeTables");
    const changed = await this.#apply(tables);
    this.#fingerprint = fingerprint;
    // Told at once, not at the next heartbeat: the controller holds instances until then.
    if (changed.length > 0 || !this.#registered) void this.#report();
    this.#emit({ ok: true, changed });
  }

  // -------------------------------------------------------------------------------------
  // The router registry
  // -------------------------------------------------------------------------------------

  /** Set once a report has been stored. */
  #registered = false;

  #scheduleHeartbeat(): void {
    if (this.#stopped || this.#source.reportRouter === undefined) return;
    this.#heartbeat = setTimeout(() => {
      void this.#report().finally(() => this.#scheduleHeartbeat());
    }, this.#heartbeatMs);
    this.#heartbeat.unref();
  }

  /**
   * Writes this router's registration with the revisions in force now. Reports run one at a
   * time; one asked for while another is in flight runs right after it, with what is in force
   * then, so the last report always carries the latest revisions.
   */
  #report(): Promise<void> {
    const report = this.#source.reportRouter?.bind(this.#source);
    if (report === undefined || this.#stopped) return Promise.resolve();
    if (this.#reporting !== null) {
      this.#reportAgain = true;
      return this.#reporting;
    }
    const run = async (): Promise<void> => {
      do {
        this.#reportAgain = false;
        const r: RouterReport = {
          id: this.id,
          address: `${hostname()} (${this.listeners()
            .map((l) => `${l.service} ${l.host}:${l.port}`)
            .join(", ")})`,
          pid: process.pid,
          startedAt: this.#startedAt,
          heartbeatAt: this.#wallNow(),
          revisions: Object.fromEntries(this.#revisions),
          buffers: this.buffers(),
          ...notServingOf(this.listeners(), this.#revisions),
        };
        try {
          await report(r);
          this.#registered = true;
          this.#storeOutage.succeeded("registry");
        } catch (err) {
          this.#storeOutage.failed("registry", err);
          return;
        }
      } while (this.#reportAgain && !this.#stopped);
    };
    this.#reporting = run().finally(() => {
      this.#reporting = null;
    });
    return this.#reporting;
  }

  #sourceFailed(err: unknown): void {
    this.#storeOutage.failed("routeTables", err);
  }

  #emit(e: ReloadEvent): void {
    for (const l of this.#reloadListeners) {
      try {
        l(e);
      } catch (err) {
        this.#logger.error({ err }, "router: reload listener threw");
      }
    }
  }

  // -------------------------------------------------------------------------------------
  // Applying tables
  // -------------------------------------------------------------------------------------

  /** Applies a full set of tables; returns the services whose table changed or went away. */
  async #apply(source: RouteTable[]): Promise<string[]> {
    const tables = expandPreviews(source);
    const revisions = new Map<string, number>();
    for (const t of source) if (!revisions.has(t.service)) revisions.set(t.service, t.revision);
    const changed: string[] = [];
    const seen = new Set<string>();
    const binds: Promise<void>[] = [];
    for (const t of tables) {
      if (seen.has(t.service)) {
        this.#logger.warn(
          { service: t.service },
          "router: two route tables for one service; using the first",
        );
        continue;
      }
      seen.add(t.service);
      const signature = JSON.stringify(t);
      const l = this.#listeners.get(t.service);
      if (l !== undefined && l.signature === signature) continue;
      changed.push(t.service);

      // A table without a policy (an older controller, a test) gets the router's defaults.
      const withPolicy = t.policy === undefined ? { ...t, policy: this.#defaultPolicy } : t;
      // Every feature compiles into the table (features.ts), so its configuration swaps with it.
      const { table, problems } = compileTable(withPolicy, {
        pools: this.#pools,
        counters: (version) => this.#countersOf(t.service, version),
        previous: l?.table,
        features: {
          experiment: this.#exposures,
          flags: this.#edgeFlags ?? undefined,
          mirror: this.#mirrors,
        },
      });
      for (const p of problems) this.#logger.warn({ service: t.service }, `router: ${p}`);
      this.#logger.info(
        {
          service: t.service,
          revision: t.revision,
          backends: t.backends.map((b) => ({
            version: b.version,
            weight: b.weight,
            endpoints: b.endpoints.length,
          })),
        },
        "router: route table applied",
      );

      if (l === undefined) {
        const created: ServiceListener = {
          service: t.service,
          host: t.listen.host,
          port: t.listen.port,
          bound: null,
          boundPort: null,
          error: undefined,
          table,
          signature,
        };
        this.#listeners.set(t.service, created);
        binds.push(this.#bind(created));
        continue;
      }
      // The swap: from here on new requests use `table`; requests in flight keep theirs.
      l.table = table;
      l.signature = signature;
      if (l.bound !== null) applyServerPolicy(l.bound.server, table.policy, this.#requestTimeoutMs);
      if (l.host !== t.listen.host || l.port !== t.listen.port) {
        // Move: bind the new address first, then drain the old one, so the service is never
        // unreachable on both.
        const old = l.bound;
        l.host = t.listen.host;
        l.port = t.listen.port;
        l.bound = null;
        l.boundPort = null;
        l.error = undefined;
        binds.push(
          this.#bind(l).finally(() => {
            if (old !== null) closeServer(this.#closing, this.#drainTimeoutMs, old);
          }),
        );
      }
    }

    for (const [service, l] of this.#listeners) {
      if (seen.has(service)) continue;
      changed.push(service);
      this.#listeners.delete(service);
      this.#recorder.retire(service);
      this.#mirrors.retire(service);
      if (l.bound !== null) closeServer(this.#closing, this.#drainTimeoutMs, l.bound);
      l.bound = null;
      this.#logger.info({ service }, "router: route table removed; listener closing");
    }

    // Endpoints no table names any more: their checks stop now, their pools after a grace.
    const inUse = new Set<string>();
    const checks = new Map<string, { target: Endpoint; spec: HealthCheckSpec }>();
    for (const l of this.#listeners.values()) {
      const spec = l.table.policy.healthCheck;
      // `byVersion` too: a version the split gives nothing may still be a match rule's,
      // the override's or an experiment arm's target, and its pool must stay open.
      for (const b of [...l.table.backends, ...l.table.byVersion.values()]) {
        for (const ep of b.endpoints) {
          inUse.add(ep.url);
          if (spec !== undefined && !checks.has(ep.url)) checks.set(ep.url, { target: ep, spec });
        }
      }
    }
    this.#pools.retainOnly(inUse);
    this.#health.sync(checks);
    // Every table above is in force now (swapped, or its listener created): what is reported.
    this.#revisions.clear();
    for (const [service, revision] of revisions) this.#revisions.set(service, revision);

    await Promise.all(binds);
    return changed;
  }

  #countersOf(service: string, version: string): SeriesCounters {
    return this.#recorder.series(service, version);
  }

  // -------------------------------------------------------------------------------------
  // Listeners
  // -------------------------------------------------------------------------------------

  async #retryBinds(): Promise<void> {
    if (this.#stopped) return;
    const unbound = [...this.#listeners.values()].filter((l) => l.bound === null);
    await Promise.all(unbound.map((l) => this.#bind(l)));
    const changed = unbound.filter((l) => l.bound !== null).map((l) => l.service);
    if (changed.length === 0) return;
    // Told at once: the controller holds the service's rollout until its listener serves.
    void this.#report();
    this.#emit({ ok: true, changed });
  }

  /** Binds `l` to its address; a failure is recorded in `l.error`, never thrown. */
  async #bind(l: ServiceListener): Promise<void> {
    const entry = createListenerServer(this.#ctx, l, {
      maxHeaderBytes: this.#maxHeaderBytes,
      requestTimeoutMs: this.#requestTimeoutMs,
    });
    const { server } = entry;
    const host = l.host;
    const port = l.port;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const message = `${e.code ?? "ERROR"}: ${e.message}`;
      // Logged when it first happens or changes; the poll retries quietly.
      if (l.error !== message) {
        this.#logger.error({ service: l.service, host, port, err }, "router: cannot listen");
      }
      l.error = message;
      return;
    }
    server.on("error", (err) =>
      this.#logger.error({ err, service: l.service }, "router: listener error"),
    );
    // The table moved or disappeared while binding: this server is not wanted any more.
    if (
      this.#stopped ||
      this.#listeners.get(l.service) !== l ||
      l.host !== host ||
      l.port !== port
    ) {
      closeServer(this.#closing, this.#drainTimeoutMs, entry);
      return;
    }
    l.bound = entry;
    l.boundPort = (server.address() as AddressInfo).port;
    l.error = undefined;
    this.#logger.info({ service: l.service, host, port: l.boundPort }, "router: listening");
  }

  #logHealth(e: HealthEvent): void {
    switch (e.kind) {
      case "ejected":
        this.#logger.warn(
          { endpoint: e.url, ms: e.durationMs, reason: e.reason },
          "router: endpoint ejected",
        );
        break;
      case "unhealthy":
        this.#logger.warn({ endpoint: e.url, reason: e.reason }, "router: endpoint unhealthy");
        break;
      default:
        this.#logger.info({ endpoint: e.url }, `router: endpoint ${e.kind}`);
    }
  }
}

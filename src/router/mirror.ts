/**
 * The mirror: copies a share of a service's requests to a shadow version, captures both
 * answers, and compares them off the request path (src/core/shadow). Users only ever get the
 * primary's answer.
 *
 * It is an interceptor around the one proxy core (CONVENTIONS 7): `CompiledMirror.tap` is
 * called once per request of a table that has a mirror and returns null for requests not
 * copied; the proxy hands the few mirrored exchanges' response head, chunks and end to the
 * returned `MirrorTap`. A table without a mirror costs one null check per request.
 *
 * Never slows or fails the primary:
 *   1. the copy is dispatched from a `setImmediate` batch, after the primary's dispatch in the
 *      same tick, through undici pools of its own (a shadow's slow connections never take a
 *      primary's);
 *   2. copies are bounded: at most `maxConcurrency` in flight and `maxQueue` waiting per
 *      service; beyond that, and on timeouts and errors, copies are dropped and counted by
 *      reason (`MirrorStats.drops`);
 *   3. request bodies are buffered only for mirrored requests, up to `maxBodyBytes` (a larger
 *      body is not mirrored); response bodies are kept up to `maxCompareBytes`;
 *   4. comparison runs in `setImmediate` batches with a bounded backlog, never inside a
 *      response callback.
 * Copies carry `x-turnout-shadow: 1` and lose the headers the step strips (e.g. authorization).
 *
 * Files: this one is the registry (per-service state, shadow pools, the breaker, the compare
 * backlog, flushing); mirror-sample.ts decides which requests are copied (the compiled table's
 * `mirror` and its `request` hook); mirror-tap.ts captures and sends one copy.
 *
 * Reports: each service's aggregate (per mirror phase, `RouteMirror.id`) is flushed to the
 * shadow store every second, like measurements (stats.ts), so the controller's shadow step
 * reads the same numbers whichever process the router runs in.
 */
import { Pool } from "undici";
import type { ShadowAggregateRow, ShadowAggregateSink } from "../core/measurements.js";
import { compileUserRegex } from "../core/regex.js";
import { ShadowAggregate, type ShadowReport } from "../core/shadow/aggregate.js";
import { type CompiledCompare, compileCompare } from "../core/shadow/compare.js";
import type { RouteMirror } from "../core/shadow/types.js";
import {
  initialHealth,
  type OutlierDetectionSpec,
  OutlierDetector,
  systemClock,
} from "./health.js";
import { CompiledMirror, type MirrorCondition } from "./mirror-sample.js";
import {
  type DropReason,
  type MirrorHost,
  MirrorState,
  type MirrorTap,
  pump,
  type ShadowEndpoint,
} from "./mirror-tap.js";
import type { StoreUseReporter } from "./outage.js";
import type { RouterLogger, TableFeature } from "./types.js";

export type { ShadowAggregateRow, ShadowAggregateSink } from "../core/measurements.js";
export { CompiledMirror, SHADOW_HEADER } from "./mirror-sample.js";
export type { DropReason, MirrorTap } from "./mirror-tap.js";

export interface MirrorOptions {
  logger: RouterLogger;
  routerId: string;
  sink?: ShadowAggregateSink | undefined;
  /** Default 1000. */
  flushIntervalMs?: number;
  /** Wall clock for `updatedAt` (ms). */
  now?: () => number;
  /** Told how each write went (the router's outage account); without one, failures are logged here. */
  health?: StoreUseReporter;
}

/** What `Router.mirrorStats()` reports for a service. */
export interface MirrorStats {
  id: string;
  version: string;
  /** Requests chosen for copying (sampled, method and match passed). */
  mirrored: number;
  /** Copies dispatched to the shadow. */
  sent: number;
  /** Pairs compared. */
  compared: number;
  inFlight: number;
  queued: number;
  drops: Partial<Record<DropReason, number>>;
}

/** Longest backlog of finished pairs waiting to be compared. */
const MAX_COMPARE_BACKLOG = 1024;
/**
 * Final reports of phases that ended (or services that went away) kept while the store is
 * down; beyond this the oldest are dropped and counted. A live phase needs no room: its
 * aggregate is cumulative, and the next write carries everything compared meanwhile.
 */
export const MAX_HELD_FINAL_REPORTS = 1000;
/** Pairs compared per batch before yielding to the event loop. */
const COMPARE_BATCH = 64;
/**
 * The breaker: after `consecutiveFailures` failed copies in a row (refused, reset, timed out) a
 * shadow endpoint is ejected, as the router ejects upstreams (health.ts `OutlierDetector`, one
 * mechanism for both): a dead shadow would otherwise cost a connection attempt, an error and a
 * report entry per request, which at full load takes CPU from the primary's requests. The pause
 * starts at half a second and doubles while the shadow keeps failing, up to
 * `BREAKER_MAX_MS`; while every shadow endpoint is out, copies are dropped as
 * `shadow_unavailable`.
 */
const BREAKER: OutlierDetectionSpec = {
  consecutiveFailures: 5,
  ejectionSeconds: 0.5,
  maxEjectionPercent: 100,
} as OutlierDetectionSpec;
const BREAKER_MAX_MS = 30_000;

/**
 * The mirrors of all services of one router: compiles each table's mirror, owns the shadow
 * pools, the compare backlog and the flush timer.
 */
export class Mirrors implements MirrorHost {
  readonly #opts: MirrorOptions;
  readonly #states = new Map<string, MirrorState>();
  readonly #pools = new Map<string, Pool>();
  /** Shadow endpoints by URL, with their breaker state (kept across tables). */
  readonly #shadowEndpoints = new Map<string, ShadowEndpoint>();
  readonly #breaker = new OutlierDetector(systemClock, undefined, BREAKER_MAX_MS);
  /** Origins each service's mirror uses, to close pools nobody uses. */
  readonly #origins = new Map<string, Set<string>>();
  readonly #backlog: MirrorTap[] = [];
  #compareScheduled = false;
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> = Promise.resolve();
  /** Finished phases' last states, flushed once more. */
  #retired: ShadowAggregateRow[] = [];
  /** Rows of the last write that failed (0 once one succeeds). */
  #held = 0;
  /** Final reports dropped since start (`MAX_HELD_FINAL_REPORTS`). */
  #dropped = 0;

  constructor(opts: MirrorOptions) {
    this.#opts = opts;
  }

  /** The compiled mirror for a table (null without one). Keeps the service's state across tables. */
  compile(service: string, m: RouteMirror | undefined, problems: string[]): CompiledMirror | null {
    if (m === undefined) {
      // The phase is over (or never began): copies not yet sent are no longer wanted, and
      // would fail on pools that are closing. Copies in flight finish (`Pool.close`).
      const old = this.#states.get(service);
      if (old !== undefined) {
        old.active = false;
        old.queue.length = 0;
      }
      this.#setOrigins(service, new Set());
      return null;
    }
    let st = this.#states.get(service);
    if (st === undefined) {
      st = new MirrorState(service, new ShadowAggregate());
      this.#states.set(service, st);
    }
    st.active = true;
    if (st.id !== m.id) {
      this.#retire(st);
      st.id = m.id;
      st.version = m.version;
      st.agg = new ShadowAggregate();
      st.acc = 0;
      st.dirty = true;
    }
    const origins = new Set<string>();
    const endpoints = this.#endpoints(m.endpoints, origins, problems);
    const noise = this.#endpoints(m.noiseEndpoints ?? [], origins, problems);
    this.#setOrigins(service, origins);
    if (endpoints.length === 0) return null;
    let compare: CompiledCompare;
    try {
      compare = compileCompare(m.compare);
    } catch (err) {
      problems.push(`mirror: compare spec skipped: ${(err as Error).message}`);
      compare = compileCompare({});
    }
    const conditions: MirrorCondition[] = [];
    let cookie: MirrorCondition | null = null;
    const cond = (
      c: { name: string; equals?: string; regex?: string; exists?: boolean },
      header: boolean,
    ) => {
      const r = typeof c.regex === "string" ? compileUserRegex(c.regex) : null;
      if (typeof r === "string") {
        problems.push(
          `mirror: match regex ${JSON.stringify(c.regex)} ${r}; the mirror matches nothing`,
        );
        return { name: "", equals: "\u0000never", regex: null, exists: null };
      }
      return {
        name: header ? c.name.toLowerCase() : c.name,
        equals: c.equals ?? null,
        regex: r,
        exists: typeof c.exists === "boolean" ? c.exists : null,
      };
    };
    if (m.match?.header) conditions.push(cond(m.match.header, true));
    if (m.match?.cookie) cookie = cond(m.match.cookie, false);
    return new CompiledMirror(
      this,
      st,
      m,
      endpoints,
      noise,
      compare,
      conditions,
      cookie,
      m.match?.pathPrefix ?? null,
    );
  }

  /** The service's table went away: its last numbers are flushed, its state dropped. */
  retire(service: string): void {
    const st = this.#states.get(service);
    if (st !== undefined) this.#retire(st);
    this.#states.delete(service);
    this.#setOrigins(service, new Set());
  }

  stats(service: string): MirrorStats | null {
    const st = this.#states.get(service);
    if (st === undefined || st.id === "") return null;
    return {
      id: st.id,
      version: st.version,
      mirrored: st.mirrored,
      sent: st.sent,
      compared: st.compared,
      inFlight: st.inFlight,
      queued: st.queue.length,
      drops: { ...st.drops },
    };
  }

  /** Every service's mirror counters (for /metrics). */
  allStats(): ({ service: string } & MirrorStats)[] {
    const out: ({ service: string } & MirrorStats)[] = [];
    for (const service of this.#states.keys()) {
      const s = this.stats(service);
      if (s !== null) out.push({ service, ...s });
    }
    return out;
  }

  /** The live report of a service's current phase (this router's pairs only). */
  report(service: string): { id: string; report: ShadowReport } | null {
    const st = this.#states.get(service);
    if (st === undefined || st.id === "") return null;
    return { id: st.id, report: st.agg.report() };
  }

  start(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => void this.flush(), this.#opts.flushIntervalMs ?? 1000);
    this.#timer.unref();
  }

  /** Compares what is pending, writes the last aggregates, closes the shadow pools. */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#compareNow(Number.POSITIVE_INFINITY);
    await this.flush();
    for (const st of this.#states.values()) this.#retire(st);
    this.#states.clear();
    await this.flush();
    for (const ep of this.#shadowEndpoints.values()) this.#breaker.dispose(ep);
    this.#shadowEndpoints.clear();
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }

  /**
   * Reports waiting for the store (as of the last write: the rows it could not write) and
   * final reports dropped since start because too many waited.
   */
  buffers(): { buffered: number; dropped: number } {
    return { buffered: this.#held, dropped: this.#dropped };
  }

  /** Writes every changed aggregate to the sink (one write at a time). */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#flushOnce());
    return this.#flushing;
  }

  async #flushOnce(): Promise<void> {
    const sink = this.#opts.sink;
    const now = this.#opts.now?.() ?? Date.now();
    const rows = this.#retired.splice(0);
    for (const st of this.#states.values()) {
      if (!st.dirty || st.id === "") continue;
      st.dirty = false;
      rows.push(this.#row(st, now));
    }
    if (sink === undefined || rows.length === 0) return;
    try {
      await sink.saveShadowAggregates(rows);
    } catch (err) {
      this.#held = rows.length;
      // A live phase's row is written again, up to date, by the next flush (its state is
      // cumulative, so nothing is lost but time); a finished phase's row is its last, and is
      // kept as it is.
      const final: ShadowAggregateRow[] = [];
      for (const r of rows) {
        const st = this.#states.get(r.service);
        if (st !== undefined && st.id === r.id) st.dirty = true;
        else final.push(r);
      }
      this.#retired = final.concat(this.#retired);
      const over = this.#retired.length - MAX_HELD_FINAL_REPORTS;
      if (over > 0) {
        this.#retired.splice(0, over);
        this.#dropped += over;
      }
      if (this.#opts.health !== undefined) this.#opts.health.failed("shadow", err);
      else this.#opts.logger.warn({ err }, "router: shadow reports could not be written; retrying");
      return;
    }
    this.#held = 0;
    this.#opts.health?.succeeded("shadow", { shadow: rows.length });
  }

  #row(st: MirrorState, now: number): ShadowAggregateRow {
    return {
      service: st.service,
      id: st.id,
      version: st.version,
      routerId: this.#opts.routerId,
      // A copy: the live aggregate keeps changing while the write is under way.
      state: structuredClone(st.agg.toJSON()),
      updatedAt: now,
    };
  }

  #retire(st: MirrorState): void {
    if (st.id === "") return;
    if (st.dirty) this.#retired.push(this.#row(st, this.#opts.now?.() ?? Date.now()));
    st.dirty = false;
  }

  #endpoints(urls: readonly string[], origins: Set<string>, problems: string[]): ShadowEndpoint[] {
    const out: ShadowEndpoint[] = [];
    for (const url of urls) {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        problems.push(`mirror: endpoint ${JSON.stringify(url)} skipped: not a URL`);
        continue;
      }
      if (u.protocol !== "http:" && u.protocol !== "https:") {
        problems.push(`mirror: endpoint ${JSON.stringify(url)} skipped: unsupported scheme`);
        continue;
      }
      origins.add(u.origin);
      let pool = this.#pools.get(u.origin);
      if (pool === undefined) {
        pool = new Pool(u.origin, { pipelining: 1, connect: { timeout: 5000 } });
        this.#pools.set(u.origin, pool);
      }
      let ep = this.#shadowEndpoints.get(url);
      if (ep === undefined || ep.pool !== pool) {
        ep = {
          url,
          pool,
          pathPrefix: u.pathname.endsWith("/") ? u.pathname.slice(0, -1) : u.pathname,
          ...initialHealth(),
        };
        this.#shadowEndpoints.set(url, ep);
      }
      out.push(ep);
    }
    return out;
  }

  #setOrigins(service: string, origins: Set<string>): void {
    if (origins.size === 0) this.#origins.delete(service);
    else this.#origins.set(service, origins);
    const used = new Set<string>();
    for (const s of this.#origins.values()) for (const o of s) used.add(o);
    for (const [origin, pool] of this.#pools) {
      if (used.has(origin)) continue;
      this.#pools.delete(origin);
      for (const [url, ep] of this.#shadowEndpoints) {
        if (ep.pool !== pool) continue;
        this.#breaker.dispose(ep);
        this.#shadowEndpoints.delete(url);
      }
      // Copies in flight finish first (`close`, not `destroy`).
      void pool.close().catch(() => undefined);
    }
  }

  // -------------------------------------------------------------------------------------
  // Sending and comparing
  // -------------------------------------------------------------------------------------

  /** A copy's outcome on its shadow endpoint: failures feed the breaker, a success resets it. */
  copyOutcome(ep: ShadowEndpoint, peers: readonly ShadowEndpoint[], ok: boolean): void {
    if (!ok) this.#breaker.failure(ep, peers, BREAKER);
    else if (ep.consecutiveFailures !== 0) ep.consecutiveFailures = 0;
  }

  /** Queues a tap whose copy is ready to go (its request body, if any, complete). */
  enqueue(tap: MirrorTap): void {
    const st = tap.state;
    if (!st.active) return;
    if (st.queue.length >= tap.mirror.spec.limits.maxQueue) {
      tap.dropped = true;
      st.drop("queue_full");
      return;
    }
    st.queue.push(tap);
    if (!st.pumpScheduled) {
      st.pumpScheduled = true;
      setImmediate(pump, st);
    }
  }

  /** A pair whose answers are all in: compare it soon, off the request path. */
  finished(tap: MirrorTap): void {
    if (this.#backlog.length >= MAX_COMPARE_BACKLOG) {
      tap.state.drop("compare_backlog");
      return;
    }
    this.#backlog.push(tap);
    if (!this.#compareScheduled) {
      this.#compareScheduled = true;
      setImmediate(() => {
        this.#compareScheduled = false;
        this.#compareNow(COMPARE_BATCH);
      });
    }
  }

  #compareNow(max: number): void {
    let n = 0;
    while (this.#backlog.length > 0 && n < max) {
      const tap = this.#backlog.shift()!;
      n++;
      try {
        tap.compare();
      } catch (err) {
        this.#opts.logger.error(
          { err, service: tap.state.service },
          "router: shadow comparison failed",
        );
      }
    }
    if (this.#backlog.length > 0 && !this.#compareScheduled) {
      this.#compareScheduled = true;
      setImmediate(() => {
        this.#compareScheduled = false;
        this.#compareNow(COMPARE_BATCH);
      });
    }
  }
}

/**
 * The mirror feature (features.ts): its environment is the router's `Mirrors`; a table compiled
 * without one mirrors nothing.
 */
export const mirrorFeature: TableFeature<Mirrors, CompiledMirror> = {
  compile: (raw, _core, mirrors, problems) =>
    mirrors?.compile(raw.service, raw.mirror, problems) ?? null,
};

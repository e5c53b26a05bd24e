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
 * Reports: each service's aggregate (per mirror phase, `RouteMirror.id`) is flushed to the
 * shadow store every second, like measurements (stats.ts), so the controller's shadow step
 * reads the same numbers whichever process the router runs in.
 */
import type { IncomingMessage } from "node:http";
import { type Dispatcher, Pool } from "undici";
import { compileUserRegex, type UserRegex } from "../core/regex.js";
import {
  ShadowAggregate,
  type ShadowAggregateState,
  type ShadowReport,
} from "../core/shadow/aggregate.js";
import { type CompiledCompare, comparePair, compileCompare } from "../core/shadow/compare.js";
import type { CapturedResponse, RouteMirror } from "../core/shadow/types.js";
import type { RouterLogger } from "./router.js";
import { cookieValue, headerValue, pathHasPrefix } from "./select.js";

/** The marker header on every copy, so a shadow can tell copies from user requests. */
export const SHADOW_HEADER = "x-turnout-shadow";

/** Why a copy was not made, not answered, or not compared. */
export type DropReason =
  | "queue_full"
  | "body_too_large"
  | "shadow_timeout"
  | "shadow_error"
  | "primary_failed"
  | "compare_backlog"
  | "shadow_unavailable";

/** One router's aggregate of one mirror phase, as flushed to the store. */
export interface ShadowAggregateRow {
  service: string;
  id: string;
  version: string;
  routerId: string;
  state: ShadowAggregateState;
  updatedAt: number;
}

/** Where aggregates go (the shadow store). */
export interface ShadowAggregateSink {
  saveShadowAggregates(rows: ShadowAggregateRow[]): Promise<void>;
}

export interface MirrorOptions {
  logger: RouterLogger;
  routerId: string;
  sink?: ShadowAggregateSink | undefined;
  /** Default 1000. */
  flushIntervalMs?: number;
  /** Wall clock for `updatedAt` (ms). */
  now?: () => number;
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
/** Pairs compared per batch before yielding to the event loop. */
const COMPARE_BATCH = 64;
/** Sampling is exact in steps of 0.01%: each request adds percent × 100 to an accumulator. */
const SAMPLE_FULL = 10_000;
/**
 * Consecutive shadow failures (refused, reset, timed out) after which copies stop for a while:
 * a dead shadow would otherwise cost a connection attempt, an error and a report entry per
 * request, which at full load takes CPU from the primary's requests.
 */
const BREAKER_FAILURES = 5;
const BREAKER_MIN_MS = 500;
const BREAKER_MAX_MS = 30_000;

interface ShadowEndpoint {
  readonly pool: Pool;
  readonly pathPrefix: string;
}

/** Per service: the phase's aggregate, the sampling state, the queue. Outlives tables. */
class MirrorState {
  id = "";
  version = "";
  agg = new ShadowAggregate();
  dirty = false;
  acc = 0;
  /** False once the service's table has no mirror: queued copies are then not sent. */
  active = true;
  /** Consecutive failed copies; at BREAKER_FAILURES copies pause until `openUntil`. */
  failures = 0;
  /** performance.now() until which no copy is made (0: closed); the pause doubles each time. */
  openUntil = 0;
  openMs = BREAKER_MIN_MS;
  inFlight = 0;
  readonly queue: MirrorTap[] = [];
  pumpScheduled = false;
  mirrored = 0;
  sent = 0;
  compared = 0;
  readonly drops: Partial<Record<DropReason, number>> = {};

  constructor(readonly service: string) {}

  drop(reason: DropReason): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
    // Copies that were never made or never compared; the shadow's own failures are pairs.
    if (
      reason !== "shadow_timeout" &&
      reason !== "shadow_error" &&
      reason !== "shadow_unavailable"
    ) {
      this.agg.drop(reason);
      this.dirty = true;
    }
  }
}

/** A compiled condition of the mirror's match (the same semantics as select.ts). */
interface MirrorCondition {
  name: string;
  equals: string | null;
  regex: UserRegex | null;
  exists: boolean | null;
}

/**
 * The mirrors of all services of one router: compiles each table's mirror, owns the shadow
 * pools, the compare backlog and the flush timer.
 */
export class Mirrors {
  readonly #opts: MirrorOptions;
  readonly #states = new Map<string, MirrorState>();
  readonly #pools = new Map<string, Pool>();
  /** Origins each service's mirror uses, to close pools nobody uses. */
  readonly #origins = new Map<string, Set<string>>();
  readonly #backlog: MirrorTap[] = [];
  #compareScheduled = false;
  #timer: NodeJS.Timeout | null = null;
  #flushing: Promise<void> = Promise.resolve();
  /** Finished phases' last states, flushed once more. */
  readonly #retired: ShadowAggregateRow[] = [];

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
      st = new MirrorState(service);
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
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
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
      // The next flush writes the (cumulative) state again, so nothing is lost but time.
      for (const r of rows) {
        const st = this.#states.get(r.service);
        if (st !== undefined && st.id === r.id) st.dirty = true;
      }
      this.#opts.logger.warn({ err }, "router: shadow reports could not be written; retrying");
    }
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
      out.push({
        pool,
        pathPrefix: u.pathname.endsWith("/") ? u.pathname.slice(0, -1) : u.pathname,
      });
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
      // Copies in flight finish first (`close`, not `destroy`).
      void pool.close().catch(() => undefined);
    }
  }

  // -------------------------------------------------------------------------------------
  // Sending and comparing
  // -------------------------------------------------------------------------------------

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

/** Counts a copy's outcome for the breaker: 5 failures in a row pause copies, a success resets. */
function breaker(st: MirrorState, ok: boolean): void {
  if (ok) {
    st.failures = 0;
    st.openUntil = 0;
    st.openMs = BREAKER_MIN_MS;
    return;
  }
  st.failures++;
  if (st.failures < BREAKER_FAILURES) return;
  st.failures = 0;
  st.openUntil = performance.now() + st.openMs;
  st.openMs = Math.min(st.openMs * 2, BREAKER_MAX_MS);
}

/** Sends queued copies while the service has concurrency left. */
function pump(st: MirrorState): void {
  st.pumpScheduled = false;
  if (!st.active) {
    st.queue.length = 0;
    return;
  }
  while (st.queue.length > 0) {
    const tap = st.queue[0]!;
    if (st.inFlight >= tap.mirror.spec.limits.maxConcurrency) return;
    st.queue.shift();
    tap.send();
  }
}

/** One table's mirror: the sampling and matching decision per request. */
export class CompiledMirror {
  readonly #full: number;
  readonly stripHeaders: ReadonlySet<string>;
  readonly methods: ReadonlySet<string>;
  #cursor = 0;
  #noiseCursor = 0;

  constructor(
    readonly mirrors: Mirrors,
    readonly state: MirrorState,
    readonly spec: RouteMirror,
    readonly endpoints: readonly ShadowEndpoint[],
    readonly noise: readonly ShadowEndpoint[],
    readonly compare: CompiledCompare,
    readonly headerConditions: readonly MirrorCondition[],
    readonly cookieCondition: MirrorCondition | null,
    readonly pathPrefix: string | null,
  ) {
    this.#full = Math.round(spec.percent * 100);
    this.stripHeaders = new Set(spec.stripHeaders);
    this.methods = new Set(spec.methods);
  }

  /**
   * Decides whether this request is copied; if so, returns the tap that captures it. Called by
   * the proxy after the version was picked and before the primary is dispatched.
   */
  tap(
    req: IncomingMessage,
    target: string,
    headers: readonly string[],
    hasBody: boolean,
    requestId: string,
    startedAt: number,
  ): MirrorTap | null {
    // 1. Method, then match, then the exact sampling (cheapest first).
    const method = req.method ?? "GET";
    if (!this.methods.has(method)) return null;
    if (!this.#matches(req)) return null;
    const st = this.state;
    st.acc += this.#full;
    if (st.acc < SAMPLE_FULL) return null;
    st.acc -= SAMPLE_FULL;
    st.mirrored++;
    // 2. The shadow is failing: no copy until the pause ends (then the next ones probe it).
    if (st.openUntil !== 0 && performance.now() < st.openUntil) {
      st.drop("shadow_unavailable");
      return null;
    }
    // 3. A body announced over the limit is not mirrored at all.
    const limits = this.spec.limits;
    if (hasBody) {
      const length = Number(req.headers["content-length"]);
      if (Number.isFinite(length) && length > limits.maxBodyBytes) {
        st.drop("body_too_large");
        return null;
      }
    }
    // 4. The queue is full now: do not even capture.
    if (st.inFlight >= limits.maxConcurrency && st.queue.length >= limits.maxQueue) {
      st.drop("queue_full");
      return null;
    }
    const copyHeaders: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const lower = name.toLowerCase();
      if (this.stripHeaders.has(lower) || lower === SHADOW_HEADER) continue;
      copyHeaders.push(name, headers[i + 1]!);
    }
    copyHeaders.push(SHADOW_HEADER, "1");
    const tap = new MirrorTap(this, method, target, copyHeaders, hasBody, requestId, startedAt);
    if (!hasBody) this.mirrors.enqueue(tap);
    return tap;
  }

  #matches(req: IncomingMessage): boolean {
    if (this.pathPrefix !== null && !pathHasPrefix(req.url, this.pathPrefix)) return false;
    const raw = req.rawHeaders;
    for (const c of this.headerConditions) if (!holds(c, headerValue(raw, c.name))) return false;
    if (
      this.cookieCondition !== null &&
      !holds(this.cookieCondition, cookieValue(raw, this.cookieCondition.name))
    )
      return false;
    return true;
  }

  nextEndpoint(): ShadowEndpoint {
    const e = this.endpoints[this.#cursor % this.endpoints.length]!;
    this.#cursor++;
    return e;
  }

  nextNoiseEndpoint(): ShadowEndpoint | null {
    if (this.noise.length === 0) return null;
    const e = this.noise[this.#noiseCursor % this.noise.length]!;
    this.#noiseCursor++;
    return e;
  }
}

function holds(c: MirrorCondition, value: string | undefined): boolean {
  if (c.exists !== null) return (value !== undefined) === c.exists;
  if (value === undefined) return false;
  if (c.equals !== null) return value === c.equals;
  return c.regex?.test(value) === true;
}

/** One answer being captured (the primary's, a shadow copy's, or the noise copy's). */
class Capture {
  status = 0;
  headers: Record<string, string | string[] | undefined> = {};
  chunks: Buffer[] = [];
  bytes = 0;
  truncated = false;
  latencyMs = -1;
  /** 0 pending, 1 done, 2 failed. */
  outcome = 0;
  error = "";

  constructor(readonly max: number) {}

  data(chunk: Buffer): void {
    if (this.truncated) return;
    if (this.bytes + chunk.length > this.max) {
      this.truncated = true;
      this.chunks = [];
      return;
    }
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  toResponse(): CapturedResponse {
    return {
      status: this.status,
      headers: this.headers,
      body: this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bytes),
      truncated: this.truncated,
      latencyMs: this.latencyMs,
    };
  }
}

/**
 * One mirrored request: captures the primary's answer (fed by the proxy), the request body
 * (for requests with one), sends the copy (and the noise copy), and compares when all are in.
 */
export class MirrorTap {
  readonly state: MirrorState;
  readonly primary: Capture;
  shadow: Capture | null = null;
  noise: Capture | null = null;
  bodyChunks: Buffer[] | null = null;
  bodyBytes = 0;
  /** The copy will not be sent or compared (queue full, body too large). */
  dropped = false;
  #watching = false;
  /** Copies of this tap still in flight (0..2). */
  #pending = 0;
  #sentAt = 0;

  constructor(
    readonly mirror: CompiledMirror,
    readonly method: string,
    readonly target: string,
    readonly headers: string[],
    readonly hasBody: boolean,
    readonly requestId: string,
    readonly startedAt: number,
  ) {
    this.state = mirror.state;
    this.primary = new Capture(mirror.spec.limits.maxCompareBytes);
  }

  // --- fed by the proxy --------------------------------------------------------------------

  /** Buffers the request body as undici reads it (attached in the same tick, so no chunk is missed). */
  watchBody(req: IncomingMessage): void {
    if (this.#watching || !this.hasBody) return;
    this.#watching = true;
    this.bodyChunks = [];
    const max = this.mirror.spec.limits.maxBodyBytes;
    req.on("data", (chunk: Buffer) => {
      if (this.bodyChunks === null) return;
      this.bodyBytes += chunk.length;
      if (this.bodyBytes > max) {
        this.bodyChunks = null;
        this.dropped = true;
        this.state.drop("body_too_large");
        return;
      }
      this.bodyChunks.push(chunk);
    });
    req.on("end", () => {
      if (this.bodyChunks !== null && !this.dropped) this.mirror.mirrors.enqueue(this);
    });
  }

  primaryHead(status: number, headers: Record<string, string | string[] | undefined>): void {
    this.primary.status = status;
    this.primary.headers = headers;
  }

  primaryData(chunk: Buffer): void {
    this.primary.data(chunk);
  }

  primaryEnd(): void {
    if (this.primary.outcome !== 0) return;
    // Ended without a response head (a header Node refused): nothing to compare.
    this.primary.outcome = this.primary.status === 0 ? 2 : 1;
    this.primary.latencyMs = performance.now() - this.startedAt;
    this.#maybeFinish();
  }

  /** The client's response closed: if the primary did not end well, the pair is not compared. */
  primaryClosed(): void {
    if (this.primary.outcome !== 0) return;
    this.primary.outcome = 2;
    this.#maybeFinish();
  }

  // --- the copies ----------------------------------------------------------------------------

  send(): void {
    const st = this.state;
    const limits = this.mirror.spec.limits;
    const body =
      this.bodyChunks === null
        ? null
        : this.bodyChunks.length === 1
          ? this.bodyChunks[0]!
          : Buffer.concat(this.bodyChunks);
    this.bodyChunks = null;
    st.inFlight++;
    st.sent++;
    st.agg.sent();
    st.dirty = true;
    this.#sentAt = performance.now();
    // Both captures exist before either dispatch, which may fail synchronously.
    const timeoutMs = limits.timeoutSeconds * 1000;
    const noiseEp = this.mirror.nextNoiseEndpoint();
    this.shadow = new Capture(limits.maxCompareBytes);
    if (noiseEp !== null) this.noise = new Capture(limits.maxCompareBytes);
    this.#pending = noiseEp !== null ? 2 : 1;
    this.#dispatch(this.mirror.nextEndpoint(), this.shadow, body, timeoutMs);
    if (noiseEp !== null) this.#dispatch(noiseEp, this.noise!, body, timeoutMs);
  }

  #dispatch(ep: ShadowEndpoint, cap: Capture, body: Buffer | null, timeoutMs: number): void {
    const handler = new CopyHandler(this, cap);
    try {
      ep.pool.dispatch(
        {
          path: ep.pathPrefix === "" ? this.target : ep.pathPrefix + this.target,
          method: this.method,
          headers: this.headers,
          body,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        },
        handler,
      );
    } catch (err) {
      handler.onResponseError(undefined, err as Error);
    }
  }

  /** A copy ended (answered or failed). */
  copyDone(cap: Capture): void {
    if (cap.outcome === 1) cap.latencyMs = performance.now() - this.#sentAt;
    if (cap === this.shadow) breaker(this.state, cap.outcome === 1);
    this.#pending--;
    if (this.#pending > 0) return;
    const st = this.state;
    st.inFlight--;
    if (st.queue.length > 0 && !st.pumpScheduled) {
      st.pumpScheduled = true;
      setImmediate(pump, st);
    }
    this.#maybeFinish();
  }

  #maybeFinish(): void {
    if (this.primary.outcome === 0 || this.shadow === null || this.#pending > 0) return;
    if (this.primary.outcome === 2) {
      if (!this.dropped) this.state.drop("primary_failed");
      this.dropped = true;
      return;
    }
    this.mirror.mirrors.finished(this);
  }

  /** Compares the pair into the phase's aggregate (called from the compare batch). */
  compare(): void {
    const st = this.state;
    // The phase changed while this pair was in flight: it belongs to none.
    if (st.id !== this.mirror.spec.id) return;
    const shadow = this.shadow!;
    const meta = { requestId: this.requestId, method: this.method, target: this.target };
    st.compared++;
    st.dirty = true;
    if (shadow.outcome === 2) {
      st.agg.addShadowError(this.primary.status, shadow.error, meta);
      return;
    }
    const primary = this.primary.toResponse();
    const c = this.mirror.compare;
    st.agg.addPair(comparePair(c, primary, shadow.toResponse()), meta);
    if (this.noise !== null && this.noise.outcome === 1) {
      st.agg.addNoise(comparePair(c, primary, this.noise.toResponse()).diffs);
    }
  }
}

/** undici's handler for one copy: keeps the head and up to `max` bytes of the body. */
class CopyHandler implements Dispatcher.DispatchHandler {
  #done = false;

  constructor(
    readonly tap: MirrorTap,
    readonly cap: Capture,
  ) {}

  onRequestStart(): void {}

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200) return;
    this.cap.status = statusCode;
    this.cap.headers = headers;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.cap.data(chunk);
  }

  onResponseEnd(): void {
    if (this.#done) return;
    this.#done = true;
    this.cap.outcome = 1;
    this.tap.copyDone(this.cap);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    if (this.#done) return;
    this.#done = true;
    const code = (err as { code?: string }).code;
    this.cap.outcome = 2;
    this.cap.error = code ?? err.message;
    if (this.cap === this.tap.shadow) {
      const timeout =
        code === "UND_ERR_HEADERS_TIMEOUT" ||
        code === "UND_ERR_BODY_TIMEOUT" ||
        code === "UND_ERR_CONNECT_TIMEOUT";
      this.tap.state.drop(timeout ? "shadow_timeout" : "shadow_error");
    }
    this.tap.copyDone(this.cap);
  }
}

/**
 * The router's measurements: per service and per series (a version, or a version and the
 * variants of the flags the edge evaluated for the request, see `SeriesLabels` and
 * `flags-edge.ts`; an experiment's arms are versions, measured as such), a ring of 1-second
 * buckets holding requests, status classes, upstream errors, requests abandoned by their clients
 * and a latency sketch, counted when a request ends; and, counted as they happen, requests sent
 * to the version (when the proxy picks it) and response heads that came back from it, so that
 * analysis sees a version that takes requests and answers none before any of them ends
 * (`core/analysis/no-response.ts`).
 *
 * The hot path: compiled tables hold a direct reference to each version's `SeriesCounters`,
 * so recording a response is a clock read, a compare, a few integer increments and one
 * `Sketch.add` (a log and an array increment). Buckets are preallocated per series and reused
 * when the ring wraps, and their sketches keep their bins, so once a series has seen a window
 * of traffic recording allocates nothing. The work that touches a whole bucket (folding a
 * finished second into the running totals) happens once per second per series, on the first
 * request of the next second.
 *
 * Readers: `window()` merges the buckets of a time range (for analysis through
 * `RouterMeasurementSource`), `stats()` gives the live totals (CLI and dashboard), `totals()`
 * feeds Prometheus, and `MeasurementFlusher` writes each completed second to the store so that
 * analysis in another process reads the same numbers (DESIGN invariant 6).
 */
import { hostname } from "node:os";
import {
  ABANDONED_STATUS,
  addCounts,
  type Counts,
  type MeasurementRow,
  type SeriesLabels,
  type SeriesWindow,
  type SeriesWindowReader,
  type StatusClasses,
  secondsOf,
  statusClasses,
} from "../core/measurements.js";
import { Sketch } from "../core/sketch.js";
import type { Store } from "../store/store.js";
import type { StoreUseReporter } from "./outage.js";
import type { RouterLogger, SeriesRecorder } from "./types.js";

export type { SeriesLabels, SeriesWindow } from "../core/measurements.js";
export { canonicalLabels, secondsOf } from "../core/measurements.js";

/** Default length of the in-memory ring, in seconds. */
export const DEFAULT_WINDOW_SECONDS = 300;
/** Default age after which the flusher prunes stored measurements (6 hours). */
export const DEFAULT_RETENTION_SECONDS = 6 * 3600;

/** A snapshot of one version's counters, as `Router.stats()` returns it. */
export interface VersionStats {
  version: string;
  /** The series' labels (flag variants, `canonicalLabels`), when it has any. */
  labels?: string;
  /** Requests routed to this version (counted when the version is chosen). */
  requests: number;
  /** Responses sent to clients, by status class; includes the router's own 502/504. */
  status: StatusClasses;
  /** Upstream failures: refused or reset connections, timeouts, broken response streams. */
  upstreamErrors: number;
  /**
   * Requests whose client left before the version's response head came (recorded as 499, in
   * `status["4xx"]`, with the time until the client left as latency).
   */
  abandoned: number;
  latencyMsSum: number;
  /** Number of responses whose latency is in `latencyMsSum` (for the mean). */
  latencyCount: number;
  latencyMsMax: number;
  /** Median latency since the version's first request (sketch, ±1%); null before any response. */
  p50Ms: number | null;
  /** 99th percentile latency, as `p50Ms`. */
  p99Ms: number | null;
}

/** Cumulative numbers of one series since it appeared, for Prometheus counters. */
export interface SeriesTotals extends SeriesLabels {
  /** Responses by status class. */
  status: StatusClasses;
  /** Responses (including any outside the four classes). */
  responses: number;
  upstreamErrors: number;
  /** Requests abandoned by their clients (`Counts.abandoned`). */
  abandoned: number;
  /** Latency in ms of every response; a copy the caller may keep. */
  latency: Sketch;
  /** Requests answered 503 for want of file descriptors (see `SeriesCounters.fdExhausted`). */
  fdExhausted: number;
}

/** One second of one series. Reset and reused when the ring wraps. */
class SecondBucket implements Counts {
  /** Epoch second; -1 while unused. */
  sec = -1;
  /** Requests sent to the version in this second (`SeriesCounters.start`). */
  started = 0;
  /** Response heads the version sent in this second (`SeriesCounters.respond`). */
  responded = 0;
  requests = 0;
  s2xx = 0;
  s3xx = 0;
  s4xx = 0;
  s5xx = 0;
  upstreamErrors = 0;
  abandoned = 0;
  readonly latency: Sketch;

  constructor(alpha: number) {
    this.latency = new Sketch({ alpha });
  }

  reset(sec: number): void {
    this.sec = sec;
    this.started = 0;
    this.responded = 0;
    this.requests = 0;
    this.s2xx = 0;
    this.s3xx = 0;
    this.s4xx = 0;
    this.s5xx = 0;
    this.upstreamErrors = 0;
    this.abandoned = 0;
    this.latency.clear();
  }

  get empty(): boolean {
    return this.requests === 0 && this.upstreamErrors === 0 && this.started === 0;
  }

  addTo(into: SecondBucket): void {
    addCounts(into, this);
    into.started += this.started;
    into.responded += this.responded;
    into.latency.merge(this.latency);
  }
}

/** Settings shared by every series of one recorder. */
interface RecorderConfig {
  readonly windowSeconds: number;
  readonly alpha: number;
  /** The injected clock; null for the system clock. */
  readonly now: (() => number) | null;
  /**
   * Date.now() − performance.now(), refreshed every flush: with the system clock, the hot path
   * turns the `performance.now()` it reads for the latency into a wall-clock second, so it
   * reads no second clock (a Date.now() call costs ~70 ns here and boxes a number).
   */
  perfOffset: number;
  /** Seconds overwritten in the ring before they were flushed (a long store outage). */
  dropped: number;
}

/** Wall-clock ms by the recorder's clock. */
function wallNow(cfg: RecorderConfig): number {
  return cfg.now === null ? Date.now() : cfg.now();
}

/**
 * The counters of one series (service + version [+ labels]); the object a compiled table's
 * backend points at. The proxy calls `start` when it picks the version, `respond` when the
 * version's response head comes, and `record` once when the request ends.
 */
export class SeriesCounters implements SeriesLabels, SeriesRecorder {
  /** Requests routed to this series, counted by the proxy when it chooses the version. */
  requests = 0;
  /**
   * The series counts requests as they start (`start` was called): its rows carry `started`
   * and `responded`. A recorder fed only with ended requests (HAProxy's log intake, which
   * learns of a request when it ends) leaves them out, which readers take as "not known"
   * rather than "none sent".
   */
  #countsStarts = false;
  /**
   * Requests answered 503 because the router ran out of file descriptors connecting to an
   * upstream of this series (in memory, for `turnout_router_fd_exhausted_total`).
   */
  fdExhausted = 0;
  /** Every second that has left the ring's current slot, summed (for totals and stats). */
  readonly #total: SecondBucket;
  /** The ring, indexed by second modulo the window; null until first used or after a sweep. */
  #slots: (SecondBucket | undefined)[] | null = null;
  /** The bucket of the latest second recorded. */
  #cur: SecondBucket | null = null;
  /** Seconds up to this one are in the store. */
  #flushedThrough = Number.NEGATIVE_INFINITY;
  /** Seconds up to this are in a flush being written (`unflushed` .. `markFlushed`). */
  #collectedThrough = Number.NEGATIVE_INFINITY;
  /** The earliest of those seconds that got a request after it was collected. */
  #dirtyFrom = Number.POSITIVE_INFINITY;
  readonly #cfg: RecorderConfig;

  constructor(
    readonly service: string,
    readonly version: string,
    readonly labels: string,
    cfg: RecorderConfig,
  ) {
    this.#cfg = cfg;
    this.#total = new SecondBucket(cfg.alpha);
  }

  /**
   * Records how one request ended, now: the status sent to the client, its latency (arrival to
   * last byte) from `startedAt` (a `performance.now()` reading at arrival), and whether an
   * upstream failed on the way. The proxy's one call per request: one clock read for both the
   * latency and the second; O(1) and allocation-free once the ring is warm.
   */
  recordSince(statusCode: number, startedAt: number, upstreamError: boolean): void {
    this.#addSince(statusCode, startedAt, upstreamError, false);
  }

  /**
   * Records, now, a request whose client closed the connection after the version was picked and
   * before its response head came: status 499, latency until the client left (so a latency judge
   * sees a version that hangs), counted in `abandoned`. As cheap as `recordSince`.
   */
  recordAbandonedSince(startedAt: number): void {
    this.#addSince(ABANDONED_STATUS, startedAt, false, true);
  }

  /**
   * Counts a request sent to the version (the proxy picked it), in the second it arrived
   * (`startedAt`, a `performance.now()` reading: no clock read of its own), and in `requests`.
   */
  start(startedAt: number): void {
    this.requests++;
    this.#countsStarts = true;
    const cfg = this.#cfg;
    const sec =
      cfg.now === null
        ? Math.floor((cfg.perfOffset + startedAt) / 1000)
        : Math.floor(cfg.now() / 1000);
    this.#bucket(sec).started++;
  }

  /**
   * Counts a response head that came from the version, now: the version answered, even if the
   * body is a long stream that ends much later. One clock read.
   */
  respond(): void {
    const cfg = this.#cfg;
    const sec =
      cfg.now === null
        ? Math.floor((cfg.perfOffset + performance.now()) / 1000)
        : Math.floor(cfg.now() / 1000);
    this.#bucket(sec).responded++;
  }

  #addSince(statusCode: number, startedAt: number, upstreamError: boolean, abandoned: boolean) {
    const end = performance.now();
    const cfg = this.#cfg;
    const sec =
      cfg.now === null ? Math.floor((cfg.perfOffset + end) / 1000) : Math.floor(cfg.now() / 1000);
    this.#add(sec, statusCode, end - startedAt, upstreamError, abandoned);
  }

  /**
   * Records one finished request with a known latency, at the clock's current second;
   * `abandoned`: its client gave up before the response head (`recordAbandonedSince`).
   */
  record(statusCode: number, latencyMs: number, upstreamError: boolean, abandoned = false): void {
    this.#add(
      Math.floor(wallNow(this.#cfg) / 1000),
      statusCode,
      latencyMs,
      upstreamError,
      abandoned,
    );
  }

  #add(
    sec: number,
    statusCode: number,
    latencyMs: number,
    upstreamError: boolean,
    abandoned: boolean,
  ): void {
    const b = this.#bucket(sec);
    b.requests++;
    if (statusCode >= 500) b.s5xx++;
    else if (statusCode >= 400) b.s4xx++;
    else if (statusCode >= 300) b.s3xx++;
    else if (statusCode >= 200) b.s2xx++;
    if (upstreamError) b.upstreamErrors++;
    if (abandoned) b.abandoned++;
    b.latency.add(latencyMs);
  }

  /** The bucket to count into at `sec`, marking it for the next flush. */
  #bucket(sec: number): SecondBucket {
    let b = this.#cur;
    if (b === null || b.sec !== sec) b = this.#roll(sec);
    // A request that lands in a second already written (the clock's resync at a flush moved it
    // back by a few ms across the boundary) re-opens that second: the next flush writes it
    // again, complete (stored rows are replaced, never added to). Seen: 1 request of 12,330
    // missing from the store on a busy machine.
    if (b.sec <= this.#flushedThrough) this.#flushedThrough = b.sec - 1;
    else if (b.sec <= this.#collectedThrough && b.sec < this.#dirtyFrom) this.#dirtyFrom = b.sec;
    return b;
  }

  /** Moves to the bucket of `sec`; once per second per series. */
  #roll(sec: number): SecondBucket {
    const cur = this.#cur;
    if (cur !== null) {
      // The clock stepped back (NTP): keep counting into the newest second rather than
      // reopening one that may already be flushed.
      if (sec < cur.sec) return cur;
      cur.addTo(this.#total);
    }
    const w = this.#cfg.windowSeconds;
    this.#slots ??= new Array<SecondBucket | undefined>(w);
    const i = ((sec % w) + w) % w;
    let b = this.#slots[i];
    if (b === undefined) {
      b = new SecondBucket(this.#cfg.alpha);
      this.#slots[i] = b;
    } else if (b.sec > this.#flushedThrough && !b.empty) {
      // The store has been failing for a whole window: this second is lost to it.
      this.#cfg.dropped++;
    }
    b.reset(sec);
    this.#cur = b;
    return b;
  }

  /** Totals since the series appeared: completed seconds plus the current one. */
  totals(): SeriesTotals {
    const t = new SecondBucket(this.#cfg.alpha);
    this.#total.addTo(t);
    this.#cur?.addTo(t);
    return {
      version: this.version,
      labels: this.labels,
      status: statusClasses(t),
      responses: t.requests,
      upstreamErrors: t.upstreamErrors,
      abandoned: t.abandoned,
      latency: t.latency,
      fdExhausted: this.fdExhausted,
    };
  }

  snapshot(): VersionStats {
    const t = this.totals();
    const n = t.latency.count;
    return {
      version: this.version,
      ...(this.labels !== "" ? { labels: this.labels } : {}),
      requests: this.requests,
      status: t.status,
      upstreamErrors: t.upstreamErrors,
      abandoned: t.abandoned,
      latencyMsSum: t.latency.sum,
      latencyCount: n,
      latencyMsMax: n === 0 ? 0 : t.latency.max,
      p50Ms: n === 0 ? null : t.latency.quantile(0.5),
      p99Ms: n === 0 ? null : t.latency.quantile(0.99),
    };
  }

  /** Merges the buckets of seconds in [fromSec, toSec); null when none has data. */
  window(fromSec: number, toSec: number): SeriesWindow | null {
    if (this.#slots === null) return null;
    const picked: SecondBucket[] = [];
    for (const b of this.#slots) {
      if (b !== undefined && b.sec >= fromSec && b.sec < toSec && !b.empty) picked.push(b);
    }
    if (picked.length === 0) return null;
    picked.sort((a, b) => a.sec - b.sec);
    const sum = new SecondBucket(this.#cfg.alpha);
    for (const b of picked) b.addTo(sum);
    return {
      version: this.version,
      labels: this.labels,
      requests: sum.requests,
      status: statusClasses(sum),
      upstreamErrors: sum.upstreamErrors,
      abandoned: sum.abandoned,
      latency: sum.latency,
      seconds: picked.map((b) => b.sec),
      ...(this.#countsStarts
        ? {
            starts: {
              started: sum.started,
              responded: sum.responded,
              firstStartedSec: picked.find((b) => b.started > 0)?.sec ?? null,
            },
          }
        : {}),
    };
  }

  /** Rows for the seconds not yet flushed, up to `lastSec` (inclusive). */
  unflushed(lastSec: number, routerId: string, out: MeasurementRow[]): void {
    this.#collectedThrough = lastSec;
    this.#dirtyFrom = Number.POSITIVE_INFINITY;
    if (this.#slots === null) return;
    for (const b of this.#slots) {
      if (b === undefined || b.sec <= this.#flushedThrough || b.sec > lastSec || b.empty) continue;
      out.push({
        service: this.service,
        version: this.version,
        labels: this.labels,
        second: b.sec,
        routerId,
        requests: b.requests,
        s2xx: b.s2xx,
        s3xx: b.s3xx,
        s4xx: b.s4xx,
        s5xx: b.s5xx,
        upstreamErrors: b.upstreamErrors,
        abandoned: b.abandoned,
        ...(this.#countsStarts ? { started: b.started, responded: b.responded } : {}),
        latency: b.latency.toJSON(),
      });
    }
  }

  /** True once the ring is freed (no traffic for a window, everything flushed). */
  get idle(): boolean {
    return this.#slots === null;
  }

  markFlushed(throughSec: number): void {
    if (throughSec > this.#flushedThrough) this.#flushedThrough = throughSec;
    // A second that got a request while its row was being written is written again.
    if (this.#dirtyFrom <= this.#flushedThrough) this.#flushedThrough = this.#dirtyFrom - 1;
    this.#dirtyFrom = Number.POSITIVE_INFINITY;
    this.#collectedThrough = Number.NEGATIVE_INFINITY;
  }

  /** True when every second with data is in the store. */
  get flushed(): boolean {
    return this.#cur === null || this.#cur.sec <= this.#flushedThrough;
  }

  /**
   * Frees the ring of a series that has had no traffic for a whole window and is flushed
   * (versions that left the route table would otherwise hold their buckets forever). Totals
   * stay; the ring comes back on the next request.
   */
  release(nowSec: number): boolean {
    const cur = this.#cur;
    if (this.#slots === null) return false;
    if (cur !== null && (cur.sec > nowSec - this.#cfg.windowSeconds || !this.flushed)) {
      return false;
    }
    if (cur !== null) cur.addTo(this.#total);
    this.#cur = null;
    this.#slots = null;
    return true;
  }
}

/** @deprecated The name from before series had labels; the same class. */
export type VersionCounters = SeriesCounters;

export interface MeasurementRecorderOptions {
  /** Seconds kept in memory per series. Default 300. */
  windowSeconds?: number;
  /** Wall clock in ms; default the system clock. Read once per recorded request. */
  now?: () => number;
  /** Identifies this router's rows in the store. Default `<hostname>:<pid>[:<n>]`. */
  routerId?: string;
  /** Sketch accuracy. Default 0.01. */
  alpha?: number;
}

interface ServiceSeries {
  readonly series: Map<string, SeriesCounters>;
  /** The service's table went away: hidden from readers, deleted once flushed. */
  retired: boolean;
}

let recorderCount = 0;

/** A batch of rows to write, and what to mark once it is written. */
export interface FlushBatch {
  rows: MeasurementRow[];
  /** Call after the rows were stored. */
  commit(): void;
}

/**
 * Every series of one router. Owned by the `Router`; `series()` hands out the counters that
 * compiled tables record into.
 */
export class MeasurementRecorder implements SeriesWindowReader {
  readonly routerId: string;
  readonly windowSeconds: number;
  readonly #cfg: RecorderConfig;
  readonly #services = new Map<string, ServiceSeries>();

  constructor(opts: MeasurementRecorderOptions = {}) {
    const windowSeconds = opts.windowSeconds ?? DEFAULT_WINDOW_SECONDS;
    if (!(Number.isInteger(windowSeconds) && windowSeconds >= 2)) {
      throw new RangeError(`windowSeconds must be an integer >= 2, got ${windowSeconds}`);
    }
    this.windowSeconds = windowSeconds;
    this.#cfg = {
      windowSeconds,
      alpha: opts.alpha ?? 0.01,
      now: opts.now ?? null,
      perfOffset: Date.now() - performance.now(),
      dropped: 0,
    };
    recorderCount++;
    this.routerId =
      opts.routerId ??
      // Several routers in one process (tests) must not overwrite each other's rows.
      `${hostname()}:${process.pid}${recorderCount > 1 ? `:${recorderCount}` : ""}`;
  }

  /**
   * Re-reads the offset between the wall clock and `performance.now()`, so that NTP slews and
   * steps reach the hot path's seconds within a flush interval.
   */
  resyncClock(): void {
    this.#cfg.perfOffset = Date.now() - performance.now();
  }

  /** Seconds lost because the store failed for longer than the window. */
  get droppedSeconds(): number {
    return this.#cfg.dropped;
  }

  /** Current time in ms by the recorder's clock. */
  now(): number {
    return wallNow(this.#cfg);
  }

  /** The counters of a series, created on first use; the same object for the same key. */
  series(service: string, version: string, labels = ""): SeriesCounters {
    let s = this.#services.get(service);
    if (s === undefined) {
      s = { series: new Map(), retired: false };
      this.#services.set(service, s);
    }
    s.retired = false;
    const key = labels === "" ? version : `${version}\u0000${labels}`;
    let c = s.series.get(key);
    if (c === undefined) {
      c = new SeriesCounters(service, version, labels, this.#cfg);
      s.series.set(key, c);
    }
    return c;
  }

  /**
   * The service's table is gone: hide its series from readers at once and free them once
   * their last seconds are flushed (or at the next sweep when nothing flushes).
   */
  retire(service: string): void {
    const s = this.#services.get(service);
    if (s !== undefined) s.retired = true;
  }

  /** Services with series, sorted. */
  services(): string[] {
    return [...this.#services.entries()]
      .filter(([, s]) => !s.retired)
      .map(([name]) => name)
      .sort();
  }

  /** Live totals per version of a service (`Router.stats`). Today one entry per version. */
  stats(service: string): VersionStats[] {
    const s = this.#services.get(service);
    if (s === undefined || s.retired) return [];
    return [...s.series.values()].map((c) => c.snapshot());
  }

  /** Cumulative totals per series, for Prometheus. */
  totals(service: string): SeriesTotals[] {
    const s = this.#services.get(service);
    if (s === undefined || s.retired) return [];
    return [...s.series.values()].map((c) => c.totals());
  }

  /**
   * The service's numbers per series (key: version, or version + "\0" + labels) over the
   * seconds that start in [fromMs, toMs), including the current, incomplete second when it
   * starts in the range. Only the last `windowSeconds` are in memory.
   */
  window(service: string, fromMs: number, toMs: number): Map<string, SeriesWindow> {
    const out = new Map<string, SeriesWindow>();
    const s = this.#services.get(service);
    if (s === undefined || s.retired) return out;
    const { fromSec, toSec } = secondsOf(fromMs, toMs);
    for (const [key, c] of s.series) {
      const w = c.window(fromSec, toSec);
      if (w !== null) out.set(key, w);
    }
    return out;
  }

  /**
   * Rows for every second not yet in the store: completed seconds, and with `includeCurrent`
   * the current one too (written again, complete, at a later flush: rows are upserts).
   */
  collect(includeCurrent: boolean): FlushBatch {
    const nowSec = Math.floor(wallNow(this.#cfg) / 1000);
    const lastSec = includeCurrent ? nowSec : nowSec - 1;
    const rows: MeasurementRow[] = [];
    const all: SeriesCounters[] = [];
    for (const s of this.#services.values()) {
      for (const c of s.series.values()) {
        c.unflushed(lastSec, this.routerId, rows);
        all.push(c);
      }
    }
    return {
      rows,
      // The current second stays unflushed: it is written again once complete.
      commit: () => {
        for (const c of all) c.markFlushed(nowSec - 1);
      },
    };
  }

  /**
   * Treats every completed second as flushed, for a router without a store: the ring then
   * counts no "lost" seconds and idle series can be swept.
   */
  discardCompleted(): void {
    const lastSec = Math.floor(wallNow(this.#cfg) / 1000) - 1;
    for (const s of this.#services.values())
      for (const c of s.series.values()) c.markFlushed(lastSec);
  }

  /**
   * Housekeeping, once per flush: frees the rings of idle, flushed series, and forgets retired
   * services once everything they recorded is flushed. While the store is down nothing is
   * freed, and the rings bound the memory.
   */
  sweep(): void {
    const nowSec = Math.floor(wallNow(this.#cfg) / 1000);
    for (const [name, s] of this.#services) {
      let released = true;
      for (const c of s.series.values()) released = (c.release(nowSec) || c.idle) && released;
      if (s.retired && (released || [...s.series.values()].every((c) => c.flushed))) {
        this.#services.delete(name);
      }
    }
  }
}

/** What the flusher needs from the store. */
export type MeasurementSink = Pick<Store, "writeMeasurements" | "pruneMeasurements">;

export interface MeasurementFlusherOptions {
  recorder: MeasurementRecorder;
  /** Where completed seconds go; without one, nothing is written (memory only). */
  sink?: MeasurementSink | undefined;
  logger: RouterLogger;
  /** Default 1000. */
  intervalMs?: number;
  /** Stored measurements older than this are pruned (every minute). Default 6 h; 0 disables. */
  retentionSeconds?: number;
  /**
   * Told how each write went (the router's outage account, outage.ts), which then logs for it;
   * without one the flusher logs its own outages.
   */
  health?: StoreUseReporter;
}

/** How often the flusher prunes old rows. */
const PRUNE_EVERY_MS = 60_000;

/**
 * Writes each completed second to the store, every `intervalMs`, in one batch. A failing store
 * never touches serving: the failure is logged once per outage, the seconds stay in the ring
 * and go out with the next successful flush; what the ring overwrites meanwhile (an outage
 * longer than the window) is counted and reported when the store is back, so memory stays
 * bounded by the window.
 */
export class MeasurementFlusher {
  readonly #recorder: MeasurementRecorder;
  readonly #sink: MeasurementSink | undefined;
  readonly #logger: RouterLogger;
  readonly #intervalMs: number;
  readonly #retentionSeconds: number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  readonly #health: StoreUseReporter | undefined;
  #outage = false;
  #droppedReported = 0;
  #lastPruneMs = Number.NEGATIVE_INFINITY;
  #stopped = false;
  /** Rows of the last batch that could not be written (0 once one is written). */
  #held = 0;

  constructor(opts: MeasurementFlusherOptions) {
    this.#recorder = opts.recorder;
    this.#sink = opts.sink;
    this.#logger = opts.logger;
    this.#intervalMs = opts.intervalMs ?? 1000;
    this.#retentionSeconds = opts.retentionSeconds ?? DEFAULT_RETENTION_SECONDS;
    this.#health = opts.health;
  }

  /**
   * Rows waiting for the store (as of the last flush: completed seconds of every series that
   * could not be written), and rows lost since start because the ring overwrote them first.
   */
  buffers(): { buffered: number; dropped: number } {
    return { buffered: this.#held, dropped: this.#recorder.droppedSeconds };
  }

  start(): void {
    if (this.#timer !== null || this.#stopped) return;
    this.#timer = setInterval(() => void this.flush(false), this.#intervalMs);
    // Listeners keep the process alive; the flush timer alone should not.
    this.#timer.unref();
  }

  /** Stops the timer and writes everything left, the current second included. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
    await this.#flushOnce(true);
  }

  /**
   * One flush now (joins one already running). Never rejects: failures are logged and retried
   * at the next flush.
   */
  flush(includeCurrent = false): Promise<void> {
    if (this.#running !== null) return this.#running;
    const p = this.#flushOnce(includeCurrent).finally(() => {
      this.#running = null;
    });
    this.#running = p;
    return p;
  }

  async #flushOnce(includeCurrent: boolean): Promise<void> {
    this.#recorder.resyncClock();
    const sink = this.#sink;
    if (sink === undefined) {
      this.#recorder.discardCompleted();
      this.#recorder.sweep();
      return;
    }
    const batch = this.#recorder.collect(includeCurrent);
    try {
      if (batch.rows.length > 0) await sink.writeMeasurements(batch.rows);
    } catch (err) {
      this.#held = batch.rows.length;
      if (this.#health !== undefined) {
        this.#health.failed("measurements", err);
        return;
      }
      if (!this.#outage) {
        this.#outage = true;
        this.#logger.warn(
          { err, rows: batch.rows.length },
          "router: cannot write measurements; keeping them in memory (up to the window) and retrying every flush",
        );
      }
      return;
    }
    batch.commit();
    this.#held = 0;
    const dropped = this.#recorder.droppedSeconds - this.#droppedReported;
    if (this.#health !== undefined) {
      this.#health.succeeded("measurements", { measurements: batch.rows.length });
    } else if (this.#outage) {
      this.#outage = false;
      this.#logger.info(
        { droppedSeconds: dropped },
        "router: measurements are being written again",
      );
    } else if (dropped > 0) {
      this.#logger.warn({ droppedSeconds: dropped }, "router: measurements were lost");
    }
    this.#droppedReported += dropped;
    this.#recorder.sweep();
    await this.#prune(sink);
  }

  async #prune(sink: MeasurementSink): Promise<void> {
    if (this.#retentionSeconds <= 0) return;
    const now = this.#recorder.now();
    if (now - this.#lastPruneMs < PRUNE_EVERY_MS) return;
    this.#lastPruneMs = now;
    try {
      await sink.pruneMeasurements(Math.floor(now / 1000) - this.#retentionSeconds);
    } catch (err) {
      this.#logger.debug({ err }, "router: pruning old measurements failed; retrying later");
    }
  }
}

/** The router's `measurements` option: the recorder's settings and where to flush. */
export interface RouterMeasurementOptions extends MeasurementRecorderOptions {
  /** The store (or anything with its two measurement methods); memory only without one. */
  sink?: MeasurementSink;
  /** How often completed seconds are written. Default 1000 ms. */
  flushIntervalMs?: number;
  /** Stored rows older than this are pruned. Default 6 h; 0 keeps everything. */
  retentionSeconds?: number;
}

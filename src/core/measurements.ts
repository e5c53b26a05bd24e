/**
 * Measurements, the shapes only: what a router counts per second and series, the row it
 * flushes to the store, the label helpers, and the one way counts are summed. Pure (no I/O, no
 * clock), so that every layer that handles measurements uses it without importing a layer above
 * it: the router records (`src/router/stats.ts`), the store keeps rows (`src/store/`), analysis
 * reads windows (`src/metrics/measurements.ts`), the simulator and the lab make them.
 */
import type { ShadowAggregateState } from "./shadow/aggregate.js";
import type { Sketch, SketchJson } from "./sketch.js";

/** Responses by status class, as readers report them. */
export interface StatusClasses {
  "2xx": number;
  "3xx": number;
  "4xx": number;
  "5xx": number;
}

/**
 * The status recorded for a request its client gave up on while waiting for the version (no
 * response head yet): nginx's "client closed request". A 4xx by class; counted in `abandoned`.
 */
export const ABANDONED_STATUS = 499;

/**
 * The counts of one series over some seconds: responses completed (`requests`: every request
 * that got a status, abandoned ones included as ABANDONED_STATUS), by status class, upstream
 * failures, and requests abandoned by their clients. The latency sketch travels next to them (a
 * `Sketch` in memory, `SketchJson` in a row).
 */
export interface Counts {
  requests: number;
  s2xx: number;
  s3xx: number;
  s4xx: number;
  s5xx: number;
  upstreamErrors: number;
  /**
   * Requests whose client closed the connection after a version was picked and before the
   * version's response head came (recorded as ABANDONED_STATUS, latency until the client left):
   * how a version that hangs shows, when clients give up before the router's upstream timeout.
   * Also in `s4xx` and `requests`.
   */
  abandoned: number;
}

/** Zero counts. */
export function emptyCounts(): Counts {
  return { requests: 0, s2xx: 0, s3xx: 0, s4xx: 0, s5xx: 0, upstreamErrors: 0, abandoned: 0 };
}

/** Adds `from` to `into`, in place: the one way counts are summed (seconds, routers, series). */
export function addCounts(into: Counts, from: Readonly<Counts>): void {
  into.requests += from.requests;
  into.s2xx += from.s2xx;
  into.s3xx += from.s3xx;
  into.s4xx += from.s4xx;
  into.s5xx += from.s5xx;
  into.upstreamErrors += from.upstreamErrors;
  into.abandoned += from.abandoned;
}

/** The status classes of counts, in the readers' shape. */
export function statusClasses(c: Readonly<Counts>): StatusClasses {
  return { "2xx": c.s2xx, "3xx": c.s3xx, "4xx": c.s4xx, "5xx": c.s5xx };
}

/**
 * Errors as analysis counts them (the builtin `error_rate`): 5xx responses, the router's own
 * 502/503/504 included, plus requests abandoned by their clients (a version that never answers
 * fails its users as surely as one that answers 500).
 */
export function errorCount(c: Readonly<Counts>): number {
  return c.s5xx + c.abandoned;
}

/**
 * What a data plane counts of requests as they happen, before they end: requests sent to the
 * version (counted when it was picked for them) and response heads that came back from it, in
 * the second each happened. The built-in router counts them; a data plane that learns of a
 * request only when it ends (HAProxy's log) does not, and its rows leave them out: "not known",
 * never "none". Analysis reads them to tell a version that answers nothing from one that gets
 * no traffic (`core/analysis/no-response.ts`).
 */
export interface StartCounts {
  started: number;
  responded: number;
}

/** Counts with a latency sketch (in memory). */
export interface CountsWithLatency extends Counts {
  latency: Sketch;
}

/**
 * One second of one series as a router measured it. Routers write these (`writeMeasurements`);
 * analysis reads them back (`readMeasurements`) and merges across routers.
 */
export interface MeasurementRow extends Counts, Partial<StartCounts> {
  service: string;
  version: string;
  /** Further series labels (experiment arm, flag variant) in canonical form; "" for none. */
  labels: string;
  /** Epoch second the numbers belong to. */
  second: number;
  /** The router that measured them; several routers write the same second side by side. */
  routerId: string;
  /** Latency sketch of those responses, in ms (`Sketch.toJSON()`). */
  latency: SketchJson;
}

/**
 * What distinguishes one series of a service: its version and, in `labels`, extra labels in
 * `canonicalLabels` form (today the variants of edge-evaluated flags, `router/flags-edge.ts`),
 * so that the store's key, the in-memory key and the Prometheus labels all extend without a new
 * schema.
 */
export interface SeriesLabels {
  version: string;
  /** Canonical extra labels (`canonicalLabels`), "" for none. */
  labels: string;
}

/** One series' numbers over a time range, read from a router's memory. */
export interface SeriesWindow extends SeriesLabels {
  /** Responses completed in the range (every request that got a status). */
  requests: number;
  status: StatusClasses;
  upstreamErrors: number;
  /** Requests abandoned by their clients (`Counts.abandoned`; also in `status["4xx"]`). */
  abandoned: number;
  /** Latency of those responses in ms, merged over the range. */
  latency: Sketch;
  /** The seconds (epoch seconds, ascending) that have data. */
  seconds: number[];
  /**
   * Requests sent and response heads received in the range (`StartCounts`), and the first
   * second in which a request was sent; absent when the series does not count starts.
   */
  starts?: StartCounts & { firstStartedSec: number | null };
}

/** What reads a router's in-memory window (the router's `MeasurementRecorder`). */
export interface SeriesWindowReader {
  /** Per series, the numbers over the seconds that start in [fromMs, toMs). */
  window(service: string, fromMs: number, toMs: number): Map<string, SeriesWindow>;
}

/**
 * The canonical string of extra labels: sorted by name, `name=value` pairs URL-encoded and
 * joined by `&`; "" for none. Equal label sets always give equal strings.
 *
 * @example canonicalLabels({ variant: "on", arm: "b" }) // "arm=b&variant=on"
 */
export function canonicalLabels(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(labels[k]!)}`)
    .join("&");
}

/** Two canonical label strings as one, sorted by name (still canonical). */
export function mergeLabels(a: string, b: string): string {
  const name = (pair: string) => pair.slice(0, pair.indexOf("="));
  return [...a.split("&"), ...b.split("&")]
    .sort((x, y) => (name(x) < name(y) ? -1 : name(x) > name(y) ? 1 : 0))
    .join("&");
}

/** Whether a canonical label string (`a=1&b=2`) holds the pair `label`. */
export function hasLabel(labels: string, label: string): boolean {
  return labels === label || labels.split("&").includes(label);
}

/** The whole seconds whose start lies in [fromMs, toMs): [fromSec, toSec). */
export function secondsOf(fromMs: number, toMs: number): { fromSec: number; toSec: number } {
  return { fromSec: Math.ceil(fromMs / 1000), toSec: Math.ceil(toMs / 1000) };
}

/** One router's aggregate of one mirror phase (shadow comparisons), as flushed to the store. */
export interface ShadowAggregateRow {
  service: string;
  id: string;
  version: string;
  routerId: string;
  state: ShadowAggregateState;
  updatedAt: number;
}

/** Where a router's shadow aggregates go (the shadow store). */
export interface ShadowAggregateSink {
  saveShadowAggregates(rows: ShadowAggregateRow[]): Promise<void>;
}

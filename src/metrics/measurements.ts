/**
 * How analysis reads the router's measurements: one interface, `MeasurementSource`, and two
 * implementations that give the same numbers for the same traffic (a shared conformance test
 * checks it):
 * - `StoreMeasurementSource` reads the rows routers flushed to the store and merges them
 *   across routers: the path that works when routers run in other processes or machines
 *   (DESIGN invariant 6: analysis never calls a router directly).
 * - `RouterMeasurementSource` reads an in-process router's ring: no store round trip and it
 *   includes the current, unflushed second; for one-process setups and tests.
 *
 * The canary analysis reads candidate and baseline over the same window through this.
 */
import {
  addCounts,
  type Counts,
  emptyCounts,
  errorCount,
  hasLabel,
  type SeriesWindowReader,
  type StartCounts,
  type StatusClasses,
  secondsOf,
  statusClasses,
} from "../core/measurements.js";
import { Sketch } from "../core/sketch.js";
import type { Store } from "../store/store.js";

export { hasLabel } from "../core/measurements.js";

/** Which measurements to read: `[fromMs, toMs)`, every whole second that starts in it. */
export interface WindowQuery {
  service: string;
  /** Only this version; all versions when omitted. */
  version?: string;
  /**
   * Only series carrying this label pair, in canonical form (e.g. `flag.new-checkout=on`, as
   * the router's edge flag evaluation writes it); all series when omitted.
   */
  label?: string;
  fromMs: number;
  toMs: number;
}

/** One version's numbers over a window. */
export interface WindowStats {
  version: string;
  /** Responses completed in the window. */
  requests: number;
  /** Responses by status class (the router's own 502/503/504 included). */
  status: StatusClasses;
  /** Upstream failures (connect errors, resets, timeouts, broken response streams). */
  upstreamErrors: number;
  /**
   * Requests whose client left before the version's response head came (in `status["4xx"]` as
   * 499, and in `requests`): a version that hangs shows here when clients give up first.
   */
  abandoned: number;
  /** (5xx responses + abandoned requests) / requests (`errorCount`); 0 without requests. */
  errorRate: number;
  /** Latency in ms of the window's responses (relative error 1%), merged across routers. */
  latency: Sketch;
  /** Latency quantiles in ms from `latency`; null when there were no responses. */
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  /** First and last epoch second with data, and how many seconds had data. */
  firstSec: number;
  lastSec: number;
  seconds: number;
  /**
   * Requests sent to the version in the window (counted when the data plane picked it), response
   * heads it sent, and the first epoch second in which a request was sent (null: none): the
   * data plane's view before requests end, which tells a version that answers nothing from
   * one that gets no traffic. Absent when no row of the window counts starts (HAProxy's, or a
   * router's from before migration 0015): not known, rather than none. Rows that do not count
   * them add nothing, so a mixed fleet under-counts starts, never answers.
   */
  starts?: StartCounts & { firstStartedSec: number | null };
}

/** Reads measurements by window; see the module comment for the two implementations. */
export interface MeasurementSource {
  /** Per version (the map's key), the numbers over the window; versions without data are absent. */
  window(q: WindowQuery): Promise<Map<string, WindowStats>>;
}

/**
 * Sums per-second pieces into WindowStats per version. Both sources feed it, so they agree by
 * construction on everything but where the pieces come from.
 */
type Starts = StartCounts & { firstStartedSec: number | null };

class WindowAccumulator {
  readonly #byVersion = new Map<
    string,
    Counts & { latency: Sketch; seconds: Set<number>; starts?: Starts }
  >();

  add(
    version: string,
    p: Counts & { latency: Sketch },
    seconds: Iterable<number>,
    starts?: Starts,
  ): void {
    let v = this.#byVersion.get(version);
    if (v === undefined) {
      v = { ...emptyCounts(), latency: new Sketch({ alpha: p.latency.alpha }), seconds: new Set() };
      this.#byVersion.set(version, v);
    }
    addCounts(v, p);
    v.latency.merge(p.latency);
    for (const s of seconds) v.seconds.add(s);
    if (starts !== undefined) {
      v.starts ??= { started: 0, responded: 0, firstStartedSec: null };
      const t = v.starts;
      t.started += starts.started;
      t.responded += starts.responded;
      const f = starts.firstStartedSec;
      if (f !== null && (t.firstStartedSec === null || f < t.firstStartedSec))
        t.firstStartedSec = f;
    }
  }

  result(): Map<string, WindowStats> {
    const out = new Map<string, WindowStats>();
    const versions = [...this.#byVersion.keys()].sort();
    for (const version of versions) {
      const v = this.#byVersion.get(version)!;
      const n = v.latency.count;
      let first = Number.POSITIVE_INFINITY;
      let last = Number.NEGATIVE_INFINITY;
      for (const s of v.seconds) {
        if (s < first) first = s;
        if (s > last) last = s;
      }
      out.set(version, {
        version,
        requests: v.requests,
        status: statusClasses(v),
        upstreamErrors: v.upstreamErrors,
        abandoned: v.abandoned,
        errorRate: v.requests === 0 ? 0 : errorCount(v) / v.requests,
        latency: v.latency,
        p50Ms: n === 0 ? null : v.latency.quantile(0.5),
        p90Ms: n === 0 ? null : v.latency.quantile(0.9),
        p99Ms: n === 0 ? null : v.latency.quantile(0.99),
        firstSec: first,
        lastSec: last,
        seconds: v.seconds.size,
        ...(v.starts !== undefined ? { starts: { ...v.starts } } : {}),
      });
    }
    return out;
  }
}

/**
 * Reads the rows routers wrote to the store, summed across routers and series labels. Routers
 * flush each second once it is over, about every second: the last second or two before now
 * are not there yet, so a window should end a few seconds back for complete numbers.
 *
 * @example
 * const source = new StoreMeasurementSource(store);
 * const w = await source.window({ service: "fraud", fromMs: now - 60_000, toMs: now });
 * w.get("v2")?.errorRate;
 */
export class StoreMeasurementSource implements MeasurementSource {
  constructor(private readonly store: Pick<Store, "readMeasurements">) {}

  async window(q: WindowQuery): Promise<Map<string, WindowStats>> {
    const { fromSec, toSec } = secondsOf(q.fromMs, q.toMs);
    const acc = new WindowAccumulator();
    if (toSec <= fromSec) return acc.result();
    const rows = await this.store.readMeasurements({
      service: q.service,
      fromSec,
      toSec,
      ...(q.version !== undefined ? { version: q.version } : {}),
    });
    for (const r of rows) {
      if (q.label !== undefined && !hasLabel(r.labels, q.label)) continue;
      const starts =
        r.started === undefined
          ? undefined
          : {
              started: r.started,
              responded: r.responded ?? 0,
              firstStartedSec: r.started > 0 ? r.second : null,
            };
      acc.add(r.version, { ...r, latency: Sketch.fromJSON(r.latency) }, [r.second], starts);
    }
    return acc.result();
  }
}

/**
 * Reads an in-process router's 1-second ring (the last `windowSeconds` only), including the
 * second in progress.
 *
 * @example new RouterMeasurementSource(router.measurements)
 */
export class RouterMeasurementSource implements MeasurementSource {
  constructor(private readonly recorder: SeriesWindowReader) {}

  async window(q: WindowQuery): Promise<Map<string, WindowStats>> {
    const acc = new WindowAccumulator();
    for (const w of this.recorder.window(q.service, q.fromMs, q.toMs).values()) {
      if (q.version !== undefined && w.version !== q.version) continue;
      if (q.label !== undefined && !hasLabel(w.labels, q.label)) continue;
      acc.add(
        w.version,
        {
          requests: w.requests,
          s2xx: w.status["2xx"],
          s3xx: w.status["3xx"],
          s4xx: w.status["4xx"],
          s5xx: w.status["5xx"],
          upstreamErrors: w.upstreamErrors,
          abandoned: w.abandoned,
          latency: w.latency,
        },
        w.seconds,
        w.starts,
      );
    }
    return acc.result();
  }
}

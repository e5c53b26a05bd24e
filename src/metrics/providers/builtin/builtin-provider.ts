/**
 * Builtin: the router's own per-version measurements, candidate and baseline over the same
 * window, read through an injected `MeasurementsReader` (so analysis never calls the router
 * directly, and the router may run in another process).
 *
 * - `error_rate`: each side's `errorRate`, with `proportion` = { events: errors, trials:
 *   requests } for a sequential test on proportions. errors = round(errorRate x requests), so
 *   the counts agree with the reader's own definition of an error: 5xx responses and requests
 *   abandoned by their clients (a version that hangs fails its users when they give up waiting,
 *   before the router's upstream timeout could answer 504); `proportion.abandoned` says how many
 *   of the errors were abandoned, for the verdict's explanation.
 * - `latency`: each side's p99 as `value`, p50/p90/p95/p99 as `quantiles`, and `values` for a
 *   rank test. The reader keeps a sketch, not the requests, so `values` is the sketch read at
 *   an even grid of quantiles ((i + 0.5) / k for i < k, k = min(count, latencySamplePoints)):
 *   a sample with the window's distribution but k points, not `count`. A rank test on it has
 *   the power of k observations (conservative when count > k); `sampleSize` is still `count`.
 * - `request_rate`: requests per second over the window, `sampleSize` = requests.
 *
 * A candidate with no requests in the window is "no data". A baseline with none is left out
 * (a relative judge then has no baseline and says so); so is a request without a baseline.
 *
 * Every measurement also carries `traffic` when the reader knows what the data plane sent to
 * the candidate before requests ended (`VersionWindow.starts`: the built-in router counts
 * them, HAProxy's log does not): requests sent, response heads back, requests ended, and when
 * the first was sent. That is how analysis tells a candidate that answers nothing (sent, none
 * back: `core/analysis/no-response.ts` fails it) from one that gets no traffic (a quiet
 * service holds). A candidate absent from a window whose baseline counts starts was sent
 * nothing: both sides are served by the same data plane.
 */
import type { CandidateTraffic } from "../../../core/analysis/observation.js";
import type { StartCounts, StatusClasses } from "../../../core/measurements.js";
import {
  BUILTIN_METRICS,
  type BuiltinMetric,
  invalid,
  type Measurement,
  type MeasureRequest,
  type MetricProvider,
  providerKind,
  type SideMeasurement,
} from "../provider.js";
import { describeError, failed, measured } from "../support.js";

/**
 * One version's measurements over a window, as `src/metrics/measurements.ts` provides them
 * (the shapes are core/measurements.ts's).
 */
export interface VersionWindow {
  requests: number;
  status: StatusClasses;
  upstreamErrors: number;
  /**
   * Requests abandoned by their clients before the version answered (in `errorRate`); absent
   * from readers that do not see clients (the simulator's), meaning none.
   */
  abandoned?: number;
  /** Errors / requests, 0..1: errors are 5xx responses and abandoned requests. */
  errorRate: number;
  /**
   * Requests sent to the version and response heads from it in the window, and the first epoch
   * second in which one was sent; absent from readers that do not count them (HAProxy's rows,
   * the simulator's), meaning "not known".
   */
  starts?: StartCounts & { firstStartedSec: number | null };
  latency: {
    /** Latency at quantile q in 0..1, in milliseconds. */
    quantile(q: number): number;
    /** The histogram's bins, when the reader keeps one (value in ms and count). */
    bins?(): { value: number; count: number }[];
    count: number;
  };
}

/** Reads per-version measurements of a service over a window (all versions when no version). */
export interface MeasurementsReader {
  window(q: {
    service: string;
    version?: string;
    /** Only series with this canonical label pair (e.g. `flag.new-checkout=on`). */
    label?: string;
    fromMs: number;
    toMs: number;
  }): Promise<Map<string, VersionWindow>>;
}

export interface BuiltinProviderOptions {
  measurements: MeasurementsReader;
  /** Most latency samples per side (see the module comment). Default 200. */
  latencySamplePoints?: number;
}

export class BuiltinProvider implements MetricProvider {
  readonly kind = "builtin" as const;
  private readonly samplePoints: number;

  constructor(private readonly opts: BuiltinProviderOptions) {
    this.samplePoints = opts.latencySamplePoints ?? 200;
  }

  async measure(req: MeasureRequest, signal: AbortSignal): Promise<Measurement> {
    if (providerKind(req.source) !== "builtin") {
      throw invalid("source", `the builtin provider cannot measure ${Object.keys(req.source)}`);
    }
    const builtin = (req.source as { builtin: unknown }).builtin;
    // The flag form compares two variants of an edge-evaluated flag within the candidate.
    const flag =
      typeof builtin === "object" && builtin !== null
        ? (builtin as { metric: unknown; flag: string; candidate?: string; baseline?: string })
        : null;
    const metric = flag !== null ? flag.metric : builtin;
    if (!(BUILTIN_METRICS as unknown[]).includes(metric)) {
      throw invalid(
        "source.builtin",
        `must be one of ${BUILTIN_METRICS.join(", ")}, got ${JSON.stringify(metric)}`,
      );
    }
    if (!(req.fromMs < req.toMs)) {
      throw new RangeError(`window must have fromMs < toMs, got ${req.fromMs}..${req.toMs}`);
    }
    const raw = { metric, window: { fromMs: req.fromMs, toMs: req.toMs } };
    if (signal.aborted) return failed("aborted", "aborted before reading measurements", raw);

    // The reader takes no signal; racing it keeps an abort prompt even if the read is slow.
    let byVersion: Map<string, VersionWindow>;
    let onAbort: (() => void) | undefined;
    // Flag form: the two sides are two label sets of the candidate version, named
    // "<version> <flag>=<variant>" so that the rest reads them like two versions.
    let candidateName = req.candidate;
    let baselineName = req.baseline;
    const read = async (): Promise<Map<string, VersionWindow>> => {
      const q = { service: req.service, fromMs: req.fromMs, toMs: req.toMs };
      if (flag === null) return this.opts.measurements.window(q);
      const on = flag.candidate ?? "on";
      const off = flag.baseline ?? "off";
      const label = (v: string) =>
        `${encodeURIComponent(`flag.${flag.flag}`)}=${encodeURIComponent(v)}`;
      const [a, b] = await Promise.all([
        this.opts.measurements.window({ ...q, version: req.candidate, label: label(on) }),
        this.opts.measurements.window({ ...q, version: req.candidate, label: label(off) }),
      ]);
      candidateName = `${req.candidate} ${flag.flag}=${on}`;
      baselineName = `${req.candidate} ${flag.flag}=${off}`;
      const out = new Map<string, VersionWindow>();
      const wa = a.get(req.candidate);
      const wb = b.get(req.candidate);
      if (wa) out.set(candidateName, wa);
      if (wb) out.set(baselineName, wb);
      return out;
    };
    try {
      byVersion = await Promise.race([
        read(),
        new Promise<never>((_, reject) => {
          onAbort = () => reject(signal.reason);
          signal.addEventListener("abort", onAbort, { once: true });
        }),
      ]);
    } catch (err) {
      if (signal.aborted) return failed("aborted", "aborted while reading measurements", raw);
      return failed("failed", `reading the router's measurements: ${describeError(err)}`, raw);
    } finally {
      if (onAbort) signal.removeEventListener("abort", onAbort);
    }

    const seconds = (req.toMs - req.fromMs) / 1000;
    const side = (version: string): SideMeasurement | undefined => {
      const w = byVersion.get(version);
      const n = metric === "latency" ? w?.latency.count : w?.requests;
      if (!w || !(n !== undefined && n > 0)) return undefined;
      return this.side(metric as BuiltinMetric, version, w, seconds);
    };
    const candidate = side(candidateName);
    const baseline = baselineName !== undefined ? side(baselineName) : undefined;
    const traffic = this.traffic(byVersion, candidateName, baselineName);
    const summary = (v: string | undefined) => {
      const w = v === undefined ? undefined : byVersion.get(v);
      return w === undefined
        ? null
        : {
            requests: w.requests,
            status: w.status,
            upstreamErrors: w.upstreamErrors,
            abandoned: w.abandoned ?? 0,
            errorRate: w.errorRate,
          };
    };
    const rawOut = {
      ...raw,
      candidate: {
        version: candidateName,
        ...summary(candidateName),
        ...(traffic ? { started: traffic.started, responded: traffic.responded } : {}),
      },
      ...(baselineName !== undefined
        ? { baseline: { version: baselineName, ...summary(baselineName) } }
        : {}),
    };
    if (!candidate) {
      const sent =
        traffic === undefined
          ? ""
          : ` (${traffic.started} sent to it, ${traffic.responded} response heads back)`;
      return {
        ...failed(
          "noData",
          `no data: candidate ${candidateName} of ${req.service} had no ${metric === "latency" ? "latency samples" : "requests"} in the window${sent}`,
          rawOut,
        ),
        ...(traffic ? { traffic } : {}),
      };
    }
    if (!Number.isFinite(candidate.value) || (baseline && !Number.isFinite(baseline.value))) {
      return failed("failed", `the router's ${metric} is not a finite number`, rawOut);
    }
    const { values } = candidate;
    return measured({
      value: candidate.value,
      ...(values ? { values } : {}),
      sampleSize: candidate.sampleSize,
      candidate,
      ...(baseline ? { baseline } : {}),
      // Samples are numbers the judge already has; the record keeps the counts only.
      raw: rawOut,
      ...(traffic ? { traffic } : {}),
    });
  }

  /** What the data plane sent the candidate, when the reader knows (see the module comment). */
  private traffic(
    byVersion: Map<string, VersionWindow>,
    candidate: string,
    baseline: string | undefined,
  ): CandidateTraffic | undefined {
    const w = byVersion.get(candidate);
    const starts = w?.starts;
    if (w !== undefined && starts !== undefined) {
      return {
        version: candidate,
        started: starts.started,
        responded: starts.responded,
        ended: w.requests,
        firstStartedAt: starts.firstStartedSec === null ? null : starts.firstStartedSec * 1000,
      };
    }
    // No row for the candidate at all, from a data plane that counts starts: none were sent.
    const b = baseline === undefined ? undefined : byVersion.get(baseline);
    if (w === undefined && b?.starts !== undefined) {
      return { version: candidate, started: 0, responded: 0, ended: 0, firstStartedAt: null };
    }
    return undefined;
  }

  private side(
    metric: BuiltinMetric,
    version: string,
    w: VersionWindow,
    seconds: number,
  ): SideMeasurement {
    switch (metric) {
      case "error_rate": {
        const events = Math.round(w.errorRate * w.requests);
        const abandoned = w.abandoned ?? 0;
        return {
          version,
          value: w.errorRate,
          sampleSize: w.requests,
          proportion:
            abandoned > 0
              ? { events, trials: w.requests, abandoned }
              : { events, trials: w.requests },
        };
      }
      case "request_rate":
        return { version, value: w.requests / seconds, sampleSize: w.requests };
      case "latency": {
        const q = (p: number) => w.latency.quantile(p);
        const k = Math.min(w.latency.count, this.samplePoints);
        const values = Array.from({ length: k }, (_, i) => q((i + 0.5) / k));
        const quantiles = { p50: q(0.5), p90: q(0.9), p95: q(0.95), p99: q(0.99) };
        // Bins when the reader's sketch has them (the router's does): Mann-Whitney then tests
        // every request, not the grid.
        const bins = typeof w.latency.bins === "function" ? w.latency.bins() : undefined;
        return {
          version,
          value: quantiles.p99,
          sampleSize: w.latency.count,
          quantiles,
          values,
          ...(bins && bins.length > 0 ? { bins } : {}),
        };
      }
    }
  }
}

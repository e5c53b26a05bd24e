/**
 * Simulated traffic for the rollout simulator: requests per second split between versions by
 * the weights in force, errors and latencies per version, kept per second the way the router
 * keeps them (request and 5xx counts, a latency Sketch per second), and read back over a window
 * through the builtin metric provider's `MeasurementsReader` interface, so analysis in the
 * simulator measures through the same provider code as in production.
 *
 * Cost: nothing is done per request except drawing its latency. Per second and version the
 * request count is one binomial draw (the split), the error count another; latencies are drawn
 * one by one into the second's sketch up to `latencySamplesPerSecond` (default 200), and above
 * that a sample of that many is drawn and each value added `count / samples` times (the
 * remainder spread one each over the first values), so the sketch still counts every request.
 * At 100 requests/s every latency is drawn.
 */
import type { VersionWeight } from "../core/rollout.js";
import { Sketch } from "../core/sketch.js";
import { binomialSample, type Rng } from "../core/stats/random.js";
import type {
  MeasurementsReader,
  VersionWindow,
} from "../metrics/providers/builtin/builtin-provider.js";

/** How one version behaves: the chance that a request fails (5xx), and its latency. */
export interface VersionBehaviour {
  /** 0..1: each request is a 5xx with this probability, independently. */
  errorRate: number;
  /** Draws one request's latency in ms. */
  latency: (rng: Rng) => number;
}

export interface TrafficSpec {
  /** Requests per second to the service, all versions together (fractions are drawn). */
  rps: number;
  /** The stable version's behaviour. */
  baseline: VersionBehaviour;
  /** The new version's behaviour. */
  candidate: VersionBehaviour;
  /** Latencies drawn per second and version at most (see the module comment). Default 200. */
  latencySamplesPerSecond?: number;
}

/** One version's traffic in one second. */
export interface SecondRecord {
  requests: number;
  /** 5xx responses. */
  errors: number;
  /** Latency of every request of the second, ms (relative accuracy 1%). */
  latency: Sketch;
}

/** One version's traffic summed over a range of seconds. */
export interface RangeRecord {
  requests: number;
  errors: number;
  latency: Sketch;
}

interface VersionSeries {
  behaviour: VersionBehaviour;
  /** Index: second − `firstSec`; undefined where the version had no requests. */
  seconds: (SecondRecord | undefined)[];
  /** The last window read, to extend instead of re-merging when the next one only grows. */
  cache?: { fromSec: number; toSec: number; requests: number; errors: number; latency: Sketch };
}

export const DEFAULT_LATENCY_SAMPLES_PER_SECOND = 200;

/**
 * Seeded traffic of one simulated service, second by second.
 *
 * @example
 * const t = new SimulatedTraffic(rng, spec, { baseline: "v1", candidate: "v2" }, startSec);
 * t.serve(startSec, [{ version: "v1", weight: 90 }, { version: "v2", weight: 10 }]);
 * await t.window({ service: "svc", fromMs: startSec * 1000, toMs: (startSec + 1) * 1000 });
 */
export class SimulatedTraffic implements MeasurementsReader {
  readonly #rng: Rng;
  readonly #rps: number;
  readonly #samples: number;
  readonly #firstSec: number;
  readonly #series = new Map<string, VersionSeries>();
  readonly #scratch = new Sketch();
  #nextSec: number;

  constructor(
    rng: Rng,
    spec: TrafficSpec,
    versions: { baseline: string; candidate: string },
    firstSec: number,
  ) {
    if (!(spec.rps >= 0 && Number.isFinite(spec.rps))) {
      throw new RangeError(`rps must be a finite number >= 0, got ${spec.rps}`);
    }
    for (const [name, b] of [
      ["baseline", spec.baseline],
      ["candidate", spec.candidate],
    ] as const) {
      if (!(b.errorRate >= 0 && b.errorRate <= 1)) {
        throw new RangeError(`${name}.errorRate must be in [0, 1], got ${b.errorRate}`);
      }
    }
    if (versions.baseline === versions.candidate) {
      throw new RangeError(`baseline and candidate must be different versions`);
    }
    this.#rng = rng;
    this.#rps = spec.rps;
    this.#samples = Math.max(1, spec.latencySamplesPerSecond ?? DEFAULT_LATENCY_SAMPLES_PER_SECOND);
    this.#firstSec = firstSec;
    this.#nextSec = firstSec;
    this.#series.set(versions.baseline, { behaviour: spec.baseline, seconds: [] });
    this.#series.set(versions.candidate, { behaviour: spec.candidate, seconds: [] });
  }

  /** The next second to serve. */
  get nextSecond(): number {
    return this.#nextSec;
  }

  /**
   * Serves the next second (`second` must be `nextSecond`) with `weights` in force, and
   * returns what each version got. Weights of versions this traffic does not know are an error.
   */
  serve(second: number, weights: readonly VersionWeight[]): Map<string, SecondRecord> {
    if (second !== this.#nextSec) {
      throw new RangeError(`seconds are served in order: expected ${this.#nextSec}, got ${second}`);
    }
    this.#nextSec++;
    const rng = this.#rng;
    const out = new Map<string, SecondRecord>();
    // 1. Requests this second: rps, with a fractional part drawn.
    const whole = Math.floor(this.#rps);
    let remaining = whole + (rng() < this.#rps - whole ? 1 : 0);
    // 2. The split: a multinomial draw as a chain of binomials, in the order of `weights`.
    let weightLeft = 0;
    for (const w of weights) weightLeft += w.weight;
    for (const w of weights) {
      const series = this.#series.get(w.version);
      if (!series) throw new Error(`the simulated traffic has no version "${w.version}"`);
      if (w.weight <= 0) continue;
      const p = weightLeft > 0 ? Math.min(1, w.weight / weightLeft) : 0;
      const n = p >= 1 ? remaining : binomialSample(rng, remaining, p);
      remaining -= n;
      weightLeft -= w.weight;
      if (n === 0) continue;
      // 3. Errors and latencies of the version's requests.
      const b = series.behaviour;
      const errors = binomialSample(rng, n, b.errorRate);
      // Drawn into a reused sketch and copied: a copy allocates its bins once, where a fresh
      // sketch would grow them step by step as values spread.
      const latency = this.#scratch;
      latency.clear();
      if (n <= this.#samples) {
        for (let i = 0; i < n; i++) latency.add(b.latency(rng));
      } else {
        const k = this.#samples;
        const each = Math.floor(n / k);
        const extra = n - each * k;
        for (let i = 0; i < k; i++) {
          const v = b.latency(rng);
          const times = each + (i < extra ? 1 : 0);
          for (let j = 0; j < times; j++) latency.add(v);
        }
      }
      const rec: SecondRecord = { requests: n, errors, latency: latency.clone() };
      series.seconds[second - this.#firstSec] = rec;
      out.set(w.version, rec);
    }
    return out;
  }

  /** One version's record of one second; undefined when it had no requests then. */
  second(version: string, second: number): SecondRecord | undefined {
    return this.#series.get(version)?.seconds[second - this.#firstSec];
  }

  /**
   * One version's traffic over the seconds `fromSec` (included) to `toSec` (excluded); a fresh
   * sketch the caller may keep.
   */
  range(version: string, fromSec: number, toSec: number): RangeRecord {
    const series = this.#series.get(version);
    const latency = new Sketch();
    let requests = 0;
    let errors = 0;
    if (series) {
      const from = Math.max(fromSec, this.#firstSec);
      for (let s = from; s < toSec; s++) {
        const rec = series.seconds[s - this.#firstSec];
        if (!rec) continue;
        requests += rec.requests;
        errors += rec.errors;
        latency.merge(rec.latency);
      }
    }
    return { requests, errors, latency };
  }

  /**
   * The builtin provider's reader: every version with requests in `[fromMs, toMs)`, each whole
   * second that starts in it (as the router's measurements are read). `service` is not checked:
   * the simulation has one service.
   */
  async window(q: {
    service: string;
    version?: string;
    fromMs: number;
    toMs: number;
  }): Promise<Map<string, VersionWindow>> {
    const fromSec = Math.ceil(q.fromMs / 1000);
    const toSec = Math.ceil(q.toMs / 1000);
    const out = new Map<string, VersionWindow>();
    for (const [version, series] of this.#series) {
      if (q.version !== undefined && q.version !== version) continue;
      const r = this.#cachedRange(series, fromSec, toSec);
      if (r.requests === 0) continue;
      out.set(version, {
        requests: r.requests,
        status: { "2xx": r.requests - r.errors, "3xx": 0, "4xx": 0, "5xx": r.errors },
        upstreamErrors: 0,
        errorRate: r.errors / r.requests,
        // A copy: the cached sketch keeps growing with later windows.
        latency: r.latency.clone(),
      });
    }
    return out;
  }

  /**
   * Analysis windows keep their start and grow, so the last window's sums are extended by the
   * new seconds rather than merged again from the start (merging is exact either way).
   */
  #cachedRange(series: VersionSeries, fromSec: number, toSec: number): RangeRecord {
    const c = series.cache;
    if (!c || c.fromSec !== fromSec || c.toSec > toSec) {
      series.cache = { fromSec, toSec: fromSec, requests: 0, errors: 0, latency: new Sketch() };
    }
    const cache = series.cache!;
    const from = Math.max(cache.toSec, this.#firstSec);
    // Seconds not served yet stay out of the cache, or a later window would miss them.
    const to = Math.min(toSec, this.#nextSec);
    for (let s = from; s < to; s++) {
      const rec = series.seconds[s - this.#firstSec];
      if (!rec) continue;
      cache.requests += rec.requests;
      cache.errors += rec.errors;
      cache.latency.merge(rec.latency);
    }
    cache.toSec = Math.max(cache.toSec, to);
    return cache;
  }
}

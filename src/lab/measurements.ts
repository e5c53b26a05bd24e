/**
 * The lab's per-second measurements, kept as the router keeps them (per version, and per
 * version and flag label for edge-evaluated flags: request and 5xx counts and a latency sketch
 * per second) and read back through the builtin metric provider's `MeasurementsReader`, so the
 * lab's analysis measures through the same provider code as production.
 *
 * Reading: a window covers each whole second that starts in `[fromMs, toMs)`. Analysis windows
 * keep their start and grow, so the last window of each series is extended, not re-merged.
 */
import { Sketch } from "../core/sketch.js";
import type {
  MeasurementsReader,
  VersionWindow,
} from "../metrics/providers/builtin/builtin-provider.js";

interface Second {
  requests: number;
  errors: number;
  latency: Sketch;
}

interface Series {
  version: string;
  label: string;
  seconds: (Second | undefined)[];
  cache?: { fromSec: number; toSec: number; requests: number; errors: number; latency: Sketch };
}

/** The canonical label of a flag variant, as the router writes it (`flag.<key>=<variant>`). */
export function flagLabel(flag: string, variant: string): string {
  return `${encodeURIComponent(`flag.${flag}`)}=${encodeURIComponent(variant)}`;
}

export class LabMeasurements implements MeasurementsReader {
  readonly #series = new Map<string, Series>();
  readonly #firstSec: number;
  /** Seconds before this one are complete. */
  servedUntilSec: number;

  constructor(firstSec: number) {
    this.#firstSec = firstSec;
    this.servedUntilSec = firstSec;
  }

  /** The record of `version` (with `label`, "" for none) in `second`, created on first use. */
  second(version: string, label: string, second: number): Second {
    const key = `${version}\n${label}`;
    let s = this.#series.get(key);
    if (!s) {
      s = { version, label, seconds: [] };
      this.#series.set(key, s);
    }
    const i = second - this.#firstSec;
    let rec = s.seconds[i];
    if (!rec) {
      rec = { requests: 0, errors: 0, latency: new Sketch() };
      s.seconds[i] = rec;
    }
    return rec;
  }

  /** One version's requests, errors and latency sum over `[fromSec, toSec)` (no label). */
  totals(version: string, fromSec: number, toSec: number): Second {
    const s = this.#series.get(`${version}\n`);
    const out: Second = { requests: 0, errors: 0, latency: new Sketch() };
    if (!s) return out;
    for (let t = Math.max(fromSec, this.#firstSec); t < toSec; t++) {
      const r = s.seconds[t - this.#firstSec];
      if (!r) continue;
      out.requests += r.requests;
      out.errors += r.errors;
      out.latency.merge(r.latency);
    }
    return out;
  }

  async window(q: {
    service: string;
    version?: string;
    label?: string;
    fromMs: number;
    toMs: number;
  }): Promise<Map<string, VersionWindow>> {
    const fromSec = Math.ceil(q.fromMs / 1000);
    const toSec = Math.ceil(q.toMs / 1000);
    const label = q.label ?? "";
    const out = new Map<string, VersionWindow>();
    for (const s of this.#series.values()) {
      if (s.label !== label) continue;
      if (q.version !== undefined && q.version !== s.version) continue;
      const r = this.#cachedRange(s, fromSec, toSec);
      if (r.requests === 0) continue;
      out.set(s.version, {
        requests: r.requests,
        status: { "2xx": r.requests - r.errors, "3xx": 0, "4xx": 0, "5xx": r.errors },
        upstreamErrors: 0,
        errorRate: r.errors / r.requests,
        latency: r.latency.clone(),
      });
    }
    return out;
  }

  #cachedRange(s: Series, fromSec: number, toSec: number) {
    const c = s.cache;
    if (!c || c.fromSec !== fromSec || c.toSec > toSec) {
      s.cache = { fromSec, toSec: fromSec, requests: 0, errors: 0, latency: new Sketch() };
    }
    const cache = s.cache!;
    const from = Math.max(cache.toSec, this.#firstSec);
    // Seconds not complete yet stay out of the cache, or a later window would miss them.
    const to = Math.min(toSec, this.servedUntilSec);
    for (let t = from; t < to; t++) {
      const r = s.seconds[t - this.#firstSec];
      if (!r) continue;
      cache.requests += r.requests;
      cache.errors += r.errors;
      cache.latency.merge(r.latency);
    }
    cache.toSec = Math.max(cache.toSec, to);
    return cache;
  }
}

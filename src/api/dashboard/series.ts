/**
 * `GET /api/v1/services/:name/series?seconds=600&step=5`: the routers' measurements of a
 * service over the last `seconds`, in buckets of `step` seconds, per version: requests per
 * second, share of the service's requests, error rate ((5xx + requests abandoned by their
 * clients) / requests, as analysis counts it), the abandoned requests, and latency p50/p99 (merged sketches, so quantiles of the bucket, not averages of seconds).
 * The dashboard draws its charts from it. Read-only; reads what routers flushed to the store,
 * so numbers from every router are in it.
 */
import type { FastifyInstance } from "fastify";
import { addCounts, type Counts, emptyCounts, errorCount } from "../../core/measurements.js";
import { Sketch } from "../../core/sketch.js";
import { TurnoutError } from "../../errors.js";
import type { Store } from "../../store/store.js";

export interface SeriesPoint {
  /** Epoch second the bucket starts at. */
  t: number;
  versions: Record<
    string,
    {
      requests: number;
      rps: number;
      share: number;
      /** (5xx + abandoned) / requests: the builtin error_rate's definition. */
      errorRate: number;
      /** Requests whose client left before the version answered (in `errorRate`). */
      abandoned: number;
      p50Ms: number | null;
      p99Ms: number | null;
    }
  >;
}

const MAX_BUCKETS = 2000;

export function registerSeriesRoute(
  app: FastifyInstance,
  opts: { store: Pick<Store, "getResource" | "readMeasurements">; nowMs: () => number },
): void {
  app.get<{ Params: { name: string }; Querystring: { seconds?: string; step?: string } }>(
    "/api/v1/services/:name/series",
    async (req) => {
      const name = req.params.name;
      if ((await opts.store.getResource("Service", name)) === null) {
        throw new TurnoutError(
          "TURNOUT_ERR_SERVICE_NOT_FOUND",
          `no service named ${JSON.stringify(name)}`,
          { path: "name" },
        );
      }
      const seconds = intIn(req.query.seconds, "seconds", 600, 10, 7 * 86400);
      const step = intIn(req.query.step, "step", 5, 1, 3600);
      if (seconds / step > MAX_BUCKETS) {
        throw new TurnoutError(
          "TURNOUT_ERR_API_BAD_REQUEST",
          `step: at most ${MAX_BUCKETS} buckets; with seconds=${seconds} use step >= ${Math.ceil(seconds / MAX_BUCKETS)}`,
          { path: "step" },
        );
      }
      // Buckets on a grid of `step`, the last one the bucket holding the latest second flushed.
      const nowSec = Math.floor(opts.nowMs() / 1000);
      const toSec = (Math.floor(nowSec / step) + 1) * step;
      const fromSec = toSec - Math.ceil(seconds / step) * step;
      const rows = await opts.store.readMeasurements({ service: name, fromSec, toSec });
      type Acc = Counts & { latency: Sketch };
      const buckets = new Map<number, Map<string, Acc>>();
      const versions = new Set<string>();
      for (const r of rows) {
        const t = r.second - ((r.second - fromSec) % step);
        let b = buckets.get(t);
        if (b === undefined) {
          b = new Map();
          buckets.set(t, b);
        }
        let a = b.get(r.version);
        const sk = Sketch.fromJSON(r.latency);
        if (a === undefined) {
          a = { ...emptyCounts(), latency: new Sketch({ alpha: sk.alpha }) };
          b.set(r.version, a);
        }
        addCounts(a, r);
        a.latency.merge(sk);
        versions.add(r.version);
      }
      const points: SeriesPoint[] = [];
      for (let t = fromSec; t < toSec; t += step) {
        const b = buckets.get(t);
        const total = b ? [...b.values()].reduce((n, a) => n + a.requests, 0) : 0;
        const p: SeriesPoint = { t, versions: {} };
        for (const [v, a] of b ?? []) {
          const n = a.latency.count;
          p.versions[v] = {
            requests: a.requests,
            rps: a.requests / step,
            share: total === 0 ? 0 : a.requests / total,
            errorRate: a.requests === 0 ? 0 : errorCount(a) / a.requests,
            abandoned: a.abandoned,
            p50Ms: n === 0 ? null : a.latency.quantile(0.5),
            p99Ms: n === 0 ? null : a.latency.quantile(0.99),
          };
        }
        points.push(p);
      }
      return {
        service: name,
        fromSec,
        toSec,
        stepSec: step,
        versions: [...versions].sort(),
        points,
      };
    },
  );
}

function intIn(
  v: string | undefined,
  name: string,
  dflt: number,
  min: number,
  max: number,
): number {
  if (v === undefined) return dflt;
  const n = /^\d{1,9}$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= min && n <= max)) {
    throw new TurnoutError(
      "TURNOUT_ERR_API_BAD_REQUEST",
      `${name}: must be an integer ${min}..${max}, got ${JSON.stringify(v)}`,
      { path: name },
    );
  }
  return n;
}

/**
 * `GET /metrics`: Prometheus text format, open like `/healthz` (Prometheus scrapes it without
 * the admin token; it exposes counts, latencies, weights and phases, never secrets).
 *
 * Everything is computed at scrape time, nothing on the request path:
 * - `turnout_router_requests_total{service,version,code_class}`,
 *   `turnout_router_upstream_errors_total{service,version}` and
 *   `turnout_router_abandoned_requests_total{service,version}` (clients that left before the
 *   version answered; also in code_class 4xx, as 499) are the router's running totals;
 * - `turnout_router_fd_exhausted_total{service,version}` counts requests answered 503 because
 *   the router ran out of file descriptors connecting to an upstream;
 * - `turnout_router_request_duration_seconds{service,version}` is a histogram whose buckets are
 *   read from the router's latency sketches by a custom collector. Observing a prom-client
 *   Histogram on the hot path would cost a label lookup (hashing the label values) and a
 *   bucket search per request on top of the sketch that analysis needs anyway; reading the
 *   sketch at scrape costs nothing per request. A bucket count is exact except for values
 *   within 1% of a bucket's bound, which may land on either side of it.
 * - `turnout_route_weight_percent{service,version}`, `turnout_rollout_phase{service,phase}`
 *   (1 for the current phase, 0 for the others) and `turnout_store_up` read the store;
 * - prom-client's default process metrics, prefixed `turnout_`.
 *
 * The router numbers come from `turnout up`'s router: read live when it runs in this thread
 * (`recorder`), or collected from its thread once per scrape (`routerMetrics`,
 * `registerForwardedMetrics`) with the same text. A router in a process of its own (a fleet's
 * `--roles router`) serves its own on its `--metrics-address` (`metrics-listener.ts`), without
 * the store's gauges, which the API's process serves once for the fleet.
 * Services carried by HAProxy appear in the same families, from HAProxy's measurements (its log
 * intake's recorder, `recorderMetricFamilies`), merged with the router's (`mergeMetricFamilies`).
 */
import type { FastifyInstance } from "fastify";
import { Counter, collectDefaultMetrics, Gauge, type Metric, Registry } from "prom-client";
import type { StatusClasses } from "../core/measurements.js";
import type { Phase } from "../core/model.js";
import type { Sketch } from "../core/sketch.js";
import type { MeasurementRecorder } from "../router/stats.js";
import type { Store } from "../store/store.js";

/** The registry `/metrics` serves (prom-client's). */
export type MetricsRegistry = Registry;

/** Histogram bounds in seconds: Prometheus' defaults extended down to 0.5 ms for a proxy. */
export const DURATION_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

const PHASES: readonly Phase[] = Object.keys({
  Healthy: true,
  Progressing: true,
  Paused: true,
  Degraded: true,
  Completed: true,
} satisfies Record<Phase, true>) as Phase[];

export interface MetricsOptions {
  /**
   * Read at scrape time for route weights, rollout phases and `turnout_store_up`. Without it
   * those gauges are absent: a process without the API (a router of a fleet) leaves them to the
   * API's, so that the fleet reports each once and no scrape of a router reads the store.
   */
  store?: Pick<Store, "listRouteTables" | "listResources" | "getStatus">;
  /** The in-process router's measurements; without it (or `routerMetrics`) the router metrics are absent. */
  recorder?: Pick<MeasurementRecorder, "services" | "totals">;
  /** The router's families collected in its own thread (`registerRouterMetrics` there). */
  routerMetrics?: () => Promise<MetricFamily[]>;
  /** prom-client's default process metrics (prefix `turnout_`). Default true. */
  processMetrics?: boolean;
}

/** Per service and version, summed over the series labels (experiment arm, flag variant). */
interface VersionTotals {
  service: string;
  version: string;
  status: StatusClasses;
  upstreamErrors: number;
  abandoned: number;
  latency: Sketch[];
  fdExhausted: number;
}

function versionTotals(
  recorder: Pick<MeasurementRecorder, "services" | "totals">,
): VersionTotals[] {
  const out: VersionTotals[] = [];
  for (const service of recorder.services()) {
    const byVersion = new Map<string, VersionTotals>();
    for (const t of recorder.totals(service)) {
      let v = byVersion.get(t.version);
      if (v === undefined) {
        v = {
          service,
          version: t.version,
          status: { "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 },
          upstreamErrors: 0,
          abandoned: 0,
          latency: [],
          fdExhausted: 0,
        };
        byVersion.set(t.version, v);
      }
      v.status["2xx"] += t.status["2xx"];
      v.status["3xx"] += t.status["3xx"];
      v.status["4xx"] += t.status["4xx"];
      v.status["5xx"] += t.status["5xx"];
      v.upstreamErrors += t.upstreamErrors;
      v.abandoned += t.abandoned;
      v.latency.push(t.latency);
      v.fdExhausted += t.fdExhausted;
    }
    out.push(...byVersion.values());
  }
  return out;
}

interface MetricValue {
  labels: Record<string, string>;
  value: number;
  metricName?: string;
}

const DURATION_NAME = "turnout_router_request_duration_seconds";

/**
 * A histogram collector over the router's sketches. prom-client has no Histogram whose buckets
 * can be set from outside, but its registry takes any object with a name, a type and `get()`.
 */
function durationHistogram(recorder: Pick<MeasurementRecorder, "services" | "totals">): Metric {
  const help = "Time from a request's arrival to the last byte of its response, by version.";
  const collector = {
    name: DURATION_NAME,
    help,
    type: "histogram",
    aggregator: "sum",
    reset(): void {},
    async get() {
      const values: MetricValue[] = [];
      for (const v of versionTotals(recorder)) {
        const labels = { service: v.service, version: v.version };
        for (const le of DURATION_BUCKETS_SECONDS) {
          let n = 0;
          for (const s of v.latency) n += s.countAtOrBelow(le * 1000);
          values.push({
            labels: { ...labels, le: String(le) },
            value: n,
            metricName: `${DURATION_NAME}_bucket`,
          });
        }
        let count = 0;
        let sumMs = 0;
        for (const s of v.latency) {
          count += s.count;
          sumMs += s.sum;
        }
        values.push({
          labels: { ...labels, le: "+Inf" },
          value: count,
          metricName: `${DURATION_NAME}_bucket`,
        });
        values.push({ labels, value: sumMs / 1000, metricName: `${DURATION_NAME}_sum` });
        values.push({ labels, value: count, metricName: `${DURATION_NAME}_count` });
      }
      return { name: DURATION_NAME, help, type: "histogram", values, aggregator: "sum" };
    },
  };
  return collector as unknown as Metric;
}

/** The router's metric families, in the order `/metrics` prints them. */
export const ROUTER_METRIC_NAMES = [
  "turnout_router_requests_total",
  "turnout_router_upstream_errors_total",
  "turnout_router_abandoned_requests_total",
  DURATION_NAME,
  "turnout_router_fd_exhausted_total",
] as const;

/**
 * Registers the router's counters and latency histogram, read from `recorder` at scrape time.
 * A router thread registers these in its own registry and `createMetricsRegistry` forwards them
 * (`routerMetrics`); in one thread `recorder` is read directly.
 */
export function registerRouterMetrics(
  registry: Registry,
  recorder: Pick<MeasurementRecorder, "services" | "totals">,
): void {
  new Counter({
    name: "turnout_router_requests_total",
    help: "Responses the router sent, by service, version and status class (its own 502/503/504 included).",
    labelNames: ["service", "version", "code_class"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const v of versionTotals(recorder)) {
        for (const code_class of ["2xx", "3xx", "4xx", "5xx"] as const) {
          this.inc({ service: v.service, version: v.version, code_class }, v.status[code_class]);
        }
      }
    },
  });
  const perVersion = (name: string, help: string, count: (v: VersionTotals) => number) =>
    new Counter({
      name,
      help,
      labelNames: ["service", "version"] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const v of versionTotals(recorder)) {
          this.inc({ service: v.service, version: v.version }, count(v));
        }
      },
    });
  perVersion(
    "turnout_router_upstream_errors_total",
    "Upstream failures (connect errors, resets, timeouts, broken response streams), by version.",
    (v) => v.upstreamErrors,
  );
  perVersion(
    "turnout_router_abandoned_requests_total",
    "Requests whose client closed the connection after a version was picked and before its response head came (also in code_class 4xx, as 499), by version: how a version that hangs shows when clients give up before the upstream timeout.",
    (v) => v.abandoned,
  );
  registry.registerMetric(durationHistogram(recorder));
  perVersion(
    "turnout_router_fd_exhausted_total",
    "Requests answered 503 because the router ran out of file descriptors (EMFILE/ENFILE) connecting to an upstream, by version; the upstream is not ejected for them. Raise ulimit -n.",
    (v) => v.fdExhausted,
  );
}

/** A metric family as prom-client's `getMetricsAsJSON()` gives it: plain data, cloneable. */
export type MetricFamily = Awaited<ReturnType<Registry["getMetricsAsJSON"]>>[number];

/**
 * The router's families read from another recorder, such as HAProxy's log intake (the services
 * it carries are measured there, not by the router), as plain families to merge with the
 * router's. Registered once; each call reads the recorder's totals at that moment.
 *
 * @example
 * const haproxyFamilies = recorderMetricFamilies(haproxy.measurements);
 * const collect = async () => mergeMetricFamilies(await router.metrics(), await haproxyFamilies());
 */
export function recorderMetricFamilies(
  recorder: Pick<MeasurementRecorder, "services" | "totals">,
): () => Promise<MetricFamily[]> {
  const registry = new Registry();
  registerRouterMetrics(registry, recorder);
  return () => registry.getMetricsAsJSON();
}

/**
 * Families from several sources as one list: families of the same name become one, in the
 * order first seen, and samples with the same name and labels are added (one series per label
 * set, as Prometheus requires; a service that moved from one data plane to the other sums its
 * requests over both), or combined as the family's `aggregator` says (prom-client's, as its
 * cluster registry reads it: "min", "max" or "first"; "sum" otherwise).
 */
export function mergeMetricFamilies(...sources: readonly MetricFamily[][]): MetricFamily[] {
  const byName = new Map<string, { family: MetricFamily; at: Map<string, MetricValue> }>();
  for (const families of sources) {
    for (const f of families) {
      let entry = byName.get(f.name);
      if (entry === undefined) {
        entry = { family: { ...f, values: [] }, at: new Map() };
        byName.set(f.name, entry);
      }
      for (const v of f.values as MetricValue[]) {
        const labels = Object.entries(v.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        const key = `${v.metricName ?? f.name}\u0000${JSON.stringify(labels)}`;
        const seen = entry.at.get(key);
        if (seen !== undefined) seen.value = combine(f.aggregator, seen.value, v.value);
        else {
          const copy = { ...v };
          entry.at.set(key, copy);
          (entry.family.values as MetricValue[]).push(copy);
        }
      }
    }
  }
  return [...byName.values()].map((e) => e.family);
}

function combine(aggregator: MetricFamily["aggregator"], a: number, b: number): number {
  switch (aggregator) {
    case "min":
      return Math.min(a, b);
    case "max":
      return Math.max(a, b);
    case "first":
      return a;
    default:
      return a + b;
  }
}

/**
 * Registers families collected elsewhere (another thread's registry) under their own names, so
 * that the text `/metrics` prints is the same as if they were registered here. `collect` is
 * called once per scrape however many families it serves. When it fails (the router thread is
 * restarting) or leaves a family out, the family prints with no samples rather than failing
 * the whole scrape.
 */
export function registerForwardedMetrics(
  registry: Registry,
  names: readonly string[],
  collect: () => Promise<MetricFamily[]>,
): void {
  let pending: Promise<Map<string, MetricFamily>> | null = null;
  const families = (): Promise<Map<string, MetricFamily>> => {
    pending ??= collect()
      .then((list) => new Map(list.map((f) => [f.name, f])))
      .catch(() => new Map<string, MetricFamily>())
      .finally(() => {
        // Cleared on the next tick, after every family of this scrape has its copy.
        setImmediate(() => {
          pending = null;
        });
      });
    return pending;
  };
  for (const name of names) {
    // Help and type of the last scrape that had the family, for one that does not.
    let last: { help: string; type: MetricFamily["type"] } | null = null;
    const forwarded = {
      name,
      help: "",
      type: "untyped",
      aggregator: "sum",
      reset(): void {},
      async get(): Promise<MetricFamily> {
        const f = (await families()).get(name);
        if (f !== undefined) {
          last = { help: f.help, type: f.type };
          return f;
        }
        const empty = {
          name,
          help: last?.help ?? "not collected: the router did not answer",
          type: last?.type ?? "untyped",
          values: [],
          aggregator: "sum",
        };
        return empty as unknown as MetricFamily;
      },
    };
    registry.registerMetric(forwarded as unknown as Metric);
  }
}

/**
 * The registry behind `/metrics`: router counters and latency histogram (from `recorder`),
 * route weights and rollout phases (from the store, when given), process metrics.
 *
 * @example
 * const metrics = createMetricsRegistry({ store, recorder: router.measurements });
 * buildApi({ ..., metrics });
 */
export function createMetricsRegistry(opts: MetricsOptions): Registry {
  const registry = new Registry();
  const { store, recorder } = opts;

  if (recorder !== undefined) registerRouterMetrics(registry, recorder);
  else if (opts.routerMetrics !== undefined)
    registerForwardedMetrics(registry, ROUTER_METRIC_NAMES, opts.routerMetrics);

  if (store !== undefined) registerStoreGauges(registry, store);
  if (opts.processMetrics ?? true)
    collectDefaultMetrics({ register: registry, prefix: "turnout_" });
  return registry;
}

/**
 * The store gauges share one read per scrape: weights and phases come from one snapshot, and a
 * store that fails turns turnout_store_up to 0 instead of failing the scrape.
 */
function registerStoreGauges(
  registry: Registry,
  store: NonNullable<MetricsOptions["store"]>,
): void {
  let pending: Promise<StoreSnapshot> | null = null;
  const snapshot = (): Promise<StoreSnapshot> => {
    pending ??= readStore(store).finally(() => {
      // Cleared on the next tick, after every collector of this scrape has its copy.
      setImmediate(() => {
        pending = null;
      });
    });
    return pending;
  };
  new Gauge({
    name: "turnout_store_up",
    help: "1 when the store answered this scrape, 0 when it failed.",
    registers: [registry],
    async collect() {
      this.set((await snapshot()).ok ? 1 : 0);
    },
  });
  new Gauge({
    name: "turnout_route_weight_percent",
    help: "Percent of traffic the route table in force sends to each version.",
    labelNames: ["service", "version"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const w of (await snapshot()).weights) this.set(w.labels, w.value);
    },
  });
  new Gauge({
    name: "turnout_rollout_phase",
    help: "The service's rollout phase: 1 for the current one, 0 for the others.",
    labelNames: ["service", "phase"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const { service, phase } of (await snapshot()).phases) {
        for (const p of PHASES) this.set({ service, phase: p }, p === phase ? 1 : 0);
      }
    },
  });
}

interface StoreSnapshot {
  ok: boolean;
  weights: { labels: { service: string; version: string }; value: number }[];
  phases: { service: string; phase: Phase }[];
}

async function readStore(store: NonNullable<MetricsOptions["store"]>): Promise<StoreSnapshot> {
  try {
    const [tables, services] = await Promise.all([
      store.listRouteTables(),
      store.listResources("Service"),
    ]);
    const weights = tables.flatMap((t) =>
      t.backends.map((b) => ({
        labels: { service: t.service, version: b.version },
        value: b.weight,
      })),
    );
    const statuses = await Promise.all(services.map((s) => store.getStatus(s.name)));
    const phases = services.flatMap((s, i) => {
      const st = statuses[i];
      return st ? [{ service: s.name, phase: st.phase }] : [];
    });
    return { ok: true, weights, phases };
  } catch {
    return { ok: false, weights: [], phases: [] };
  }
}

/** Registers `GET /metrics` (no token: the caller's auth hook must let it through). */
export function registerMetricsRoute(app: FastifyInstance, registry: Registry): void {
  app.get("/metrics", async (_req, reply) => {
    const text = await registry.metrics();
    reply.header("content-type", registry.contentType);
    return text;
  });
}

/** The paths that answer without the admin token, besides /healthz. */
export function isMetricsPath(url: string): boolean {
  return url === "/metrics" || url.startsWith("/metrics?");
}

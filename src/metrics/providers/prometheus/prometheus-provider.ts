/**
 * Prometheus: an instant query (`/api/v1/query` at the window's end) or, with `rangeQuery`, a
 * range query (`/api/v1/query_range` over the window at `step`), over the HTTP API with undici.
 *
 * - scalar, or a vector of one series: that value. A matrix of one series: its points as
 *   `values` (time order), the last as `value`, the point count as `sampleSize`.
 * - No series: "no data" (`errorKind: "noData"`; the judge calls that inconclusive).
 * - Several series: an error unless `reduce` says how to combine them (for a matrix, per
 *   timestamp). Reducing is kept to first/sum/max/min/avg: anything cleverer belongs in PromQL.
 * - NaN or an infinity anywhere in what would be used: an error (NaN usually means 0/0, i.e. no
 *   traffic; saying so beats passing or failing on it).
 * - HTTP or API errors carry the status, Prometheus' `errorType` and `error`.
 *
 * Queries are POSTed as a form, as Prometheus allows, so long queries do not hit URL limits.
 * The response is read up to `maxResponseBytes`. Credentials in the address
 * (`https://user:pass@host`) are sent as basic auth and never shown.
 */
import { type Dispatcher, request } from "undici";
import { parseDuration } from "../../../core/duration.js";
import {
  invalid,
  type Measurement,
  type MeasureRequest,
  type MetricProvider,
  PROMETHEUS_REDUCERS,
  type PrometheusReduce,
  type PrometheusSourceSpec,
  providerKind,
} from "../provider.js";
import {
  basicAuthFromUrl,
  deadline,
  describeError,
  failed,
  formatSeconds,
  head,
  measured,
  parseNumberText,
  readBounded,
} from "../support.js";
import { resolveSource, templateVars } from "../template.js";

export interface PrometheusProviderOptions {
  /** undici dispatcher (an Agent with TLS options, a proxy...); the global one by default. */
  dispatcher?: Dispatcher;
  /** Default 8 MiB. */
  maxResponseBytes?: number;
  /** When the source gives none. Default 10. */
  defaultTimeoutSeconds?: number;
}

type Sample = [number, string];
interface Series {
  metric: Record<string, string>;
  value?: Sample;
  values?: Sample[];
}
interface ApiBody {
  status?: string;
  errorType?: string;
  error?: string;
  warnings?: string[];
  data?: { resultType?: string; result?: unknown };
}

/** How many series, and points per series, `raw` keeps. */
const RAW_SERIES = 5;
const RAW_POINTS = 10;

export class PrometheusProvider implements MetricProvider {
  readonly kind = "prometheus" as const;
  private readonly maxResponseBytes: number;
  private readonly defaultTimeoutSeconds: number;

  constructor(private readonly opts: PrometheusProviderOptions = {}) {
    this.maxResponseBytes = opts.maxResponseBytes ?? 8 * 1024 * 1024;
    this.defaultTimeoutSeconds = opts.defaultTimeoutSeconds ?? 10;
  }

  async measure(req: MeasureRequest, signal: AbortSignal): Promise<Measurement> {
    // 1. Check and render the source; a wrong source throws (nothing remote has happened).
    if (providerKind(req.source) !== "prometheus") {
      throw invalid("source", `the prometheus provider cannot measure ${Object.keys(req.source)}`);
    }
    const spec = resolveSource(
      req.source as { prometheus: PrometheusSourceSpec },
      templateVars(req),
    ).prometheus;
    const reduce = checkReduce(spec.reduce);
    const timeoutSeconds = spec.timeoutSeconds ?? this.defaultTimeoutSeconds;
    if (!(timeoutSeconds > 0)) {
      throw invalid("source.prometheus.timeoutSeconds", `must be > 0, got ${timeoutSeconds}`);
    }
    const form = new URLSearchParams({ query: spec.query, timeout: `${timeoutSeconds}s` });
    let endpoint: "query" | "query_range";
    if (spec.rangeQuery !== undefined) {
      const step = parseDuration(spec.rangeQuery.step);
      if ("error" in step) throw invalid("source.prometheus.rangeQuery.step", step.error);
      if (step.ms <= 0) throw invalid("source.prometheus.rangeQuery.step", "must be > 0");
      if (!(req.fromMs < req.toMs)) {
        throw new RangeError(`window must have fromMs < toMs, got ${req.fromMs}..${req.toMs}`);
      }
      endpoint = "query_range";
      form.set("start", String(req.fromMs / 1000));
      form.set("end", String(req.toMs / 1000));
      form.set("step", String(step.ms / 1000));
    } else {
      endpoint = "query";
      form.set("time", String(req.toMs / 1000));
    }
    let url: URL;
    try {
      url = new URL(
        `api/v1/${endpoint}`,
        spec.address.endsWith("/") ? spec.address : `${spec.address}/`,
      );
    } catch {
      throw invalid(
        "source.prometheus.address",
        `must be an http(s) URL, got ${JSON.stringify(spec.address)}`,
      );
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw invalid(
        "source.prometheus.address",
        `must be an http(s) URL, got ${JSON.stringify(spec.address)}`,
      );
    }
    const authorization = basicAuthFromUrl(url);
    // Named without credentials (http://user:pass@host) in messages and raw.
    const where = `Prometheus at ${url.origin}${url.pathname.slice(0, -`api/v1/${endpoint}`.length - 1)}`;
    const rawBase = { query: spec.query, endpoint };

    // 2. Ask, within the timeout; the caller's abort and the timeout are told apart.
    if (signal.aborted) return failed("aborted", "aborted before the query was sent", rawBase);
    const dl = deadline(signal, timeoutSeconds * 1000);
    let status: number;
    let text: string;
    try {
      const res = await request(url, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
          ...(authorization ? { authorization } : {}),
        },
        body: form.toString(),
        signal: dl.signal,
        ...(this.opts.dispatcher ? { dispatcher: this.opts.dispatcher } : {}),
      });
      status = res.statusCode;
      const body = await readBounded(res.body, this.maxResponseBytes);
      if ("tooLarge" in body) {
        return failed(
          "failed",
          `${where}: response larger than ${this.maxResponseBytes} bytes (HTTP ${status}); narrow the query`,
          { ...rawBase, status },
        );
      }
      text = body.text;
    } catch (err) {
      const why = dl.why();
      if (why === "aborted") return failed("aborted", `${where}: query aborted`, rawBase);
      if (why === "timeout") {
        return failed(
          "timeout",
          `${where}: no answer within ${formatSeconds(timeoutSeconds)}`,
          rawBase,
        );
      }
      return failed("failed", `${where}: ${describeError(err)}`, rawBase);
    } finally {
      dl.dispose();
    }

    // 3. Parse the API envelope.
    let body: ApiBody;
    try {
      body = JSON.parse(text) as ApiBody;
    } catch {
      return failed("failed", `${where}: HTTP ${status}, not a Prometheus API response`, {
        ...rawBase,
        status,
        body: head(text, 500),
      });
    }
    if (typeof body !== "object" || body === null) body = {};
    if (status < 200 || status > 299 || body.status !== "success") {
      const kind = body.errorType === "timeout" ? "timeout" : "failed";
      const detail = body.error
        ? `${body.errorType ? `${body.errorType}: ` : ""}${body.error}`
        : head(text, 200);
      return failed(kind, `${where}: HTTP ${status}: ${detail}`, {
        ...rawBase,
        status,
        errorType: body.errorType,
        error: body.error,
      });
    }
    return interpret(body, reduce, rawBase);
  }
}

function checkReduce(reduce: unknown): PrometheusReduce | undefined {
  if (reduce === undefined) return undefined;
  if (typeof reduce === "string" && (PROMETHEUS_REDUCERS as string[]).includes(reduce)) {
    return reduce as PrometheusReduce;
  }
  throw invalid(
    "source.prometheus.reduce",
    `must be one of ${PROMETHEUS_REDUCERS.join(", ")}, got ${JSON.stringify(reduce)}`,
  );
}

/** `{__name__="up", job="api"}` */
function labels(metric: Record<string, string>): string {
  const entries = Object.entries(metric ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ")}}`;
}

/** A sample's number, or why it is not one. */
function sampleValue(s: unknown, where: string): number | string {
  if (!Array.isArray(s) || s.length !== 2 || typeof s[1] !== "string") {
    return `${where}: malformed sample ${head(JSON.stringify(s) ?? String(s), 80)}`;
  }
  const n = parseNumberText(s[1]);
  if (n === null) return `${where}: sample value ${JSON.stringify(s[1])} is not a number`;
  if ("nonFinite" in n) {
    return `${where}: value is ${n.nonFinite} at ${new Date(Number(s[0]) * 1000).toISOString()} (NaN usually means 0/0: no traffic in the window)`;
  }
  return n.value;
}

function combine(reduce: PrometheusReduce, xs: number[]): number {
  switch (reduce) {
    case "first":
      return xs[0]!;
    case "sum":
      return xs.reduce((a, b) => a + b, 0);
    case "max":
      return Math.max(...xs);
    case "min":
      return Math.min(...xs);
    case "avg":
      return xs.reduce((a, b) => a + b, 0) / xs.length;
  }
}

function trimSeries(s: Series): unknown {
  if (!Array.isArray(s.values) || s.values.length <= RAW_POINTS) return s;
  const half = RAW_POINTS / 2;
  return {
    metric: s.metric,
    points: s.values.length,
    values: [...s.values.slice(0, half), ...s.values.slice(-half)],
  };
}

function interpret(
  body: ApiBody,
  reduce: PrometheusReduce | undefined,
  rawBase: { query: string; endpoint: string },
): Measurement {
  const resultType = body.data?.resultType;
  const result = body.data?.result;
  const warnings = Array.isArray(body.warnings) ? body.warnings.slice(0, 5) : undefined;
  const raw = (extra: Record<string, unknown>) => ({
    ...rawBase,
    resultType,
    ...extra,
    ...(warnings ? { warnings } : {}),
  });
  const q = `query ${head(rawBase.query, 200)}`;

  if (resultType === "scalar") {
    const v = sampleValue(result, q);
    if (typeof v === "string") return failed("failed", v, raw({ result }));
    return measured({ value: v, raw: raw({ result }) });
  }
  if (resultType !== "vector" && resultType !== "matrix") {
    return failed(
      "failed",
      `${q}: returned a ${resultType ?? "malformed"} result; expected a number (scalar, vector or matrix)`,
      raw({ result }),
    );
  }
  if (!Array.isArray(result)) {
    return failed("failed", `${q}: malformed ${resultType} result`, raw({}));
  }
  const series = (result as Series[])
    .slice()
    .sort((a, b) => (labels(a.metric) < labels(b.metric) ? -1 : 1));
  const shown = { series: series.length, result: series.slice(0, RAW_SERIES).map(trimSeries) };
  if (series.length === 0) {
    return failed("noData", `no data: ${q} returned no series`, raw(shown));
  }
  if (series.length > 1 && reduce === undefined) {
    const names = series.slice(0, 3).map((s) => labels(s.metric));
    return failed(
      "failed",
      `${q}: returned ${series.length} series (${names.join(", ")}${series.length > 3 ? ", ..." : ""}); aggregate them in the query (e.g. sum(...)) or set reduce: ${PROMETHEUS_REDUCERS.join("|")}`,
      raw(shown),
    );
  }
  const how = reduce ?? "first";

  if (resultType === "vector") {
    const xs: number[] = [];
    for (const s of series) {
      const v = sampleValue(s.value, `${q} ${labels(s.metric)}`);
      if (typeof v === "string") return failed("failed", v, raw(shown));
      xs.push(v);
    }
    return measured({ value: combine(how, xs), raw: raw(shown) });
  }

  // Matrix: combine the series per timestamp (a series missing at a timestamp just does not
  // take part there), then the points in time order are the samples.
  const byTime = new Map<number, number[]>();
  for (const s of series) {
    if (!Array.isArray(s.values)) {
      return failed("failed", `${q} ${labels(s.metric)}: malformed matrix series`, raw(shown));
    }
    for (const p of s.values) {
      const v = sampleValue(p, `${q} ${labels(s.metric)}`);
      if (typeof v === "string") return failed("failed", v, raw(shown));
      const t = Number(p[0]);
      const at = byTime.get(t);
      if (at) at.push(v);
      else byTime.set(t, [v]);
    }
  }
  const times = [...byTime.keys()].sort((a, b) => a - b);
  if (times.length === 0) {
    return failed("noData", `no data: ${q} returned series without points`, raw(shown));
  }
  const values = times.map((t) => combine(how, byTime.get(t)!));
  return measured({
    value: values[values.length - 1]!,
    values,
    sampleSize: values.length,
    raw: raw(shown),
  });
}

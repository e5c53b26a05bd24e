/**
 * Where an analysis metric's numbers come from. One small interface, one folder per
 * implementation (`builtin/`, `prometheus/`, `web/`, `command/`), one shared conformance suite
 * (`conformance.ts`) that every implementation's tests run.
 *
 * A provider only measures; it never judges. It turns one `MeasureRequest` into one
 * `Measurement`: numbers (one value, samples, or candidate and baseline sides) that the judges
 * (threshold, relative to baseline, sequential test on proportions, Mann-Whitney on samples)
 * consume, plus a bounded copy of what the source answered for the verdict record.
 *
 * Failure contract, which the conformance suite checks:
 * - A failure of the source (unreachable, non-2xx, timeout, no data, a value that is not a
 *   finite number, a command killed by a signal...) resolves to a `FailedMeasurement`; the
 *   promise never rejects for it. Abort through the signal also resolves (`errorKind: "aborted"`).
 * - `measure` throws (rejects) only when the request itself is wrong: a source of another kind,
 *   a template naming an argument the request does not carry, an unknown `reduce`, a JSON path
 *   that does not parse. These are `TurnoutError`s with code `TURNOUT_ERR_RESOURCE_INVALID` and
 *   the field's path; retrying cannot help, so the engine should stop the analysis with them.
 *   (A window with `fromMs >= toMs` where a provider needs one is a `RangeError`: a caller's bug.)
 */
import type { CandidateTraffic } from "../../core/analysis/observation.js";
import type { DurationInput, MetricSourceSpec } from "../../core/model.js";
import { TurnoutError } from "../../errors.js";

// ---------------------------------------------------------------------------------------
// Sources as the providers read them
// ---------------------------------------------------------------------------------------

/** How several Prometheus series are combined into one number (per timestamp for ranges). */
export type PrometheusReduce = "first" | "sum" | "max" | "min" | "avg";
export const PROMETHEUS_REDUCERS: readonly PrometheusReduce[] = [
  "first",
  "sum",
  "max",
  "min",
  "avg",
];

/**
 * The Prometheus source as the provider reads it: the model's (`core/model.ts`, validated by the
 * schema), with the fields the schema defaults optional here too, so that a source written by
 * hand (tests, the lab) need not carry them; `ProviderSourceSpec` below checks that the model
 * still fits. `query` is templated; `address` is not (it is validated as a URL).
 */
export interface PrometheusSourceSpec {
  /** Base URL of the Prometheus HTTP API, e.g. "http://127.0.0.1:9090" (a path prefix is kept). */
  address: string;
  query: string;
  /** Present: a range query over the analysis window at this step; absent: an instant query at `toMs`. */
  rangeQuery?: { step: DurationInput };
  /** Without it, more than one series is an error. "first" takes the first series in label order. */
  reduce?: PrometheusReduce;
  /** Default 10 s; also sent to Prometheus as its query `timeout`. */
  timeoutSeconds?: number;
}

export interface WebSourceSpec {
  /** Templated. */
  url: string;
  /** Default "GET". */
  method?: "GET" | "POST";
  /** Values are templated. With a body and no content-type, "application/json" is sent. */
  headers?: Record<string, string>;
  /** Templated. */
  body?: string;
  /** A small JSONPath subset, see `web/json-path.ts`; without it the body must be a bare number. */
  jsonPath?: string;
  /** Default 10 s. */
  timeoutSeconds?: number;
}

export interface CommandSourceSpec {
  /** argv, run without a shell; every element is templated. */
  command: string[];
  /** Default 10 s; then SIGTERM to the command's process group, SIGKILL after a grace. */
  timeoutSeconds?: number;
}

export type BuiltinMetric = "error_rate" | "latency" | "request_rate";
export const BUILTIN_METRICS: readonly BuiltinMetric[] = ["error_rate", "latency", "request_rate"];

/** Every source a provider accepts. `MetricSourceSpec` (the model) is assignable to it. */
export type ProviderSourceSpec =
  | {
      builtin:
        | BuiltinMetric
        // Compare two variants of an edge-evaluated flag within the candidate version.
        | { metric: BuiltinMetric; flag: string; candidate?: string; baseline?: string };
    }
  | { prometheus: PrometheusSourceSpec }
  | { web: WebSourceSpec }
  | { command: CommandSourceSpec };

export type ProviderKind = "builtin" | "prometheus" | "web" | "command";
export const PROVIDER_KINDS: readonly ProviderKind[] = ["builtin", "prometheus", "web", "command"];

// Compile-time: what the validated model holds can be handed to the providers as is.
type Assignable<A, B> = [A] extends [B] ? true : false;
true satisfies Assignable<MetricSourceSpec, ProviderSourceSpec>;

/**
 * Which provider a source needs. Exactly one known key must be present: an unknown or
 * misspelt key is an error (never a silent default).
 */
export function providerKind(source: unknown, path = "source"): ProviderKind {
  if (typeof source !== "object" || source === null || Array.isArray(source)) {
    throw invalid(path, `must be an object with one of ${PROVIDER_KINDS.join(", ")}`);
  }
  const keys = Object.keys(source);
  const known = keys.filter((k): k is ProviderKind => (PROVIDER_KINDS as string[]).includes(k));
  const unknown = keys.filter((k) => !(PROVIDER_KINDS as string[]).includes(k));
  if (unknown.length > 0) {
    throw invalid(
      path,
      `unknown metric source ${unknown.map((k) => JSON.stringify(k)).join(", ")}; expected one of ${PROVIDER_KINDS.join(", ")}`,
    );
  }
  if (known.length !== 1) {
    throw invalid(
      path,
      `must have exactly one of ${PROVIDER_KINDS.join(", ")}; got ${known.length > 0 ? known.join(", ") : "none"}`,
    );
  }
  return known[0]!;
}

/** A `TurnoutError` for a bad source field (the request is wrong, not the remote). */
export function invalid(path: string, message: string): TurnoutError {
  return new TurnoutError("TURNOUT_ERR_RESOURCE_INVALID", `${path}: ${message}`, { path });
}

// ---------------------------------------------------------------------------------------
// The interface
// ---------------------------------------------------------------------------------------

/** One measurement to take. Everything a provider needs; providers keep no per-analysis state. */
export interface MeasureRequest {
  /** The metric's name in its AnalysisTemplate (for messages, and ANALYSIS_METRIC for commands). */
  metric: string;
  source: ProviderSourceSpec;
  /** The template's arguments, resolved (defaults applied, values from the service filled in). */
  args: Record<string, string>;
  service: string;
  /** The version under test. */
  candidate: string;
  /** The version it is compared with; absent when there is none (e.g. a first rollout). */
  baseline?: string;
  /** The analysis window, clock ms, `fromMs < toMs`. Candidate and baseline share it. */
  fromMs: number;
  toMs: number;
  /** The injected clock's now, ms. Usually `toMs`. */
  now: number;
}

export interface MetricProvider {
  readonly kind: ProviderKind;
  /**
   * Takes one measurement. Resolves with a `FailedMeasurement` when the source fails, times out
   * or has no data, or when `signal` aborts; rejects only when the request is wrong (see the
   * module comment). Returns once everything it started has stopped (sockets, child processes).
   */
  measure(req: MeasureRequest, signal: AbortSignal): Promise<Measurement>;
}

// ---------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------

/** One version's side of a two-sided measurement (candidate vs baseline, same window). */
export interface SideMeasurement {
  version: string;
  /**
   * The side's headline number, what a relative judge compares: error rate (0..1), p99 latency,
   * requests per second.
   */
  value: number;
  /** Observations behind `value` (requests for the builtin metrics). */
  sampleSize: number;
  /**
   * For rates that are proportions: `events` out of `trials` (errors out of requests), so that a
   * sequential test on proportions can use the counts rather than the rounded rate.
   * `abandoned`: how many of the events are requests abandoned by their clients (builtin
   * `error_rate`), said in the verdict's explanation; absent when none.
   */
  proportion?: { events: number; trials: number; abandoned?: number };
  /** Latency quantiles, in the unit of the source (the router records milliseconds). */
  quantiles?: { p50: number; p90: number; p95: number; p99: number };
  /**
   * Samples for a rank test (Mann-Whitney). May be fewer than `sampleSize`: the builtin latency
   * is read from a sketch, and its samples are quantiles on an even grid (see builtin/).
   */
  values?: number[];
  /**
   * The latency histogram (a sketch's bins: value and count, increasing): a rank test on bins
   * uses every request, where `values` is only a grid of quantiles. Preferred when present.
   */
  bins?: { value: number; count: number }[];
}

/** Why a measurement has no numbers. */
export type MeasurementErrorKind =
  /** The source answered but had nothing for the window. The judge: inconclusive. */
  | "noData"
  /** The source did not answer within the source's timeout. */
  | "timeout"
  /** The caller's signal aborted the measurement; discard it. */
  | "aborted"
  /** Anything else: unreachable, non-2xx, unparsable, not a finite number, killed... */
  | "failed";

/**
 * A measurement with numbers. At least one of `value` or a non-empty `values` is present.
 * A two-sided measurement (the builtin metrics) also has `candidate` (and `baseline` when the
 * baseline had data); then `value`, `values` and `sampleSize` mirror the candidate's, so a
 * threshold judge reads any measurement the same way.
 */
export interface ValueMeasurement {
  /** The number a threshold judge compares; for a range query, the last point. */
  value?: number;
  /** Samples in order (range query points in time order; latency samples). */
  values?: number[];
  candidate?: SideMeasurement;
  baseline?: SideMeasurement;
  /** Observations behind the value, when the source says (absent: unknown, e.g. a web hook). */
  sampleSize?: number;
  /** What came back, trimmed to a bounded size (`RAW_LIMIT_CHARS` as JSON) for the verdict record. */
  raw: unknown;
  /**
   * What the data plane counted of the candidate's requests as they happened (sent, answered),
   * when the source knows: the builtin metrics over a data plane that counts starts.
   */
  traffic?: CandidateTraffic;
  error?: undefined;
  errorKind?: undefined;
}

/** A measurement that failed; `error` is one line saying what and where. */
export interface FailedMeasurement {
  error: string;
  errorKind: MeasurementErrorKind;
  /** What came back, if anything (status, body snippet, stderr tail), bounded like above. */
  raw: unknown;
  /**
   * As on a measurement with numbers: "no data" with requests sent to the candidate is a
   * candidate that answers nothing, not a quiet one.
   */
  traffic?: CandidateTraffic;
  value?: undefined;
  values?: undefined;
  candidate?: undefined;
  baseline?: undefined;
  sampleSize?: undefined;
}

/**
 * Narrow with `m.error === undefined`.
 *
 * @example
 *   const m = await provider.measure(req, signal);
 *   if (m.error !== undefined) return m.errorKind === "noData" ? inconclusive(m.error) : error(m.error);
 *   judge(m.candidate ?? { value: m.value });
 */
export type Measurement = ValueMeasurement | FailedMeasurement;

/** The bound on `raw`, in characters of its JSON. */
export const RAW_LIMIT_CHARS = 4096;

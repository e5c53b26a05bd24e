/**
 * What a judge reads: one measurement of one metric over the analysis window so far.
 *
 * These types are the core's own (core depends on nothing outside it) but are kept
 * structurally compatible with the metric providers' `Measurement`
 * (src/metrics/providers/provider.ts): every `Measurement` is an `Observation`, so the engine
 * hands a provider's answer to `judge` as is. The one addition is `bins` on a side: a latency
 * histogram (a sketch's bins, each a value with a count) that the Mann-Whitney judge tests
 * exactly, with the router's full request count, instead of a grid of quantiles.
 */

/** One histogram bin: a representative value and the number of observations in it. */
export interface ObservedBin {
  value: number;
  count: number;
}

/** One version's side of a two-sided observation (candidate vs baseline, same window). */
export interface ObservedSide {
  version?: string;
  /** The side's headline number: an error rate (0..1), a p99 latency, requests per second. */
  value: number;
  /** Observations behind `value` (requests); absent when the source does not say. */
  sampleSize?: number;
  /**
   * Events out of trials (errors out of requests): what the sequential judge tests.
   * `abandoned`: how many of the events were requests their clients gave up on (explained).
   */
  proportion?: { events: number; trials: number; abandoned?: number };
  quantiles?: { p50: number; p90: number; p95: number; p99: number };
  /** Samples for a rank test; may be fewer than `sampleSize` (a grid of quantiles). */
  values?: readonly number[];
  /** Histogram bins for a rank test; preferred over `values` when both are present. */
  bins?: readonly ObservedBin[];
}

/**
 * What the data plane knows of the requests it sent to the candidate in the window, beyond the
 * requests that ended: the builtin router counts a request when it picks the version for it
 * (`started`), and a response when its head comes (`responded`), so a candidate that takes
 * requests and answers none shows as "started 37, answered 0" long before any of them ends.
 * Present only when the source knows (the builtin metrics over a data plane that counts starts:
 * the built-in router, not HAProxy yet); absent, analysis falls back to the ended requests.
 * See `./no-response.ts`.
 */
export interface CandidateTraffic {
  /** The series measured: the candidate version ("v2"; "v2 flag=on" for the flag form). */
  version: string;
  /** Requests the data plane sent to the candidate in the window. */
  started: number;
  /** Responses whose head the candidate sent in the window (a stream counts once its head came). */
  responded: number;
  /**
   * Requests that ended in the window: answered, failed, timed out by the data plane (504) or
   * abandoned by their clients (the metric's usual request count).
   */
  ended: number;
  /**
   * Clock ms at which the first second of the window with a request sent to the candidate
   * began; null when none was sent.
   */
  firstStartedAt: number | null;
}

/** An observation with numbers: at least `value` or `values`, or a `candidate` side. */
export interface ObservedValues {
  value?: number;
  values?: readonly number[];
  candidate?: ObservedSide;
  baseline?: ObservedSide;
  sampleSize?: number;
  /** What the source answered (bounded); kept by the engine, not read by the judges. */
  raw?: unknown;
  /** The candidate's requests as the data plane counted them, when the source knows. */
  traffic?: CandidateTraffic;
  error?: undefined;
  errorKind?: undefined;
}

/**
 * Why an observation has no numbers: "noData" (the source had nothing for the window: the judge
 * says inconclusive), "timeout", "aborted" (the engine should discard it rather than judge it),
 * "failed" (unreachable, unparsable...): the judge says error.
 */
export type ObservationErrorKind = "noData" | "timeout" | "aborted" | "failed";

export interface FailedObservation {
  /** One line saying what failed and where. */
  error: string;
  errorKind: ObservationErrorKind;
  raw?: unknown;
  /**
   * The candidate's requests as the data plane counted them, when the source knows: "no data"
   * with requests sent to the candidate is a candidate that answers nothing, not a quiet one.
   */
  traffic?: CandidateTraffic;
  value?: undefined;
  values?: undefined;
  candidate?: undefined;
  baseline?: undefined;
  sampleSize?: undefined;
}

/** Narrow with `obs.error === undefined`. */
export type Observation = ObservedValues | FailedObservation;

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

/** An observation with numbers: at least `value` or `values`, or a `candidate` side. */
export interface ObservedValues {
  value?: number;
  values?: readonly number[];
  candidate?: ObservedSide;
  baseline?: ObservedSide;
  sampleSize?: number;
  /** What the source answered (bounded); kept by the engine, not read by the judges. */
  raw?: unknown;
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
  value?: undefined;
  values?: undefined;
  candidate?: undefined;
  baseline?: undefined;
  sampleSize?: undefined;
}

/** Narrow with `obs.error === undefined`. */
export type Observation = ObservedValues | FailedObservation;

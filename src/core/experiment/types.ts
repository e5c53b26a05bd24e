/**
 * A/B experiments: what users declare (the `experiment` step body and the `abTest` strategy
 * preset), what the controller keeps in the status and the router receives in its route
 * table, and the aggregated data the analysis reads. Pure types.
 */
import type { DurationInput } from "../model.js";

/** Where the unit (user) id of a request comes from: exactly one of the three. */
export type AssignmentKeySpec = { header: string } | { cookie: string } | { query: string };

/** One arm: a name people read ("A", "B", "control") and the version that serves it. */
export interface ArmSpec {
  name: string;
  /**
   * "stable" (the version serving now; the first such arm is the control), "canary" (the
   * candidate), or another version by name: a further arm, run beside them while the
   * experiment lasts.
   */
  version: string;
  /** Relative allocation weight (percent of the experiment's units). */
  weight: number;
}

/**
 * Where a metric's per-unit value comes from:
 * - `event`: outcome events the application posts (`POST /api/v1/events`) with this metric name;
 * - `responseHeader`: a number the service returns in this response header (e.g. a model's
 *   confidence), recorded by the router for each exposed unit's responses;
 * - `builtin`: the router's own per-version measurements (error rate, latency) over the
 *   experiment's window; their unit is the request, not the user.
 */
export type MetricSource =
  | { event: string }
  | { responseHeader: string }
  | { builtin: "error_rate" | "latency" };

export interface MetricSpec {
  name: string;
  /**
   * binomial: share of units with at least one event (conversion); mean: per-unit sum of the
   * values (units without events count 0); ratio: Σ numerator / Σ denominator over units
   * (delta method).
   */
  kind: "binomial" | "mean" | "ratio";
  /** goal: decides the experiment; guardrail: must not get worse. */
  role: "goal" | "guardrail";
  source: MetricSource;
  /** For ratio metrics: the denominator's source (an event or a response header). */
  denominator?: MetricSource;
  /**
   * CUPED (mean metrics): a pre-period covariate, the unit's sum of this event's values from
   * before its first exposure. It explains part of the metric's variance, so intervals shrink.
   */
  covariate?: { event: string };
  /** Which way is better; default "increase" ("decrease" for builtin error rate and latency). */
  better?: "increase" | "decrease";
}

export interface ExperimentSpec {
  /** Unique name; default `<service>-<candidate version>`. */
  name?: string;
  /** Default: A = stable with 100 − split, B = canary with split. */
  arms?: ArmSpec[];
  /** Percent of units in B when `arms` is absent; default 50. */
  split: number;
  /** The unit id: a header, a cookie (issued when absent) or a query parameter. */
  assignment: AssignmentKeySpec & { salt?: string };
  /**
   * QA override: a request with this header or query parameter naming an arm is served by that
   * arm and is NOT logged as an exposure (forced units would bias the results).
   */
  force?: { header?: string; query?: string };
  metrics: MetricSpec[];
  /** sequential (default; always-valid, look as often as you like), fixedHorizon, bayesian. */
  method: "sequential" | "fixedHorizon" | "bayesian";
  /** Type I error (sequential, fixedHorizon); default 0.05. */
  alpha: number;
  /**
   * Units per arm before any decision. For fixedHorizon it is the planned sample size (the one
   * look); for the other methods a floor that keeps the normal approximations honest.
   */
  minSamples: number;
  /** Longest the experiment runs; inconclusive by then keeps A (rolls back) and says so. */
  maxDuration: DurationInput;
  /** auto: promote on a win; manual: wait for `turnout promote`. Losses always roll back. */
  decision: "auto" | "manual";
  /** Across several goal metrics; default holm. */
  correction: "holm" | "bh";
  /** N* of the asymptotic confidence sequence (GrowthBook's sequentialTuningParameter). */
  sequentialTuning: number;
  /** bayesian: chance to win needed to ship B (and 1 − this to call B worse); default 0.95. */
  chanceToWin: number;
}

/**
 * `strategy.abTest`: the A/B test preset. The same fields as the `experiment` step (to which it
 * compiles) plus the rollout-wide setting of other strategies.
 */
export interface AbTestStrategySpec extends ExperimentSpec {
  /** After a loss, the candidate keeps running this long without traffic (default 30). */
  abortScaleDownDelaySeconds?: number;
}

/** What the `experiment` step keeps in the service status while it runs. */
export interface ExperimentStatus {
  name: string;
  /** The rollout and step it belongs to: a restarted rollout starts a new experiment. */
  rollout: number;
  stepIndex: number;
  startedAt: number;
  arms: { name: string; version: string; weight: number }[];
  key: AssignmentKeySpec;
  salt: string;
  force?: { header?: string; query?: string };
  /** The last analysis, short (for `status`); the API computes the full one. */
  summary?: string;
  /** Set once decided: "win" (waiting for a manual promote) or blocked by SRM. */
  verdict?: "win" | "lose" | "inconclusive" | "running" | "srm";
}

/** What the router needs to assign units and log exposures (part of the route table). */
export interface RouteExperiment {
  name: string;
  /** Arms in order: their buckets are consecutive ranges of weight × 10,000. */
  arms: { name: string; version: string; weight: number }[];
  key: AssignmentKeySpec;
  salt: string;
  force?: { header?: string; query?: string };
  /** Response headers whose numeric value the router records as events for exposed units. */
  responseHeaders?: string[];
}

// ---------------------------------------------------------------------------------------
// Aggregated data the analysis reads (from the experiment store), per arm.

/** Per-unit sums over one arm: n units, Σv, Σv², and units with at least one event. */
export interface MeanSums {
  n: number;
  sum: number;
  sumSquares: number;
  /** Units with ≥ 1 event (binomial metrics). */
  converted: number;
}

/** Per-unit sums of a numerator x and a denominator y over one arm. */
export interface RatioSums {
  n: number;
  sumX: number;
  sumX2: number;
  sumY: number;
  sumY2: number;
  sumXY: number;
}

/** Pre-period covariate sums of one arm (CUPED): Σx, Σx², Σx·y over the same units. */
export interface CovariateSums {
  sumX: number;
  sumX2: number;
  sumXY: number;
}

/** One arm's numbers for one metric; `kind` says which shape. */
export type MetricArmData =
  | ({ kind: "sums"; covariate?: CovariateSums } & MeanSums)
  | ({ kind: "ratio" } & RatioSums)
  /** Router measurements: requests and 5xx, or latency count / mean / variance in ms. */
  | { kind: "requests"; requests: number; errors: number; mean: number; variance: number };

export interface ExperimentData {
  /** The experiment's name (data for another experiment is ignored). */
  experiment: string;
  /** Exposed units per arm name. */
  units: Record<string, number>;
  /** Per metric name, per arm name. */
  metrics: Record<string, Record<string, MetricArmData>>;
  /** Clock ms the data was read at. */
  readAt: number;
}

/**
 * The analysis run: a pure state machine over the metrics of one or more AnalysisTemplates,
 * with Argo Rollouts' semantics (counts, limits, dry run) and the numbers of every verdict kept
 * for `turnout status` and `turnout history`. No I/O, no clock: `now` is passed in.
 *
 * The controller drives it:
 *
 *   let run = startRun(templates, args, now, { kind: "inline" });
 *   // every wake-up (at nextDueAt(run) at the latest):
 *   for (const due of dueMeasurements(run, now)) {
 *     const m = await provider.measure({ ...due, args: run.args, ... });  // not here: I/O
 *     run = observe(run, due.metric, m, now);                              // judge + record
 *   }
 *   if (run.phase !== "Running") ... // Successful, Failed, Inconclusive or Error
 *
 * Semantics, per metric (Argo's unless marked "Turnout"):
 * - Measurements are due every `interval`, up to `count`. Inline runs (an analysis step)
 *   default to one measurement; background runs (alongside the whole rollout) default to an
 *   interval of 30 s and no count (they measure until terminated).
 * - Turnout: the window of every measurement opens at the run's start (or the step's start,
 *   `windowStartMs`) and closes at now, so candidate and baseline share it and it grows. A
 *   measurement at the start would see an empty window, so the first one is due one interval
 *   after the start (30 s without an interval), and the next ones on that grid. Missed grid
 *   points are skipped, not made up: a later measurement covers them.
 * - A measurement that errors does not count towards `count` (Argo) and is retried after the
 *   interval, or 10 s without one.
 * - Counters: successful, failed, inconclusive, error, consecutiveErrors (reset by any verdict
 *   that is not an error). The metric is Failed when failed > failureLimit (default 0),
 *   Inconclusive when inconclusive > inconclusiveLimit (default 0), Error when
 *   consecutiveErrors > consecutiveErrorLimit (default 4), checked after every measurement.
 * - Turnout: a *provisional* inconclusive verdict (the sequential judge's "not enough evidence
 *   yet", and any judge's "no data yet" or "too few requests yet", since every measurement's
 *   window opens at the run's start and only grows) before the metric's last measurement does
 *   not count
 *   towards inconclusiveLimit. That judge is built to be looked at again and again on a growing
 *   window; counting its early "not yet" would end every run at the first look. It is recorded
 *   (counters.provisional) and shown. At the last measurement it counts like any other.
 * - Turnout: before its judge, every observation that says what the data plane sent to the
 *   candidate (`Observation.traffic`, the builtin metrics) goes through the no-response rule
 *   (`./no-response.ts`): nothing sent is inconclusive ("noTraffic", provisional like "no data");
 *   requests sent and none answered fail once the first has waited out the metric's
 *   `noResponseTimeout` (default: the service's upstream timeout), and until then are an
 *   inconclusive ("noResponse") that, like an error, does not count towards `count`: the metric
 *   looks again by the bound at the latest, so it ends in an answer or a failure.
 * - Turnout: a metric that reaches its count without a single passing measurement (e.g. all
 *   inconclusive within a generous limit) is Inconclusive, not Successful (Argo would say
 *   Successful): too little data is never a pass. Likewise a metric stopped (run terminated,
 *   or ended by another metric) is Successful only if at least one measurement passed.
 * - dryRun metrics are measured, judged, counted and shown like the others but never change the
 *   run's phase; the summary says what they would have done.
 *
 * The run: Error at once if its configuration cannot run (missing argument, duplicate metric,
 * an inline metric with an interval but no count). Otherwise Running until a non-dryRun metric
 * is Failed, Error or Inconclusive (the run ends at once with the worst of those: Failed, then
 * Error, then Inconclusive) or every metric has finished (Successful).
 */
import { durationMs, formatDuration } from "../duration.js";
import type { AnalysisMetricSpec, AnalysisTemplateSpec, MetricSourceSpec } from "../model.js";
import { plural } from "../plural.js";
import {
  JUDGES,
  type JudgeContext,
  type JudgeKind,
  type JudgeMemory,
  judge,
  judgeKind,
  type Verdict,
} from "./judges.js";
import { DEFAULT_NO_RESPONSE_MS, noResponseDeadline, noResponseVerdict } from "./no-response.js";
import type { Observation } from "./observation.js";

export type RunPhase = "Running" | "Successful" | "Failed" | "Inconclusive" | "Error";
export type MetricPhase = "Pending" | RunPhase;
/** inline: an analysis step that the rollout waits for; background: runs alongside it. */
export type RunKind = "inline" | "background";

export const DEFAULT_INTERVAL_MS = 30_000;
/**
 * The default look interval of a background metric of the router's own measurements judged by
 * the sequential judge. Its always-valid p-value may be looked at as often as one likes without
 * raising the false-rollback rate, and a builtin measurement is a read of the router's counters,
 * so looking often costs little and only shortens the time a bad candidate serves users: with
 * 30 s, a candidate answering 20% errors served for 32 s before the rollback (#18 item 8).
 */
export const DEFAULT_SEQUENTIAL_BUILTIN_INTERVAL_MS = 2_000;
export const ERROR_RETRY_MS = 10_000;

/** The interval of a metric that sets none. */
export function defaultIntervalMs(m: AnalysisMetricSpec, kind: RunKind): number {
  const builtin = "builtin" in m.source;
  return kind === "background" && builtin && judgeKind(m.judge) === "sequential"
    ? DEFAULT_SEQUENTIAL_BUILTIN_INTERVAL_MS
    : DEFAULT_INTERVAL_MS;
}
export const DEFAULT_FAILURE_LIMIT = 0;
export const DEFAULT_INCONCLUSIVE_LIMIT = 0;
export const DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4;
/**
 * Verdicts kept per metric; counters cover all of them, and every counted verdict that is not
 * a pass is also an AnalysisVerdict event in the history. Few, because the run lives in the
 * status, which `reconcile` deep-copies on every tick and the controller stores whenever it
 * changes (a verdict is about 1 kB): with 20, the bench's rollout had a 44 kB status; with 5,
 * 12.6 kB.
 */
export const DEFAULT_HISTORY_LIMIT = 5;
/**
 * minSamples when the metric does not set it: a known sample size of 0 is never judged; the
 * statistical judges want enough requests for their normal approximations.
 */
export const DEFAULT_MIN_SAMPLES = Object.fromEntries(
  Object.values(JUDGES).map((j) => [j.key, j.defaultMinSamples]),
) as { readonly [K in JudgeKind]: number };

export interface RunTemplate {
  name: string;
  spec: AnalysisTemplateSpec;
}

export interface StartRunOptions {
  /** Default "inline". */
  kind?: RunKind;
  /** Where every measurement's window opens; default `now` (the run's start). */
  windowStartMs?: number;
  /** Verdicts kept per metric; default DEFAULT_HISTORY_LIMIT (5). */
  historyLimit?: number;
  /**
   * The no-response bound of metrics that set no `noResponseTimeout` (ms): the rollout passes
   * the service's upstream timeout; default DEFAULT_NO_RESPONSE_MS.
   */
  noResponseMs?: number;
}

export interface MetricCounters {
  /** Measurements that count towards `count`: every verdict except "error". */
  measurements: number;
  successful: number;
  failed: number;
  /** Inconclusive verdicts that count towards inconclusiveLimit. */
  inconclusive: number;
  /** Provisional inconclusive verdicts that did not count (see the module comment). */
  provisional: number;
  error: number;
  consecutiveErrors: number;
}

export interface RecordedVerdict {
  /** Clock ms when it was recorded. */
  at: number;
  /** The window measured. */
  fromMs: number;
  toMs: number;
  /** The measurement's number towards `count` (1-based); errors carry the number they retry. */
  measurement: number;
  /** It was the metric's last measurement. */
  final: boolean;
  /** It counted towards the limits (false for a provisional inconclusive before the last). */
  counted: boolean;
  verdict: Verdict;
}

export interface MetricRun {
  name: string;
  template: string;
  source: MetricSourceSpec;
  spec: AnalysisMetricSpec;
  /** Effective settings, defaults applied. */
  intervalMs: number;
  /** The spec set an interval (errors are then retried at it rather than after 10 s). */
  intervalSet: boolean;
  /** null: no bound (a background metric without a count). */
  count: number | null;
  minSamples: number;
  failureLimit: number;
  inconclusiveLimit: number;
  consecutiveErrorLimit: number;
  /**
   * Requests sent to the candidate with none answered for this long fail (ms, see
   * `./no-response.ts`). Absent in runs stored before it existed: DEFAULT_NO_RESPONSE_MS.
   */
  noResponseMs?: number;
  dryRun: boolean;
  phase: MetricPhase;
  /** One line: the metric's state and, once finished, why. */
  message: string;
  counters: MetricCounters;
  /** Clock ms when the next measurement is due; null once the metric has finished. */
  nextDueAt: number | null;
  lastMeasuredAt: number | null;
  /** The judge's memory from the last verdict that had one (the sequential judge's). */
  memory?: JudgeMemory;
  /** The last `historyLimit` verdicts, oldest first. */
  verdicts: RecordedVerdict[];
}

export interface RunState {
  v: 1;
  kind: RunKind;
  phase: RunPhase;
  /** One line naming the deciding metric and its explanation. */
  message: string;
  startedAt: number;
  windowStartMs: number;
  finishedAt: number | null;
  /** Set by terminateRun. */
  terminated?: { at: number; reason: string };
  /** Resolved template arguments, for the metric providers. */
  args: Record<string, string>;
  templates: string[];
  historyLimit: number;
  metrics: MetricRun[];
}

/** A measurement to take now: the metric, its source and the window. */
export interface DueMeasurement {
  metric: string;
  template: string;
  source: MetricSourceSpec;
  fromMs: number;
  toMs: number;
  /** It will be the metric's last measurement (if it does not error). */
  final: boolean;
}

export interface MetricSummary {
  name: string;
  template: string;
  phase: MetricPhase;
  dryRun: boolean;
  message: string;
  counters: MetricCounters;
  count: number | null;
  limits: { failure: number; inconclusive: number; consecutiveError: number };
  nextDueAt: number | null;
  /** The latest verdict, if any. */
  last?: RecordedVerdict;
}

export interface RunSummary {
  phase: RunPhase;
  message: string;
  metrics: MetricSummary[];
}

// ---------------------------------------------------------------------------------------
// Start

/**
 * A new run over the metrics of `templates`, with `args` from the service. Never throws for a
 * configuration that cannot run: the run starts in phase Error with a message saying why.
 */
export function startRun(
  templates: readonly RunTemplate[],
  args: Readonly<Record<string, string>> | readonly { name: string; value: string }[],
  now: number,
  options: StartRunOptions = {},
): RunState {
  const kind = options.kind ?? "inline";
  const state: RunState = {
    v: 1,
    kind,
    phase: "Running",
    message: "waiting for the first measurements",
    startedAt: now,
    windowStartMs: options.windowStartMs ?? now,
    finishedAt: null,
    args: {},
    templates: templates.map((t) => t.name),
    historyLimit: Math.max(1, options.historyLimit ?? DEFAULT_HISTORY_LIMIT),
    metrics: [],
  };
  const fail = (message: string): RunState => ({
    ...state,
    phase: "Error",
    message,
    finishedAt: now,
  });
  // 1. Arguments: the service's value, else the template's default; unknown ones are errors.
  const given = argsRecord(args);
  if ("error" in given) return fail(given.error);
  const resolved = resolveArgs(templates, given.args);
  if ("error" in resolved) return fail(resolved.error);
  state.args = resolved.args;
  if (templates.length === 0) return fail("no analysis templates to run");
  // 2. Metrics, with defaults, in template order; names must be unique across templates.
  const seen = new Map<string, string>();
  for (const t of templates) {
    for (const m of t.spec.metrics) {
      const other = seen.get(m.name);
      if (other !== undefined) {
        return fail(
          `metric "${m.name}" appears in templates "${other}" and "${t.name}"; names must be unique within a run`,
        );
      }
      seen.set(m.name, t.name);
      const metric = newMetric(
        t.name,
        m,
        kind,
        state.startedAt,
        options.noResponseMs ?? DEFAULT_NO_RESPONSE_MS,
      );
      if ("error" in metric) return fail(`template "${t.name}": ${metric.error}`);
      state.metrics.push(metric);
    }
  }
  if (state.metrics.length === 0) return fail("the templates list no metrics");
  return state;
}

function argsRecord(
  args: Readonly<Record<string, string>> | readonly { name: string; value: string }[],
): { args: Record<string, string> } | { error: string } {
  if (!Array.isArray(args)) return { args: { ...(args as Record<string, string>) } };
  const out: Record<string, string> = {};
  for (const a of args as readonly { name: string; value: string }[]) {
    if (Object.hasOwn(out, a.name)) return { error: `argument "${a.name}" is passed twice` };
    out[a.name] = a.value;
  }
  return { args: out };
}

function resolveArgs(
  templates: readonly RunTemplate[],
  given: Readonly<Record<string, string>>,
): { args: Record<string, string> } | { error: string } {
  const args: Record<string, string> = {};
  const declaredBy = new Map<string, string>();
  for (const t of templates) {
    for (const a of t.spec.args ?? []) {
      if (!declaredBy.has(a.name)) declaredBy.set(a.name, t.name);
      const value = Object.hasOwn(given, a.name) ? given[a.name] : a.value;
      if (value === undefined) {
        return {
          error: `template "${t.name}": argument "${a.name}" has no value (the service passes none and the template has no default)`,
        };
      }
      const before = args[a.name];
      if (before !== undefined && before !== value) {
        return {
          error: `argument "${a.name}" has different defaults in templates "${declaredBy.get(a.name)}" ("${before}") and "${t.name}" ("${value}"); pass a value`,
        };
      }
      args[a.name] = value;
    }
  }
  for (const name of Object.keys(given)) {
    if (!declaredBy.has(name)) {
      const known = [...declaredBy.keys()];
      return {
        error: `argument "${name}" is not declared by any template (declared: ${known.length > 0 ? known.join(", ") : "none"})`,
      };
    }
  }
  return { args };
}

function newMetric(
  template: string,
  m: AnalysisMetricSpec,
  kind: RunKind,
  startedAt: number,
  defaultNoResponseMs: number,
): MetricRun | { error: string } {
  let intervalMs = defaultIntervalMs(m, kind);
  if (m.interval !== undefined) {
    try {
      intervalMs = durationMs(m.interval);
    } catch (e) {
      return { error: `metric "${m.name}": interval ${(e as Error).message}` };
    }
    if (!(intervalMs > 0)) {
      return {
        error: `metric "${m.name}": interval must be > 0, got ${JSON.stringify(m.interval)}`,
      };
    }
  }
  let noResponseMs = defaultNoResponseMs;
  if (m.noResponseTimeout !== undefined) {
    try {
      noResponseMs = durationMs(m.noResponseTimeout);
    } catch (e) {
      return { error: `metric "${m.name}": noResponseTimeout ${(e as Error).message}` };
    }
    if (!(noResponseMs > 0)) {
      return {
        error: `metric "${m.name}": noResponseTimeout must be > 0, got ${JSON.stringify(m.noResponseTimeout)}`,
      };
    }
  }
  let count: number | null;
  if (kind === "inline") {
    // Argo: one measurement without an interval; several need one. Turnout: an inline metric
    // with an interval but no count would never finish, so it is an error rather than a hang.
    if (m.interval === undefined && (m.count ?? 1) > 1) {
      return {
        error: `metric "${m.name}": count ${m.count} needs an interval between measurements`,
      };
    }
    if (m.interval !== undefined && m.count === undefined) {
      return {
        error: `metric "${m.name}": an inline analysis with interval ${formatDuration(intervalMs)} needs a count (without one it would never finish)`,
      };
    }
    count = m.count ?? 1;
  } else {
    count = m.count ?? null;
  }
  return {
    name: m.name,
    template,
    source: m.source,
    spec: m,
    intervalMs,
    intervalSet: m.interval !== undefined,
    count,
    minSamples: m.minSamples ?? DEFAULT_MIN_SAMPLES[judgeKind(m.judge)],
    failureLimit: m.failureLimit ?? DEFAULT_FAILURE_LIMIT,
    inconclusiveLimit: m.inconclusiveLimit ?? DEFAULT_INCONCLUSIVE_LIMIT,
    consecutiveErrorLimit: m.consecutiveErrorLimit ?? DEFAULT_CONSECUTIVE_ERROR_LIMIT,
    noResponseMs,
    dryRun: m.dryRun ?? false,
    phase: "Pending",
    message: `first measurement due in ${formatDuration(intervalMs)}`,
    counters: {
      measurements: 0,
      successful: 0,
      failed: 0,
      inconclusive: 0,
      provisional: 0,
      error: 0,
      consecutiveErrors: 0,
    },
    nextDueAt: startedAt + intervalMs,
    lastMeasuredAt: null,
    verdicts: [],
  };
}

// ---------------------------------------------------------------------------------------
// Scheduling

/**
 * The measurements due at `now`, each over the run's window [windowStartMs, now]. Pure: taking
 * them is the caller's business, and until it records a verdict they stay due.
 */
export function dueMeasurements(state: RunState, now: number): DueMeasurement[] {
  if (state.phase !== "Running") return [];
  const out: DueMeasurement[] = [];
  for (const m of state.metrics) {
    if (!isActive(m) || m.nextDueAt === null || m.nextDueAt > now) continue;
    out.push({
      metric: m.name,
      template: m.template,
      source: m.source,
      fromMs: state.windowStartMs,
      toMs: Math.max(now, state.windowStartMs),
      final: isFinal(m),
    });
  }
  return out;
}

/** The earliest clock ms at which a measurement is due; null when the run has finished. */
export function nextDueAt(state: RunState): number | null {
  if (state.phase !== "Running") return null;
  let next: number | null = null;
  for (const m of state.metrics) {
    if (isActive(m) && m.nextDueAt !== null && (next === null || m.nextDueAt < next)) {
      next = m.nextDueAt;
    }
  }
  return next;
}

/** What `judge` needs for the next measurement of `metric`. */
export function judgeContext(state: RunState, metric: string): JudgeContext {
  const m = findMetric(state, metric);
  return {
    metric: m.name,
    minSamples: m.minSamples,
    final: isFinal(m),
    plannedLooks: m.count,
    ...(m.memory ? { previous: m.memory } : {}),
    // The router's latency is in milliseconds; explanations say so.
    ...("builtin" in m.source && m.source.builtin === "latency" ? { unit: "ms" } : {}),
  };
}

// ---------------------------------------------------------------------------------------
// Recording

/**
 * Judges `obs` for `metric` (with the metric's memory) and records the verdict: the
 * no-response rule first when the observation says what the data plane sent, else (and when
 * the rule has no opinion) the metric's judge.
 */
export function observe(
  state: RunState,
  metric: string,
  obs: Observation,
  now: number,
  window?: { fromMs: number; toMs: number },
): RunState {
  const m = findMetric(state, metric);
  const measured = window ?? {
    fromMs: state.windowStartMs,
    toMs: Math.max(now, state.windowStartMs),
  };
  const v =
    noResponseVerdict(m.spec.judge, obs.traffic, {
      metric: m.name,
      minSamples: m.minSamples,
      noResponseMs: m.noResponseMs ?? DEFAULT_NO_RESPONSE_MS,
      window: measured,
    }) ?? judge(m.spec.judge, obs, judgeContext(state, metric));
  return recordVerdict(state, metric, v, now, window);
}

/**
 * Records a verdict for `metric` taken at `now` and moves the state machine. A verdict for a
 * metric or run that has already finished (it was in flight when the run ended) is ignored.
 * Throws only for a metric the run does not have (a programming error).
 */
export function recordVerdict(
  state: RunState,
  metric: string,
  verdict: Verdict,
  now: number,
  window?: { fromMs: number; toMs: number },
): RunState {
  const index = state.metrics.findIndex((x) => x.name === metric);
  if (index < 0) throw new Error(`analysis run has no metric "${metric}"`);
  const before = state.metrics[index]!;
  if (state.phase !== "Running" || !isActive(before)) return state;
  const m: MetricRun = { ...before, counters: { ...before.counters } };
  const c = m.counters;

  // 1. Count it. Errors, and "requests sent, none answered yet", do not count towards `count`
  //    (they are looked at again); provisional inconclusives before the last measurement do
  //    not count towards inconclusiveLimit.
  const isError = verdict.outcome === "error";
  const awaitingAnswer = verdict.outcome === "inconclusive" && verdict.reason === "noResponse";
  const measurement = c.measurements + 1;
  const final = !isError && !awaitingAnswer && m.count !== null && measurement >= m.count;
  let counted = true;
  if (!isError && !awaitingAnswer) c.measurements = measurement;
  switch (verdict.outcome) {
    case "pass":
      c.successful++;
      break;
    case "fail":
      c.failed++;
      break;
    case "inconclusive":
      // The window grows from the run's start, so "no data yet", "no traffic yet" and "too
      // few requests yet" can only get better by waiting: they count only at the last
      // measurement. "None answered yet" ends by itself: in an answer or a failure.
      if (
        awaitingAnswer ||
        ((verdict.provisional ||
          verdict.reason === "noData" ||
          verdict.reason === "noTraffic" ||
          verdict.reason === "tooFewSamples") &&
          !final)
      ) {
        c.provisional++;
        counted = false;
      } else {
        c.inconclusive++;
      }
      break;
    case "error":
      c.error++;
      break;
  }
  c.consecutiveErrors = isError ? c.consecutiveErrors + 1 : 0;
  if (verdict.memory) m.memory = verdict.memory;
  m.lastMeasuredAt = now;
  const recorded: RecordedVerdict = {
    at: now,
    fromMs: window?.fromMs ?? state.windowStartMs,
    toMs: window?.toMs ?? Math.max(now, state.windowStartMs),
    measurement,
    final,
    counted,
    verdict,
  };
  m.verdicts = [...before.verdicts, recorded].slice(-state.historyLimit);

  // 2. Assess the metric against its limits and count.
  const assessed = assessMetric(m);
  m.phase = assessed.phase;
  m.message = assessed.message;

  // 3. Schedule the next measurement: the next grid point after now, a retry after an error,
  //    and no later than the moment an unanswered candidate would fail.
  if (m.phase === "Running") {
    m.nextDueAt = isError
      ? now + (m.intervalSet ? m.intervalMs : Math.min(m.intervalMs, ERROR_RETRY_MS))
      : nextGridPoint(state.startedAt, m.intervalMs, now);
    const t = verdict.inputs.traffic;
    if (awaitingAnswer && t?.firstStartedAt != null) {
      // A reading that came in late (its window ended before the deadline) looks again soon.
      const failAt = Math.max(noResponseDeadline(t.firstStartedAt, t.noResponseMs), now + 1000);
      if (failAt < m.nextDueAt) m.nextDueAt = failAt;
    }
  } else {
    m.nextDueAt = null;
  }

  // 4. Assess the run.
  const metrics = state.metrics.slice();
  metrics[index] = m;
  return assessRun({ ...state, metrics }, now);
}

/**
 * Ends a running run (the rollout finished, was aborted, or moved on). Metrics still measuring
 * are Successful if at least one of their measurements passed, else Inconclusive; the run's
 * phase follows from them as usual.
 */
export function terminateRun(state: RunState, now: number, reason: string): RunState {
  if (state.phase !== "Running") return state;
  const metrics = state.metrics.map((m) => (isActive(m) ? stopMetric(m, `stopped: ${reason}`) : m));
  const done = assessRun({ ...state, metrics, terminated: { at: now, reason } }, now);
  return done.phase === "Running" ? finish(done, "Successful", now) : done;
}

// ---------------------------------------------------------------------------------------
// Assessment

function assessMetric(m: MetricRun): { phase: MetricPhase; message: string } {
  const c = m.counters;
  const last = m.verdicts[m.verdicts.length - 1]?.verdict.explanation ?? "";
  if (c.failed > m.failureLimit) {
    return {
      phase: "Failed",
      message: `${c.failed} failed > failureLimit ${m.failureLimit}: ${lastOf(m, "fail") ?? last}`,
    };
  }
  if (c.inconclusive > m.inconclusiveLimit) {
    return {
      phase: "Inconclusive",
      message: `${c.inconclusive} inconclusive > inconclusiveLimit ${m.inconclusiveLimit}: ${lastOf(m, "inconclusive") ?? last}`,
    };
  }
  if (c.consecutiveErrors > m.consecutiveErrorLimit) {
    return {
      phase: "Error",
      message: `${plural(c.consecutiveErrors, "error")} in a row > consecutiveErrorLimit ${m.consecutiveErrorLimit}: ${lastOf(m, "error") ?? last}`,
    };
  }
  if (m.count !== null && c.measurements >= m.count) {
    return c.successful > 0
      ? {
          phase: "Successful",
          message: `passed ${c.successful} of ${plural(c.measurements, "measurement")}: ${lastOf(m, "pass") ?? last}`,
        }
      : {
          phase: "Inconclusive",
          message: `no measurement passed in ${c.measurements}: ${last}`,
        };
  }
  const of = m.count !== null ? ` of ${m.count}` : "";
  return { phase: "Running", message: `measurement ${c.measurements}${of}: ${last}` };
}

function stopMetric(m: MetricRun, why: string): MetricRun {
  const c = m.counters;
  const last = m.verdicts[m.verdicts.length - 1]?.verdict.explanation;
  const tail = last ? `; last: ${last}` : "";
  return c.successful > 0
    ? {
        ...m,
        phase: "Successful",
        nextDueAt: null,
        message: `${why}; passed ${c.successful} of ${plural(c.measurements, "measurement")}${tail}`,
      }
    : {
        ...m,
        phase: "Inconclusive",
        nextDueAt: null,
        message: `${why} before any measurement passed${tail}`,
      };
}

const BADNESS: Record<MetricPhase, number> = {
  Pending: 0,
  Running: 0,
  Successful: 1,
  Inconclusive: 2,
  Error: 3,
  Failed: 4,
};

/**
 * 1. A non-dryRun metric that is Failed, Error or Inconclusive ends the run with the worst such
 *    phase; metrics still measuring are stopped.
 * 2. Otherwise the run ends Successful once every metric (dry run included) has finished.
 * 3. Otherwise it is Running.
 */
function assessRun(state: RunState, now: number): RunState {
  const decisive = state.metrics.filter((m) => !m.dryRun);
  // 1. The worst finished non-dryRun metric, if it is bad.
  let worst: MetricRun | undefined;
  for (const m of decisive) {
    if (BADNESS[m.phase] >= 2 && (!worst || BADNESS[m.phase] > BADNESS[worst.phase])) worst = m;
  }
  if (worst) {
    const reason = `run ended: ${worst.name} ${worst.phase}`;
    const metrics = state.metrics.map((m) => (isActive(m) ? stopMetric(m, reason) : m));
    // Only the metric that decided: this message becomes the rollback's, and dry-run metrics
    // (which cannot decide) made it long and misleading there; they stay in each metric's own
    // state (`turnout get analysisrun`).
    const message = `${worst.name} ${worst.phase.toLowerCase()}: ${worst.message}`;
    return finish({ ...state, metrics }, worst.phase as RunPhase, now, message);
  }
  // 2. Everything finished.
  if (state.metrics.every((m) => !isActive(m))) return finish(state, "Successful", now);
  // 3. Still measuring: name the latest verdict.
  let latest: { m: MetricRun; v: RecordedVerdict } | undefined;
  for (const m of state.metrics) {
    const v = m.verdicts[m.verdicts.length - 1];
    if (v && (!latest || v.at >= latest.v.at)) latest = { m, v };
  }
  const active = state.metrics.filter(isActive).length;
  const message = latest
    ? `measuring ${active} of ${plural(state.metrics.length, "metric")}; latest: ${latest.m.name} ${latest.v.verdict.outcome}: ${latest.v.verdict.explanation}`
    : "waiting for the first measurements";
  return { ...state, message };
}

function finish(state: RunState, phase: RunPhase, now: number, message?: string): RunState {
  let text = message;
  if (text === undefined) {
    const decisive = state.metrics.filter((m) => !m.dryRun);
    const parts = decisive.map(
      (m) => `${m.name} passed ${m.counters.successful} of ${m.counters.measurements}`,
    );
    const last = latestOutcome(decisive, "pass");
    const head =
      decisive.length === 0
        ? "all metrics are dry run"
        : `all metrics passed (${parts.join(", ")})`;
    const why = state.terminated ? `terminated: ${state.terminated.reason}; ` : "";
    text = `${why}${head}${last ? `; last: ${last}` : ""}${dryRunNote(state.metrics)}`;
  }
  return { ...state, phase, message: text, finishedAt: now };
}

function dryRunNote(metrics: readonly MetricRun[]): string {
  const notable = metrics.filter((m) => m.dryRun && BADNESS[m.phase] >= 2);
  if (notable.length === 0) return "";
  return ` (dry run, ignored: ${notable.map((m) => `${m.name} ${m.phase}: ${m.message}`).join("; ")})`;
}

function latestOutcome(
  metrics: readonly MetricRun[],
  outcome: Verdict["outcome"],
): string | undefined {
  let best: RecordedVerdict | undefined;
  let name = "";
  for (const m of metrics) {
    for (const v of m.verdicts) {
      if (v.verdict.outcome === outcome && (!best || v.at >= best.at)) {
        best = v;
        name = m.name;
      }
    }
  }
  return best ? `${name}: ${best.verdict.explanation}` : undefined;
}

// ---------------------------------------------------------------------------------------
// Summary

/** Phase, one-line message and per-metric state, for `turnout status` and history. */
export function summarize(state: RunState): RunSummary {
  return {
    phase: state.phase,
    message: state.message,
    metrics: state.metrics.map((m) => {
      const last = m.verdicts[m.verdicts.length - 1];
      return {
        name: m.name,
        template: m.template,
        phase: m.phase,
        dryRun: m.dryRun,
        message: m.message,
        counters: { ...m.counters },
        count: m.count,
        limits: {
          failure: m.failureLimit,
          inconclusive: m.inconclusiveLimit,
          consecutiveError: m.consecutiveErrorLimit,
        },
        nextDueAt: m.nextDueAt,
        ...(last ? { last } : {}),
      };
    }),
  };
}

// ---------------------------------------------------------------------------------------
// Evidence

/** Why a metric has nothing to go on yet (see `shortOfData`). */
export type ShortReason = "noMeasurement" | "noData" | "noTraffic" | "noResponse" | "tooFewSamples";

/** A metric of a running run that has no evidence on the candidate yet, and why. */
export interface ShortMetric {
  metric: string;
  reason: ShortReason;
  /** The latest verdict's explanation, or when the first measurement is due. */
  explanation: string;
}

const SHORT_REASONS: ReadonlySet<string> = new Set<ShortReason>([
  "noData",
  "noTraffic",
  "noResponse",
  "tooFewSamples",
]);

/**
 * The metrics of a running run that have no evidence on the candidate yet: no measurement
 * taken, or the latest one (errors aside: the error limit deals with those) found no data, no
 * traffic, requests unanswered so far, or too few samples. Dry-run metrics and finished ones
 * are left out; a run that is not running has none. What a timed pause waits for before it
 * ends (`holdForData`, `../rollout/analysis.ts`): a step never completes on "nothing seen".
 */
export function shortOfData(state: RunState, now: number): ShortMetric[] {
  if (state.phase !== "Running") return [];
  const out: ShortMetric[] = [];
  for (const m of state.metrics) {
    if (m.dryRun || !isActive(m)) continue;
    let last: RecordedVerdict | undefined;
    for (let i = m.verdicts.length - 1; i >= 0 && last === undefined; i--) {
      if (m.verdicts[i]!.verdict.outcome !== "error") last = m.verdicts[i];
    }
    if (last === undefined) {
      // None yet, or only failed ones in the verdicts kept.
      const failed = m.verdicts.at(-1);
      const due =
        m.nextDueAt === null
          ? ""
          : m.nextDueAt > now
            ? ` (the first is due in ${formatDuration(m.nextDueAt - now)})`
            : " (the first is being taken)";
      out.push({
        metric: m.name,
        reason: "noMeasurement",
        explanation: failed
          ? `${m.name}: no measurement with data yet; the latest failed: ${failed.verdict.explanation}`
          : `${m.name}: no measurement yet${due}`,
      });
    } else if (
      last.verdict.outcome === "inconclusive" &&
      SHORT_REASONS.has(last.verdict.reason ?? "")
    ) {
      out.push({
        metric: m.name,
        reason: last.verdict.reason as ShortReason,
        explanation: last.verdict.explanation,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Helpers

function isActive(m: MetricRun): boolean {
  return m.phase === "Pending" || m.phase === "Running";
}

function isFinal(m: MetricRun): boolean {
  return m.count !== null && m.counters.measurements + 1 >= m.count;
}

function findMetric(state: RunState, metric: string): MetricRun {
  const m = state.metrics.find((x) => x.name === metric);
  if (!m) throw new Error(`analysis run has no metric "${metric}"`);
  return m;
}

function lastOf(m: MetricRun, outcome: Verdict["outcome"]): string | undefined {
  for (let i = m.verdicts.length - 1; i >= 0; i--) {
    const v = m.verdicts[i]!;
    if (v.verdict.outcome === outcome && v.counted) return v.verdict.explanation;
  }
  return undefined;
}

/** The first point of the grid start + k·interval (k ≥ 1) strictly after now. */
function nextGridPoint(start: number, interval: number, now: number): number {
  const k = Math.max(1, Math.floor((now - start) / interval) + 1);
  return start + k * interval;
}

/**
 * The rollout simulator: Turnout's real decision core (`reconcile`, the analysis runs and the
 * judges) and the real builtin metric provider, driven by an injected clock against simulated
 * traffic (no sockets, no store, no timers), so that thousands of seeded rollouts run in
 * seconds. `bench/decisions.ts` uses it to measure time to rollback, requests exposed to a bad
 * canary and false rollbacks.
 *
 * One simulated rollout, second by second (`tickMs` = 1000, the controller's resync interval):
 *
 *   1. At `now`, take the measurements that the status's analysis runs have due
 *      (`dueMeasurements`), each through `BuiltinProvider.measure` over its window
 *      `[fromMs, toMs)`, which reads the simulated per-second data (`SimulatedTraffic.window`).
 *   2. `reconcile` with those observations, as the controller does right after its analysis
 *      executor hands them over (there, the results come a few ms after `now`; here, at `now`).
 *   3. The weights it returns are in force for the next second: the traffic for
 *      `[now, now + 1 s)` is drawn with them.
 *   4. Stop when the rollout is rolled back, completes, or pauses for a person (an inconclusive
 *      analysis), or after `maxMs`.
 *
 * Times in the result count from the canary's first request, taken as the start of the first
 * second in which the canary had weight (the actual first request comes within that second, so
 * reported times are at most 1 s long). The canary's instances are ready at once.
 *
 * `simulatePolicy` runs any other decision policy (e.g. the reference policies of the bench)
 * through the same loop and the same traffic, so that, for one seed, every policy sees the same
 * requests until it changes the weights.
 */

import type { Outcome } from "../core/analysis/judges.js";
import type { Observation } from "../core/analysis/observation.js";
import { dueMeasurements, observe, type RunState } from "../core/analysis/run.js";
import { FakeClock } from "../core/clock.js";
import type {
  AnalysisTemplateSpec,
  EventDraft,
  ServiceSpec,
  ServiceStatus,
} from "../core/model.js";
import {
  type AnalysisObservation,
  type ReconcileOutput,
  reconcile,
  replicasOf,
  type VersionWeight,
} from "../core/rollout.js";
import { BuiltinProvider } from "../metrics/providers/builtin/builtin-provider.js";
import type { MetricProvider } from "../metrics/providers/provider.js";
import { simulationRng } from "./random.js";
import { SimulatedTraffic, type TrafficSpec } from "./traffic.js";

export type SimOutcome = "completed" | "rolledBack" | "paused" | "timeout";

/** The start of every simulation (a whole second, so seconds and windows line up). */
export const SIM_START_MS = 1_700_000_000_000;

export interface SimVersions {
  /** The stable version. Default "v1". */
  baseline: string;
  /** The version rolled out. Default "v2". */
  candidate: string;
}

export interface SimulateRolloutOptions {
  seed: number;
  /** The service; its `version` is ignored (baseline first, then the candidate). */
  spec: ServiceSpec;
  templates: Record<string, AnalysisTemplateSpec>;
  traffic: TrafficSpec;
  /** Time between two reconciles, a multiple of 1000. Default 1000 (the controller's resync). */
  tickMs?: number;
  /** Simulated time from the start of the rollout after which it stops ("timeout"). */
  maxMs: number;
  versions?: SimVersions;
  /** Default "svc". */
  service?: string;
  /**
   * The metric provider; default the builtin provider reading the simulated traffic. Only
   * builtin sources can be simulated.
   */
  provider?: (traffic: SimulatedTraffic) => MetricProvider;
  /** Keep every verdict in the result (default true; the bench turns it off for speed). */
  recordVerdicts?: boolean;
  /**
   * Reconcile at every tick, as the controller's 1-second resync does. Default false: reconcile
   * only when a measurement is due or `wakeAt` (the earliest deadline reconcile reported: a
   * timed pause's end, the next measurement) has come, because `reconcile` is pure and reads
   * the clock only against those deadlines, so the ticks in between return the same decision.
   * Each reconcile deep-copies the status, whose analysis history is tens of kB, so this
   * matters for speed; a test checks that both give the same result.
   */
  reconcileEveryTick?: boolean;
}

/** One verdict of one metric, as the analysis recorded it. */
export interface SimVerdict {
  /** Ms since the canary's first request. */
  atMs: number;
  run: "step" | "background";
  metric: string;
  outcome: Outcome;
  pValue?: number;
  effect?: number;
  explanation: string;
}

export interface SimulationResult {
  outcome: SimOutcome;
  /** When it was rolled back, ms since the canary's first request. */
  rollbackAtMs?: number;
  /** When the outcome was reached (rollback, completion, pause, or the timeout), same clock. */
  endedAtMs: number;
  /** Requests the candidate served (until the rollback, when there was one). */
  exposedRequests: number;
  /** Of those, 5xx responses. */
  exposedErrors: number;
  /** Requests the baseline served meanwhile. */
  baselineRequests: number;
  /** Why it ended, when the policy says (Turnout: the RolloutAborted or pause message). */
  reason?: string;
  /** Turnout: every verdict when `recordVerdicts`; the metrics that failed on a rollback. */
  verdicts: SimVerdict[];
  failedMetrics: string[];
  /** Turnout: every event `reconcile` emitted, in order. Empty for other policies. */
  events: EventDraft[];
}

/** What a policy decides at one tick: the weights for the next tick, and whether it is over. */
export interface PolicyStep {
  weights: VersionWeight[];
  ended?: { outcome: Exclude<SimOutcome, "timeout">; reason?: string; failedMetrics?: string[] };
}

/**
 * A decision policy under simulation. `tick` is called at the start of the rollout and then
 * every `tickMs`; every second before `now` has been served and can be read from `traffic`.
 */
export interface SimPolicy {
  tick(now: number, traffic: SimulatedTraffic): PolicyStep | Promise<PolicyStep>;
}

export interface SimulatePolicyOptions {
  seed: number;
  traffic: TrafficSpec;
  /** Builds the policy for this run (a fresh one per seed). */
  policy: (ctx: { versions: SimVersions; startMs: number }) => SimPolicy;
  tickMs?: number;
  maxMs: number;
  versions?: SimVersions;
}

const DEFAULT_VERSIONS: SimVersions = { baseline: "v1", candidate: "v2" };

/**
 * Runs `policy` against seeded simulated traffic until it ends the rollout or `maxMs` passes.
 *
 * @example
 * await simulatePolicy({ seed: 1, traffic, maxMs: 600_000, policy: () => ({
 *   tick: () => ({ weights: [{ version: "v1", weight: 90 }, { version: "v2", weight: 10 }] }),
 * }) });
 */
export async function simulatePolicy(opts: SimulatePolicyOptions): Promise<SimulationResult> {
  const versions = opts.versions ?? DEFAULT_VERSIONS;
  const traffic = new SimulatedTraffic(
    simulationRng(opts.seed),
    opts.traffic,
    versions,
    SIM_START_MS / 1000,
  );
  const policy = opts.policy({ versions, startMs: SIM_START_MS });
  return (await drive(traffic, versions, policy, opts.tickMs ?? 1000, opts.maxMs, [])).result;
}

/**
 * Simulates one rollout of `spec` from `versions.baseline` to `versions.candidate` with
 * Turnout's decision core; see the module comment.
 *
 * @example
 * const r = await simulateRollout({ seed: 7, spec, templates, traffic, maxMs: 660_000 });
 * r.outcome; // "rolledBack"
 * r.rollbackAtMs; // 40_000
 */
export async function simulateRollout(opts: SimulateRolloutOptions): Promise<SimulationResult> {
  const versions = opts.versions ?? DEFAULT_VERSIONS;
  const traffic = new SimulatedTraffic(
    simulationRng(opts.seed),
    opts.traffic,
    versions,
    SIM_START_MS / 1000,
  );
  const provider = opts.provider
    ? opts.provider(traffic)
    : new BuiltinProvider({ measurements: traffic });
  const events: EventDraft[] = [];
  const policy = new TurnoutPolicy(opts, versions, provider, events);
  const { result, t0 } = await drive(
    traffic,
    versions,
    policy,
    opts.tickMs ?? 1000,
    opts.maxMs,
    events,
  );
  result.verdicts = policy.verdicts.map((v) => ({ ...v, atMs: v.atMs - t0 }));
  return result;
}

// ---------------------------------------------------------------------------------------
// The loop

async function drive(
  traffic: SimulatedTraffic,
  versions: SimVersions,
  policy: SimPolicy,
  tickMs: number,
  maxMs: number,
  events: EventDraft[],
): Promise<{ result: SimulationResult; t0: number }> {
  if (!(Number.isInteger(tickMs / 1000) && tickMs > 0)) {
    throw new RangeError(`tickMs must be a positive multiple of 1000, got ${tickMs}`);
  }
  const clock = new FakeClock(SIM_START_MS);
  let t0: number | null = null;
  let exposedRequests = 0;
  let exposedErrors = 0;
  let baselineRequests = 0;
  for (;;) {
    const now = clock.now();
    // 1-2. The policy decides on everything served before now.
    const step = await policy.tick(now, traffic);
    const canaryWeight = step.weights.find((w) => w.version === versions.candidate)?.weight ?? 0;
    if (t0 === null && canaryWeight > 0) t0 = now;
    const start = t0 ?? now;
    const base = { exposedRequests, exposedErrors, baselineRequests, events, verdicts: [] };
    if (step.ended) {
      const e = step.ended;
      const result: SimulationResult = {
        ...base,
        outcome: e.outcome,
        endedAtMs: now - start,
        ...(e.outcome === "rolledBack" ? { rollbackAtMs: now - start } : {}),
        ...(e.reason !== undefined ? { reason: e.reason } : {}),
        failedMetrics: e.failedMetrics ?? [],
      };
      return { result, t0: start };
    }
    // 4. Out of time.
    if (now - SIM_START_MS >= maxMs) {
      const result: SimulationResult = {
        ...base,
        outcome: "timeout",
        endedAtMs: now - start,
        failedMetrics: [],
      };
      return { result, t0: start };
    }
    // 3. The next tick's seconds, with the weights in force.
    for (let s = 0; s < tickMs / 1000; s++) {
      const served = traffic.serve(traffic.nextSecond, step.weights);
      const c = served.get(versions.candidate);
      if (c) {
        exposedRequests += c.requests;
        exposedErrors += c.errors;
      }
      baselineRequests += served.get(versions.baseline)?.requests ?? 0;
    }
    clock.advance(tickMs);
  }
}

// ---------------------------------------------------------------------------------------
// Turnout's core as a policy

const NEVER_ABORTED = new AbortController().signal;

class TurnoutPolicy implements SimPolicy {
  readonly verdicts: SimVerdict[] = [];
  private status: ServiceStatus | null = null;
  private spec: ServiceSpec;
  private generation = 1;
  private readonly name: string;
  private readonly record: boolean;
  private readonly readiness: Record<string, { ready: number; failed: number }>;
  private readonly everyTick: boolean;
  private last: ReconcileOutput | null = null;

  constructor(
    private readonly opts: SimulateRolloutOptions,
    private readonly versions: SimVersions,
    private readonly provider: MetricProvider,
    private readonly events: EventDraft[],
  ) {
    this.name = opts.service ?? "svc";
    this.record = opts.recordVerdicts ?? true;
    this.everyTick = opts.reconcileEveryTick ?? false;
    const ready = { ready: replicasOf(opts.spec), failed: 0 };
    this.readiness = { [versions.baseline]: ready, [versions.candidate]: ready };
    // The service exists with the baseline as its stable version before the rollout starts.
    this.spec = { ...opts.spec, version: versions.baseline };
    this.reconcile(SIM_START_MS, []);
    this.spec = { ...opts.spec, version: versions.candidate };
    this.generation++;
    this.last = null; // the spec changed: the next tick reconciles
  }

  async tick(now: number): Promise<PolicyStep> {
    // 0. Between deadlines a reconcile changes nothing (see `reconcileEveryTick`): skip it.
    const last = this.last;
    if (
      last !== null &&
      !this.everyTick &&
      (last.wakeAt === null || now < last.wakeAt) &&
      !this.anyDue(now)
    ) {
      return { weights: last.weights };
    }
    // 1. The measurements due now, taken as the analysis executor takes them.
    const observations: AnalysisObservation[] = [];
    const s = this.status;
    const runs: ["step" | "background", RunState | null | undefined][] = [
      ["step", s?.analysis?.step?.run],
      ["background", s?.analysis?.background],
    ];
    for (const [kind, run] of runs) {
      if (!run || s?.canaryVersion == null) continue;
      for (const due of dueMeasurements(run, now)) {
        const observation = await this.measure(s, run, due, now);
        observations.push({
          run: kind,
          runStartedAt: run.startedAt,
          metric: due.metric,
          observation,
          fromMs: due.fromMs,
          toMs: due.toMs,
        });
      }
    }
    if (this.record) this.recordVerdicts(now, observations);
    // 2. The decision.
    const out = this.reconcile(now, observations);
    const st = out.status;
    const aborted = out.events.find((e) => e.type === "RolloutAborted");
    if (aborted) {
      const failed = out.events.find((e) => e.type === "AnalysisFailed");
      const metrics = (failed?.data.metrics ?? []) as { name: string; phase: string }[];
      return {
        weights: out.weights,
        ended: {
          outcome: "rolledBack",
          reason: aborted.message,
          failedMetrics: metrics.filter((m) => m.phase === "Failed").map((m) => m.name),
        },
      };
    }
    if (st.phase === "Completed") {
      return { weights: out.weights, ended: { outcome: "completed", reason: st.message } };
    }
    // An analysis that ends inconclusive pauses the rollout for a person: nothing more happens.
    if (st.pausedByUser) {
      return { weights: out.weights, ended: { outcome: "paused", reason: st.message } };
    }
    return { weights: out.weights };
  }

  private anyDue(now: number): boolean {
    const a = this.status?.analysis;
    for (const run of [a?.step?.run, a?.background]) {
      if (run && dueMeasurements(run, now).length > 0) return true;
    }
    return false;
  }

  private reconcile(now: number, observations: AnalysisObservation[]): ReconcileOutput {
    const out = reconcile({
      now,
      service: { name: this.name, generation: this.generation, spec: this.spec },
      status: this.status,
      commands: [],
      readiness: this.readiness,
      templates: this.opts.templates,
      observations,
    });
    this.status = out.status;
    this.last = out;
    for (const e of out.events) this.events.push(e);
    return out;
  }

  private async measure(
    s: ServiceStatus,
    run: RunState,
    due: ReturnType<typeof dueMeasurements>[number],
    now: number,
  ): Promise<Observation> {
    try {
      return await this.provider.measure(
        {
          metric: due.metric,
          source: due.source,
          args: run.args,
          service: this.name,
          candidate: s.canaryVersion as string,
          ...(s.stableVersion ? { baseline: s.stableVersion } : {}),
          fromMs: due.fromMs,
          toMs: due.toMs,
          now,
        },
        NEVER_ABORTED,
      );
    } catch (err) {
      // As the analysis executor: a request the provider refuses is an error verdict.
      return { error: (err as Error).message, errorKind: "failed" };
    }
  }

  /**
   * The verdicts `reconcile` is about to record, computed the same way on a copy of the runs
   * (the judges are pure), because a run that ends is cleared from the status with its history.
   */
  private recordVerdicts(now: number, observations: AnalysisObservation[]): void {
    const a = this.status?.analysis;
    const shadow: Record<"step" | "background", RunState | null | undefined> = {
      step: a?.step?.run,
      background: a?.background,
    };
    for (const o of observations) {
      const run = shadow[o.run];
      if (!run || run.startedAt !== o.runStartedAt) continue;
      const before = run.metrics.find((m) => m.name === o.metric)?.verdicts.at(-1);
      const next = observe(run, o.metric, o.observation, now, { fromMs: o.fromMs, toMs: o.toMs });
      shadow[o.run] = next;
      const v = next.metrics.find((m) => m.name === o.metric)?.verdicts.at(-1);
      if (!v || v === before) continue;
      this.verdicts.push({
        atMs: now,
        run: o.run,
        metric: o.metric,
        outcome: v.verdict.outcome,
        ...(v.verdict.pValue !== undefined ? { pValue: v.verdict.pValue } : {}),
        ...(v.verdict.effect ? { effect: v.verdict.effect.value } : {}),
        explanation: v.verdict.explanation,
      });
    }
  }
}

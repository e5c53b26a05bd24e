/**
 * The rollout simulator: Turnout's real decision core (`reconcile`, the analysis runs and the
 * judges) and the real builtin metric provider, driven by an injected clock against simulated
 * traffic (no sockets, no store, no timers). `bench/decisions.ts` uses it to measure time to
 * rollback, requests exposed to a bad canary and false rollbacks over thousands of seeds.
 *
 * One simulated rollout, tick by tick (`tickMs` = 1000, the controller's resync interval), each
 * tick the controller's own (`controller/tick.ts`, `tickService`: due -> measure -> reconcile ->
 * commit), with the simulator's ports:
 *
 *   1. At `now`, take the measurements that the status's analysis runs have due
 *      (`dueMeasurements`), each through `BuiltinProvider.measure` over its window
 *      `[fromMs, toMs)`, which reads the simulated per-second data (`SimulatedTraffic.window`).
 *      (The controller's analysis executor takes them after a tick's commit and hands them
 *      over at the next tick, a few ms after `now`; here they are taken at `now`.)
 *   2. `reconcile` with those observations, and the commit, which keeps the status and the
 *      route table in memory (there is no store). Ticks with nothing due are skipped (see
 *      `reconcileEveryTick`).
 *   3. The weights it returns are in force until the next tick: the traffic for
 *      `[now, now + tickMs)` is drawn with them.
 *   4. Stop when the rollout is rolled back, completes, or pauses for a person (an inconclusive
 *      analysis), or after `maxMs`.
 *
 * Times in the result count from the canary's first request, taken as the start of the first
 * second in which the canary had weight (the actual first request comes within that second, so
 * reported times are at most 1 s long). The canary's instances are ready at once.
 *
 * Cost: a 10-minute A/A rollout at 100 requests/s takes about 60 ms at best on the bench
 * machine (bench/README.md, "Simulation cost"). No single part dominates: garbage collection,
 * the binned Mann-Whitney judge, `reconcile` (its deep copy of the status, ~12 kB with five
 * verdicts per metric kept), the builtin provider's windows and quantiles, and drawing each
 * request's latency into a sketch each take 7 to 17%.
 *
 * `simulatePolicy` runs any other decision policy (e.g. the reference policies of the bench)
 * through the same loop, and `simulatePolicies` runs several on one stream of traffic, so that,
 * for one seed, every policy sees the same requests until it changes the weights. */

import { type TickPorts, tickService } from "../controller/tick.js";
import type { Outcome } from "../core/analysis/judges.js";
import type { Observation } from "../core/analysis/observation.js";
import { dueMeasurements, observe, type RunState } from "../core/analysis/run.js";
import { FakeClock } from "../core/clock.js";
import type {
  AnalysisTemplateSpec,
  EventDraft,
  RouteTable,
  ServiceSpec,
  ServiceStatus,
} from "../core/model.js";
import {
  type AnalysisObservation,
  type ReconcileOutput,
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
   * Each reconcile deep-copies the status (about 12 kB with the analysis history), so this
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
  /** Adds what the policy recorded (verdicts, events) to its result; `t0` is the first request. */
  annotate?(result: SimulationResult, t0: number): void;
}

export interface PolicyContext {
  versions: SimVersions;
  /** The clock at the start of the rollout. */
  startMs: number;
  /** The traffic the policy will see (e.g. for a metric provider to read). */
  traffic: SimulatedTraffic;
}

/** Builds a policy for one run (a fresh one per seed). */
export type PolicyFactory = (ctx: PolicyContext) => SimPolicy;

export interface SimulatePoliciesOptions {
  seed: number;
  traffic: TrafficSpec;
  /** By name; each gets its own result. */
  policies: Record<string, PolicyFactory>;
  /** Time between two ticks, a multiple of 1000. Default 1000 (the controller's resync). */
  tickMs?: number;
  /** Simulated time from the start of the rollout after which a policy stops ("timeout"). */
  maxMs: number;
  versions?: SimVersions;
}

const DEFAULT_VERSIONS: SimVersions = { baseline: "v1", candidate: "v2" };

/**
 * Runs several policies on one stream of simulated traffic: every second is drawn once, with
 * the weights the policies still running agree on, and each policy's figures stop at its own
 * decision. While the weights agree, the traffic is the one each policy would get alone with
 * the same seed (the draws depend only on the seed and the weights), so this is a faster way to
 * give every policy the same requests. Policies that still run must agree on the weights at
 * every tick; when they do not, this throws: run them one by one.
 *
 * @example
 * const r = await simulatePolicies({ seed: 1, traffic, maxMs: 660_000,
 *   policies: { turnout: turnoutPolicy({ spec, templates }), mine: myPolicy } });
 * r.turnout.outcome; r.mine.rollbackAtMs;
 */
export async function simulatePolicies(
  opts: SimulatePoliciesOptions,
): Promise<Record<string, SimulationResult>> {
  const versions = opts.versions ?? DEFAULT_VERSIONS;
  const tickMs = opts.tickMs ?? 1000;
  if (!(Number.isInteger(tickMs / 1000) && tickMs > 0)) {
    throw new RangeError(`tickMs must be a positive multiple of 1000, got ${tickMs}`);
  }
  const traffic = new SimulatedTraffic(
    simulationRng(opts.seed),
    opts.traffic,
    versions,
    SIM_START_MS / 1000,
  );
  interface Running {
    name: string;
    policy: SimPolicy;
    t0: number | null;
    exposedRequests: number;
    exposedErrors: number;
    baselineRequests: number;
  }
  let running: Running[] = Object.entries(opts.policies).map(([name, factory]) => ({
    name,
    policy: factory({ versions, startMs: SIM_START_MS, traffic }),
    t0: null,
    exposedRequests: 0,
    exposedErrors: 0,
    baselineRequests: 0,
  }));
  const results: Record<string, SimulationResult> = {};
  const finish = (r: Running, now: number, ended: PolicyStep["ended"] | "timeout") => {
    const t0 = r.t0 ?? now;
    const e = ended === "timeout" ? { outcome: "timeout" as const } : ended!;
    const result: SimulationResult = {
      outcome: e.outcome,
      endedAtMs: now - t0,
      ...(e.outcome === "rolledBack" ? { rollbackAtMs: now - t0 } : {}),
      exposedRequests: r.exposedRequests,
      exposedErrors: r.exposedErrors,
      baselineRequests: r.baselineRequests,
      ...("reason" in e && e.reason !== undefined ? { reason: e.reason } : {}),
      verdicts: [],
      failedMetrics: ("failedMetrics" in e ? e.failedMetrics : undefined) ?? [],
      events: [],
    };
    r.policy.annotate?.(result, t0);
    results[r.name] = result;
  };
  const clock = new FakeClock(SIM_START_MS);
  while (running.length > 0) {
    const now = clock.now();
    // 1-2. Each policy decides on everything served before now.
    const next: Running[] = [];
    let weights: VersionWeight[] | null = null;
    let agreedBy = "";
    for (const r of running) {
      const step = await r.policy.tick(now, traffic);
      const canary = step.weights.find((w) => w.version === versions.candidate)?.weight ?? 0;
      if (r.t0 === null && canary > 0) r.t0 = now;
      if (step.ended) {
        finish(r, now, step.ended);
        continue;
      }
      // 4. Out of time.
      if (now - SIM_START_MS >= opts.maxMs) {
        finish(r, now, "timeout");
        continue;
      }
      if (weights === null) {
        weights = step.weights;
        agreedBy = r.name;
      } else if (!sameWeights(weights, step.weights)) {
        throw new Error(
          `policies ${agreedBy} and ${r.name} want different weights at ${now - SIM_START_MS} ms (${describe(weights)} vs ${describe(step.weights)}); simulate them separately`,
        );
      }
      next.push(r);
    }
    running = next;
    if (weights === null) break;
    // 3. The next tick's seconds, with the weights in force.
    for (let s = 0; s < tickMs / 1000; s++) {
      const served = traffic.serve(traffic.nextSecond, weights);
      const c = served.get(versions.candidate);
      const b = served.get(versions.baseline)?.requests ?? 0;
      for (const r of running) {
        if (c) {
          r.exposedRequests += c.requests;
          r.exposedErrors += c.errors;
        }
        r.baselineRequests += b;
      }
    }
    clock.advance(tickMs);
  }
  return results;
}

function sameWeights(a: readonly VersionWeight[], b: readonly VersionWeight[]): boolean {
  return (
    a.length === b.length &&
    a.every((w, i) => w.version === b[i]!.version && w.weight === b[i]!.weight)
  );
}

function describe(ws: readonly VersionWeight[]): string {
  return ws.map((w) => `${w.version} ${w.weight}%`).join(", ");
}

export interface SimulatePolicyOptions extends Omit<SimulatePoliciesOptions, "policies"> {
  policy: PolicyFactory;
}

/**
 * Runs `policy` against seeded simulated traffic until it ends the rollout or `maxMs` passes.
 *
 * @example
 * await simulatePolicy({ seed: 1, traffic, maxMs: 600_000, policy: () => ({
 *   tick: () => ({ weights: [{ version: "v1", weight: 90 }, { version: "v2", weight: 10 }] }),
 * }) });
 */
export async function simulatePolicy(opts: SimulatePolicyOptions): Promise<SimulationResult> {
  const { policy, ...rest } = opts;
  return (await simulatePolicies({ ...rest, policies: { policy } })).policy!;
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
  const { seed, traffic, tickMs, maxMs, versions } = opts;
  const results = await simulatePolicies({
    seed,
    traffic,
    maxMs,
    ...(tickMs !== undefined ? { tickMs } : {}),
    ...(versions !== undefined ? { versions } : {}),
    policies: { turnout: turnoutPolicy(opts) },
  });
  return results.turnout!;
}

export type TurnoutPolicyOptions = Pick<
  SimulateRolloutOptions,
  "spec" | "templates" | "service" | "provider" | "recordVerdicts" | "reconcileEveryTick"
>;

/**
 * Turnout's decision core as a policy: the controller's loop around `reconcile`, measuring
 * through the builtin provider (or `provider`) over the simulated traffic.
 */
export function turnoutPolicy(opts: TurnoutPolicyOptions): PolicyFactory {
  return (ctx) => {
    const provider = opts.provider
      ? opts.provider(ctx.traffic)
      : new BuiltinProvider({ measurements: ctx.traffic });
    return new TurnoutPolicy(opts, ctx.versions, provider, ctx.startMs);
  };
}

// ---------------------------------------------------------------------------------------
// Turnout's core as a policy

const NEVER_ABORTED = new AbortController().signal;

class TurnoutPolicy implements SimPolicy {
  private readonly verdicts: SimVerdict[] = [];
  private readonly events: EventDraft[] = [];
  private status: ServiceStatus | null = null;
  private spec: ServiceSpec;
  private generation = 1;
  private readonly name: string;
  private readonly record: boolean;
  private readonly readiness: Record<string, { ready: number; failed: number }>;
  private readonly everyTick: boolean;
  private last: ReconcileOutput | null = null;
  /** The route table in force (the simulator's stand-in for the store's). */
  private table: RouteTable | null = null;
  /** The rollout's start, where the service is first reconciled with the baseline alone. */
  private readonly startMs: number;
  private started = false;
  /**
   * The controller's tick (`controller/tick.ts`) over the simulation: measurements are taken
   * when due (no executor in between), and the commit keeps status and table in memory.
   */
  private readonly ports: TickPorts = {
    observations: (_service, status, now) => this.measureDue(status, now),
    routeTable: () => this.table,
    commit: async (c) => {
      if (c.status) this.status = c.status;
      if (c.routeTable) this.table = { ...c.routeTable, revision: (this.table?.revision ?? 0) + 1 };
    },
  };

  constructor(
    private readonly opts: TurnoutPolicyOptions,
    versions: SimVersions,
    private readonly provider: MetricProvider,
    startMs: number,
  ) {
    this.name = opts.service ?? "svc";
    this.record = opts.recordVerdicts ?? true;
    this.everyTick = opts.reconcileEveryTick ?? false;
    const ready = { ready: replicasOf(opts.spec), failed: 0 };
    this.readiness = { [versions.baseline]: ready, [versions.candidate]: ready };
    this.spec = { ...opts.spec, version: versions.baseline };
    this.startMs = startMs;
    this.candidate = versions.candidate;
  }

  private readonly candidate: string;

  annotate(result: SimulationResult, t0: number): void {
    result.events = this.events;
    result.verdicts = this.verdicts.map((v) => ({ ...v, atMs: v.atMs - t0 }));
  }

  async tick(now: number): Promise<PolicyStep> {
    if (!this.started) {
      // The service exists with the baseline as its stable version before the rollout starts.
      this.started = true;
      await this.reconcile(this.startMs);
      this.spec = { ...this.opts.spec, version: this.candidate };
      this.generation++;
      this.last = null; // the spec changed: the next tick reconciles
    }
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
    // 1-5. The controller's tick: measure what is due, decide, commit.
    const out = await this.reconcile(now);
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

  private async reconcile(now: number): Promise<ReconcileOutput> {
    const { out } = await tickService(
      {
        now,
        service: { name: this.name, generation: this.generation, spec: this.spec },
        status: this.status,
        commands: [],
        readiness: this.readiness,
        templates: this.opts.templates,
        // No instances: the route table carries the weights only.
        endpoints: () => [],
      },
      this.ports,
    );
    this.last = out;
    for (const e of out.events) this.events.push(e);
    return out;
  }

  /** Step 1 of the tick: the measurements the status's runs have due now, taken at once. */
  private async measureDue(s: ServiceStatus | null, now: number): Promise<AnalysisObservation[]> {
    const observations: AnalysisObservation[] = [];
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
    return observations;
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

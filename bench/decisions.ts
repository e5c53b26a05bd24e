/**
 * `npm run bench:decisions`: how fast Turnout's analysis rolls back a bad canary, how many
 * requests the canary serves meanwhile, and how often it rolls back a good one, over 1,000+
 * seeded simulated rollouts per scenario; next to two reference policies written here, fed the
 * same simulated traffic (same seeds): Flagger's default analysis and a Kayenta-style
 * fixed-horizon Mann-Whitney.
 *
 * It measures decisions, not speed: Turnout runs through `src/sim/simulator.ts` (the real
 * `reconcile`, analysis runs, judges and builtin metric provider, with a fake clock), the
 * reference policies through the same traffic loop (`simulatePolicy`). See bench/README.md,
 * "Decisions", for what runs and what the figures mean.
 *
 *   npm run bench:decisions                     # 1,000 seeds per scenario; writes the results
 *   npm run bench:decisions -- --seeds 200 --no-write
 *   npm run bench:decisions -- --tune           # the settings study, on the tuning seeds
 *
 * Options: --seeds N (1000), --workers N (the machine's cores), --no-write, --tune,
 * --tune-seeds N (300), --mw-looks N (the Mann-Whitney looks study on N seeds; writes nothing),
 * --speed N (N A/A rollouts in this process: the simulator's speed; writes nothing), --bounds
 * (the detection bounds quoted in bench/README.md; writes nothing).
 *
 * Seeds: the reported runs use seeds 1..N in every scenario; the settings study (--tune) uses
 * seeds from 1,000,001 on, so no setting is chosen on the runs it is reported with.
 */
import { fork, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { mannWhitneyLookAlpha } from "../src/core/analysis/judges.js";
import type { AnalysisTemplateSpec, ServiceSpec } from "../src/core/model.js";
import { Sketch } from "../src/core/sketch.js";
import { mannWhitneyU } from "../src/core/stats/mannWhitney.js";
import { mannWhitneyBinned } from "../src/core/stats/mannWhitneyBinned.js";
import { binomialSample } from "../src/core/stats/random.js";
import { lognormalLatency, simulationRng } from "../src/sim/random.js";
import {
  type PolicyFactory,
  type PolicyStep,
  type SimPolicy,
  type SimulationResult,
  simulatePolicies,
  turnoutPolicy,
} from "../src/sim/simulator.js";
import type { TrafficSpec } from "../src/sim/traffic.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const RESULTS_JSON = join(ROOT, "bench/results/decisions.json");
const README = join(ROOT, "bench/README.md");
export const README_START = "<!-- bench:decisions:results:start -->";
export const README_END = "<!-- bench:decisions:results:end -->";

// ---------------------------------------------------------------------------------------
// Scenarios: 100 requests/s in all, the canary at 10% (about 10 requests/s), 10 minutes.

const RPS = 100;
const CANARY_WEIGHT = 10;
/** Every policy decides within 10 minutes of the canary's first request, or promotes. */
const HORIZON_MS = 10 * 60_000;
/** Room for Flagger, which acts on its last failed check one interval later. */
const MAX_MS = HORIZON_MS + 60_000;
/** Seconds: the goal for a bad canary. */
const GOAL_ROLLBACK_S = 30;
/** The goal for an A/A canary. */
const GOAL_FALSE_ROLLBACK = 0.01;
const TUNING_SEED_START = 1_000_001;

const BASE_LATENCY = { medianMs: 50, sigma: 0.5 };
const baseLatency = lognormalLatency(BASE_LATENCY.medianMs, BASE_LATENCY.sigma);
const slowLatency = lognormalLatency(BASE_LATENCY.medianMs * 1.3, BASE_LATENCY.sigma);

interface Scenario {
  id: "errors" | "latency" | "aa";
  title: string;
  /** A bad canary (to be rolled back) or an A/A one (must not be). */
  bad: boolean;
  traffic: TrafficSpec;
  describe: string;
}

const SCENARIOS: Scenario[] = [
  {
    id: "errors",
    title: "bad canary: errors 1% -> 5%",
    bad: true,
    traffic: {
      rps: RPS,
      baseline: { errorRate: 0.01, latency: baseLatency },
      candidate: { errorRate: 0.05, latency: baseLatency },
    },
    describe: "baseline 1% 5xx, candidate 5% 5xx; same latency",
  },
  {
    id: "latency",
    title: "bad canary: latency +30%",
    bad: true,
    traffic: {
      rps: RPS,
      baseline: { errorRate: 0.01, latency: baseLatency },
      candidate: { errorRate: 0.01, latency: slowLatency },
    },
    describe: `latency log-normal, median ${BASE_LATENCY.medianMs} ms, sigma ${BASE_LATENCY.sigma} (p99 ${p99(BASE_LATENCY.medianMs)} ms); the candidate's ×1.3 (median ${BASE_LATENCY.medianMs * 1.3} ms, p99 ${p99(BASE_LATENCY.medianMs * 1.3)} ms), same shape; 1% 5xx on both`,
  },
  {
    id: "aa",
    title: "A/A: identical versions",
    bad: false,
    traffic: {
      rps: RPS,
      baseline: { errorRate: 0.01, latency: baseLatency },
      candidate: { errorRate: 0.01, latency: baseLatency },
    },
    describe: "both versions 1% 5xx and the baseline's latency; a rollback is a false rollback",
  },
];

function p99(median: number): number {
  return Math.round(median * Math.exp(2.3263 * BASE_LATENCY.sigma));
}

// ---------------------------------------------------------------------------------------
// Policies

interface TurnoutSettings {
  /** No interval: the default (2 s for a background sequential judge on a builtin metric). */
  errors: { maxIncrease: number; detect?: number; alpha: number; interval?: string };
  latency: { maxRelativeIncrease: number; alpha: number; interval: string; minSamples: number };
}

/**
 * Turnout as a user would write it for this service: setWeight 10, a 10-minute pause, and a
 * background analysis from step 0 on (see bench/README.md for why each number).
 */
const TURNOUT: TurnoutSettings = {
  errors: { maxIncrease: 0, detect: 0.04, alpha: 0.01 },
  latency: { maxRelativeIncrease: 0.2, alpha: 0.01, interval: "10s", minSamples: 50 },
};

/** The variants the settings study (--tune) compares, on the tuning seeds. */
const TUNING: { id: string; label: string; settings: TurnoutSettings }[] = [
  {
    id: "chosen",
    label: "chosen (errors: default interval, +0, detect 4 points, alpha 1%; latency 10 s, +20%)",
    settings: TURNOUT,
  },
  {
    id: "allow1",
    label: "errors maxIncrease 1 point (detect: default 2)",
    settings: { ...TURNOUT, errors: { maxIncrease: 0.01, alpha: 0.01 } },
  },
  {
    id: "allow1detect4",
    label: "errors maxIncrease 1 point, detect 4",
    settings: { ...TURNOUT, errors: { ...TURNOUT.errors, maxIncrease: 0.01 } },
  },
  {
    id: "detect2",
    label: "errors detect 2 points",
    settings: { ...TURNOUT, errors: { ...TURNOUT.errors, detect: 0.02 } },
  },
  {
    id: "detect8",
    label: "errors detect 8 points",
    settings: { ...TURNOUT, errors: { ...TURNOUT.errors, detect: 0.08 } },
  },
  {
    id: "interval5s",
    label: "interval 5 s",
    settings: {
      errors: { ...TURNOUT.errors, interval: "5s" },
      latency: { ...TURNOUT.latency, interval: "5s" },
    },
  },
  {
    id: "alpha5",
    label: "errors alpha 5%",
    settings: { ...TURNOUT, errors: { ...TURNOUT.errors, alpha: 0.05 } },
  },
  {
    id: "latency10",
    label: "latency +10% allowed",
    settings: { ...TURNOUT, latency: { ...TURNOUT.latency, maxRelativeIncrease: 0.1 } },
  },
];

function turnoutTemplate(s: TurnoutSettings): AnalysisTemplateSpec {
  return {
    metrics: [
      {
        name: "errors",
        source: { builtin: "error_rate" },
        judge: {
          sequential: {
            maxIncrease: s.errors.maxIncrease,
            ...(s.errors.detect !== undefined ? { detect: s.errors.detect } : {}),
            alpha: s.errors.alpha,
          },
        },
        ...(s.errors.interval !== undefined ? { interval: s.errors.interval } : {}),
      },
      {
        name: "latency",
        source: { builtin: "latency" },
        judge: {
          mannWhitney: {
            maxRelativeIncrease: s.latency.maxRelativeIncrease,
            alpha: s.latency.alpha,
          },
        },
        interval: s.latency.interval,
        minSamples: s.latency.minSamples,
      },
    ],
  };
}

const TURNOUT_SPEC: ServiceSpec = {
  listen: { host: "127.0.0.1", port: 8080 },
  runtime: { static: { versions: {} } },
  version: "v1",
  strategy: {
    canary: {
      steps: [{ setWeight: CANARY_WEIGHT }, { pause: { duration: "10m" } }],
      analysis: { templates: ["canary-health"], startingStep: 0 },
    },
  },
};

/** Flagger's default analysis (docs: "How it works"; pkg/controller/scheduler.go). */
const FLAGGER = {
  intervalMs: 60_000,
  /** Failed checks before rollback. */
  threshold: 5,
  /** request-success-rate: percent of non-5xx responses of the canary in the last interval. */
  minSuccessRate: 99,
  /**
   * request-duration: p99 of the canary in the last interval, ms. Flagger's builtin default is
   * 500 ms, which the slow canary here never reaches (its p99 is ~208 ms); 200 ms is 25% above
   * this service's p99 (~160 ms), the headroom a user would leave.
   */
  maxP99Ms: 200,
};

/** A Kayenta-style canary analysis (NetflixACAJudge's Mann-Whitney, on metric time series). */
const KAYENTA = {
  /** The metric store's resolution: one point per 10 s (a 10 s Prometheus step). */
  stepMs: 10_000,
  /** A judgment every 5 minutes, each over the whole time since the canary started. */
  intervalMs: 5 * 60_000,
  lifetimeMs: HORIZON_MS,
  /** One-sided Mann-Whitney (candidate greater), p below this... */
  alpha: 0.01,
  /** ...and the candidate's mean more than 20% above the baseline's: the metric is High. */
  tolerance: 0.2,
  /** Score = percent of metrics not High. Below marginal at a judgment, or below pass at the last: fail. */
  marginal: 75,
  pass: 95,
};

type PolicyId = "turnout" | "flagger" | "kayenta";

const POLICY_LABELS: Record<PolicyId, string> = {
  turnout: "Turnout (sequential every 2 s, Mann-Whitney every 10 s)",
  flagger: "Flagger default (1-min checks, 5 failures)",
  kayenta: "Kayenta-style fixed-horizon Mann-Whitney",
};

function weights(versions: { baseline: string; candidate: string }) {
  return [
    { version: versions.baseline, weight: 100 - CANARY_WEIGHT },
    { version: versions.candidate, weight: CANARY_WEIGHT },
  ];
}

function flaggerPolicy(ctx: {
  versions: { baseline: string; candidate: string };
  startMs: number;
}): SimPolicy {
  const w = weights(ctx.versions);
  let t0: number | null = null;
  let failedChecks = 0;
  let checks = 0;
  const failures: string[] = [];
  return {
    tick(now, traffic): PolicyStep {
      if (t0 === null) {
        t0 = now;
        return { weights: w };
      }
      const elapsed = now - t0;
      if (elapsed % FLAGGER.intervalMs !== 0) return { weights: w };
      // 1. Each tick starts by testing the failed checks against the threshold.
      if (failedChecks >= FLAGGER.threshold) {
        return {
          weights: w,
          ended: {
            outcome: "rolledBack",
            reason: `${failedChecks} failed checks: ${failures.join("; ")}`,
            failedMetrics: [...new Set(failures.map((f) => f.split(" ")[0]!))],
          },
        };
      }
      if (checks >= HORIZON_MS / FLAGGER.intervalMs) {
        return { weights: w, ended: { outcome: "completed", reason: "promoted" } };
      }
      // 2. The checks over the last interval, on the canary alone; a failure counts once per tick.
      checks++;
      const sec = now / 1000;
      const r = traffic.range(ctx.versions.candidate, sec - FLAGGER.intervalMs / 1000, sec);
      const successRate =
        r.requests === 0 ? Number.NaN : (100 * (r.requests - r.errors)) / r.requests;
      const latencyP99 = r.latency.quantile(0.99);
      const bad: string[] = [];
      if (!(successRate >= FLAGGER.minSuccessRate)) bad.push(`errors ${successRate.toFixed(2)}%`);
      if (!(latencyP99 <= FLAGGER.maxP99Ms)) bad.push(`latency p99 ${latencyP99.toFixed(0)} ms`);
      if (bad.length > 0) {
        failedChecks++;
        failures.push(...bad);
      }
      // The last check passed, or failed without reaching the threshold: promoted.
      if (checks >= HORIZON_MS / FLAGGER.intervalMs && failedChecks < FLAGGER.threshold) {
        return { weights: w, ended: { outcome: "completed", reason: "promoted" } };
      }
      return { weights: w };
    },
  };
}

function kayentaPolicy(ctx: {
  versions: { baseline: string; candidate: string };
  startMs: number;
}): SimPolicy {
  const w = weights(ctx.versions);
  let t0: number | null = null;
  return {
    tick(now, traffic): PolicyStep {
      if (t0 === null) {
        t0 = now;
        return { weights: w };
      }
      const elapsed = now - t0;
      if (elapsed === 0 || elapsed % KAYENTA.intervalMs !== 0) return { weights: w };
      // 1. Time series at the store's step over [t0, now), per version and metric.
      const series = (version: string) => {
        const errors: number[] = [];
        const latency: number[] = [];
        for (let s = t0! / 1000; s < now / 1000; s += KAYENTA.stepMs / 1000) {
          const r = traffic.range(version, s, s + KAYENTA.stepMs / 1000);
          if (r.requests === 0) continue; // no data: a NaN point, removed
          errors.push(r.errors / r.requests);
          latency.push(r.latency.sum / r.latency.count);
        }
        return { errors, latency };
      };
      const c = series(ctx.versions.candidate);
      const b = series(ctx.versions.baseline);
      // 2. Classify each metric; 3. score the run.
      const high: string[] = [];
      for (const metric of ["errors", "latency"] as const) {
        if (c[metric].length === 0 || b[metric].length === 0) continue; // Nodata is not High
        const mw = mannWhitneyU(c[metric], b[metric], {
          alternative: "greater",
          alpha: KAYENTA.alpha,
        });
        const ratio = mean(c[metric]) / mean(b[metric]);
        if (mw.pValue < KAYENTA.alpha && ratio > 1 + KAYENTA.tolerance) high.push(metric);
      }
      const score = (100 * (2 - high.length)) / 2;
      const final = elapsed >= KAYENTA.lifetimeMs;
      if (score < (final ? KAYENTA.pass : KAYENTA.marginal)) {
        return {
          weights: w,
          ended: {
            outcome: "rolledBack",
            reason: `score ${score}: ${high.join(", ")} High`,
            failedMetrics: high,
          },
        };
      }
      if (final) return { weights: w, ended: { outcome: "completed", reason: `score ${score}` } };
      return { weights: w };
    },
  };
}

function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

// ---------------------------------------------------------------------------------------
// Jobs: one (scenario, seed range) per job, spread over worker processes.

interface Job {
  scenario: Scenario["id"];
  /** "compare": Turnout and the two reference policies; "tune": the Turnout settings study. */
  kind: "compare" | "tune";
  fromSeed: number;
  toSeed: number;
}

/** One run of one policy, compacted for the trip back from a worker. */
interface Row {
  seed: number;
  outcome: SimulationResult["outcome"];
  rollbackAtMs: number | null;
  exposedRequests: number;
  exposedErrors: number;
  failedMetrics: string[];
}

function turnoutFactory(settings: TurnoutSettings): PolicyFactory {
  return turnoutPolicy({
    spec: TURNOUT_SPEC,
    templates: { "canary-health": turnoutTemplate(settings) },
    recordVerdicts: false,
  });
}

/**
 * Every policy of the job runs on the same simulated traffic per seed (`simulatePolicies`):
 * they hold the canary at 10% until each decides, so each sees exactly the requests it would
 * see alone with that seed.
 */
async function runJob(job: Job): Promise<Record<string, Row[]>> {
  const scenario = SCENARIOS.find((s) => s.id === job.scenario)!;
  const policies: Record<string, PolicyFactory> =
    job.kind === "compare"
      ? { turnout: turnoutFactory(TURNOUT), flagger: flaggerPolicy, kayenta: kayentaPolicy }
      : Object.fromEntries(TUNING.map((t) => [t.id, turnoutFactory(t.settings)]));
  const rows: Record<string, Row[]> = {};
  for (const name of Object.keys(policies)) rows[name] = [];
  for (let seed = job.fromSeed; seed < job.toSeed; seed++) {
    const results = await simulatePolicies({
      seed,
      traffic: scenario.traffic,
      maxMs: MAX_MS,
      policies,
    });
    for (const [name, r] of Object.entries(results)) {
      rows[name]!.push({
        seed,
        outcome: r.outcome,
        rollbackAtMs: r.rollbackAtMs ?? null,
        exposedRequests: r.exposedRequests,
        exposedErrors: r.exposedErrors,
        failedMetrics: r.failedMetrics,
      });
    }
  }
  return rows;
}

// A worker is this script forked with --worker (worker threads would need the TypeScript
// loader registered inside each thread, which Node 20 does not do for a thread's entry file).
const IS_WORKER = process.argv.includes("--worker");
if (IS_WORKER) {
  process.on("message", async ({ job }: { job: Job | null }) => {
    if (job === null) {
      process.disconnect();
      return;
    }
    process.send!({ rows: await runJob(job) });
  });
  process.send!({ ready: true });
}

/** Runs the jobs on `workers` processes (largest first, so the pool ends together). */
async function runJobs(
  jobs: Job[],
  workers: number,
  progress: (done: number, total: number) => void,
): Promise<Map<Job, Record<string, Row[]>>> {
  const out = new Map<Job, Record<string, Row[]>>();
  const queue = jobs.slice();
  let done = 0;
  const script = fileURLToPath(import.meta.url);
  const pool = Array.from({ length: Math.max(1, Math.min(workers, jobs.length)) }, (_, id) => {
    return new Promise<void>((resolve, reject) => {
      const child = fork(script, ["--worker"], {
        execArgv: ["--import", import.meta.resolve("tsx")],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      let current: Job | undefined;
      const next = () => {
        current = queue.shift();
        child.send({ job: current ?? null });
        if (!current) resolve();
      };
      child.on("message", (msg: { ready?: boolean; rows?: Record<string, Row[]> }) => {
        if (msg.rows && current) {
          out.set(current, msg.rows);
          progress(++done, jobs.length);
        }
        next();
      });
      child.on("error", reject);
      child.on("exit", (code) => {
        if (current) reject(new Error(`worker ${id} exited (${code}) during a job`));
      });
    });
  });
  await Promise.all(pool);
  return out;
}

function splitJobs(kind: Job["kind"], from: number, count: number, chunk: number): Job[] {
  const jobs: Job[] = [];
  for (const scenario of SCENARIOS) {
    for (let s = from; s < from + count; s += chunk) {
      jobs.push({
        scenario: scenario.id,
        kind,
        fromSeed: s,
        toSeed: Math.min(from + count, s + chunk),
      });
    }
  }
  // The A/A jobs are the long ones (every policy runs the full 10 minutes): first, so that the
  // workers end together.
  return jobs.sort((a, b) => Number(b.scenario === "aa") - Number(a.scenario === "aa"));
}

/** Every row of `policy` in `scenario`, in seed order. */
function collect(
  jobs: Job[],
  out: Map<Job, Record<string, Row[]>>,
  scenario: Scenario["id"],
  policy: string,
): Row[] {
  return jobs
    .filter((j) => j.scenario === scenario)
    .sort((a, b) => a.fromSeed - b.fromSeed)
    .flatMap((j) => out.get(j)![policy]!);
}

// ---------------------------------------------------------------------------------------
// Figures

interface Distribution {
  median: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

interface Figures {
  runs: number;
  outcomes: Record<SimulationResult["outcome"], number>;
  rolledBack: number;
  /** rolledBack / runs with a 95% Wilson interval. */
  rollbackRate: { rate: number; ci95: [number, number] };
  /** Seconds from the canary's first request to the rollback, over rolled-back runs. */
  timeToRollbackS: Distribution;
  /** Share of all runs rolled back within the goal (30 s). */
  withinGoal: number;
  /** Requests (and 5xx) the canary served before the decision, over all runs. */
  exposedRequests: Distribution;
  exposedErrors: Distribution;
  /** Rollbacks by the metric that failed (a run may name several). */
  failedMetrics: Record<string, number>;
}

/** Nearest-rank percentile of sorted values: the value at rank ceil(q·n). */
function percentile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function distribution(values: number[]): Distribution {
  const s = values.slice().sort((a, b) => a - b);
  return {
    median: percentile(s, 0.5),
    p90: percentile(s, 0.9),
    p99: percentile(s, 0.99),
    max: s.length > 0 ? s[s.length - 1]! : null,
  };
}

/** Wilson score interval, 95%. */
function wilson(k: number, n: number): [number, number] {
  if (n === 0) return [0, 1];
  const z = 1.959964;
  const p = k / n;
  const d = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / d;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

function figures(rows: Row[]): Figures {
  const outcomes = { completed: 0, rolledBack: 0, paused: 0, timeout: 0 };
  const times: number[] = [];
  const failedMetrics: Record<string, number> = {};
  let withinGoal = 0;
  for (const r of rows) {
    outcomes[r.outcome]++;
    if (r.outcome === "rolledBack" && r.rollbackAtMs !== null) {
      times.push(r.rollbackAtMs / 1000);
      if (r.rollbackAtMs <= GOAL_ROLLBACK_S * 1000) withinGoal++;
      for (const m of r.failedMetrics) failedMetrics[m] = (failedMetrics[m] ?? 0) + 1;
    }
  }
  return {
    runs: rows.length,
    outcomes,
    rolledBack: outcomes.rolledBack,
    rollbackRate: {
      rate: outcomes.rolledBack / rows.length,
      ci95: wilson(outcomes.rolledBack, rows.length),
    },
    timeToRollbackS: distribution(times),
    withinGoal: withinGoal / rows.length,
    exposedRequests: distribution(rows.map((r) => r.exposedRequests)),
    exposedErrors: distribution(rows.map((r) => r.exposedErrors)),
    failedMetrics,
  };
}

interface Goal {
  policy: PolicyId;
  label: string;
  rollback: { met: boolean; measured: string };
  falseRollbacks: { met: boolean; measured: string };
}

function goals(results: Record<string, Record<string, Figures>>): Goal[] {
  return (Object.keys(POLICY_LABELS) as PolicyId[]).map((p) => {
    const bad = SCENARIOS.filter((s) => s.bad).map((s) => ({ s, f: results[s.id]![p]! }));
    const worst = Math.min(...bad.map((b) => b.f.withinGoal));
    const aa = results.aa![p]!;
    const rate = aa.rollbackRate;
    return {
      policy: p,
      label: POLICY_LABELS[p],
      rollback: {
        met: worst >= 0.99,
        measured: bad
          .map(
            ({ s, f }) =>
              `${s.id}: ${pct(f.withinGoal)} within ${GOAL_ROLLBACK_S} s (median ${secs(f.timeToRollbackS.median)}, p99 ${secs(f.timeToRollbackS.p99)})`,
          )
          .join("; "),
      },
      falseRollbacks: {
        met: rate.rate <= GOAL_FALSE_ROLLBACK,
        measured: `${pct(rate.rate)} (${aa.rolledBack}/${aa.runs}; 95% CI ${pct(rate.ci95[0])}–${pct(rate.ci95[1])})`,
      },
    };
  });
}

// ---------------------------------------------------------------------------------------
// Rendering

const pct = (x: number | null) => (x === null ? "–" : `${(100 * x).toFixed(1)}%`);
const secs = (x: number | null) => (x === null ? "–" : `${x.toFixed(0)} s`);
const int = (x: number | null) => (x === null ? "–" : Math.round(x).toLocaleString("en-US"));

function markdownTable(rows: string[][], align: ("l" | "r")[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(3, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    `| ${r.map((c, i) => (align[i] === "r" ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" | ")} |`;
  const sep = `| ${widths.map((w, i) => (align[i] === "r" ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`;
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join("\n");
}

function badTable(results: Record<string, Record<string, Figures>>): string {
  const rows = [
    [
      "scenario",
      "policy",
      "rolled back",
      "time to rollback: median",
      "p90",
      "p99",
      "max",
      `within ${GOAL_ROLLBACK_S} s`,
      "canary requests: median",
      "p90",
      "canary 5xx: median",
      "p90",
    ],
  ];
  for (const s of SCENARIOS.filter((x) => x.bad)) {
    for (const p of Object.keys(POLICY_LABELS) as PolicyId[]) {
      const f = results[s.id]![p]!;
      rows.push([
        s.title,
        POLICY_LABELS[p],
        `${pct(f.rollbackRate.rate)} (${f.rolledBack}/${f.runs})`,
        secs(f.timeToRollbackS.median),
        secs(f.timeToRollbackS.p90),
        secs(f.timeToRollbackS.p99),
        secs(f.timeToRollbackS.max),
        pct(f.withinGoal),
        int(f.exposedRequests.median),
        int(f.exposedRequests.p90),
        int(f.exposedErrors.median),
        int(f.exposedErrors.p90),
      ]);
    }
  }
  return markdownTable(rows, ["l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "r"]);
}

function aaTable(results: Record<string, Record<string, Figures>>): string {
  const rows = [["policy", "false rollbacks", "95% CI", "completed", "paused", "by metric"]];
  for (const p of Object.keys(POLICY_LABELS) as PolicyId[]) {
    const f = results.aa![p]!;
    rows.push([
      POLICY_LABELS[p],
      `${pct(f.rollbackRate.rate)} (${f.rolledBack}/${f.runs})`,
      `${pct(f.rollbackRate.ci95[0])}–${pct(f.rollbackRate.ci95[1])}`,
      String(f.outcomes.completed),
      String(f.outcomes.paused),
      Object.entries(f.failedMetrics)
        .map(([m, n]) => `${m} ${n}`)
        .join(", ") || "–",
    ]);
  }
  return markdownTable(rows, ["l", "r", "r", "r", "r", "l"]);
}

function goalsTable(gs: Goal[]): string {
  const rows = [
    [
      "policy",
      `rollback within ${GOAL_ROLLBACK_S} s (99% of bad canaries)`,
      "",
      "false rollbacks ≤ 1%",
      "",
    ],
  ];
  for (const g of gs) {
    rows.push([
      g.label,
      g.rollback.measured,
      g.rollback.met ? "met" : "**not met**",
      g.falseRollbacks.measured,
      g.falseRollbacks.met ? "met" : "**not met**",
    ]);
  }
  return markdownTable(rows, ["l", "l", "l", "l", "l"]);
}

function byMetric(f: Figures): string {
  const parts = Object.entries(f.failedMetrics).map(([m, n]) => `${m} ${n}`);
  return parts.length > 0 ? `: ${parts.join(", ")}` : "";
}

function tuningTable(
  results: Record<string, Record<string, Figures>>,
  seeds: { from: number; count: number },
): string {
  const rows = [
    [
      "Turnout settings",
      "errors: median / p90 / p99 to rollback",
      "latency: median / p90 / p99",
      "A/A false rollbacks",
    ],
  ];
  for (const t of TUNING) {
    const e = results.errors![t.id]!;
    const l = results.latency![t.id]!;
    const a = results.aa![t.id]!;
    rows.push([
      t.label,
      `${secs(e.timeToRollbackS.median)} / ${secs(e.timeToRollbackS.p90)} / ${secs(e.timeToRollbackS.p99)} (${pct(e.rollbackRate.rate)} rolled back)`,
      `${secs(l.timeToRollbackS.median)} / ${secs(l.timeToRollbackS.p90)} / ${secs(l.timeToRollbackS.p99)} (${pct(l.rollbackRate.rate)})`,
      `${pct(a.rollbackRate.rate)} (${a.rolledBack}/${a.runs}${byMetric(a)}; paused ${a.outcomes.paused})`,
    ]);
  }
  return `Seeds ${seeds.from.toLocaleString("en-US")} to ${(seeds.from + seeds.count - 1).toLocaleString("en-US")} (${seeds.count} per scenario), not the reported ones.\n\n${markdownTable(rows, ["l", "l", "l", "l"])}`;
}

// ---------------------------------------------------------------------------------------
// Main

function machineInfo() {
  let cpuModel = cpus()[0]?.model ?? "unknown";
  try {
    cpuModel =
      /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpuModel;
  } catch {
    // not Linux: os.cpus() it is
  }
  return {
    cpuModel: cpuModel.trim(),
    cores: availableParallelism(),
    os: `${process.platform} ${release()}`,
    node: process.version,
  };
}

function gitRevision(): string | null {
  const r = spawnSync("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"], { encoding: "utf8" });
  if (r.status !== 0) return null;
  const dirty = spawnSync("git", ["-C", ROOT, "status", "--porcelain", "--", "src", "bench"], {
    encoding: "utf8",
  }).stdout.trim();
  return `${r.stdout.trim()}${dirty === "" ? "" : " + uncommitted changes"}`;
}

function parseArgs(argv: string[]) {
  const opts = {
    seeds: 1000,
    workers: availableParallelism(),
    write: true,
    tune: false,
    tuneSeeds: 300,
    /** Seeds for the Mann-Whitney looks study; 0: not run. */
    mwLooks: 0,
    /** A/A rollouts for the simulator speed figure; 0: not run. */
    speed: 0,
    bounds: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v <= 0) throw new Error(`${a} needs a positive integer`);
      return v;
    };
    if (a === "--seeds") opts.seeds = value();
    else if (a === "--workers") opts.workers = value();
    else if (a === "--tune-seeds") opts.tuneSeeds = value();
    else if (a === "--no-write") opts.write = false;
    else if (a === "--tune") opts.tune = true;
    else if (a === "--mw-looks") opts.mwLooks = value();
    else if (a === "--speed") opts.speed = value();
    else if (a === "--bounds") opts.bounds = true;
    else if (a === "--worker") continue;
    else throw new Error(`unknown option ${a} (see the comment at the top of bench/decisions.ts)`);
  }
  return opts;
}

function settingsRecord() {
  return {
    traffic: {
      rps: RPS,
      canaryWeight: CANARY_WEIGHT,
      horizonMinutes: HORIZON_MS / 60_000,
      latency: `log-normal, median ${BASE_LATENCY.medianMs} ms, sigma ${BASE_LATENCY.sigma}; the slow canary's median ×1.3`,
    },
    turnout: {
      steps: TURNOUT_SPEC.strategy?.canary?.steps,
      backgroundAnalysis: { startingStep: 0 },
      template: turnoutTemplate(TURNOUT),
      tick: "reconcile when a measurement or deadline is due (1-s simulation step)",
    },
    flagger: FLAGGER,
    kayenta: KAYENTA,
    goals: {
      rollbackWithinSeconds: GOAL_ROLLBACK_S,
      of: "99% of bad canaries",
      falseRollbacksAtMost: GOAL_FALSE_ROLLBACK,
    },
    percentiles: "nearest rank",
    intervals: "Wilson score, 95%",
  };
}

/**
 * The Mann-Whitney judge under continuous looks, without the rollout around it: A/A latency
 * (the bench's log-normal, 100 requests/s, 10% to the canary) drawn into two sketches, the
 * binned test on the growing window every 10 s for 10 minutes (60 looks), at alpha 1%. Counts
 * the runs that would fail at ANY look: with the whole alpha at every look (the fixed-sample
 * test peeked at) and with alpha split over the looks (`mannWhitneyLookAlpha`, unbounded: the
 * k-th look gets alpha/(k(k+1))); each without and with the bench's +20% allowance on the shift.
 */
function mannWhitneyLooksStudy(seeds: number) {
  const alpha = 0.01;
  const looks = 60;
  const counts = { whole: 0, split: 0, wholeAllowance: 0, splitAllowance: 0 };
  for (let seed = 1; seed <= seeds; seed++) {
    const rng = simulationRng(TUNING_SEED_START + 1_000_000 + seed);
    const c = new Sketch();
    const b = new Sketch();
    const hit = { whole: false, split: false, wholeAllowance: false, splitAllowance: false };
    for (let k = 1; k <= looks; k++) {
      for (let s = 0; s < 10; s++) {
        const n = binomialSample(rng, RPS, CANARY_WEIGHT / 100);
        for (let i = 0; i < n; i++) c.add(baseLatency(rng));
        for (let i = n; i < RPS; i++) b.add(baseLatency(rng));
      }
      const m = mannWhitneyBinned(c.bins(), b.bins(), { alternative: "greater", alpha });
      const beyond = (m.effect.relativeShift ?? 0) > TURNOUT.latency.maxRelativeIncrease;
      const share = mannWhitneyLookAlpha(alpha, k, null);
      if (m.pValue < alpha) hit.whole = true;
      if (m.pValue < share) hit.split = true;
      if (m.pValue < alpha && beyond) hit.wholeAllowance = true;
      if (m.pValue < share && beyond) hit.splitAllowance = true;
    }
    for (const key of Object.keys(counts) as (keyof typeof counts)[]) if (hit[key]) counts[key]++;
  }
  const rate = (n: number) => `${((100 * n) / seeds).toFixed(1)}% (${n}/${seeds})`;
  return [
    `Mann-Whitney A/A under continuous looks: ${seeds} runs × ${looks} looks (every 10 s for 10 minutes), alpha ${alpha}; runs failed at any look:`,
    "",
    "| alpha at each look | no allowance | +20% allowance on the shift |",
    "| --- | ---: | ---: |",
    `| whole alpha (fixed-sample test, peeked) | ${rate(counts.whole)} | ${rate(counts.wholeAllowance)} |`,
    `| split: alpha/(k(k+1)) at the k-th look | ${rate(counts.split)} | ${rate(counts.splitAllowance)} |`,
  ].join("\n");
}

/**
 * The bounds in bench/README.md ("How fast could any test be?"), computed exactly: (1) the most
 * powerful level-alpha test of a canary rate p0 against 5% on n requests with the baseline's
 * rate known (reject when X ≥ c, X ~ Binomial(n, p)); (2) the oracle SPRT of 5% against p0,
 * looking after every request, stopping when the likelihood ratio reaches 1/alpha: the chance it
 * has stopped by n requests, summed over the binomial paths (dynamic programming on the error
 * count).
 */
function detectionBounds(): string {
  const alpha = 0.01;
  const bad = 0.05;
  const lines: string[] = [];
  const binomTail = (n: number, p: number, c: number) => {
    // P(X >= c) by summing the pmf in log space.
    let sum = 0;
    for (let x = c; x <= n; x++) {
      let logC = 0;
      for (let i = 1; i <= x; i++) logC += Math.log((n - x + i) / i);
      sum += Math.exp(logC + x * Math.log(p) + (n - x) * Math.log(1 - p));
    }
    return sum;
  };
  for (const p0 of [0.01, 0.02]) {
    for (const n of [100, 200, 300, 400]) {
      let c = 0;
      while (binomTail(n, p0, c) > alpha) c++;
      lines.push(
        `most powerful fixed test, null ${p0 * 100}%, ${n} requests: reject when X >= ${c} (size ${(100 * binomTail(n, p0, c)).toFixed(2)}%), power against 5%: ${(100 * binomTail(n, bad, c)).toFixed(1)}%`,
      );
    }
    const up = Math.log(bad / p0);
    const down = Math.log((1 - bad) / (1 - p0));
    const threshold = Math.log(1 / alpha);
    let alive = new Float64Array([1]); // alive[x]: not yet stopped, x errors so far
    let stopped = 0;
    const at: Record<number, number> = {};
    let n99: number | null = null;
    for (let n = 1; n <= 600; n++) {
      const next = new Float64Array(n + 1);
      for (let x = 0; x < alive.length; x++) {
        const pr = alive[x]!;
        if (pr === 0) continue;
        for (const [dx, q] of [
          [1, bad],
          [0, 1 - bad],
        ] as const) {
          const xx = x + dx;
          if (xx * up + (n - xx) * down >= threshold) stopped += pr * q;
          else next[xx]! += pr * q;
        }
      }
      alive = next;
      if ([100, 200, 300, 600].includes(n)) at[n] = stopped;
      if (n99 === null && stopped >= 0.99) n99 = n;
    }
    const kl = bad * Math.log(bad / p0) + (1 - bad) * Math.log((1 - bad) / (1 - p0));
    lines.push(
      `oracle SPRT, 5% against ${p0 * 100}%: KL ${kl.toFixed(4)} nats/request, Wald's mean ${Math.round(threshold / kl)} requests; stopped by 100/200/300/600 requests: ${[100, 200, 300, 600].map((n) => `${(100 * at[n]!).toFixed(1)}%`).join(" / ")}; 99% by ${n99 ?? "more than 600"} requests`,
    );
  }
  return lines.join("\n");
}

/** Simulated A/A rollouts per second of Turnout alone, in this process (the figure in bench/README.md). */
async function simulatorSpeed(rollouts: number) {
  const aa = SCENARIOS.find((s) => s.id === "aa")!;
  const factory = turnoutFactory(TURNOUT);
  // One rollout to warm the JIT up, not counted.
  await simulatePolicies({ seed: 0, traffic: aa.traffic, maxMs: MAX_MS, policies: { t: factory } });
  const t0 = performance.now();
  for (let seed = 1; seed <= rollouts; seed++) {
    await simulatePolicies({ seed, traffic: aa.traffic, maxMs: MAX_MS, policies: { t: factory } });
  }
  const ms = (performance.now() - t0) / rollouts;
  return `simulator: ${rollouts} Turnout A/A rollouts (10 simulated minutes each, 100 requests/s, a look per metric every 10 s) in one process: ${ms.toFixed(1)} ms each, ${(1000 / ms).toFixed(1)} rollouts/s`;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = performance.now();
  if (opts.mwLooks > 0 || opts.speed > 0 || opts.bounds) {
    if (opts.bounds) console.log(detectionBounds());
    if (opts.mwLooks > 0) console.log(mannWhitneyLooksStudy(opts.mwLooks));
    if (opts.speed > 0) console.log(await simulatorSpeed(opts.speed));
    return;
  }
  const progress = (done: number, total: number) => {
    if (process.stderr.isTTY) process.stderr.write(`\r${done}/${total} jobs`);
    if (done === total && process.stderr.isTTY) process.stderr.write("\n");
  };

  if (opts.tune) {
    const from = TUNING_SEED_START;
    const jobs = splitJobs("tune", from, opts.tuneSeeds, 25);
    console.log(
      `settings study: ${TUNING.length} Turnout settings × ${SCENARIOS.length} scenarios × ${opts.tuneSeeds} seeds (from ${from}) on ${opts.workers} workers`,
    );
    const out = await runJobs(jobs, opts.workers, progress);
    const results: Record<string, Record<string, Figures>> = {};
    for (const s of SCENARIOS) {
      results[s.id] = {};
      for (const t of TUNING) results[s.id]![t.id] = figures(collect(jobs, out, s.id, t.id));
    }
    console.log(tuningTable(results, { from, count: opts.tuneSeeds }));
    console.log(`took ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return;
  }

  const jobs = splitJobs("compare", 1, opts.seeds, 50);
  console.log(
    `decisions: ${SCENARIOS.length} scenarios × 3 policies × ${opts.seeds} seeds on ${opts.workers} workers`,
  );
  const out = await runJobs(jobs, opts.workers, progress);
  const results: Record<string, Record<string, Figures>> = {};
  for (const s of SCENARIOS) {
    results[s.id] = {};
    for (const p of Object.keys(POLICY_LABELS) as PolicyId[]) {
      results[s.id]![p] = figures(collect(jobs, out, s.id, p));
    }
  }
  const gs = goals(results);
  const tookS = (performance.now() - started) / 1000;
  const machine = machineInfo();
  const date = new Date().toISOString();
  const git = gitRevision();

  const text = [
    "Bad canaries (rolled back = detected; times from the canary's first request):",
    badTable(results),
    "",
    "A/A canaries (any rollback is false):",
    aaTable(results),
    "",
    "Goals:",
    goalsTable(gs),
  ].join("\n");
  console.log(`\n${text}\n\ntook ${tookS.toFixed(1)} s`);

  if (!opts.write) return;
  const json = {
    benchmark: "decisions",
    date,
    git,
    machine,
    durationSeconds: Math.round(tookS * 10) / 10,
    workers: opts.workers,
    seeds: { from: 1, to: opts.seeds, perScenario: opts.seeds, tuningFrom: TUNING_SEED_START },
    scenarios: SCENARIOS.map((s) => ({
      id: s.id,
      title: s.title,
      bad: s.bad,
      describe: s.describe,
    })),
    policies: POLICY_LABELS,
    settings: settingsRecord(),
    results,
    goals: gs,
  };
  mkdirSync(dirname(RESULTS_JSON), { recursive: true });
  writeFileSync(RESULTS_JSON, `${JSON.stringify(json, null, 2)}\n`);
  const section = [
    README_START,
    `Measured ${date} on ${machine.cpuModel} (${machine.cores} cores, ${machine.os}), Node ${machine.node}; Turnout at git ${git ?? "unknown"}. ${opts.seeds.toLocaleString("en-US")} seeds per scenario (seeds 1 to ${opts.seeds.toLocaleString("en-US")}, the same for every policy), ${RPS} requests/s in all, the canary at ${CANARY_WEIGHT}%. The run took ${tookS.toFixed(0)} s on ${opts.workers} worker processes.`,
    "",
    "Bad canaries (rolled back = detected; times from the canary's first request; canary requests and 5xx until the rollback, or until promotion at 10 minutes):",
    "",
    badTable(results),
    "",
    "A/A canaries, 10 minutes each (any rollback is false):",
    "",
    aaTable(results),
    "",
    goalsTable(gs),
    README_END,
  ].join("\n");
  writeReadme(section);
  formatOutputs([RESULTS_JSON, README]);
  console.log(`wrote ${RESULTS_JSON} and the results in ${README}`);
}

/** The repository's formatter, so that what this writes passes `npm run lint`. */
function formatOutputs(files: string[]): void {
  const biome = join(ROOT, "node_modules", ".bin", "biome");
  const r = spawnSync(biome, ["format", "--write", ...files], { encoding: "utf8" });
  if (r.status !== 0) {
    console.warn(`note: could not format ${files.join(", ")} with biome; run npm run format`);
  }
}

function writeReadme(section: string): void {
  const text = existsSync(README) ? readFileSync(README, "utf8") : "# Benchmarks\n";
  const start = text.indexOf(README_START);
  const end = text.indexOf(README_END);
  const next =
    start >= 0 && end > start
      ? text.slice(0, start) + section + text.slice(end + README_END.length)
      : `${text.trimEnd()}\n\n## Decisions: \`npm run bench:decisions\`\n\n### Results\n\n${section}\n`;
  writeFileSync(README, next);
}

if (!IS_WORKER) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

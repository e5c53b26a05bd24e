/**
 * The strategy lab: every strategy against every scenario over many seeds (`run.ts` for one),
 * summarised per strategy × scenario as medians and 90th percentiles.
 *
 * Statistics: nearest-rank quantiles over the seeds (the median of 200 is the 100th value in
 * order), so every figure is one a run actually measured. A null (never detected, never
 * recovered, never at 100%) ranks above every number, as "later than anything seen": a median
 * is null when more than half the runs were null.
 *
 * Seeds: the runs use seeds `seed .. seed + seeds - 1`, the same for every strategy and
 * scenario; the report does not depend on how the runs were spread over processes.
 */
import {
  type LabConfig,
  SCENARIOS,
  type ScenarioName,
  STRATEGIES,
  type StrategyName,
} from "./config.js";
import { type RunMetrics, type RunResult, runGoodAndWrong, runOne, sharesGoodRun } from "./run.js";

export const METRICS = [
  "usersExposed",
  "failedRequests",
  "wrongAnswers",
  "detectSeconds",
  "recoverSeconds",
  "extraInstanceSeconds",
  "manualActions",
  "totalSeconds",
] as const satisfies readonly (keyof RunMetrics)[];

export type LabRow = { strategy: StrategyName; scenario: ScenarioName } & RunMetrics;

export interface LabReport {
  seeds: number;
  seed: number;
  /** Medians over the seeds, per strategy × scenario, strategies in the order asked. */
  results: LabRow[];
  /** 90th percentiles, same order. */
  p90: LabRow[];
  /** How the runs ended, per strategy × scenario (outcome -> runs). */
  outcomes: { strategy: StrategyName; scenario: ScenarioName; counts: Record<string, number> }[];
  /** Medians of what the rollback took, per strategy × scenario (see `RunResult`). */
  rollback: {
    strategy: StrategyName;
    scenario: ScenarioName;
    restoreSeconds: number | null;
    manualAfterDetect: number | null;
  }[];
}

export interface LabOptions {
  seeds: number;
  seed: number;
  strategies?: readonly StrategyName[];
  scenarios?: readonly ScenarioName[];
  /** Runs the jobs; default in this process (the CLI passes a pool of worker processes). */
  execute?: (jobs: LabJob[], onDone: (job: LabJob, rows: RunResult[]) => void) => Promise<void>;
  /** Called after each job with the runs done so far and the total. */
  onProgress?: (done: number, total: number) => void;
  /** What to run; default the default lab's setup (`--live` simulates its own). */
  config?: LabConfig;
}

/**
 * A slice of the lab: one strategy × scenario over a range of seeds. With `alsoWrong`, a good
 * job also yields the strategy's `wrongPredictions` runs, from the same simulations
 * (`runGoodAndWrong`): a third of the default lab's work saved.
 */
export interface LabJob {
  strategy: StrategyName;
  scenario: ScenarioName;
  fromSeed: number;
  toSeed: number;
  alsoWrong?: boolean;
  config?: LabConfig;
}

/** Runs one job (in a worker or here): its runs, each naming its own scenario. */
export async function runJob(job: LabJob): Promise<RunResult[]> {
  const out: RunResult[] = [];
  const opts = job.config ? { config: job.config } : {};
  for (let s = job.fromSeed; s < job.toSeed; s++) {
    const runs = job.alsoWrong
      ? await runGoodAndWrong(job.strategy, s, opts)
      : [await runOne(job.strategy, job.scenario, s, opts)];
    for (const { events: _e, ...r } of runs) out.push(r);
  }
  return out;
}

/** The lab's jobs, slowest kinds first so that a pool of workers ends together. */
export function labJobs(opts: LabOptions, chunk = 20): LabJob[] {
  const strategies = opts.strategies ?? STRATEGIES;
  const scenarios = opts.scenarios ?? SCENARIOS;
  const jobs: LabJob[] = [];
  const twins = scenarios.includes("good") && scenarios.includes("wrongPredictions");
  for (const strategy of strategies) {
    const alsoWrong = twins && sharesGoodRun(strategy);
    for (const scenario of scenarios) {
      if (alsoWrong && scenario === "wrongPredictions") continue;
      for (let s = opts.seed; s < opts.seed + opts.seeds; s += chunk) {
        jobs.push({
          strategy,
          scenario,
          fromSeed: s,
          toSeed: Math.min(opts.seed + opts.seeds, s + chunk),
          ...(alsoWrong && scenario === "good" ? { alsoWrong } : {}),
          ...(opts.config ? { config: opts.config } : {}),
        });
      }
    }
  }
  // The good and wrong-answer runs go on longest (to 100%, or to the horizon).
  const cost = (j: LabJob) =>
    j.alsoWrong ? 0 : j.scenario === "good" || j.scenario === "wrongPredictions" ? 1 : 2;
  return jobs.sort((a, b) => cost(a) - cost(b));
}

export async function runLab(opts: LabOptions): Promise<LabReport> {
  if (!(Number.isSafeInteger(opts.seeds) && opts.seeds >= 1)) {
    throw new RangeError(`seeds must be a whole number >= 1, got ${opts.seeds}`);
  }
  if (!Number.isSafeInteger(opts.seed) || opts.seed < 0) {
    throw new RangeError(`seed must be a whole number >= 0, got ${opts.seed}`);
  }
  const strategies = opts.strategies ?? STRATEGIES;
  const scenarios = opts.scenarios ?? SCENARIOS;
  const jobs = labJobs(opts);
  const total = strategies.length * scenarios.length * opts.seeds;
  const runs = new Map<string, RunResult[]>();
  let done = 0;
  const onDone = (_job: LabJob, rows: RunResult[]) => {
    for (const row of rows) {
      const key = `${row.strategy}/${row.scenario}`;
      const list = runs.get(key) ?? [];
      list.push(row);
      runs.set(key, list);
    }
    done += rows.length;
    opts.onProgress?.(done, total);
  };
  const execute =
    opts.execute ??
    (async (js: LabJob[], cb: typeof onDone) => {
      for (const j of js) cb(j, await runJob(j));
    });
  await execute(jobs, onDone);
  const results: LabRow[] = [];
  const p90: LabRow[] = [];
  const outcomes: LabReport["outcomes"] = [];
  const rollback: LabReport["rollback"] = [];
  for (const strategy of strategies) {
    for (const scenario of scenarios) {
      const list = (runs.get(`${strategy}/${scenario}`) ?? []).sort((a, b) => a.seed - b.seed);
      results.push(summarize(strategy, scenario, list, 0.5));
      p90.push(summarize(strategy, scenario, list, 0.9));
      const counts: Record<string, number> = {};
      for (const r of list) counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
      outcomes.push({ strategy, scenario, counts });
      rollback.push({
        strategy,
        scenario,
        restoreSeconds: quantile(
          list.map((r) => r.restoreSeconds),
          0.5,
        ),
        manualAfterDetect: quantile(
          list.map((r) => r.manualAfterDetect),
          0.5,
        ),
      });
    }
  }
  return { seeds: opts.seeds, seed: opts.seed, results, p90, outcomes, rollback };
}

/** Nearest-rank quantile `q` of each metric over `runs` (nulls rank last). */
export function summarize(
  strategy: StrategyName,
  scenario: ScenarioName,
  runs: readonly RunMetrics[],
  q: number,
): LabRow {
  const row: Record<string, unknown> = { strategy, scenario };
  for (const m of METRICS)
    row[m] = quantile(
      runs.map((r) => r[m]),
      q,
    );
  return row as unknown as LabRow;
}

export function quantile(values: readonly (number | null)[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = values
    .map((v) => (v === null ? Number.POSITIVE_INFINITY : v))
    .sort((a, b) => a - b);
  const v = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
  return Number.isFinite(v) ? v : null;
}

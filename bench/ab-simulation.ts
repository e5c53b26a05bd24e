/**
 * `npm run bench:ab`: why sequential is the default method of A/B tests. Seeded simulations
 * through the real analysis (`analyzeExperiment`, the function the `experiment` step decides
 * with), each run a stream of users arriving in batches and looked at after every batch:
 *
 *   1. A/A, conversion 10% in both arms: how often each method ever declares a winner or a
 *      loser (a false positive) under continuous monitoring: the sequential method (asymptotic
 *      confidence sequence), a fixed-horizon z-test looked at after every batch (peeking), and
 *      the same z-test looked at once at the end (its honest use);
 *   2. A/A, revenue per user (10% buy, amounts exponential with mean 50): the same for a
 *      heavy-tailed mean metric (Welch's t for the fixed horizon);
 *   3. A/B with a +15% relative conversion lift: how often and how early each detects it.
 *
 * Options: --runs N (1000), --batch N (200 users per look), --looks N (50), --alpha A (0.05),
 * --no-write. Seeds: run i (1..N) uses mulberry32(7919·i), +1 for revenue, +2 for the A/B scenario.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { analyzeExperiment } from "../src/core/experiment/analyze.js";
import type {
  ExperimentData,
  ExperimentSpec,
  MetricArmData,
} from "../src/core/experiment/types.js";
import { mulberry32, type Rng } from "../src/core/stats/random.js";

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const RUNS = opt("runs", 1000);
const BATCH = opt("batch", 200);
const LOOKS = opt("looks", 50);
const ALPHA = opt("alpha", 0.05);
const WRITE = !args.includes("--no-write");

const arms = [
  { name: "A", version: "v1", weight: 50 },
  { name: "B", version: "v2", weight: 50 },
];

type Kind = "conversion" | "revenue";

function spec(method: ExperimentSpec["method"], kind: Kind, minSamples: number): ExperimentSpec {
  return {
    split: 50,
    assignment: { header: "x-user" },
    metrics: [
      kind === "conversion"
        ? { name: "m", kind: "binomial", role: "goal", source: { event: "buy" } }
        : { name: "m", kind: "mean", role: "goal", source: { event: "revenue" } },
    ],
    method,
    alpha: ALPHA,
    minSamples,
    maxDuration: "1h",
    decision: "auto",
    correction: "holm",
    sequentialTuning: 5000,
    chanceToWin: 0.95,
  };
}

interface Arm {
  n: number;
  sum: number;
  sumSquares: number;
  converted: number;
}

/** One batch of users: each to A or B by a fair coin, converting with p, spending Exp(mean). */
function addBatch(rng: Rng, a: Arm, b: Arm, pA: number, pB: number, kind: Kind): void {
  for (let i = 0; i < BATCH; i++) {
    const arm = rng() < 0.5 ? a : b;
    const p = arm === a ? pA : pB;
    arm.n++;
    if (rng() < p) {
      arm.converted++;
      const v = kind === "conversion" ? 1 : -50 * Math.log(1 - rng());
      arm.sum += v;
      arm.sumSquares += v * v;
    }
  }
}

function dataOf(a: Arm, b: Arm): ExperimentData {
  const m = (x: Arm): MetricArmData => ({ kind: "sums", ...x });
  return {
    experiment: "sim",
    units: { A: a.n, B: b.n },
    metrics: { m: { A: m(a), B: m(b) } },
    readAt: 0,
  };
}

interface Outcome {
  /** Runs where the method ever declared a winner or a loser. */
  decided: number;
  /** Of those, how many declared B better. */
  better: number;
  /** Users (both arms) at the first decision, per deciding run. */
  usersAtDecision: number[];
  /** Runs blocked by the SRM check at some look. */
  srmBlocked: number;
}

function simulate(kind: Kind, pA: number, pB: number) {
  const methods = {
    sequential: { spec: spec("sequential", kind, 100), everyLook: true },
    fixedPeeked: { spec: spec("fixedHorizon", kind, 100), everyLook: true },
    fixedOnce: { spec: spec("fixedHorizon", kind, 100), everyLook: false },
  } as const;
  const out: Record<keyof typeof methods, Outcome> = {
    sequential: { decided: 0, better: 0, usersAtDecision: [], srmBlocked: 0 },
    fixedPeeked: { decided: 0, better: 0, usersAtDecision: [], srmBlocked: 0 },
    fixedOnce: { decided: 0, better: 0, usersAtDecision: [], srmBlocked: 0 },
  };
  for (let seed = 1; seed <= RUNS; seed++) {
    const rng = mulberry32(seed * 7919 + (kind === "revenue" ? 1 : 0) + (pB !== pA ? 2 : 0));
    const a: Arm = { n: 0, sum: 0, sumSquares: 0, converted: 0 };
    const b: Arm = { n: 0, sum: 0, sumSquares: 0, converted: 0 };
    const done = new Set<string>();
    const srm = new Set<string>();
    for (let look = 1; look <= LOOKS; look++) {
      addBatch(rng, a, b, pA, pB, kind);
      const d = dataOf(a, b);
      for (const [name, m] of Object.entries(methods) as [
        keyof typeof methods,
        (typeof methods)[keyof typeof methods],
      ][]) {
        if (done.has(name) || (!m.everyLook && look < LOOKS)) continue;
        const r = analyzeExperiment("sim", m.spec, arms, d);
        if (r.verdict === "srm") srm.add(name);
        if (r.verdict === "win" || r.verdict === "lose") {
          done.add(name);
          out[name].decided++;
          if (r.verdict === "win") out[name].better++;
          out[name].usersAtDecision.push(a.n + b.n);
        }
      }
    }
    for (const name of srm) out[name as keyof typeof methods].srmBlocked++;
  }
  return Object.fromEntries(
    Object.entries(out).map(([k, o]) => {
      const sorted = [...o.usersAtDecision].sort((x, y) => x - y);
      const rate = o.decided / RUNS;
      return [
        k,
        {
          decidedRate: rate,
          // Binomial standard error of the rate over RUNS runs.
          standardError: Math.sqrt((rate * (1 - rate)) / RUNS),
          betterRate: o.better / RUNS,
          medianUsersAtDecision: sorted.length ? sorted[Math.floor(sorted.length / 2)] : null,
          srmBlockedRuns: o.srmBlocked,
        },
      ];
    }),
  );
}

const started = process.hrtime.bigint();
const results = {
  runs: RUNS,
  batch: BATCH,
  looks: LOOKS,
  alpha: ALPHA,
  usersPerRun: BATCH * LOOKS,
  scenarios: {
    aaConversion: { pA: 0.1, pB: 0.1, ...simulate("conversion", 0.1, 0.1) },
    aaRevenue: { pA: 0.1, pB: 0.1, amountMean: 50, ...simulate("revenue", 0.1, 0.1) },
    abConversionLift15: { pA: 0.1, pB: 0.115, ...simulate("conversion", 0.1, 0.115) },
  },
  seconds: Number(process.hrtime.bigint() - started) / 1e9,
  node: process.version,
};

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
for (const [name, s] of Object.entries(results.scenarios)) {
  const rows = Object.entries(s).filter(([, v]) => typeof v === "object") as unknown as [
    string,
    { decidedRate: number; standardError: number; medianUsersAtDecision: number | null },
  ][];
  process.stdout.write(`${name}\n`);
  for (const [m, v] of rows)
    process.stdout.write(
      `  ${m.padEnd(12)} decided ${pct(v.decidedRate).padStart(6)} ± ${pct(v.standardError)}  median users at decision ${v.medianUsersAtDecision ?? "-"}\n`,
    );
}
process.stdout.write(
  `${RUNS} runs per scenario, ${LOOKS} looks of ${BATCH} users, ${results.seconds.toFixed(1)} s\n`,
);
if (WRITE) {
  const file = join(dirname(fileURLToPath(import.meta.url)), "results", "ab.json");
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`wrote ${file}\n`);
}

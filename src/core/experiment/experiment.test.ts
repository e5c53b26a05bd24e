// The experiment core: the analysis from aggregates (methods, SRM, correction, verdicts) and
// the `experiment` step driven through the rollout core with a fake clock.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "../clock.js";
import type { ServiceSpec, ServiceStatus } from "../model.js";
import { reconcile } from "../rollout.js";
import { buildRouteTable } from "../routes.js";
import { analyzeExperiment } from "./analyze.js";
import { controlArm, resolveArms } from "./spec.js";
import type { ExperimentData, ExperimentSpec, MetricArmData } from "./types.js";

const base: ExperimentSpec = {
  split: 50,
  assignment: { header: "x-user" },
  metrics: [{ name: "conversion", kind: "binomial", role: "goal", source: { event: "buy" } }],
  method: "sequential",
  alpha: 0.05,
  minSamples: 100,
  maxDuration: "1h",
  decision: "auto",
  correction: "holm",
  sequentialTuning: 5000,
  chanceToWin: 0.95,
};
const arms = [
  { name: "A", version: "v1", weight: 50 },
  { name: "B", version: "v2", weight: 50 },
];

function sums(n: number, converted: number, perUnit = 1): MetricArmData {
  return {
    kind: "sums",
    n,
    sum: converted * perUnit,
    sumSquares: converted * perUnit * perUnit,
    converted,
  };
}

function data(
  units: [number, number],
  metrics: Record<string, [MetricArmData, MetricArmData]>,
  experiment = "e",
): ExperimentData {
  return {
    experiment,
    units: { A: units[0], B: units[1] },
    metrics: Object.fromEntries(Object.entries(metrics).map(([k, [a, b]]) => [k, { A: a, B: b }])),
    readAt: 0,
  };
}

describe("analyzeExperiment", () => {
  it("a clear conversion lift wins under every method", () => {
    for (const method of ["sequential", "fixedHorizon", "bayesian"] as const) {
      const r = analyzeExperiment(
        "e",
        { ...base, method },
        arms,
        data([5000, 5000], { conversion: [sums(5000, 500), sums(5000, 650)] }),
      );
      assert.equal(r.verdict, "win", `${method}: ${r.reasons.join("; ")}`);
      const c = r.metrics[0]!.comparisons[0]!;
      assert.ok(Math.abs(c.difference - 0.03) < 1e-12);
      assert.ok(c.relative !== null && Math.abs(c.relative - 0.3) < 1e-12);
      assert.ok(c.interval && c.interval.lower > 0, method);
      if (method === "bayesian") assert.ok(c.chanceToWin! > 0.99);
      else assert.ok(c.pValue! < 0.05);
    }
  });

  it("the sequential interval is wider than the fixed-horizon one at the same data", () => {
    const d = data([3000, 3000], { conversion: [sums(3000, 300), sums(3000, 330)] });
    const seq = analyzeExperiment("e", base, arms, d).metrics[0]!.comparisons[0]!;
    const fix = analyzeExperiment("e", { ...base, method: "fixedHorizon" }, arms, d).metrics[0]!
      .comparisons[0]!;
    assert.ok(
      seq.interval!.upper - seq.interval!.lower > fix.interval!.upper - fix.interval!.lower,
    );
  });

  it("SRM blocks the decision even with a big effect", () => {
    const r = analyzeExperiment(
      "e",
      base,
      arms,
      data([5000, 4500], { conversion: [sums(5000, 500), sums(4500, 900)] }),
    );
    assert.equal(r.verdict, "srm");
    assert.ok(r.srm.mismatch && r.srm.pValue < 0.001);
    assert.match(r.reasons[0]!, /sample ratio mismatch/);
  });

  it("too few units: running; fixed horizon reached with no difference: inconclusive", () => {
    const few = data([50, 50], { conversion: [sums(50, 5), sums(50, 9)] });
    assert.equal(analyzeExperiment("e", base, arms, few).verdict, "running");
    const flat = data([2000, 2000], { conversion: [sums(2000, 200), sums(2000, 201)] });
    assert.equal(analyzeExperiment("e", base, arms, flat).verdict, "running");
    assert.equal(
      analyzeExperiment("e", { ...base, method: "fixedHorizon" }, arms, flat).verdict,
      "inconclusive",
    );
  });

  it("a guardrail that gets worse loses, whatever the goal does", () => {
    const spec: ExperimentSpec = {
      ...base,
      metrics: [
        ...base.metrics,
        { name: "errors", kind: "binomial", role: "guardrail", source: { builtin: "error_rate" } },
      ],
    };
    const r = analyzeExperiment(
      "e",
      spec,
      arms,
      data([5000, 5000], {
        conversion: [sums(5000, 500), sums(5000, 650)],
        errors: [
          { kind: "requests", requests: 20000, errors: 20, mean: 0, variance: 0 },
          { kind: "requests", requests: 20000, errors: 200, mean: 0, variance: 0 },
        ],
      }),
    );
    assert.equal(r.verdict, "lose");
    assert.match(r.reasons[0]!, /guardrail worse: errors/);
    assert.equal(r.metrics[1]!.better, "decrease");
  });

  it("Holm adjusts goal p-values across metrics; ratio metrics use the delta method", () => {
    const spec: ExperimentSpec = {
      ...base,
      method: "fixedHorizon",
      metrics: [
        ...base.metrics,
        {
          name: "rps",
          kind: "ratio",
          role: "goal",
          source: { event: "revenue" },
          denominator: { event: "session" },
        },
      ],
    };
    const ratio = (n: number, mx: number, my: number): MetricArmData => ({
      kind: "ratio",
      n,
      sumX: n * mx,
      sumX2: n * (mx * mx + 4),
      sumY: n * my,
      sumY2: n * (my * my + 1),
      sumXY: n * (mx * my + 0.5),
    });
    const r = analyzeExperiment(
      "e",
      spec,
      arms,
      data([4000, 4000], {
        conversion: [sums(4000, 400), sums(4000, 440)],
        rps: [ratio(4000, 10, 3), ratio(4000, 10.1, 3)],
      }),
    );
    const [conv, rps] = r.metrics;
    assert.equal(rps!.test, "ratio-delta-z");
    const p = [conv!.comparisons[0]!.pValue!, rps!.comparisons[0]!.pValue!];
    const adj = [conv!.comparisons[0]!.adjustedPValue!, rps!.comparisons[0]!.adjustedPValue!];
    const lo = p[0]! < p[1]! ? 0 : 1;
    assert.ok(Math.abs(adj[lo]! - Math.min(1, 2 * p[lo]!)) < 1e-12);
  });
});

describe("arms", () => {
  it("the control is the arm on stable, whatever the order", () => {
    assert.equal(controlArm({}), "A");
    assert.equal(
      controlArm({
        arms: [
          { name: "treatment", version: "canary", weight: 20 },
          { name: "control", version: "stable", weight: 80 },
        ],
      }),
      "control",
    );
    assert.deepEqual(resolveArms({ split: 20 }, "v1", "v2"), [
      { name: "A", version: "v1", weight: 80 },
      { name: "B", version: "v2", weight: 20 },
    ]);
  });
});

describe("CUPED in the analysis", () => {
  it("a correlated pre-period covariate narrows the interval and keeps the estimate unbiased", () => {
    // Per-unit metric y = x + noise with the same covariate distribution in both arms.
    const arm = (n: number, shift: number, seed: number) => {
      let s = seed;
      const rnd = () => {
        s = (s * 1103515245 + 12345) % 2147483648;
        return s / 2147483648;
      };
      let sum = 0;
      let sumSquares = 0;
      let sumX = 0;
      let sumX2 = 0;
      let sumXY = 0;
      for (let i = 0; i < n; i++) {
        const x = 10 + 6 * rnd();
        const y = x + shift + 2 * (rnd() - 0.5);
        sum += y;
        sumSquares += y * y;
        sumX += x;
        sumX2 += x * x;
        sumXY += x * y;
      }
      return {
        kind: "sums" as const,
        n,
        sum,
        sumSquares,
        converted: n,
        covariate: { sumX, sumX2, sumXY },
      };
    };
    const metric = {
      name: "spend",
      kind: "mean" as const,
      role: "goal" as const,
      source: { event: "spend" },
    };
    const d = data([2000, 2000], { spend: [arm(2000, 0, 1), arm(2000, 0.1, 2)] });
    const plain = analyzeExperiment("e", { ...base, metrics: [metric] }, arms, d).metrics[0]!;
    const adj = analyzeExperiment(
      "e",
      { ...base, metrics: [{ ...metric, covariate: { event: "spend" } }] },
      arms,
      d,
    ).metrics[0]!;
    const width = (m: typeof plain) =>
      m.comparisons[0]!.interval!.upper - m.comparisons[0]!.interval!.lower;
    assert.equal(adj.test, "asymptotic-cs+cuped");
    assert.ok(adj.cuped!.varianceReduction > 0.8, JSON.stringify(adj.cuped));
    assert.ok(width(adj) < width(plain) / 2);
    assert.ok(Math.abs(adj.comparisons[0]!.difference - 0.1) < 0.05);
    assert.equal(adj.comparisons[0]!.outcome, "better");
    assert.equal(plain.comparisons[0]!.outcome, "none");
  });
});

describe("experiment step", () => {
  function scenario(exp: Partial<ExperimentSpec> = {}) {
    const clock = new FakeClock();
    let status: ServiceStatus | null = null;
    let spec: ServiceSpec = {
      listen: { host: "127.0.0.1", port: 8080 },
      runtime: {
        static: { versions: { v1: { upstreams: ["http://a"] }, v2: { upstreams: ["http://b"] } } },
      },
      version: "v1",
      strategy: { abTest: { ...base, ...exp } },
    };
    const readiness: Record<string, { ready: number; failed: number }> = {
      v1: { ready: 1, failed: 0 },
      v2: { ready: 1, failed: 0 },
    };
    const tick = (experimentData?: ExperimentData, commands: never[] = []) => {
      const out = reconcile({
        now: clock.now(),
        service: { name: "shop", generation: 1, spec },
        status,
        commands,
        readiness,
        ...(experimentData ? { experimentData } : {}),
      });
      status = out.status;
      return out;
    };
    return {
      clock,
      tick,
      readiness,
      get status() {
        return status as ServiceStatus;
      },
      release(v: string) {
        spec = { ...spec, version: v };
      },
      get spec() {
        return spec;
      },
    };
  }

  it("starts with the split, puts the arms in the route table, and promotes a winner", () => {
    const s = scenario();
    s.tick();
    s.release("v2");
    const out = s.tick();
    assert.equal(s.status.canaryWeight, 50);
    assert.equal(s.status.experiment?.name, "shop-v2");
    assert.ok(out.events.some((e) => e.type === "ExperimentStarted"));
    const table = buildRouteTable({
      service: "shop",
      spec: s.spec,
      status: s.status,
      weights: out.weights,
      endpoints: () => ["http://x"],
      now: 0,
    });
    assert.deepEqual(table.experiment?.arms, [
      { name: "A", version: "v1", weight: 50 },
      { name: "B", version: "v2", weight: 50 },
    ]);
    assert.equal(table.experiment?.salt, "shop-v2");
    s.clock.advance(60_000);
    const d = data([5000, 5000], { conversion: [sums(5000, 500), sums(5000, 650)] }, "shop-v2");
    const won = s.tick(d);
    assert.equal(s.status.phase, "Completed", s.status.message);
    assert.equal(s.status.stableVersion, "v2");
    assert.ok(won.events.some((e) => e.type === "ExperimentConcluded" && /wins/.test(e.message)));
  });

  it("three arms: the third arm's version runs beside them, and its win keeps stable", () => {
    const s = scenario({
      arms: [
        { name: "A", version: "stable", weight: 34 },
        { name: "B", version: "canary", weight: 33 },
        { name: "C", version: "v3", weight: 33 },
      ],
    });
    s.tick();
    s.release("v2");
    let out = s.tick();
    assert.match(s.status.message, /waiting for the experiment's arm versions: v3 0\/1 ready/);
    assert.deepEqual(
      out.targets.map((t) => t.version),
      ["v1", "v2", "v3"],
      "the third arm's version is started",
    );
    assert.equal(s.status.experiment ?? null, null, "the experiment waits for every arm");
    s.readiness.v3 = { ready: 1, failed: 0 };
    out = s.tick();
    assert.deepEqual(
      s.status.experiment?.arms.map((a) => a.version),
      ["v1", "v2", "v3"],
    );
    const table = buildRouteTable({
      service: "shop",
      spec: s.spec,
      status: s.status,
      weights: out.weights,
      endpoints: (v) => [`http://${v}`],
      now: 0,
    });
    assert.deepEqual(
      table.backends.find((b) => b.version === "v3"),
      { version: "v3", weight: 0, endpoints: ["http://v3"] },
      "a backend without weight: only units assigned to C reach it",
    );
    s.clock.advance(60_000);
    const three: ExperimentData = {
      experiment: "shop-v2",
      units: { A: 5000, B: 5000, C: 5000 },
      metrics: {
        conversion: { A: sums(5000, 500), B: sums(5000, 505), C: sums(5000, 700) },
      },
      readAt: 0,
    };
    out = s.tick(three);
    assert.equal(s.status.phase, "Degraded");
    assert.match(s.status.message, /arm C \(v3\) wins, not v2/);
    assert.match(s.status.message, /set spec.version to v3/);
    assert.deepEqual(
      out.targets.map((t) => t.version),
      ["v1", "v2"],
      "v3 stops with the experiment (v2 kept for the abort delay)",
    );
  });

  it("a loser rolls back with the numbers; manual decisions wait for a person", () => {
    const s = scenario();
    s.tick();
    s.release("v2");
    s.tick();
    s.tick(data([5000, 5000], { conversion: [sums(5000, 650), sums(5000, 500)] }, "shop-v2"));
    assert.equal(s.status.phase, "Degraded");
    assert.match(s.status.message, /loses: goal worse: conversion/);
    assert.equal(s.status.experiment, null);

    const m = scenario({ decision: "manual" });
    m.tick();
    m.release("v2");
    m.tick();
    m.tick(data([5000, 5000], { conversion: [sums(5000, 500), sums(5000, 650)] }, "shop-v2"));
    assert.equal(m.status.phase, "Paused");
    assert.match(m.status.message, /turnout promote/);
    // The win holds while it waits, even if a later look no longer excludes 0.
    m.tick(data([5200, 5200], { conversion: [sums(5200, 520), sums(5200, 530)] }, "shop-v2"));
    assert.equal(m.status.phase, "Paused");
    assert.match(m.status.message, /v2 wins/);
  });

  it("inconclusive at maxDuration keeps A and says so; SRM blocks", () => {
    const s = scenario({ maxDuration: "10m" });
    s.tick();
    s.release("v2");
    s.tick();
    const flat = data([2000, 2000], { conversion: [sums(2000, 200), sums(2000, 201)] }, "shop-v2");
    s.tick(flat);
    assert.equal(s.status.phase, "Progressing");
    const srm = data([2000, 1700], { conversion: [sums(2000, 200), sums(1700, 400)] }, "shop-v2");
    s.tick(srm);
    assert.match(s.status.message, /decisions blocked: sample ratio mismatch/);
    s.clock.advance(10 * 60_000);
    s.tick(flat);
    assert.equal(s.status.phase, "Degraded");
    assert.match(s.status.message, /inconclusive after 10m.*keeping v1/);
    assert.equal(s.status.stableVersion, "v1");
  });
});

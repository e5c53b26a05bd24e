/**
 * The rollout simulator: seeded and deterministic, Turnout's real core rolls a bad canary back
 * and lets a good one through, and the traffic model counts what it should.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { AnalysisTemplateSpec, ServiceSpec } from "../core/model.js";
import { lognormalLatency, simulationRng } from "./random.js";
import {
  type PolicyFactory,
  SIM_START_MS,
  simulatePolicies,
  simulatePolicy,
  simulateRollout,
  turnoutPolicy,
} from "./simulator.js";
import { SimulatedTraffic, type TrafficSpec } from "./traffic.js";

const latency = lognormalLatency(50, 0.5);
const slow = lognormalLatency(65, 0.5);

function spec(pause = "10m"): ServiceSpec {
  return {
    listen: { host: "127.0.0.1", port: 8080 },
    runtime: { static: { versions: {} } },
    version: "v1",
    strategy: {
      canary: {
        steps: [{ setWeight: 10 }, { pause: { duration: pause } }],
        analysis: { templates: ["health"], startingStep: 0 },
      },
    },
  };
}

function templates(latencyMinSamples = 50): Record<string, AnalysisTemplateSpec> {
  return {
    health: {
      metrics: [
        {
          name: "errors",
          source: { builtin: "error_rate" },
          judge: { sequential: { maxIncrease: 0.01, alpha: 0.01 } },
          interval: "10s",
        },
        {
          name: "latency",
          source: { builtin: "latency" },
          judge: { mannWhitney: { maxRelativeIncrease: 0.2, alpha: 0.01 } },
          interval: "10s",
          minSamples: latencyMinSamples,
        },
      ],
    },
  };
}

function traffic(candidate: { errorRate: number; slow?: boolean }): TrafficSpec {
  return {
    rps: 100,
    baseline: { errorRate: 0.01, latency },
    candidate: { errorRate: candidate.errorRate, latency: candidate.slow ? slow : latency },
  };
}

const HOLD_10: PolicyFactory = ({ versions }) => ({
  tick: () => ({
    weights: [
      { version: versions.baseline, weight: 90 },
      { version: versions.candidate, weight: 10 },
    ],
  }),
});

describe("simulateRollout", () => {
  it("is deterministic for a seed, and seeds differ", async () => {
    const opts = { spec: spec("2m"), templates: templates(), maxMs: 180_000 };
    const a = await simulateRollout({ ...opts, seed: 11, traffic: traffic({ errorRate: 0.01 }) });
    const b = await simulateRollout({ ...opts, seed: 11, traffic: traffic({ errorRate: 0.01 }) });
    const c = await simulateRollout({ ...opts, seed: 12, traffic: traffic({ errorRate: 0.01 }) });
    assert.deepEqual(a, b);
    assert.ok(a.verdicts.length > 0);
    assert.notDeepEqual(
      a.verdicts.map((v) => v.explanation),
      c.verdicts.map((v) => v.explanation),
    );
  });

  it("rolls back a canary whose errors go from 1% to 5%, naming the metric", async () => {
    const r = await simulateRollout({
      seed: 1,
      spec: spec(),
      templates: templates(),
      traffic: traffic({ errorRate: 0.05 }),
      maxMs: 660_000,
    });
    assert.equal(r.outcome, "rolledBack", r.reason);
    assert.deepEqual(r.failedMetrics, ["errors"]);
    assert.match(r.reason ?? "", /background analysis failed/);
    assert.ok(r.rollbackAtMs! > 0 && r.rollbackAtMs! <= 180_000, String(r.rollbackAtMs));
    assert.equal(r.rollbackAtMs! % 10_000, 0, "decided at a measurement (every 10 s)");
    // About 10% of 100 requests/s until the rollback.
    const expected = (r.rollbackAtMs! / 1000) * 10;
    assert.ok(Math.abs(r.exposedRequests - expected) < 0.25 * expected, String(r.exposedRequests));
    assert.ok(r.exposedErrors > 0 && r.exposedErrors < r.exposedRequests);
    assert.ok(r.events.some((e) => e.type === "RolloutAborted"));
    const last = r.verdicts.filter((v) => v.metric === "errors").at(-1)!;
    assert.equal(last.outcome, "fail");
    assert.equal(last.atMs, r.rollbackAtMs);
  });

  it("rolls back a canary 30% slower at the first measurement that shows it", async () => {
    const r = await simulateRollout({
      seed: 2,
      spec: spec(),
      templates: templates(),
      traffic: traffic({ errorRate: 0.01, slow: true }),
      maxMs: 660_000,
    });
    assert.equal(r.outcome, "rolledBack");
    assert.deepEqual(r.failedMetrics, ["latency"]);
    assert.ok(r.rollbackAtMs! <= 30_000, String(r.rollbackAtMs));
  });

  it("lets an A/A canary through without a rollback", async () => {
    const r = await simulateRollout({
      seed: 3,
      spec: spec("3m"),
      templates: templates(),
      traffic: traffic({ errorRate: 0.01 }),
      maxMs: 240_000,
    });
    assert.equal(r.outcome, "completed", r.reason);
    assert.equal(r.rollbackAtMs, undefined);
    assert.equal(r.endedAtMs, 180_000);
    assert.ok(r.verdicts.every((v) => v.outcome !== "fail"));
    // 18 looks per metric, every 10 s; the latency judge passes, the sequential one may wait.
    assert.equal(r.verdicts.filter((v) => v.metric === "latency").length, 18);
    assert.ok(r.verdicts.some((v) => v.metric === "latency" && v.outcome === "pass"));
  });

  it("reconciling only at deadlines decides exactly as reconciling every second", async () => {
    for (const t of [traffic({ errorRate: 0.01 }), traffic({ errorRate: 0.05 })]) {
      const opts = {
        seed: 5,
        spec: spec("2m"),
        templates: templates(),
        traffic: t,
        maxMs: 150_000,
      };
      const sparse = await simulateRollout(opts);
      const every = await simulateRollout({ ...opts, reconcileEveryTick: true });
      assert.deepEqual(
        { ...every, events: every.events.length },
        { ...sparse, events: sparse.events.length },
      );
      assert.deepEqual(
        every.events.map((e) => [e.type, e.time]),
        sparse.events.map((e) => [e.type, e.time]),
      );
    }
  });

  it("waits past a first window with too few requests in a background analysis", async () => {
    // About 100 canary requests in the first 10 s, below minSamples 200: "too few yet" does not
    // count while the window grows, and the rollout goes on.
    const r = await simulateRollout({
      seed: 4,
      spec: spec("1m"),
      templates: templates(200),
      traffic: traffic({ errorRate: 0.01 }),
      maxMs: 120_000,
    });
    assert.equal(r.outcome, "completed", r.reason);
    const first = r.verdicts.find((v) => v.metric === "latency")!;
    assert.equal(first.outcome, "inconclusive");
    assert.match(first.explanation, /minSamples 200/);
  });

  it("pauses for a person when an inline analysis ends inconclusive", async () => {
    // One measurement after 10 s with minSamples 1000: the last measurement counts, and too
    // little data is never a pass.
    const inline: ServiceSpec = {
      ...spec(),
      strategy: {
        canary: {
          steps: [{ setWeight: 10 }, { analysis: { templates: ["once"] } }, { setWeight: 50 }],
        },
      },
    };
    const r = await simulateRollout({
      seed: 4,
      spec: inline,
      templates: {
        once: {
          metrics: [
            {
              name: "errors",
              source: { builtin: "error_rate" },
              judge: { sequential: { maxIncrease: 0.01, alpha: 0.01 } },
              interval: "10s",
              count: 1,
              minSamples: 1000,
            },
          ],
        },
      },
      traffic: traffic({ errorRate: 0.01 }),
      maxMs: 120_000,
    });
    assert.equal(r.outcome, "paused");
    assert.equal(r.endedAtMs, 10_000);
    assert.match(r.reason ?? "", /inconclusive/);
    assert.deepEqual(
      r.verdicts.map((v) => [v.run, v.outcome]),
      [["step", "inconclusive"]],
    );
  });

  it("times out a rollout still waiting at maxMs", async () => {
    const r = await simulateRollout({
      seed: 6,
      spec: spec("10m"),
      templates: templates(),
      traffic: traffic({ errorRate: 0.01 }),
      maxMs: 30_000,
    });
    assert.equal(r.outcome, "timeout");
    assert.equal(r.endedAtMs, 30_000);
  });
});

describe("simulatePolicies", () => {
  it("gives each policy the traffic it would get alone with the seed", async () => {
    const opts = { seed: 9, traffic: traffic({ errorRate: 0.05 }), maxMs: 300_000 };
    const turnout = turnoutPolicy({ spec: spec("4m"), templates: templates() });
    const together = await simulatePolicies({ ...opts, policies: { turnout, hold: HOLD_10 } });
    const alone = await simulatePolicy({ ...opts, policy: turnout });
    const held = await simulatePolicy({ ...opts, policy: HOLD_10 });
    assert.deepEqual(together.turnout, alone);
    assert.deepEqual(together.hold, held);
    assert.equal(together.turnout?.outcome, "rolledBack");
    assert.equal(together.hold?.outcome, "timeout");
    assert.ok(together.hold!.exposedRequests > together.turnout!.exposedRequests);
  });

  it("refuses policies that want different weights", async () => {
    const other: PolicyFactory = ({ versions }) => ({
      tick: () => ({
        weights: [
          { version: versions.baseline, weight: 80 },
          { version: versions.candidate, weight: 20 },
        ],
      }),
    });
    await assert.rejects(
      simulatePolicies({
        seed: 1,
        traffic: traffic({ errorRate: 0.01 }),
        maxMs: 10_000,
        policies: { a: HOLD_10, b: other },
      }),
      /different weights/,
    );
  });
});

describe("SimulatedTraffic", () => {
  const start = SIM_START_MS / 1000;
  const w = [
    { version: "v1", weight: 90 },
    { version: "v2", weight: 10 },
  ];

  it("splits requests by weight and reads windows as the router's measurements", async () => {
    const t = new SimulatedTraffic(
      simulationRng(1),
      traffic({ errorRate: 0.05 }),
      { baseline: "v1", candidate: "v2" },
      start,
    );
    for (let s = 0; s < 100; s++) t.serve(start + s, w);
    const all = await t.window({
      service: "svc",
      fromMs: SIM_START_MS,
      toMs: SIM_START_MS + 100_000,
    });
    const v1 = all.get("v1")!;
    const v2 = all.get("v2")!;
    assert.equal(v1.requests + v2.requests, 10_000);
    assert.ok(Math.abs(v2.requests - 1000) < 100, String(v2.requests));
    assert.ok(Math.abs(v2.errorRate - 0.05) < 0.02, String(v2.errorRate));
    assert.equal(v2.latency.count, v2.requests);
    assert.equal(v2.status["5xx"], Math.round(v2.errorRate * v2.requests));
    // A window is every whole second that starts in [fromMs, toMs), as the router reads them.
    const part = await t.window({
      service: "svc",
      fromMs: SIM_START_MS + 500,
      toMs: SIM_START_MS + 10_000,
    });
    assert.equal(part.get("v2")!.requests, t.range("v2", start + 1, start + 10).requests);
    // A growing window (served from the cache) equals one read from scratch.
    const again = t.range("v1", start, start + 100);
    assert.equal(v1.requests, again.requests);
    assert.equal(v1.latency.quantile(0.99), again.latency.quantile(0.99));
  });

  it("counts every request in the latency sketch when it samples", () => {
    const t = new SimulatedTraffic(
      simulationRng(2),
      { ...traffic({ errorRate: 0.01 }), rps: 5000, latencySamplesPerSecond: 50 },
      { baseline: "v1", candidate: "v2" },
      start,
    );
    const served = t.serve(start, w);
    for (const rec of served.values()) assert.equal(rec.latency.count, rec.requests);
  });

  it("serves seconds in order only", () => {
    const t = new SimulatedTraffic(
      simulationRng(3),
      traffic({ errorRate: 0.01 }),
      { baseline: "v1", candidate: "v2" },
      start,
    );
    assert.throws(() => t.serve(start + 1, w), /in order/);
    assert.throws(() => t.serve(start, [{ version: "v3", weight: 100 }]), /no version "v3"/);
  });
});

describe("simulation randomness", () => {
  it("is seeded, uniform in [0, 1), and log-normal latency has its median", () => {
    const a = simulationRng(42);
    const b = simulationRng(42);
    const xs = Array.from({ length: 10_000 }, () => a());
    assert.deepEqual(
      xs.slice(0, 5),
      Array.from({ length: 5 }, () => b()),
    );
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(Math.abs(mean - 0.5) < 0.01, String(mean));
    assert.notEqual(simulationRng(43)(), simulationRng(42)());
    const rng = simulationRng(7);
    const ls = Array.from({ length: 20_001 }, () => latency(rng)).sort((x, y) => x - y);
    assert.ok(Math.abs(ls[10_000]! - 50) < 1.5, String(ls[10_000]));
  });
});

/**
 * #18 item 8: with default settings (no `interval`), a background analysis of the builtin error
 * rate with the sequential judge looks every 2 s, so the candidate (20% errors at a 20%
 * weight, 200 requests/s) is rolled back within 10 s. Through the simulator: the real
 * `reconcile`, analysis runs, judges and builtin provider, under a fake clock; seeded.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_SEQUENTIAL_BUILTIN_INTERVAL_MS } from "../core/analysis/run.js";
import type { AnalysisTemplateSpec, ServiceSpec } from "../core/model.js";
import { lognormalLatency } from "./random.js";
import { simulateRollout } from "./simulator.js";
import type { TrafficSpec } from "./traffic.js";

const latency = lognormalLatency(50, 0.5);

const spec: ServiceSpec = {
  listen: { host: "127.0.0.1", port: 8080 },
  runtime: { static: { versions: {} } },
  version: "v1",
  strategy: {
    canary: {
      steps: [{ setWeight: 20 }, { pause: { duration: "5m" } }],
      analysis: { templates: ["errors"], startingStep: 0 },
    },
  },
};

/**
 * The errors metric as docs/resources.md's AnalysisTemplate example writes it: no interval, no
 * count, no minSamples.
 */
const templates: Record<string, AnalysisTemplateSpec> = {
  errors: {
    metrics: [
      {
        name: "errors",
        source: { builtin: "error_rate" },
        judge: { sequential: { maxIncrease: 0.01, alpha: 0.01 } },
      },
    ],
  },
};

const traffic = (candidateErrors: number): TrafficSpec => ({
  rps: 200,
  baseline: { errorRate: 0.01, latency },
  candidate: { errorRate: candidateErrors, latency },
});

describe("the default look interval of the sequential judge on builtin metrics", () => {
  it("is a few seconds", () => {
    assert.equal(DEFAULT_SEQUENTIAL_BUILTIN_INTERVAL_MS, 2_000);
  });

  it("rolls the issue's candidate back within 10 s, for every seed", async (t) => {
    const times: number[] = [];
    for (let seed = 1; seed <= 30; seed++) {
      const r = await simulateRollout({
        seed,
        spec,
        templates,
        traffic: traffic(0.2),
        maxMs: 120_000,
        recordVerdicts: false,
      });
      assert.equal(r.outcome, "rolledBack", `seed ${seed}: ${r.reason}`);
      times.push(r.rollbackAtMs!);
    }
    const worst = Math.max(...times);
    t.diagnostic(`rollback after ${Math.min(...times)}..${worst} ms over 30 seeds`);
    assert.ok(worst <= 10_000, `slowest rollback ${worst} ms (all: ${times.join(", ")})`);
  });

  it("leaves a candidate as good as the baseline alone for the whole pause", async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const r = await simulateRollout({
        seed,
        spec,
        templates,
        traffic: traffic(0.01),
        maxMs: 6 * 60_000,
        recordVerdicts: false,
      });
      assert.equal(r.outcome, "completed", `seed ${seed}: ${r.reason}`);
    }
  });
});

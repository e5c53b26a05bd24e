// The relative lift's interval is built from the same per-arm intervals as the absolute one, so
// the two exclude 0 in the same cases (#18 item 10: a relative interval containing 0 next to an
// absolute one that did not, with a "win"). Checked over many seeded random inputs, at the
// boundary, and through analyzeExperiment for every method.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { analyzeExperiment } from "../experiment/analyze.js";
import type { ExperimentSpec } from "../experiment/types.js";
import {
  fiellerRelativeLiftInterval,
  relativeLiftInterval,
  twoProportionZTest,
} from "./proportions.js";
import { mulberry32 } from "./random.js";
import { ratioTest } from "./ratio.js";
import type { Interval } from "./types.js";
import { welchTTest } from "./welch.js";

const excludes0 = (i: Interval) => i.lower > 0 || i.upper < 0;

describe("relative lift interval", () => {
  it("is Fieller's interval for symmetric per-arm intervals (known values)", () => {
    // mc = 10 ± 1.96·1, mt = 12 ± 1.96·1: the roots of (12 − 10θ)² = 1.96²(1 + θ²).
    const i = fiellerRelativeLiftInterval(10, 1, 12, 1, 1.96, 0.95)!;
    const z2 = 1.96 ** 2;
    for (const theta of [i.lower + 1, i.upper + 1]) {
      assert.ok(Math.abs((12 - 10 * theta) ** 2 - z2 * (1 + theta * theta)) < 1e-9);
    }
    assert.ok(i.lower < 0.2 && i.upper > 0.2);
  });

  it("is null when the control's interval contains 0 (the ratio is unbounded)", () => {
    assert.equal(fiellerRelativeLiftInterval(1, 1, 5, 1, 1.96, 0.95), null);
    assert.equal(
      relativeLiftInterval(
        { estimate: 0.01, lower: 0, upper: 0.05 },
        { estimate: 0.02, lower: 0.01, upper: 0.03 },
        0.95,
      ),
      null,
    );
  });

  it("handles a negative control mean by symmetry", () => {
    const a = fiellerRelativeLiftInterval(-10, 1, -12, 1, 1.96, 0.95)!;
    const b = fiellerRelativeLiftInterval(10, 1, 12, 1, 1.96, 0.95)!;
    assert.ok(Math.abs(a.lower - b.lower) < 1e-12 && Math.abs(a.upper - b.upper) < 1e-12);
  });

  it("two-proportion: excludes 0 exactly when Newcombe's interval does (20 000 random cases)", () => {
    const rng = mulberry32(18);
    let checked = 0;
    let significant = 0;
    for (let k = 0; k < 20_000; k++) {
      const nc = 20 + Math.floor(rng() * 5000);
      const nt = 20 + Math.floor(rng() * 5000);
      const p = 0.01 + rng() * 0.5;
      const lift = (rng() - 0.5) * 0.4;
      const c = { successes: Math.round(nc * p), trials: nc };
      const t = { successes: Math.min(nt, Math.round(nt * p * (1 + lift))), trials: nt };
      const r = twoProportionZTest(c, t);
      if (!r.relativeLiftInterval) continue;
      checked++;
      if (excludes0(r.intervals.newcombe)) significant++;
      assert.equal(
        excludes0(r.relativeLiftInterval),
        excludes0(r.intervals.newcombe),
        `c=${JSON.stringify(c)} t=${JSON.stringify(t)}`,
      );
      assert.ok(r.relativeLiftInterval.lower <= r.relativeLift! + 1e-12);
      assert.ok(r.relativeLiftInterval.upper >= r.relativeLift! - 1e-12);
    }
    // Both kinds of cases occurred, so the equality above was tested both ways.
    assert.ok(checked > 19_000 && significant > 2000 && checked - significant > 2000);
  });

  it("Welch and ratio tests: excludes 0 exactly when the absolute interval does", () => {
    const rng = mulberry32(7);
    for (let k = 0; k < 10_000; k++) {
      const n = 3 + Math.floor(rng() * 500);
      const mc = (rng() - 0.2) * 20;
      const c = { n, mean: mc, variance: rng() * 50 };
      const t = {
        n: 3 + Math.floor(rng() * 500),
        mean: mc + (rng() - 0.5) * 4,
        variance: rng() * 50,
      };
      const w = welchTTest(c, t);
      if (w.relativeLiftInterval)
        assert.equal(
          excludes0(w.relativeLiftInterval),
          excludes0(w.interval),
          JSON.stringify([c, t]),
        );
      const pair = (m: { n: number; mean: number }) => ({
        n: m.n,
        sumX: m.mean * m.n,
        sumX2: m.mean * m.mean * m.n + 30 * (m.n - 1),
        sumY: 2 * m.n,
        sumY2: 4 * m.n + (m.n - 1),
        sumXY: 2 * m.mean * m.n + 2 * (m.n - 1),
      });
      const r = ratioTest(pair(c), pair(t));
      if (r.relativeLiftInterval)
        assert.equal(excludes0(r.relativeLiftInterval), excludes0(r.interval));
    }
  });

  it("analyzeExperiment: every method's relative interval agrees with its absolute one", () => {
    const spec: ExperimentSpec = {
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
    const rng = mulberry32(42);
    const seen = { significant: 0, not: 0 };
    for (let k = 0; k < 600; k++) {
      const n = 200 + Math.floor(rng() * 4000);
      const p = 0.02 + rng() * 0.3;
      const cConv = Math.round(n * p);
      const tConv = Math.round(n * p * (1 + (rng() - 0.3) * 0.5));
      const sums = (conv: number) => ({
        kind: "sums" as const,
        n,
        sum: conv,
        sumSquares: conv,
        converted: conv,
      });
      for (const method of ["sequential", "fixedHorizon", "bayesian"] as const) {
        const r = analyzeExperiment("e", { ...spec, method }, arms, {
          experiment: "e",
          units: { A: n, B: n },
          metrics: { conversion: { A: sums(cConv), B: sums(tConv) } },
          readAt: 0,
        });
        const c = r.metrics[0]!.comparisons[0];
        if (!c?.interval || !c.relativeInterval) continue;
        const abs = excludes0(c.interval);
        if (abs) seen.significant++;
        else seen.not++;
        assert.equal(excludes0(c.relativeInterval), abs, `${method} n=${n} ${cConv}/${tConv}`);
      }
    }
    assert.ok(seen.significant > 100 && seen.not > 100, JSON.stringify(seen));
  });
});

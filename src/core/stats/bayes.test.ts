import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bayesBinomial, bayesNormal, probBetaGreater } from "./bayes.js";

describe("bayesBinomial", () => {
  test("the normal approximation is within 1e-3 of exact with ~100+ successes per arm", () => {
    for (const [xc, nc, xt, nt] of [
      [120, 2400, 151, 2380],
      [480, 1000, 470, 1000],
      [5000, 100000, 5100, 100000],
    ] as const) {
      const c = { successes: xc, trials: nc };
      const t = { successes: xt, trials: nt };
      const exact = bayesBinomial(c, t);
      const approx = bayesBinomial(c, t, { method: "normal" });
      assert.ok(Math.abs(exact.chanceToBeatControl - approx.chanceToBeatControl) < 1e-3);
      assert.ok(Math.abs(exact.expectedLoss.treatment - approx.expectedLoss.treatment) < 1e-4);
    }
  });

  test("P(X > Y) + P(Y > X) = 1 and the loss identity E[T − C] = loss(control) − loss(treatment)", () => {
    const p = probBetaGreater(4, 47, 6, 44);
    assert.ok(Math.abs(p + probBetaGreater(6, 44, 4, 47) - 1) < 1e-12);
    const r = bayesBinomial({ successes: 3, trials: 50 }, { successes: 5, trials: 48 });
    assert.ok(
      Math.abs(r.expectedLoss.control - r.expectedLoss.treatment - r.difference.mean) < 1e-12,
    );
  });

  test("identical arms: chance 1/2", () => {
    const r = bayesBinomial({ successes: 30, trials: 400 }, { successes: 30, trials: 400 });
    assert.ok(Math.abs(r.chanceToBeatControl - 0.5) < 1e-12);
  });

  test("exact needs posterior parameters ≥ 1", () => {
    assert.throws(
      () =>
        bayesBinomial(
          { successes: 0, trials: 10 },
          { successes: 1, trials: 10 },
          { priorAlpha: 0.5, priorBeta: 0.5 },
        ),
      /method "normal"/,
    );
    const r = bayesBinomial(
      { successes: 0, trials: 10 },
      { successes: 1, trials: 10 },
      {
        priorAlpha: 0.5,
        priorBeta: 0.5,
        method: "normal",
      },
    );
    assert.ok(r.chanceToBeatControl > 0.5);
  });
});

describe("bayesNormal", () => {
  test("no uncertainty: a sure answer", () => {
    const r = bayesNormal({ n: 10, mean: 1, variance: 0 }, { n: 10, mean: 2, variance: 0 });
    assert.equal(r.chanceToBeatControl, 1);
    assert.deepEqual(r.expectedLoss, { treatment: 0, control: 1 });
  });
});

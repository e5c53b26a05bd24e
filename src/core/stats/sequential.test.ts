import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { twoProportionZTest } from "./proportions.js";
import { binomialSample, mulberry32, normalSampler } from "./random.js";
import {
  asymptoticConfidenceSequence,
  asymptoticCsHalfWidth,
  binomialSummary,
  msprtNormal,
  msprtTwoMeans,
  msprtTwoProportions,
  sequentialRho,
  twoProportionVariances,
} from "./sequential.js";
import type { SampleSummary } from "./types.js";

// Continuous monitoring, simulated: RUNS A/A experiments, each looked at LOOKS times. A
// procedure's false-positive rate is the share of runs in which it rejected at *any* look.
// With RUNS = 500 the standard error of a rate near alpha = 0.05 is ~0.0097, so "≤ alpha" is
// checked as ≤ alpha + 3 standard errors, and "peeking breaks the fixed-horizon test" as a
// rate above that same bound.
const RUNS = 500;
const LOOKS = 50;
const BATCH = 100;
const ALPHA = 0.05;
const BOUND = ALPHA + 3 * Math.sqrt((ALPHA * (1 - ALPHA)) / RUNS);
const Z_CRIT = 1.959963984540054;

function summary(n: number, sum: number, sumSq: number): SampleSummary {
  const mean = sum / n;
  return { n, mean, variance: Math.max(0, (sumSq - n * mean * mean) / (n - 1)) };
}

describe("validity under continuous monitoring (seeded A/A simulation)", () => {
  test(`normal means: asymptotic CS and mSPRT stay ≤ alpha over ${LOOKS} looks; peeking a z-test does not`, () => {
    const normal = normalSampler(mulberry32(20240601));
    let csRejections = 0;
    let msprtRejections = 0;
    let zRejections = 0;
    for (let run = 0; run < RUNS; run++) {
      let s0 = 0;
      let q0 = 0;
      let s1 = 0;
      let q1 = 0;
      let cs = false;
      let ms = false;
      let z = false;
      let prevP = 1;
      for (let look = 1; look <= LOOKS; look++) {
        for (let i = 0; i < BATCH; i++) {
          const a = normal(10, 3);
          const b = normal(10, 3);
          s0 += a;
          q0 += a * a;
          s1 += b;
          q1 += b * b;
        }
        const n = look * BATCH;
        const c = summary(n, s0, q0);
        const t = summary(n, s1, q1);
        const r = asymptoticConfidenceSequence(c, t, { alpha: ALPHA });
        cs ||= r.rejected;
        const m = msprtTwoMeans(c, t, { alpha: ALPHA, tau2: 0.25 ** 2, previousPValue: prevP });
        prevP = m.pValue;
        ms ||= m.rejected;
        z ||= Math.abs(t.mean - c.mean) / Math.sqrt(c.variance / n + t.variance / n) > Z_CRIT;
      }
      csRejections += cs ? 1 : 0;
      msprtRejections += ms ? 1 : 0;
      zRejections += z ? 1 : 0;
    }
    const rates = { cs: csRejections / RUNS, msprt: msprtRejections / RUNS, z: zRejections / RUNS };
    assert.ok(rates.cs <= BOUND, `asymptotic CS false-positive rate ${rates.cs} > ${BOUND}`);
    assert.ok(rates.msprt <= BOUND, `mSPRT false-positive rate ${rates.msprt} > ${BOUND}`);
    assert.ok(
      rates.z > BOUND,
      `peeked z-test false-positive rate ${rates.z} should exceed ${BOUND}`,
    );
  });

  test(`error rates: mSPRT on proportions stays ≤ alpha over ${LOOKS} looks; peeking a z-test does not`, () => {
    const rng = mulberry32(7);
    const p = 0.05;
    let two = 0;
    let greater = 0;
    let cs = 0;
    let z = 0;
    for (let run = 0; run < RUNS; run++) {
      let x0 = 0;
      let x1 = 0;
      let rTwo = false;
      let rGreater = false;
      let rCs = false;
      let rZ = false;
      for (let look = 1; look <= LOOKS; look++) {
        x0 += binomialSample(rng, BATCH, p);
        x1 += binomialSample(rng, BATCH, p);
        const n = look * BATCH;
        const c = { successes: x0, trials: n };
        const t = { successes: x1, trials: n };
        rTwo ||= msprtTwoProportions(c, t, { alpha: ALPHA, tau2: 1e-4 }).rejected;
        rGreater ||= msprtTwoProportions(c, t, {
          alpha: ALPHA,
          tau2: 1e-4,
          alternative: "greater",
        }).rejected;
        rCs ||= asymptoticConfidenceSequence(binomialSummary(c), binomialSummary(t), {
          alpha: ALPHA,
        }).rejected;
        rZ ||= twoProportionZTest(c, t, { alpha: ALPHA }).pValue < ALPHA;
      }
      two += rTwo ? 1 : 0;
      greater += rGreater ? 1 : 0;
      cs += rCs ? 1 : 0;
      z += rZ ? 1 : 0;
    }
    for (const [name, count] of Object.entries({ two, greater, cs })) {
      assert.ok(count / RUNS <= BOUND, `${name}: false-positive rate ${count / RUNS} > ${BOUND}`);
    }
    assert.ok(
      z / RUNS > BOUND,
      `peeked z-test false-positive rate ${z / RUNS} should exceed ${BOUND}`,
    );
  });

  test("canary error rates at 1%: the null variance with continuity correction stays ≤ alpha 1% at the null, over 2,000 runs of 60 looks", () => {
    // The canary judge's setting: per look 100 candidate and 900 baseline requests; a
    // candidate exactly at the null (A/A with null 0; 2% vs 1% with null +1 point).
    const alpha = 0.01;
    const runs = 2000;
    const bound = alpha + 3 * Math.sqrt((alpha * (1 - alpha)) / runs);
    for (const [nullDifference, canary, tau] of [
      [0, 0.01, 0.04],
      [0, 0.01, 0.02],
      [0.01, 0.02, 0.02],
    ] as const) {
      const rng = mulberry32(101);
      let rejected = 0;
      for (let run = 0; run < runs; run++) {
        let xb = 0;
        let xc = 0;
        let p = 1;
        for (let look = 1; look <= 60 && p > alpha; look++) {
          xb += binomialSample(rng, 900, 0.01);
          xc += binomialSample(rng, 100, canary);
          p = msprtTwoProportions(
            { successes: xb, trials: 900 * look },
            { successes: xc, trials: 100 * look },
            {
              alpha,
              tau2: tau * tau,
              nullDifference,
              alternative: "greater",
              variance: "null",
              continuity: true,
              previousPValue: p,
            },
          ).pValue;
        }
        if (p <= alpha) rejected++;
      }
      const what = `null ${nullDifference}, canary ${canary}, tau ${tau}`;
      assert.ok(
        rejected / runs <= bound,
        `${what}: false-positive rate ${rejected / runs} > ${bound}`,
      );
    }
  });

  test("a bad canary (1% → 3% errors) is stopped early by the one-sided mSPRT", () => {
    const rng = mulberry32(99);
    const runs = 100;
    let rejected = 0;
    const stops: number[] = [];
    for (let run = 0; run < runs; run++) {
      let x0 = 0;
      let x1 = 0;
      for (let look = 1; look <= LOOKS; look++) {
        x0 += binomialSample(rng, BATCH, 0.01);
        x1 += binomialSample(rng, BATCH, 0.03);
        const n = look * BATCH;
        const r = msprtTwoProportions(
          { successes: x0, trials: n },
          { successes: x1, trials: n },
          { alpha: 0.01, tau2: 0.01 ** 2, alternative: "greater" },
        );
        if (r.rejected) {
          rejected++;
          stops.push(look);
          break;
        }
      }
    }
    stops.sort((a, b) => a - b);
    assert.ok(rejected >= 95, `rejected in ${rejected}/${runs} runs`);
    assert.ok(stops[stops.length >> 1]! <= 25, `median stopping look ${stops[stops.length >> 1]}`);
  });
});

describe("msprt", () => {
  test("two-proportion variances: unpooled, and at the null (pooled for a null of 0)", () => {
    const c = { successes: 18, trials: 1800 };
    const t = { successes: 10, trials: 200 };
    const v0 = twoProportionVariances(c, t, 0);
    const p = (18 + 10 + 0.5) / (2000 + 1);
    assert.ok(Math.abs(v0.atNull - p * (1 - p) * (1 / 1800 + 1 / 200)) < 1e-15);
    const pc = 18.5 / 1801;
    const pt = 10.5 / 201;
    assert.ok(Math.abs(v0.unpooled - ((pc * (1 - pc)) / 1800 + (pt * (1 - pt)) / 200)) < 1e-15);
    // At a null of +1 point the candidate's rate is the pooled baseline's + 0.01.
    const v1 = twoProportionVariances(c, t, 0.01);
    const b = (28 - 200 * 0.01 + 0.5) / 2001;
    const expected = (b * (1 - b)) / 1800 + ((b + 0.01) * (1 - b - 0.01)) / 200;
    assert.ok(Math.abs(v1.atNull - expected) < 1e-15);
    // The 1% -> 5% canary: the null variance is a third of the unpooled one.
    assert.ok(v0.atNull < v0.unpooled / 2.5);
  });

  test("continuity correction: the estimate moves half an event per arm towards the null, never past it", () => {
    const c = { successes: 9, trials: 900 };
    const t = { successes: 5, trials: 100 };
    const opts = {
      alpha: 0.01,
      tau2: 0.04 ** 2,
      alternative: "greater" as const,
      variance: "null" as const,
    };
    const plain = msprtTwoProportions(c, t, opts);
    const corrected = msprtTwoProportions(c, t, { ...opts, continuity: true });
    assert.equal(corrected.estimate, plain.estimate);
    const cc = 0.5 * (1 / 900 + 1 / 100);
    assert.ok(Math.abs(corrected.z - (plain.estimate - cc) / Math.sqrt(plain.variance)) < 1e-12);
    assert.ok(corrected.likelihoodRatio < plain.likelihoodRatio);
    const near = msprtTwoProportions(
      { successes: 9, trials: 900 },
      { successes: 1, trials: 100 },
      {
        ...opts,
        continuity: true,
      },
    );
    assert.equal(near.z, 0, "an estimate within the correction of the null is at the null");
  });

  test("one-sided: evidence in the other direction gives no rejection", () => {
    const better = msprtTwoProportions(
      { successes: 100, trials: 10000 },
      { successes: 20, trials: 10000 },
      { tau2: 1e-4, alternative: "greater" },
    );
    assert.ok(better.likelihoodRatio < 1);
    assert.equal(better.rejected, false);
    const twoSided = msprtTwoProportions(
      { successes: 100, trials: 10000 },
      { successes: 20, trials: 10000 },
      { tau2: 1e-4 },
    );
    assert.equal(twoSided.rejected, true);
  });

  test("a candidate failing every request against a clean baseline is rejected", () => {
    const r = msprtTwoProportions(
      { successes: 0, trials: 500 },
      { successes: 100, trials: 100 },
      { tau2: 1e-4, alpha: 0.01, alternative: "greater" },
    );
    assert.equal(r.rejected, true);
    assert.ok(Number.isFinite(r.logLikelihoodRatio) && r.logLikelihoodRatio > 100);
  });

  test("the always-valid p-value carries the running minimum", () => {
    const r = msprtNormal(0, 1, { tau2: 1, previousPValue: 0.3 });
    assert.equal(r.pValue, 0.3);
    assert.equal(msprtNormal(0, 1, { tau2: 1 }).pValue, 1);
  });

  test("the confidence sequence excludes the null exactly when the two-sided test rejects", () => {
    for (const est of [0.5, 1, 2, 3, 4, 6]) {
      const r = msprtNormal(est, 0.25, { tau2: 1, alpha: 0.05 });
      assert.equal(r.rejected, r.confidenceSequence.lower > 0, `estimate ${est}`);
    }
  });

  test("zero variance carries no evidence", () => {
    const r = msprtNormal(0.5, 0, { tau2: 1 });
    assert.equal(r.likelihoodRatio, 1);
    assert.equal(r.pValue, 1);
  });

  test("invalid options are errors", () => {
    assert.throws(() => msprtNormal(0, 1, { tau2: 0 }), /tau2/);
    assert.throws(() => msprtNormal(0, 1, { tau2: 1, alpha: 1 }), /alpha/);
    assert.throws(() => msprtNormal(0, 1, { tau2: 1, previousPValue: 2 }), /previousPValue/);
    assert.throws(
      () =>
        msprtTwoProportions({ successes: 3, trials: 2 }, { successes: 0, trials: 1 }, { tau2: 1 }),
      /control/,
    );
  });
});

describe("asymptotic confidence sequence", () => {
  test("is tightest relative to the fixed-horizon interval near the tuning N", () => {
    const rho = sequentialRho(0.05, 5000);
    // Ratio of the CS half-width to the fixed z half-width, as a function of N.
    const ratio = (n: number) => asymptoticCsHalfWidth(1, n, rho, 0.05) / (Z_CRIT / Math.sqrt(n));
    assert.ok(ratio(5000) < ratio(500));
    assert.ok(ratio(5000) < ratio(50000));
    assert.ok(ratio(5000) > 1, "a CS is always wider than the fixed-horizon interval");
  });

  test("p-value and interval agree", () => {
    const c = { n: 2000, mean: 10, variance: 9 };
    for (const m of [10.1, 10.3, 10.5, 10.8]) {
      const r = asymptoticConfidenceSequence(c, { n: 2000, mean: m, variance: 9 });
      assert.equal(r.rejected, r.interval.lower > 0, `mean ${m}`);
    }
  });

  test("relative lift needs a nonzero control mean", () => {
    assert.throws(
      () =>
        asymptoticConfidenceSequence(
          { n: 10, mean: 0, variance: 1 },
          { n: 10, mean: 1, variance: 1 },
          { relative: true },
        ),
      /nonzero control mean/,
    );
  });
});

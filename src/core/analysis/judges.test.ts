import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { JudgeSpec } from "../model.js";
import { binomialSample, mulberry32, normalSampler } from "../stats/index.js";
import {
  DEFAULT_SEQUENTIAL_DETECT,
  JUDGES,
  type JudgeContext,
  type JudgeMemory,
  judge,
  judgeKind,
  mannWhitneyLookAlpha,
  num,
  type Verdict,
} from "./judges.js";
import type { Observation, ObservedBin, ObservedSide } from "./observation.js";
import { DEFAULT_MIN_SAMPLES } from "./run.js";

const ctx = (over: Partial<JudgeContext> = {}): JudgeContext => ({
  metric: "errors",
  minSamples: 100,
  ...over,
});

/** A side as the builtin error_rate gives it. */
function rates(events: number, trials: number, version: string): ObservedSide {
  return { version, value: events / trials, sampleSize: trials, proportion: { events, trials } };
}

function latencies(values: number[], version: string): ObservedSide {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    version,
    value: sorted[Math.floor(0.99 * sorted.length)]!,
    sampleSize: values.length,
    values,
  };
}

/** Asserts the explanation is one line and contains every fragment. */
function explains(v: Verdict, ...fragments: string[]) {
  assert.ok(!v.explanation.includes("\n"), `one line: ${v.explanation}`);
  for (const f of fragments) {
    assert.ok(v.explanation.includes(f), `"${v.explanation}" should contain "${f}"`);
  }
}

const noData: Observation = {
  error: "no data: candidate v2 had no requests",
  errorKind: "noData",
  raw: null,
};
const timeout: Observation = {
  error: "GET http://prom:9090 timed out after 10s",
  errorKind: "timeout",
  raw: null,
};

describe("every judge on a failed measurement", () => {
  const specs: JudgeSpec[] = [
    { threshold: { max: 1 } },
    { relative: { mode: "ratio", maxIncrease: 0.2 } },
    { sequential: { maxIncrease: 0.01, alpha: 0.01 } },
    { mannWhitney: { maxRelativeIncrease: 0.2, alpha: 0.05 } },
  ];
  for (const spec of specs) {
    test(`${Object.keys(spec)[0]}: noData is inconclusive, other failures are errors, with the reason`, () => {
      const a = judge(spec, noData, ctx());
      assert.equal(a.outcome, "inconclusive");
      assert.equal(a.reason, "noData");
      assert.equal(a.inputs.errorKind, "noData");
      explains(a, "errors: no data: candidate v2 had no requests");
      const b = judge(spec, timeout, ctx());
      assert.equal(b.outcome, "error");
      assert.equal(b.reason, "measurementFailed");
      explains(b, "measurement timeout", "timed out after 10s");
    });
  }
});

describe("threshold", () => {
  const spec: JudgeSpec = { threshold: { max: 0.01 } };

  test("clear pass and clear fail, with the numbers", () => {
    const pass = judge(spec, { value: 0.004, sampleSize: 2500, raw: null }, ctx());
    assert.equal(pass.outcome, "pass");
    explains(pass, "errors 0.004 within max 0.01 (n=2500)");
    assert.equal(pass.statistic, 0.004);
    const fail = judge(spec, { value: 0.042, sampleSize: 2500 }, ctx());
    assert.equal(fail.outcome, "fail");
    explains(fail, "errors 0.042 > max 0.01 (n=2500)");
    const low = judge(
      { threshold: { min: 0.95, max: 1 } },
      { value: 0.9 },
      ctx({ metric: "success" }),
    );
    assert.equal(low.outcome, "fail");
    explains(low, "success 0.9 < min 0.95");
  });

  test("too little data is inconclusive, never pass; an unknown sample size is judged", () => {
    const v = judge(spec, { value: 0.001, sampleSize: 12 }, ctx());
    assert.equal(v.outcome, "inconclusive");
    assert.equal(v.reason, "tooFewSamples");
    explains(v, "errors 0.001 from 12 samples < minSamples 100");
    assert.equal(judge(spec, { value: 0.001 }, ctx()).outcome, "pass");
  });

  test("reads the candidate side, or the last point of a range", () => {
    const side = judge(spec, { candidate: rates(3, 1000, "v2") }, ctx());
    assert.equal(side.outcome, "pass");
    assert.equal(side.inputs.value, 0.003);
    const range = judge(spec, { values: [0.001, 0.002, 0.05] }, ctx());
    assert.equal(range.outcome, "fail");
    explains(range, "errors 0.05 > max 0.01");
  });

  test("a value that is not finite is an error", () => {
    const v = judge(spec, { value: Number.NaN }, ctx());
    assert.equal(v.outcome, "error");
    assert.equal(v.reason, "badInput");
  });
});

describe("relative", () => {
  const ratio: JudgeSpec = { relative: { mode: "ratio", maxIncrease: 0.2, maxDecrease: 0.5 } };
  const diff: JudgeSpec = { relative: { mode: "difference", maxIncrease: 20 } };
  const obs = (c: number, b: number | undefined, cn = 1000, bn = 9000): Observation => ({
    value: c,
    candidate: { version: "v2", value: c, sampleSize: cn },
    ...(b !== undefined ? { baseline: { version: "v1", value: b, sampleSize: bn } } : {}),
  });

  test("ratio: clear pass and clear fail (both directions), with the numbers", () => {
    const pass = judge(ratio, obs(105, 100), ctx({ metric: "p99" }));
    assert.equal(pass.outcome, "pass");
    explains(pass, "p99 105 vs baseline 100: ratio 1.05 (+5%) within +20% / -50% allowed");
    assert.deepEqual(pass.effect, {
      measure: "ratio",
      value: 1.05,
      details: { relativeChange: 1.05 - 1 },
    });
    const fail = judge(ratio, obs(130, 100), ctx({ metric: "p99" }));
    assert.equal(fail.outcome, "fail");
    explains(fail, "p99 130 vs baseline 100: ratio 1.3 (+30%) > +20% allowed");
    const down = judge(ratio, obs(40, 100), ctx({ metric: "rps" }));
    assert.equal(down.outcome, "fail");
    explains(down, "rps 40 vs baseline 100: ratio 0.4 (-60%) < -50% allowed");
  });

  test("difference: clear pass and clear fail", () => {
    explains(
      judge(diff, obs(110, 100), ctx({ metric: "p99" })),
      "p99 110 vs baseline 100: +10 within +20 allowed",
    );
    const fail = judge(diff, obs(135.5, 100), ctx({ metric: "p99" }));
    assert.equal(fail.outcome, "fail");
    explains(fail, "p99 136 vs baseline 100: +35.5 > +20 allowed");
    assert.equal(fail.statistic, 35.5);
  });

  test("missing baseline and a zero baseline (ratio) are inconclusive with a reason", () => {
    const none = judge(ratio, obs(105, undefined), ctx({ metric: "p99" }));
    assert.equal(none.outcome, "inconclusive");
    assert.equal(none.reason, "noBaseline");
    explains(none, "p99 105: no baseline to compare with");
    const zero = judge(ratio, obs(0.02, 0), ctx());
    assert.equal(zero.outcome, "inconclusive");
    assert.equal(zero.reason, "undefinedEffect");
    explains(zero, "errors 0.02 vs baseline 0: ratio undefined", 'mode "difference"');
    // The difference mode has no such problem.
    assert.equal(
      judge({ relative: { mode: "difference", maxIncrease: 0.01 } }, obs(0.02, 0), ctx()).outcome,
      "fail",
    );
  });

  test("too little data on either side is inconclusive", () => {
    const v = judge(ratio, obs(100, 100, 1000, 40), ctx());
    assert.equal(v.outcome, "inconclusive");
    assert.equal(v.reason, "tooFewSamples");
    explains(v, "samples 40 on the baseline < minSamples 100");
    const w = judge(ratio, obs(100, 100, 3, 40), ctx());
    explains(w, "samples 3 on the candidate and 40 on the baseline < minSamples 100");
  });
});

describe("sequential", () => {
  const spec: JudgeSpec = { sequential: { maxIncrease: 0.01, alpha: 0.01 } };
  const two = (ce: number, ct: number, be: number, bt: number): Observation => ({
    value: ce / ct,
    sampleSize: ct,
    candidate: rates(ce, ct, "v2"),
    baseline: rates(be, bt, "v1"),
  });

  test("clear fail, with rates, counts, difference, allowance, p-value and alpha", () => {
    const v = judge(spec, two(82, 2000, 18, 2000), ctx());
    assert.equal(v.outcome, "fail");
    explains(
      v,
      "errors 4.1% (82/2000) vs baseline 0.9% (18/2000): +3.2 points > +1 allowed (mSPRT p=0.00028 < alpha 0.01)",
    );
    assert.ok(v.pValue! < 0.01);
    assert.equal(v.test, "mSPRT (one-sided)");
    assert.ok(v.bound!.lower > 0.01, "the always-valid bound excludes the allowance");
    assert.equal(v.effect?.measure, "difference");
    assert.ok(Math.abs(v.effect!.value - 0.032) < 1e-12);
    assert.deepEqual(v.memory, { looks: 1, minPValue: v.pValue, rejectedAtLook: 1 });
    assert.equal(v.inputs.candidate?.events, 82);
    assert.equal(v.inputs.baseline?.trials, 2000);
  });

  test("clear pass: the always-valid upper bound is below the allowance", () => {
    const v = judge(spec, two(30, 3000, 270, 27000), ctx());
    assert.equal(v.outcome, "pass");
    explains(
      v,
      "errors 1% (30/3000) vs baseline 1% (270/27000)",
      "always-valid upper bound +0.97 < +1 allowed",
      "mSPRT p=1",
    );
    assert.ok(v.bound!.upper < 0.01);
  });

  test("not enough evidence yet, and too little data, are provisional inconclusives", () => {
    const wait = judge(spec, two(12, 1000, 90, 9000), ctx());
    assert.equal(wait.outcome, "inconclusive");
    assert.equal(wait.reason, "notEnoughEvidence");
    assert.equal(wait.provisional, true);
    explains(
      wait,
      "+0.2 points, always-valid upper bound +1.8 not below +1 allowed: not enough evidence yet",
    );
    const last = judge(spec, two(12, 1000, 90, 9000), ctx({ final: true }));
    explains(last, "not enough evidence by the last measurement");
    // Even a candidate that looks awful on 50 requests is not failed, nor passed: too little data.
    const few = judge(spec, two(5, 50, 1, 450), ctx());
    assert.equal(few.outcome, "inconclusive");
    assert.equal(few.reason, "tooFewSamples");
    assert.equal(few.provisional, true);
    explains(
      few,
      "errors 10% (5/50) vs baseline 0.222% (1/450)",
      "requests 50 on the candidate < minSamples 100",
    );
    const none = judge(spec, two(0, 0, 3, 450), ctx());
    assert.equal(none.outcome, "inconclusive");
    explains(none, "no requests yet on the candidate");
  });

  test("missing baseline is inconclusive; missing counts are an error", () => {
    const v = judge(spec, { value: 0.01, candidate: rates(10, 1000, "v2") }, ctx());
    assert.equal(v.outcome, "inconclusive");
    assert.equal(v.reason, "noBaseline");
    explains(v, "errors 1% (10/1000): no baseline");
    const w = judge(spec, { value: 120, candidate: { value: 120, sampleSize: 100 } }, ctx());
    assert.equal(w.outcome, "error");
    assert.equal(w.reason, "badInput");
    explains(w, "needs candidate error counts");
    const bad = judge(spec, two(20, 10, 1, 100), ctx());
    assert.equal(bad.outcome, "error");
    explains(bad, "successes and trials must be integers");
  });

  test("a rejection stays a rejection: the running minimum p-value is carried in memory", () => {
    const first = judge(spec, two(82, 2000, 18, 2000), ctx());
    // Later the canary recovers; the evidence already gathered still stands.
    const later = judge(spec, two(90, 20000, 180, 20000), ctx({ previous: first.memory! }));
    assert.equal(later.outcome, "fail");
    assert.equal(later.pValue, first.pValue);
    assert.deepEqual(later.memory, { looks: 2, minPValue: first.pValue, rejectedAtLook: 1 });
    explains(
      later,
      "errors 0.45% (90/20000) vs baseline 0.9% (180/20000): -0.45 points now, but shown above +1 allowed at look 1 (mSPRT p=0.00028 < alpha 0.01; a rejection stands)",
    );
    const worse = judge(spec, two(200, 4000, 36, 4000), ctx({ previous: first.memory! }));
    explains(worse, "+4.1 points > +1 allowed (mSPRT p=", "since look 1)");
  });

  test("explanations never round a value onto its limit", () => {
    const t = judge({ threshold: { max: 0.01 } }, { value: 0.010004 }, ctx());
    assert.equal(t.outcome, "fail");
    explains(t, "errors 0.010004 > max 0.01");
    const r = judge(
      { relative: { mode: "ratio", maxIncrease: 0.2 } },
      {
        candidate: { value: 120.0004, sampleSize: 500 },
        baseline: { value: 100, sampleSize: 500 },
      },
      ctx({ metric: "p99" }),
    );
    assert.equal(r.outcome, "fail");
    explains(r, "(+20.0004%) > +20% allowed");
  });

  /** Cumulative counts per 10-second look at 100 req/s with 10% on the canary. */
  function simulate(
    seed: number,
    canaryRate: number,
    baselineRate: number,
    looks: number,
    s: JudgeSpec,
  ) {
    const rng = mulberry32(seed);
    let ce = 0;
    let be = 0;
    let memory: JudgeMemory | undefined;
    for (let look = 1; look <= looks; look++) {
      ce += binomialSample(rng, 100, canaryRate);
      be += binomialSample(rng, 900, baselineRate);
      const v = judge(
        s,
        two(ce, look * 100, be, look * 900),
        ctx({ ...(memory ? { previous: memory } : {}) }),
      );
      memory = v.memory;
      if (v.outcome === "fail") return { failedAt: look, verdict: v };
    }
    return { failedAt: null };
  }

  test("fails a 1% -> 5% canary early (100 req/s, 10% weight, a look every 10 s)", () => {
    const slowest = (s: JudgeSpec) => {
      const looks: number[] = [];
      for (let seed = 1; seed <= 40; seed++) {
        const r = simulate(seed, 0.05, 0.01, 30, s);
        assert.ok(r.failedAt !== null, `seed ${seed}: not failed within 5 minutes`);
        looks.push(r.failedAt);
      }
      return looks.sort((a, b) => a - b);
    };
    // With 1 point allowed (default detect, 2 points): typically after 40 s, ~400 requests.
    const allowed = slowest(spec);
    assert.ok(allowed[20]! <= 5, `median look ${allowed[20]}`);
    assert.ok(allowed[39]! <= 12, `slowest look ${allowed[39]}`);
    // Nothing allowed, tuned for +4 points: typically at 20 s, 200 requests.
    const strict = slowest({ sequential: { maxIncrease: 0, detect: 0.04, alpha: 0.01 } });
    assert.ok(strict[20]! <= 2, `median look ${strict[20]}`);
    assert.ok(strict[39]! <= 6, `slowest look ${strict[39]}`);
  });

  test("detect sets the mixing scale, apart from the allowance", () => {
    const o = two(30, 600, 50, 5400);
    const d = judge({ sequential: { maxIncrease: 0.01, detect: 0.05, alpha: 0.01 } }, o, ctx());
    assert.equal(d.effect!.details!.tau2, 0.05 ** 2);
    assert.equal(d.effect!.details!.nullDifference, 0.01);
    const dflt = judge(spec, o, ctx());
    assert.equal(dflt.effect!.details!.tau2, DEFAULT_SEQUENTIAL_DETECT ** 2);
  });

  test("false-fail rate at alpha 1% over 300 seeded runs, 60 looks each: A/A with nothing allowed, and a candidate exactly at the allowance", () => {
    // The canary's situation in bench:decisions: 1% errors, 100 + 900 requests per look; the
    // judge's wiring of the test (sequential.test.ts checks the test itself over 2,000 runs).
    const alpha = 0.01;
    const bound = alpha + 3 * Math.sqrt((alpha * (1 - alpha)) / 300);
    const cases: [string, JudgeSpec, number][] = [
      ["A/A, maxIncrease 0", { sequential: { maxIncrease: 0, detect: 0.04, alpha } }, 0.01],
      ["1% vs 2%, maxIncrease 0.01", { sequential: { maxIncrease: 0.01, alpha } }, 0.02],
    ];
    for (const [label, s, canary] of cases) {
      let fails = 0;
      for (let seed = 1; seed <= 300; seed++) {
        if (simulate(50_000 + seed, canary, 0.01, 60, s).failedAt !== null) fails++;
      }
      assert.ok(fails / 300 <= bound, `${label}: false-fail rate ${fails / 300} > ${bound}`);
    }
  });

  test("false-fail rate of 500 seeded A/A runs, 30 looks each, stays <= alpha (worst case maxIncrease 0)", () => {
    const alpha = 0.05;
    const aa: JudgeSpec = { sequential: { maxIncrease: 0, alpha } };
    let fails = 0;
    for (let seed = 1; seed <= 500; seed++) {
      if (simulate(10_000 + seed, 0.02, 0.02, 30, aa).failedAt !== null) fails++;
    }
    const bound = alpha + 3 * Math.sqrt((alpha * (1 - alpha)) / 500);
    assert.ok(fails / 500 <= bound, `false-fail rate ${fails / 500} > ${bound}`);
  });
});

describe("mannWhitney", () => {
  const spec: JudgeSpec = { mannWhitney: { maxRelativeIncrease: 0.2, alpha: 0.05 } };
  const lognormal = (seed: number, n: number, median: number) => {
    const normal = normalSampler(mulberry32(seed));
    return Array.from({ length: n }, () => Math.exp(normal(Math.log(median), 0.4)));
  };
  const obs = (c: number[], b?: number[]): Observation => ({
    values: c,
    candidate: latencies(c, "v2"),
    ...(b ? { baseline: latencies(b, "v1") } : {}),
  });

  test("fails +30% latency with enough samples, with medians, shift, allowance and p-value", () => {
    const v = judge(
      spec,
      obs(lognormal(1, 400, 130), lognormal(2, 400, 100)),
      ctx({ metric: "latency" }),
    );
    assert.equal(v.outcome, "fail");
    const e = v.effect!;
    assert.equal(e.measure, "relativeShift");
    assert.ok(e.value > 0.2 && e.value < 0.45, `relative shift ${e.value}`);
    explains(
      v,
      `latency median ${num(e.details!.candidateMedian!)} vs baseline ${num(e.details!.baselineMedian!)} (n=400/400)`,
      `(+${num(e.value * 100)}%) > +20% allowed (Mann-Whitney p=`,
      "< alpha 0.05)",
    );
    assert.ok(v.pValue! < 1e-6);
    assert.ok(v.bound!.lower > 0);
    assert.equal(v.test, "Mann-Whitney U (one-sided)");
  });

  test("says the unit and the direction in words (a faster candidate read as a contradiction)", () => {
    const faster = judge(
      spec,
      obs(lognormal(5, 400, 80), lognormal(6, 400, 100)),
      ctx({ metric: "latency", unit: "ms" }),
    );
    assert.equal(faster.outcome, "pass");
    const e = faster.effect!;
    explains(
      faster,
      `latency median ${num(e.details!.candidateMedian!)} ms vs baseline ${num(e.details!.baselineMedian!)} ms`,
      `: candidate faster, typical (Hodges-Lehmann) shift -`,
      " ms (-",
      "; no credible slowdown beyond +20% allowed",
    );
    const slower = judge(
      spec,
      obs(lognormal(1, 400, 130), lognormal(2, 400, 100)),
      ctx({ metric: "latency", unit: "ms" }),
    );
    explains(slower, ": candidate slower, typical (Hodges-Lehmann) shift +", " ms (+");
  });

  test("passes A/A (and fails at most alpha of 100 seeded A/A runs)", () => {
    const v = judge(
      spec,
      obs(lognormal(3, 400, 100), lognormal(4, 400, 100)),
      ctx({ metric: "latency" }),
    );
    assert.equal(v.outcome, "pass");
    explains(v, "no credible slowdown beyond +20% allowed (Mann-Whitney p=", "≥ alpha 0.05");
    let fails = 0;
    for (let seed = 0; seed < 100; seed++) {
      const r = judge(
        spec,
        obs(lognormal(100 + seed, 200, 100), lognormal(900 + seed, 200, 100)),
        ctx(),
      );
      if (r.outcome === "fail") fails++;
    }
    assert.ok(fails / 100 <= 0.05, `A/A false-fail rate ${fails / 100}`);
  });

  test("a credible but small slowdown passes, saying so", () => {
    const v = judge(
      spec,
      obs(lognormal(5, 3000, 105), lognormal(6, 3000, 100)),
      ctx({ metric: "latency" }),
    );
    assert.equal(v.outcome, "pass");
    explains(v, "< alpha 0.05: slower, but within the allowance");
  });

  test("too little data is inconclusive (the side's sampleSize counts, not the grid of samples)", () => {
    const v = judge(
      spec,
      obs(lognormal(1, 30, 200), lognormal(2, 400, 100)),
      ctx({ metric: "latency" }),
    );
    assert.equal(v.outcome, "inconclusive");
    assert.equal(v.reason, "tooFewSamples");
    explains(v, "latency: samples 30 on the candidate < minSamples 100");
    // 200 grid points read from a sketch of 5000 requests: judged.
    const c = { ...latencies(lognormal(1, 200, 130), "v2"), sampleSize: 5000 };
    const b = { ...latencies(lognormal(2, 200, 100), "v1"), sampleSize: 45000 };
    assert.equal(
      judge(spec, { candidate: c, baseline: b }, ctx({ minSamples: 1000 })).outcome,
      "fail",
    );
  });

  test("missing baseline is inconclusive; no samples is an error", () => {
    const v = judge(spec, obs(lognormal(1, 400, 100)), ctx({ metric: "latency" }));
    assert.equal(v.outcome, "inconclusive");
    assert.equal(v.reason, "noBaseline");
    explains(v, "latency: no baseline to compare with");
    const w = judge(spec, { value: 3, candidate: { value: 3 } }, ctx());
    assert.equal(w.outcome, "error");
    explains(w, "needs latency samples");
  });

  test("with histogram bins: the binned test on the full counts", () => {
    // Sketch-like bins: 2% wide on a log grid, the canary 30% slower, 20 000 vs 180 000 requests.
    const bins = (median: number, total: number): ObservedBin[] => {
      const out: ObservedBin[] = [];
      for (let i = -80; i <= 80; i++) {
        const z = (i * 0.02) / 0.4;
        const count = Math.round(
          (total * 0.02 * Math.exp((-z * z) / 2)) / (0.4 * Math.sqrt(2 * Math.PI)),
        );
        if (count > 0) out.push({ value: Number((median * Math.exp(i * 0.02)).toFixed(3)), count });
      }
      return out;
    };
    const side = (b: ObservedBin[], version: string): ObservedSide => ({
      version,
      value: 0,
      sampleSize: b.reduce((s, x) => s + x.count, 0),
      bins: b,
    });
    const fail = judge(
      spec,
      { candidate: side(bins(130, 20_000), "v2"), baseline: side(bins(100, 180_000), "v1") },
      ctx({ metric: "latency" }),
    );
    assert.equal(fail.outcome, "fail");
    assert.equal(fail.test, "Mann-Whitney U (one-sided, binned)");
    assert.ok(fail.inputs.candidate!.rankSamples! > 19_000);
    assert.ok(fail.inputs.candidate!.bins! > 100);
    explains(fail, "latency median 130 vs baseline 100", "> +20% allowed");
    const aa = judge(
      spec,
      { candidate: side(bins(100, 20_000), "v2"), baseline: side(bins(100, 180_000), "v1") },
      ctx({ metric: "latency" }),
    );
    assert.equal(aa.outcome, "pass");
    // Bins on one side, values on the other: the values become bins of one.
    const mixed = judge(
      spec,
      { candidate: side(bins(130, 2000), "v2"), baseline: latencies(lognormal(2, 400, 100), "v1") },
      ctx({ metric: "latency" }),
    );
    assert.equal(mixed.outcome, "fail");
  });
});

describe("mannWhitney under repeated looks: alpha split over the looks", () => {
  const spec: JudgeSpec = { mannWhitney: { maxRelativeIncrease: 0.2, alpha: 0.01 } };
  test("shares: whole alone, alpha/N of a known count, alpha/(k(k+1)) unbounded (sums to alpha)", () => {
    assert.equal(mannWhitneyLookAlpha(0.01, 1), 0.01);
    assert.equal(mannWhitneyLookAlpha(0.01, 3, 5), 0.01 / 5);
    assert.equal(mannWhitneyLookAlpha(0.01, 1, null), 0.005);
    assert.equal(mannWhitneyLookAlpha(0.01, 3, null), 0.01 / 12);
    let sum = 0;
    for (let k = 1; k <= 100_000; k++) sum += mannWhitneyLookAlpha(0.01, k, null);
    assert.ok(sum < 0.01 && sum > 0.01 * 0.9999);
  });

  test("each test counts a look in memory and says which share it used", () => {
    const normal = normalSampler(mulberry32(7));
    const sample = (n: number, median: number) =>
      Array.from({ length: n }, () => Math.exp(normal(Math.log(median), 0.5)));
    const o = (c: number[], b: number[]): Observation => ({
      candidate: latencies(c, "v2"),
      baseline: latencies(b, "v1"),
    });
    const first = judge(
      spec,
      o(sample(100, 130), sample(900, 100)),
      ctx({ metric: "latency", plannedLooks: null }),
    );
    assert.deepEqual(first.memory, { looks: 1 });
    assert.equal(first.inputs.look, 1);
    explains(first, "alpha 0.005, look 1's share of 0.01");
    const third = judge(
      spec,
      o(sample(300, 100), sample(2700, 100)),
      ctx({ metric: "latency", plannedLooks: null, previous: { looks: 2 } }),
    );
    assert.deepEqual(third.memory, { looks: 3 });
    explains(third, "alpha 0.000833, look 3's share of 0.01");
    // Too few samples: no test, no look spent.
    const few = judge(
      spec,
      o(sample(10, 100), sample(90, 100)),
      ctx({ metric: "latency", plannedLooks: null, minSamples: 50, previous: { looks: 2 } }),
    );
    assert.equal(few.outcome, "inconclusive");
    assert.equal(few.memory, undefined);
  });
});

test("verdicts are plain JSON (what status and history store)", () => {
  const v = judge(
    { sequential: { maxIncrease: 0.01, alpha: 0.01 } },
    { candidate: rates(82, 2000, "v2"), baseline: rates(18, 2000, "v1") },
    ctx(),
  );
  assert.deepEqual(JSON.parse(JSON.stringify(v)), v);
});

describe("the judge registry", () => {
  test("each judge is registered under its own key, with its default minSamples", () => {
    for (const [key, j] of Object.entries(JUDGES)) assert.equal(j.key, key);
    assert.deepEqual(DEFAULT_MIN_SAMPLES, {
      threshold: 1,
      relative: 1,
      sequential: 100,
      mannWhitney: 50,
    });
  });

  test("judgeKind names the judge of a spec", () => {
    assert.equal(judgeKind({ threshold: { max: 1 } }), "threshold");
    assert.equal(
      judgeKind({ mannWhitney: { maxRelativeIncrease: 0.2, alpha: 0.05 } }),
      "mannWhitney",
    );
    assert.throws(() => judgeKind({} as JudgeSpec), /unknown judge kind/);
  });
});

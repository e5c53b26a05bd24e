import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { hodgesLehmannShift, mannWhitneyU, median } from "./mannWhitney.js";
import { mulberry32, normalSampler } from "./random.js";

function bruteForceHl(c: number[], b: number[]): number {
  const d: number[] = [];
  for (const x of c) for (const y of b) d.push(x - y);
  return median(d);
}

describe("Hodges–Lehmann shift", () => {
  test("equals the median of all pairwise differences (seeded, with ties, odd and even counts)", () => {
    const rng = mulberry32(1);
    const normal = normalSampler(rng);
    for (let trial = 0; trial < 60; trial++) {
      const n1 = 1 + Math.floor(rng() * 120);
      const n2 = 1 + Math.floor(rng() * 120);
      // Every third trial rounds to integers, so ties among differences abound.
      const round = trial % 3 === 0 ? Math.round : (x: number) => x;
      const c = Array.from({ length: n1 }, () => round(normal(50, 10)));
      const b = Array.from({ length: n2 }, () => round(normal(48, 12)));
      assert.equal(hodgesLehmannShift(c, b), bruteForceHl(c, b), `trial ${trial} (${n1}×${n2})`);
    }
  });

  test("is exact and fast on large samples (20 000 × 20 000 = 4e8 differences)", () => {
    const rng = mulberry32(2);
    const normal = normalSampler(rng);
    const b = Array.from({ length: 20_000 }, () => Math.exp(normal(Math.log(100), 0.5)));
    const c = b.map((x) => x + 5);
    // A pure shift of +5 (up to rounding): the shift estimate recovers it.
    assert.ok(Math.abs(hodgesLehmannShift(c, b) - 5) < 1e-9);
  });

  test("works when every difference is equal", () => {
    assert.equal(hodgesLehmannShift(Array(3000).fill(7), Array(3000).fill(2)), 5);
  });
});

describe("mannWhitneyU", () => {
  test("swapping the samples mirrors U and the effects", () => {
    const a = [3, 1, 4, 1, 5, 9, 2, 6];
    const b = [2, 7, 1, 8, 2, 8];
    const ab = mannWhitneyU(a, b);
    const ba = mannWhitneyU(b, a);
    assert.equal(ab.u + ba.u, a.length * b.length);
    assert.equal(ab.pValue, ba.pValue);
    assert.equal(ab.effect.rankBiserial, -ba.effect.rankBiserial);
    assert.equal(ab.effect.hodgesLehmannShift, -ba.effect.hodgesLehmannShift);
    assert.equal(
      mannWhitneyU(a, b, { alternative: "greater" }).pValue,
      mannWhitneyU(b, a, { alternative: "less" }).pValue,
    );
  });

  test("every value tied: p = 1, no shift", () => {
    const r = mannWhitneyU([5, 5, 5], [5, 5]);
    assert.equal(r.pValue, 1);
    assert.equal(r.z, 0);
    assert.equal(r.effect.probabilityOfSuperiority, 0.5);
    assert.equal(r.effect.hodgesLehmannShift, 0);
  });

  test("a slower candidate is detected with a relative shift", () => {
    const normal = normalSampler(mulberry32(3));
    const base = Array.from({ length: 500 }, () =>
      Math.round(Math.exp(normal(Math.log(100), 0.3))),
    );
    const cand = Array.from({ length: 500 }, () =>
      Math.round(Math.exp(normal(Math.log(130), 0.3))),
    );
    const r = mannWhitneyU(cand, base, { alternative: "greater" });
    assert.ok(r.pValue < 1e-20);
    assert.ok(r.effect.relativeShift! > 0.2 && r.effect.relativeShift! < 0.4);
    assert.ok(r.effect.probabilityOfSuperiority > 0.7);
  });

  test("relative shift is null when the baseline median is 0", () => {
    assert.equal(mannWhitneyU([1, 2], [0, 0, 0]).effect.relativeShift, null);
  });

  test("rejects empty or non-finite samples", () => {
    assert.throws(() => mannWhitneyU([], [1]), /at least one value/);
    assert.throws(() => mannWhitneyU([1, Number.NaN], [1]), /candidate\[1\]/);
    assert.throws(() => median([]), /no values/);
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { binomialSample, mulberry32, normalSampler, shuffled } from "./random.js";

describe("seeded random numbers", () => {
  test("the same seed gives the same stream", () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    for (let i = 0; i < 100; i++) assert.equal(a(), b());
    // A test vector, so that a change of generator is noticed.
    assert.equal(mulberry32(42)(), 0.6011037519201636);
  });

  test("normal and binomial samples have the right moments", () => {
    const rng = mulberry32(9);
    const normal = normalSampler(rng);
    const N = 200_000;
    let s = 0;
    let q = 0;
    for (let i = 0; i < N; i++) {
      const x = normal(3, 2);
      s += x;
      q += x * x;
    }
    const mean = s / N;
    assert.ok(Math.abs(mean - 3) < 0.02);
    assert.ok(Math.abs(q / N - mean * mean - 4) < 0.05);
    for (const [n, p] of [
      [100, 0.05],
      [1000, 0.7],
      [30, 0.5],
    ] as const) {
      let bs = 0;
      let bq = 0;
      const M = 20_000;
      for (let i = 0; i < M; i++) {
        const k = binomialSample(rng, n, p);
        assert.ok(Number.isInteger(k) && k >= 0 && k <= n);
        bs += k;
        bq += k * k;
      }
      const bm = bs / M;
      const bv = bq / M - bm * bm;
      assert.ok(
        Math.abs(bm - n * p) < 4 * Math.sqrt((n * p * (1 - p)) / M),
        `mean ${bm} for ${n}, ${p}`,
      );
      assert.ok(Math.abs(bv / (n * p * (1 - p)) - 1) < 0.05, `variance ${bv} for ${n}, ${p}`);
    }
  });

  test("shuffled is a permutation", () => {
    const xs = Array.from({ length: 50 }, (_, i) => i);
    const s = shuffled(mulberry32(1), xs);
    assert.deepEqual(
      [...s].sort((a, b) => a - b),
      xs,
    );
    assert.notDeepEqual(s, xs);
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Alternative } from "./index.js";
import { mannWhitneyU } from "./mannWhitney.js";
import { mannWhitneyBinned, type ValueBin } from "./mannWhitneyBinned.js";
import { mulberry32, normalSampler } from "./random.js";

function expand(bins: ValueBin[]): number[] {
  const out: number[] = [];
  for (const { value, count } of bins) for (let i = 0; i < count; i++) out.push(value);
  return out;
}

function close(
  actual: number | null | undefined,
  expected: number | null | undefined,
  what: string,
) {
  if (expected === null || expected === undefined) {
    assert.equal(actual, expected, what);
    return;
  }
  assert.ok(
    typeof actual === "number" &&
      Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)),
    `${what}: ${actual} vs ${expected}`,
  );
}

/** Latency-like bins on a log grid (as a sketch would give), shuffled and partly duplicated. */
function randomBins(rng: () => number, center: number, spread: number, bins: number): ValueBin[] {
  const normal = normalSampler(rng);
  const out: ValueBin[] = [];
  for (let i = 0; i < bins; i++) {
    const grid = Math.round(normal(Math.log(center), spread) / 0.02) * 0.02;
    out.push({ value: Number(Math.exp(grid).toFixed(3)), count: Math.floor(rng() * 6) });
  }
  return out;
}

describe("mannWhitneyBinned", () => {
  test("sketch-sized bins with many equal differences (the same bins on both sides) equal the expanded samples", () => {
    // Two ~150-bin sides on one log grid: every cell on the diagonal is a difference of exactly
    // 0, thousands of observations each, where the k-th is found by bracketing.
    const rng = mulberry32(23);
    const normal = normalSampler(rng);
    const grid = (n: number, shift: number): ValueBin[] => {
      const counts = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const g = Math.round((normal(Math.log(50), 0.5) + shift) / 0.02);
        counts.set(g, (counts.get(g) ?? 0) + 1);
      }
      return [...counts].map(([g, count]) => ({ value: Math.exp(g * 0.02), count }));
    };
    for (const shift of [0, 0.05, Math.log(1.3)]) {
      const c = grid(2000, shift);
      const b = grid(6000, 0);
      const got = mannWhitneyBinned(c, b, { alternative: "greater", alpha: 0.01 });
      const want = mannWhitneyU(expand(c), expand(b), { alternative: "greater", alpha: 0.01 });
      close(got.effect.hodgesLehmannShift, want.effect.hodgesLehmannShift, `shift ${shift} HL`);
      close(
        got.effect.shiftInterval?.lower,
        want.effect.shiftInterval?.lower,
        `shift ${shift} lower`,
      );
      close(
        got.effect.shiftInterval?.upper,
        want.effect.shiftInterval?.upper,
        `shift ${shift} upper`,
      );
      close(got.pValue, want.pValue, `shift ${shift} p`);
    }
  });

  test("equals mannWhitneyU on the expanded samples within 1e-9 (seeded, ties within and across sides)", () => {
    const rng = mulberry32(11);
    const alternatives: Alternative[] = ["greater", "less", "two-sided"];
    for (let trial = 0; trial < 40; trial++) {
      const c = randomBins(rng, 110, 0.3, 1 + Math.floor(rng() * 60));
      const b = randomBins(rng, 100, 0.3, 1 + Math.floor(rng() * 60));
      c.push({ value: 100, count: 1 + Math.floor(rng() * 3) });
      b.push({ value: 100, count: 1 + Math.floor(rng() * 3) });
      const alternative = alternatives[trial % 3]!;
      const continuity = trial % 4 !== 0;
      const alpha = trial % 2 === 0 ? 0.05 : 0.01;
      const got = mannWhitneyBinned(c, b, { alternative, continuity, alpha });
      const want = mannWhitneyU(expand(c), expand(b), { alternative, continuity, alpha });
      const label = `trial ${trial}`;
      assert.equal(got.nCandidate, want.nCandidate, label);
      assert.equal(got.nBaseline, want.nBaseline, label);
      close(got.u, want.u, `${label} u`);
      close(got.z, want.z, `${label} z`);
      close(got.pValue, want.pValue, `${label} p`);
      close(got.tieTerm, want.tieTerm, `${label} tieTerm`);
      const ge = got.effect;
      const we = want.effect;
      close(ge.probabilityOfSuperiority, we.probabilityOfSuperiority, `${label} ps`);
      close(ge.hodgesLehmannShift, we.hodgesLehmannShift, `${label} hl`);
      close(ge.relativeShift, we.relativeShift, `${label} rel`);
      close(ge.candidateMedian, we.candidateMedian, `${label} candidate median`);
      close(ge.baselineMedian, we.baselineMedian, `${label} baseline median`);
      close(ge.shiftInterval?.lower, we.shiftInterval?.lower, `${label} interval lower`);
      close(ge.shiftInterval?.upper, we.shiftInterval?.upper, `${label} interval upper`);
    }
  });

  test("merges repeated values, ignores empty bins and is order-independent", () => {
    const a = mannWhitneyBinned(
      [
        { value: 3, count: 2 },
        { value: 1, count: 0 },
        { value: 3, count: 1 },
        { value: 2, count: 4 },
      ],
      [{ value: 2, count: 5 }],
    );
    const b = mannWhitneyU([2, 2, 2, 2, 3, 3, 3], [2, 2, 2, 2, 2]);
    assert.deepEqual(a, b);
  });

  test("large counts cost nothing extra: 2 × 1e6 requests in 400 bins", () => {
    const rng = mulberry32(3);
    const base = randomBins(rng, 100, 0.4, 400).map((x) => ({ ...x, count: x.count * 500 }));
    const slow = base.map((x) => ({ value: x.value * 1.3, count: x.count }));
    const r = mannWhitneyBinned(slow, base, { alternative: "greater" });
    assert.ok(r.pValue < 1e-12);
    assert.ok(r.effect.relativeShift! > 0.2 && r.effect.relativeShift! < 0.4);
  });

  test("rejects bad bins", () => {
    assert.throws(
      () => mannWhitneyBinned([{ value: 1, count: 1.5 }], [{ value: 1, count: 1 }]),
      /count/,
    );
    assert.throws(
      () => mannWhitneyBinned([{ value: Number.NaN, count: 1 }], [{ value: 1, count: 1 }]),
      /value/,
    );
    assert.throws(
      () => mannWhitneyBinned([{ value: 1, count: 0 }], [{ value: 1, count: 1 }]),
      /at least one/,
    );
  });
});

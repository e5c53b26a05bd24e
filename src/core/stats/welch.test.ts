import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { summarize, welchTTest } from "./welch.js";

describe("summarize", () => {
  test("matches the two-pass formulas, and stays accurate with a large offset", () => {
    const xs = [1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16];
    const s = summarize(xs);
    assert.equal(s.n, 4);
    assert.equal(s.mean, 1e9 + 10);
    assert.equal(s.variance, 30);
  });

  test("fewer than two values leave the variance undefined", () => {
    assert.ok(Number.isNaN(summarize([3]).variance));
    assert.ok(Number.isNaN(summarize([]).mean));
  });
});

describe("welchTTest", () => {
  test("zero variance in both arms", () => {
    const same = welchTTest({ n: 5, mean: 2, variance: 0 }, { n: 5, mean: 2, variance: 0 });
    assert.equal(same.pValue, 1);
    const diff = welchTTest(
      { n: 5, mean: 2, variance: 0 },
      { n: 5, mean: 3, variance: 0 },
      { alternative: "less" },
    );
    assert.equal(diff.pValue, 1);
    assert.equal(
      welchTTest({ n: 5, mean: 2, variance: 0 }, { n: 5, mean: 3, variance: 0 }).pValue,
      0,
    );
  });

  test("needs two observations per arm", () => {
    assert.throws(
      () => welchTTest({ n: 1, mean: 2, variance: 0 }, { n: 5, mean: 3, variance: 1 }),
      /control: need n >= 2/,
    );
  });
});

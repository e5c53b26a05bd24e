import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  chiSquareCdf,
  chiSquareSf,
  normalCdf,
  normalQuantile,
  normalSf,
  studentTCdf,
  studentTSf,
} from "./distributions.js";

// Reference values, far tails included, are in the fixture replayed by reference.test.ts.
describe("distribution functions", () => {
  test("cdf and sf are complementary; quantile inverts cdf", () => {
    for (const x of [-3, -0.5, 0, 1.2, 4]) {
      assert.ok(Math.abs(normalCdf(x) + normalSf(x) - 1) < 1e-15);
      assert.ok(Math.abs(studentTCdf(x, 7.5) + studentTSf(x, 7.5) - 1) < 1e-14);
    }
    for (const p of [1e-10, 0.025, 0.5, 0.9])
      assert.ok(Math.abs(normalCdf(normalQuantile(p)) - p) < 1e-12 * Math.max(1, p / 1e-10));
    assert.ok(Math.abs(chiSquareCdf(3, 2) + chiSquareSf(3, 2) - 1) < 1e-15);
    assert.equal(chiSquareSf(0, 2), 1);
    assert.equal(chiSquareSf(Number.POSITIVE_INFINITY, 2), 0);
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { sampleRatioMismatch } from "./srm.js";

describe("sampleRatioMismatch", () => {
  test("flags below the threshold (default 0.001)", () => {
    assert.equal(sampleRatioMismatch([5012, 4988]).mismatch, false);
    const r = sampleRatioMismatch([50000, 48800]);
    assert.ok(r.pValue < 0.001);
    assert.equal(r.mismatch, true);
    assert.equal(
      sampleRatioMismatch([50000, 48800], undefined, { threshold: 1e-6 }).mismatch,
      false,
    );
  });

  test("keeps tiny p-values (no 1 − cdf cancellation)", () => {
    const r = sampleRatioMismatch([55000, 45000]); // χ² = 1000
    assert.ok(r.pValue > 0 && r.pValue < 1e-100);
  });

  test("a zero-weight arm with traffic is a mismatch; without traffic it is left out", () => {
    assert.equal(sampleRatioMismatch([500, 500, 1], [1, 1, 0]).pValue, 0);
    const r = sampleRatioMismatch([500, 500, 0], [1, 1, 0]);
    assert.equal(r.df, 1);
    assert.equal(r.pValue, 1);
  });

  test("no traffic yet is no evidence", () => {
    assert.equal(sampleRatioMismatch([0, 0]).pValue, 1);
  });

  test("bad input is an error", () => {
    assert.throws(() => sampleRatioMismatch([1, 2], [1]), /weights/);
    assert.throws(() => sampleRatioMismatch([1, -2]), /observed\[1\]/);
    assert.throws(() => sampleRatioMismatch([1, 2], [1, 0]), /two arms/);
  });
});

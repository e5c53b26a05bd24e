import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { twoProportionZTest, wilsonInterval } from "./proportions.js";

describe("twoProportionZTest", () => {
  test("no successes anywhere: no evidence, p = 1", () => {
    const r = twoProportionZTest({ successes: 0, trials: 100 }, { successes: 0, trials: 120 });
    assert.equal(r.z, 0);
    assert.equal(r.pValue, 1);
    assert.equal(r.relativeLift, null);
    assert.equal(r.relativeLiftInterval, null);
  });

  test("one-sided p-values split the two-sided one", () => {
    const c = { successes: 120, trials: 2400 };
    const t = { successes: 151, trials: 2380 };
    const two = twoProportionZTest(c, t).pValue;
    const greater = twoProportionZTest(c, t, { alternative: "greater" }).pValue;
    const less = twoProportionZTest(c, t, { alternative: "less" }).pValue;
    assert.ok(Math.abs(greater - two / 2) < 1e-15);
    assert.ok(Math.abs(greater + less - 1) < 1e-12);
  });

  test("Newcombe's interval stays within [-1, 1] where Wald's does not", () => {
    const r = twoProportionZTest({ successes: 0, trials: 5 }, { successes: 5, trials: 5 });
    assert.ok(r.intervals.newcombe.upper <= 1 && r.intervals.newcombe.lower >= -1);
    assert.equal(r.intervals.wald.lower, 1); // zero-width: Wald's failure mode
  });

  test("Wilson interval contains the estimate and stays in [0, 1]", () => {
    const w = wilsonInterval(0, 20, 1.96);
    assert.ok(w.lower <= 1e-15 && w.upper > 0 && w.upper < 1);
  });

  test("invalid counts are errors with the arm named", () => {
    assert.throws(
      () => twoProportionZTest({ successes: 5, trials: 4 }, { successes: 1, trials: 2 }),
      /control/,
    );
    assert.throws(
      () => twoProportionZTest({ successes: 1, trials: 4 }, { successes: 1.5, trials: 2 }),
      /treatment/,
    );
    assert.throws(
      () => twoProportionZTest({ successes: 0, trials: 0 }, { successes: 1, trials: 2 }),
      /at least one trial/,
    );
    assert.throws(
      () =>
        twoProportionZTest({ successes: 1, trials: 4 }, { successes: 1, trials: 2 }, { alpha: 0 }),
      /alpha/,
    );
  });
});

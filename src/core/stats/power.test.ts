import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  powerTwoMeans,
  powerTwoProportions,
  sampleSizeTwoMeans,
  sampleSizeTwoProportions,
} from "./power.js";

describe("power planner", () => {
  test("the planned size reaches the target power, one user fewer does not", () => {
    const plan = { baseline: 0.05, mde: 0.1, ratio: 2 };
    const n = sampleSizeTwoProportions(plan);
    assert.ok(powerTwoProportions(plan, n.exactControl) - 0.8 < 1e-9);
    assert.ok(Math.abs(powerTwoProportions(plan, n.exactControl) - 0.8) < 1e-9);
    assert.ok(powerTwoProportions(plan, n.control) >= 0.8);
    assert.equal(n.treatment, Math.ceil(n.exactControl * 2 - 1e-9));
    const m = { sd: 10, mde: 1, mdeType: "absolute" as const };
    const nm = sampleSizeTwoMeans(m);
    assert.ok(Math.abs(powerTwoMeans(m, nm.exactControl) - 0.8) < 1e-12);
  });

  test("the documented example", () => {
    assert.equal(sampleSizeTwoProportions({ baseline: 0.05, mde: 0.1 }).control, 31234);
  });

  test("smaller effects need more users", () => {
    const a = sampleSizeTwoMeans({ sd: 10, mde: 0.05, baselineMean: 40 }).control;
    const b = sampleSizeTwoMeans({ sd: 10, mde: 0.02, baselineMean: 40 }).control;
    assert.ok(b > a);
  });

  test("invalid plans are errors", () => {
    assert.throws(() => sampleSizeTwoProportions({ baseline: 0, mde: 0.1 }), /baseline/);
    assert.throws(() => sampleSizeTwoProportions({ baseline: 0.9, mde: 0.2 }), /below 1/);
    assert.throws(() => sampleSizeTwoProportions({ baseline: 0.1, mde: 0 }), /mde/);
    assert.throws(() => sampleSizeTwoMeans({ sd: 1, mde: 0.1 }), /baselineMean/);
    assert.throws(
      () => sampleSizeTwoMeans({ sd: 1, mde: 0.1, mdeType: "absolute", power: 1 }),
      /power/,
    );
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { adjustPValues, benjaminiHochberg, holm } from "./multiple.js";
import { mulberry32 } from "./random.js";

describe("multiple-testing adjustments", () => {
  test("Holm ≥ BH ≥ raw, all ≤ 1, order of p preserved (seeded)", () => {
    const rng = mulberry32(5);
    for (let t = 0; t < 200; t++) {
      const p = Array.from({ length: 1 + Math.floor(rng() * 12) }, () => rng() ** 3);
      const h = holm(p);
      const bh = benjaminiHochberg(p);
      p.forEach((pi, i) => {
        assert.ok(h[i]! >= bh[i]! - 1e-15 && bh[i]! >= pi - 1e-15 && h[i]! <= 1);
        p.forEach((pj, j) => {
          if (pi < pj) assert.ok(h[i]! <= h[j]! && bh[i]! <= bh[j]!);
        });
      });
    }
  });

  test("none returns a copy; invalid p-values are errors", () => {
    const p = [0.1, 0.2];
    const out = adjustPValues(p, "none");
    assert.deepEqual(out, p);
    assert.notEqual(out, p);
    assert.deepEqual(holm([]), []);
    assert.throws(() => holm([0.1, 1.2]), /pValues\[1\]/);
  });
});

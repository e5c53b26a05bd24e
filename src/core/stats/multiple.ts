/**
 * Multiple-testing adjustments for an experiment judged on several goal metrics (or arms):
 * adjusted p-values to compare with the unadjusted alpha.
 *
 * - Holm (1979), "A simple sequentially rejective multiple test procedure": controls the
 *   family-wise error rate under any dependence; uniformly more powerful than Bonferroni.
 * - Benjamini & Hochberg (1995): controls the false discovery rate for independent or
 *   positively dependent (PRDS) tests.
 *
 * Both match `statsmodels.stats.multitest.multipletests(p, method="holm" | "fdr_bh")`.
 */

export type AdjustmentMethod = "none" | "holm" | "benjamini-hochberg";

function check(pValues: readonly number[]): void {
  pValues.forEach((p, i) => {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`pValues[${i}]: must be in [0, 1], got ${p}`);
  });
}

/** Indices of `pValues` in ascending order of p (stable for ties). */
function ascending(pValues: readonly number[]): number[] {
  return pValues.map((_, i) => i).sort((a, b) => pValues[a]! - pValues[b]! || a - b);
}

/**
 * Holm step-down adjusted p-values, in the input order:
 * p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j)) for ascending p_(1) ≤ … ≤ p_(m).
 */
export function holm(pValues: readonly number[]): number[] {
  check(pValues);
  const m = pValues.length;
  const order = ascending(pValues);
  const out = new Array<number>(m);
  let running = 0;
  order.forEach((idx, rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * pValues[idx]!));
    out[idx] = running;
  });
  return out;
}

/**
 * Benjamini–Hochberg step-up adjusted p-values (q-values), in the input order:
 * p̃_(i) = min_{j ≥ i} min(1, m · p_(j) / j).
 */
export function benjaminiHochberg(pValues: readonly number[]): number[] {
  check(pValues);
  const m = pValues.length;
  const order = ascending(pValues);
  const out = new Array<number>(m);
  let running = 1;
  for (let rank = m - 1; rank >= 0; rank--) {
    const idx = order[rank]!;
    running = Math.min(running, (m * pValues[idx]!) / (rank + 1));
    out[idx] = running;
  }
  return out;
}

/** Adjusted p-values by `method`. */
export function adjustPValues(pValues: readonly number[], method: AdjustmentMethod): number[] {
  switch (method) {
    case "none":
      check(pValues);
      return [...pValues];
    case "holm":
      return holm(pValues);
    case "benjamini-hochberg":
      return benjaminiHochberg(pValues);
  }
}

/**
 * Mann–Whitney U on binned samples: each side is a list of `{ value, count }` bins (e.g. a
 * latency sketch's bins, each bin's representative value with the number of requests in it),
 * so that the router's full request count is tested rather than a grid of quantiles.
 *
 * It is *exact for the binned data*: the result equals `mannWhitneyU` on the samples expanded
 * bin by bin (each value repeated `count` times), with values in the same bin (or the same value
 * on both sides) treated as ties, midranks and the tie-corrected variance. The test and every
 * effect size (probability of superiority, Hodges–Lehmann shift, its Moses interval, medians)
 * are computed from the bins directly, in O(B log B) for B bins plus an expected O(B log B) per
 * order statistic of the pairwise differences, never from the expanded samples.
 *
 * Binning itself is the approximation: requests that differ by less than a bin's width tie. With
 * a DDSketch at 1 % relative accuracy that matters only for shifts under ~2 %.
 */
import {
  type MannWhitneyOptions,
  type MannWhitneyResult,
  mannWhitneyFromRanks,
} from "./mannWhitney.js";
import { mulberry32 } from "./random.js";
import { checkAlpha } from "./types.js";

/** One bin: a value and how many observations it stands for. */
export interface ValueBin {
  value: number;
  /** A non-negative integer; empty bins are ignored. */
  count: number;
}

/** Sorted distinct values with their total counts. */
interface Binned {
  values: Float64Array;
  counts: Float64Array;
  total: number;
}

/**
 * Mann–Whitney U test of `candidate` against `baseline` given as bins. Same options, same
 * result and same conventions as `mannWhitneyU` (which it matches on the expanded samples).
 *
 * @example
 * mannWhitneyBinned([{ value: 12, count: 40 }, { value: 15, count: 3 }],
 *                   [{ value: 12, count: 90 }, { value: 13, count: 10 }], { alternative: "greater" })
 */
export function mannWhitneyBinned(
  candidate: readonly ValueBin[],
  baseline: readonly ValueBin[],
  options: MannWhitneyOptions = {},
): MannWhitneyResult {
  const alternative = options.alternative ?? "two-sided";
  const continuity = options.continuity ?? true;
  const alpha = options.alpha ?? 0.05;
  checkAlpha(alpha);
  const c = normalizeBins(candidate, "candidate");
  const b = normalizeBins(baseline, "baseline");
  const n1 = c.total;
  const n2 = b.total;
  if (n1 === 0 || n2 === 0) {
    throw new RangeError(
      `mannWhitneyBinned: both samples need at least one value, got ${n1} and ${n2}`,
    );
  }

  // 1. Merge the distinct values of both sides in order. A value with t observations in all
  //    (either side) starting at 0-based position `start` has midrank start + (t + 1) / 2.
  let rankSumCandidate = 0;
  let tieTerm = 0;
  let start = 0;
  let i = 0;
  let j = 0;
  const m1 = c.values.length;
  const m2 = b.values.length;
  while (i < m1 || j < m2) {
    const v = j >= m2 || (i < m1 && c.values[i]! <= b.values[j]!) ? c.values[i]! : b.values[j]!;
    let inCandidate = 0;
    let t = 0;
    if (i < m1 && c.values[i] === v) {
      inCandidate = c.counts[i]!;
      t += inCandidate;
      i++;
    }
    if (j < m2 && b.values[j] === v) {
      t += b.counts[j]!;
      j++;
    }
    rankSumCandidate += inCandidate * (start + (t + 1) / 2);
    if (t > 1) tieTerm += t * t * t - t;
    start += t;
  }

  // 2-3. The test and the effect sizes, from weighted order statistics of the pairwise
  //      differences: the same code as `mannWhitneyU`.
  const total = n1 * n2;
  const half = Math.floor((total + 1) / 2);
  const hl =
    total % 2 === 1
      ? kthWeightedDifference(c, b, half)
      : (kthWeightedDifference(c, b, half) + kthWeightedDifference(c, b, half + 1)) / 2;
  return mannWhitneyFromRanks({
    rankSumCandidate,
    tieTerm,
    n1,
    n2,
    alternative,
    continuity,
    alpha,
    hodgesLehmannShift: hl,
    kthDifference: (k) => kthWeightedDifference(c, b, k),
    candidateMedian: binnedMedian(c),
    baselineMedian: binnedMedian(b),
  });
}

/** Validates, sorts by value, merges equal values and drops empty bins. */
function normalizeBins(bins: readonly ValueBin[], name: string): Binned {
  const sorted: ValueBin[] = [];
  for (let i = 0; i < bins.length; i++) {
    const { value, count } = bins[i]!;
    if (!Number.isFinite(value)) {
      throw new RangeError(`${name}[${i}].value: must be a finite number, got ${value}`);
    }
    if (!Number.isSafeInteger(count) || count < 0) {
      throw new RangeError(`${name}[${i}].count: must be an integer >= 0, got ${count}`);
    }
    if (count > 0) sorted.push({ value, count });
  }
  sorted.sort((x, y) => x.value - y.value);
  const values: number[] = [];
  const counts: number[] = [];
  let total = 0;
  for (const { value, count } of sorted) {
    total += count;
    if (values.length > 0 && values[values.length - 1] === value) {
      counts[counts.length - 1]! += count;
    } else {
      values.push(value);
      counts.push(count);
    }
  }
  return { values: Float64Array.from(values), counts: Float64Array.from(counts), total };
}

/** The observation at 0-based rank `r` of the expanded sample. */
function valueAtRank(x: Binned, r: number): number {
  let cumulative = 0;
  for (let i = 0; i < x.values.length; i++) {
    cumulative += x.counts[i]!;
    if (cumulative > r) return x.values[i]!;
  }
  return x.values[x.values.length - 1]!;
}

function binnedMedian(x: Binned): number {
  const m = Math.floor(x.total / 2);
  return x.total % 2 === 1 ? valueAtRank(x, m) : (valueAtRank(x, m - 1) + valueAtRank(x, m)) / 2;
}

/**
 * The k-th smallest (1-based) of the differences c.values[j] − b.values[i], each counted
 * c.counts[j] · b.counts[i] times. As `kthDifference` in mannWhitney.ts: the differences form a
 * matrix with sorted rows (fixed baseline value); a random remaining cell is the pivot, a
 * monotone sweep finds per row how many cells lie below it, and prefix sums of the candidate
 * counts turn cell counts into observation weights. Each round discards the pivot's side.
 */
function kthWeightedDifference(c: Binned, b: Binned, k: number): number {
  const rows = b.values.length;
  const cols = c.values.length;
  const prefix = new Float64Array(cols + 1); // prefix[j] = candidate observations in columns < j
  for (let j = 0; j < cols; j++) prefix[j + 1] = prefix[j]! + c.counts[j]!;
  const lo = new Int32Array(rows);
  const hi = new Int32Array(rows).fill(cols);
  const less = new Int32Array(rows);
  const lessOrEqual = new Int32Array(rows);
  const rng = mulberry32(0x9e3779b9);
  const smallEnough = Math.max(2048, rows + cols);
  for (;;) {
    // 1. Cells still in play, and the weight known to lie below all of them.
    let remaining = 0;
    let below = 0;
    for (let i = 0; i < rows; i++) {
      remaining += hi[i]! - lo[i]!;
      below += b.counts[i]! * prefix[lo[i]!]!;
    }
    // 2. Few enough: sort what is left and walk the weights.
    if (remaining <= smallEnough) {
      const diffs = new Float64Array(remaining);
      const weights = new Float64Array(remaining);
      let w = 0;
      for (let i = 0; i < rows; i++) {
        for (let j = lo[i]!; j < hi[i]!; j++) {
          diffs[w] = c.values[j]! - b.values[i]!;
          weights[w++] = b.counts[i]! * c.counts[j]!;
        }
      }
      const order = Array.from({ length: remaining }, (_, x) => x);
      order.sort((x, y) => diffs[x]! - diffs[y]!);
      let cumulative = below;
      for (const x of order) {
        cumulative += weights[x]!;
        if (cumulative >= k) return diffs[x]!;
      }
      return diffs[order[order.length - 1]!]!;
    }
    // 3. A uniformly random remaining cell as the pivot.
    let r = Math.floor(rng() * remaining);
    let pivot = Number.NaN;
    for (let i = 0; i < rows; i++) {
      const width = hi[i]! - lo[i]!;
      if (r < width) {
        pivot = c.values[lo[i]! + r]! - b.values[i]!;
        break;
      }
      r -= width;
    }
    // 4. Weight of differences < pivot and <= pivot; pointers only move forward as rows grow.
    let weightLess = 0;
    let weightLessOrEqual = 0;
    let jl = 0;
    let jle = 0;
    for (let i = 0; i < rows; i++) {
      const bi = b.values[i]!;
      while (jl < cols && c.values[jl]! - bi < pivot) jl++;
      if (jle < jl) jle = jl;
      while (jle < cols && c.values[jle]! - bi <= pivot) jle++;
      less[i] = jl;
      lessOrEqual[i] = jle;
      weightLess += b.counts[i]! * prefix[jl]!;
      weightLessOrEqual += b.counts[i]! * prefix[jle]!;
    }
    // 5. Keep the side that holds the k-th.
    if (weightLess >= k) {
      for (let i = 0; i < rows; i++) if (less[i]! < hi[i]!) hi[i] = less[i]!;
    } else if (weightLessOrEqual >= k) {
      return pivot;
    } else {
      for (let i = 0; i < rows; i++) if (lessOrEqual[i]! > lo[i]!) lo[i] = lessOrEqual[i]!;
    }
  }
}

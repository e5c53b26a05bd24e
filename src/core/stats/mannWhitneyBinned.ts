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

/** Weighted draws per round of `kthWeightedDifference`, and how many of them each pivot sits from the k-th's expected place. */
const DRAWS = 31;
const SPREAD = 2.5;
/** Cells few enough to sort. */
const FEW_CELLS = 96;

/**
 * The k-th smallest (1-based) of the differences c.values[j] − b.values[i], each counted
 * c.counts[j] · b.counts[i] times. The differences form a matrix with sorted rows (fixed
 * baseline value); cells [lo[i], hi[i]) of row i are still in play, every cell left of lo[i]
 * is known to lie below the k-th, every cell from hi[i] on above it.
 *
 * Each round brackets the k-th between two pivots, as Floyd & Rivest's SELECT does: draw a
 * few remaining cells at random in proportion to their weight (so a draw's weighted rank is
 * uniform), sort the draws, and take the two a little below and above the k-th's expected
 * place among them. A monotone sweep per pivot counts, row by row, the cells below it, and
 * prefix sums of the candidate counts turn cells into observation weights. Usually the k-th
 * lies between the pivots and the round keeps only the weight between them (about a sixth);
 * otherwise it keeps the side that holds the k-th. Every round discards at least one pivot's
 * cell. When few cells are left they are sorted and their weights walked. Exact whatever the
 * draws; the generator has a fixed seed, so the work done is deterministic too.
 *
 * Why not one random cell as the pivot (quickselect), as before: it discards about half the
 * cells per round, so the ~30,000 cells of two ~170-bin sketches took ~10 rounds and then a
 * sort of up to 2,048 cells through an index comparator; the bracket takes a few rounds and
 * sorts fewer than 100 cells. The whole test on such sketches (6,000 vs 54,000 requests) went
 * from 1.1 ms to 0.12 ms (best of interleaved runs on the bench machine).
 */
function kthWeightedDifference(c: Binned, b: Binned, k: number): number {
  const rows = b.values.length;
  const cols = c.values.length;
  const cv = c.values;
  const bv = b.values;
  const bc = b.counts;
  const prefix = new Float64Array(cols + 1); // prefix[j] = candidate observations in columns < j
  for (let j = 0; j < cols; j++) prefix[j + 1] = prefix[j]! + c.counts[j]!;
  const lo = new Int32Array(rows);
  const hi = new Int32Array(rows).fill(cols);
  const cutLow = new Int32Array(rows);
  const cutHigh = new Int32Array(rows);
  const rowWeight = new Float64Array(rows + 1); // remaining weight in rows < i
  const draws = new Float64Array(DRAWS);
  const rng = mulberry32(0x9e3779b9);
  for (;;) {
    // 1. Cells and weight still in play, and the weight known to lie below all of them.
    let remaining = 0;
    let below = 0;
    for (let i = 0; i < rows; i++) {
      remaining += hi[i]! - lo[i]!;
      below += bc[i]! * prefix[lo[i]!]!;
      rowWeight[i + 1] = rowWeight[i]! + bc[i]! * (prefix[hi[i]!]! - prefix[lo[i]!]!);
    }
    // 2. Few enough: sort what is left and walk the weights.
    if (remaining <= FEW_CELLS) return kthOfRemaining(c, b, lo, hi, remaining, k - below);
    // 3. Weighted draws of remaining cells; pivots around the k-th's expected place among them.
    const weight = rowWeight[rows]!;
    for (let d = 0; d < DRAWS; d++) {
      const r = rng() * weight;
      const i = Math.min(rows - 1, lastAtMost(rowWeight, r, rows));
      const inRow = prefix[lo[i]!]! + (r - rowWeight[i]!) / bc[i]!;
      const j = Math.max(lo[i]!, Math.min(hi[i]! - 1, lastAtMost(prefix, inRow, cols)));
      draws[d] = cv[j]! - bv[i]!;
    }
    draws.sort();
    const at = ((k - below) / weight) * DRAWS;
    const low = draws[Math.max(0, Math.floor(at - SPREAD))]!;
    const high = draws[Math.min(DRAWS - 1, Math.ceil(at + SPREAD))]!;
    // 4. Where the k-th lies relative to the pivots; keep only that part.
    if (sweep(cv, bv, bc, prefix, low, false, cutLow) >= k) {
      for (let i = 0; i < rows; i++) if (cutLow[i]! < hi[i]!) hi[i] = cutLow[i]!;
      continue;
    }
    if (sweep(cv, bv, bc, prefix, low, true, cutLow) >= k) return low;
    if (sweep(cv, bv, bc, prefix, high, true, cutHigh) < k) {
      for (let i = 0; i < rows; i++) if (cutHigh[i]! > lo[i]!) lo[i] = cutHigh[i]!;
      continue;
    }
    for (let i = 0; i < rows; i++) {
      if (cutLow[i]! > lo[i]!) lo[i] = cutLow[i]!;
      if (cutHigh[i]! < hi[i]!) hi[i] = cutHigh[i]!;
    }
  }
}

/** The last index i in [0, n] with xs[i] <= x (xs ascending, xs[0] <= x). */
function lastAtMost(xs: Float64Array, x: number, n: number): number {
  let a = 0;
  let z = n;
  while (a < z) {
    const m = (a + z + 1) >> 1;
    if (xs[m]! <= x) a = m;
    else z = m - 1;
  }
  return a;
}

/**
 * Weight of the differences below `pivot` (or at most `pivot` when `inclusive`), and in
 * `cut[i]` the number of columns of row i that are. As b.values[i] grows, c.values[j] −
 * b.values[i] shrinks, so the counts only grow with i and the pointer never moves back.
 */
function sweep(
  cv: Float64Array,
  bv: Float64Array,
  bc: Float64Array,
  prefix: Float64Array,
  pivot: number,
  inclusive: boolean,
  cut: Int32Array,
): number {
  const cols = cv.length;
  let weight = 0;
  let j = 0;
  for (let i = 0; i < bv.length; i++) {
    const bi = bv[i]!;
    if (inclusive) while (j < cols && cv[j]! - bi <= pivot) j++;
    else while (j < cols && cv[j]! - bi < pivot) j++;
    cut[i] = j;
    weight += bc[i]! * prefix[j]!;
  }
  return weight;
}

/** The `rank`-th (1-based) by weight of the cells still in play: sorted, weights walked. */
function kthOfRemaining(
  c: Binned,
  b: Binned,
  lo: Int32Array,
  hi: Int32Array,
  remaining: number,
  rank: number,
): number {
  const diffs = new Float64Array(remaining);
  const weights = new Float64Array(remaining);
  let w = 0;
  for (let i = 0; i < b.values.length; i++) {
    for (let j = lo[i]!; j < hi[i]!; j++) {
      diffs[w] = c.values[j]! - b.values[i]!;
      weights[w++] = b.counts[i]! * c.counts[j]!;
    }
  }
  // Insertion sort of the pairs: there are few, and it needs no index array or comparator.
  for (let x = 1; x < remaining; x++) {
    const d = diffs[x]!;
    const wt = weights[x]!;
    let y = x - 1;
    while (y >= 0 && diffs[y]! > d) {
      diffs[y + 1] = diffs[y]!;
      weights[y + 1] = weights[y]!;
      y--;
    }
    diffs[y + 1] = d;
    weights[y + 1] = wt;
  }
  let cumulative = 0;
  for (let x = 0; x < remaining; x++) {
    cumulative += weights[x]!;
    if (cumulative >= rank) return diffs[x]!;
  }
  return diffs[remaining - 1]!;
}

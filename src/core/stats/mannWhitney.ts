/**
 * Mann–Whitney U (Wilcoxon rank-sum) test with effect sizes, for latency-like metrics where
 * a shift in the distribution matters and means are dominated by tails. Kayenta's
 * Mann–Whitney judge (spinnaker/kayenta, `MannWhitneyUTest` in kayenta-judge) uses the same
 * test with a Hodges–Lehmann style location shift as its effect.
 *
 * Assumptions: the two samples are independent and each is i.i.d. (requests treated as
 * exchangeable within a version and window); the test detects stochastic dominance, not a
 * difference in means. The p-value is the tie-corrected normal approximation with continuity
 * correction, matching `scipy.stats.mannwhitneyu(candidate, baseline, method="asymptotic",
 * use_continuity=True)`; for tiny samples without ties scipy's "exact" method would differ, and
 * such samples should be judged inconclusive by the caller anyway.
 */
import { normalQuantile, normalSf } from "./distributions.js";
import { mulberry32 } from "./random.js";
import { type Alternative, checkAlpha, checkFinite, type Interval } from "./types.js";

export interface MannWhitneyOptions {
  /** "greater": the candidate tends to be larger (slower); default "two-sided". */
  alternative?: Alternative;
  /** Continuity correction of ½ in the normal approximation; default true (as scipy). */
  continuity?: boolean;
  /** 1 − confidence level of the shift interval; default 0.05. */
  alpha?: number;
}

export interface MannWhitneyEffect {
  /**
   * Common-language effect size / probability of superiority: P(candidate > baseline) +
   * ½·P(tie) over all pairs, = U / (n1·n2). 0.5 means no shift.
   */
  probabilityOfSuperiority: number;
  /** Rank-biserial correlation, 2·probabilityOfSuperiority − 1, in [−1, 1]. */
  rankBiserial: number;
  /**
   * Hodges–Lehmann shift: the median of all n1·n2 differences candidate_i − baseline_j
   * (positive: the candidate is larger). Computed exactly, see `hodgesLehmannShift`.
   */
  hodgesLehmannShift: number;
  /** hodgesLehmannShift / median(baseline); null when the baseline median is 0. */
  relativeShift: number | null;
  /**
   * Distribution-free confidence interval for the shift (Moses; Hollander & Wolfe,
   * "Nonparametric Statistical Methods", §4.3, large-sample form): the k-th smallest and
   * k-th largest pairwise difference, k = ⌊n1n2/2 − z(1−α/2)·σ_U⌋ with the tie-corrected σ_U.
   * Kayenta's judge classifies on such an interval. Null when k < 1 (samples too small).
   */
  shiftInterval: Interval | null;
  candidateMedian: number;
  baselineMedian: number;
}

export interface MannWhitneyResult {
  test: "mann-whitney-u";
  alternative: Alternative;
  continuity: boolean;
  nCandidate: number;
  nBaseline: number;
  /** U of the candidate sample: rank sum of the candidate − n1(n1+1)/2 (scipy's statistic). */
  u: number;
  /**
   * The standardized statistic whose upper normal tail gives the p-value (scipy's
   * convention: U1, U2 or max(U1, U2) for "greater", "less", "two-sided", minus n1n2/2 and
   * the continuity correction, over the tie-corrected standard deviation). 0 when every
   * value is tied.
   */
  z: number;
  pValue: number;
  /** Σ(t³ − t) over groups of tied values, the tie correction of the variance. */
  tieTerm: number;
  effect: MannWhitneyEffect;
}

/**
 * Mann–Whitney U test of `candidate` against `baseline`, with midranks for ties.
 * O((n1+n2)·log(n1+n2)) for the test; the Hodges–Lehmann shift adds an expected
 * O((n1+n2)·log(n1·n2)).
 *
 * @example
 * const r = mannWhitneyU(candidateLatencies, baselineLatencies, { alternative: "greater" });
 * if (r.pValue < 0.01 && r.effect.relativeShift! > 0.2) fail();
 */
export function mannWhitneyU(
  candidate: readonly number[],
  baseline: readonly number[],
  options: MannWhitneyOptions = {},
): MannWhitneyResult {
  const alternative = options.alternative ?? "two-sided";
  const continuity = options.continuity ?? true;
  const alpha = options.alpha ?? 0.05;
  checkAlpha(alpha);
  const n1 = candidate.length;
  const n2 = baseline.length;
  if (n1 === 0 || n2 === 0) {
    throw new RangeError(`mannWhitneyU: both samples need at least one value, got ${n1} and ${n2}`);
  }
  checkFinite(candidate, "candidate");
  checkFinite(baseline, "baseline");
  const c = Float64Array.from(candidate).sort();
  const b = Float64Array.from(baseline).sort();

  // 1. Merge the two sorted samples and walk runs of equal values: each run of length t
  //    starting at 0-based position i shares the midrank i + (t + 1) / 2.
  let rankSumCandidate = 0;
  let tieTerm = 0;
  let i = 0;
  let j = 0;
  while (i < n1 || j < n2) {
    const v = j >= n2 || (i < n1 && c[i]! <= b[j]!) ? c[i]! : b[j]!;
    const start = i + j;
    let inCandidate = 0;
    while (i < n1 && c[i] === v) {
      i++;
      inCandidate++;
    }
    while (j < n2 && b[j] === v) j++;
    const t = i + j - start;
    rankSumCandidate += inCandidate * (start + (t + 1) / 2);
    if (t > 1) tieTerm += t * t * t - t;
  }

  // 2-3. The test and the effect sizes, shared with the binned variant.
  return mannWhitneyFromRanks({
    rankSumCandidate,
    tieTerm,
    n1,
    n2,
    alternative,
    continuity,
    alpha,
    hodgesLehmannShift: hodgesLehmannSorted(c, b),
    kthDifference: (k) => kthDifference(c, b, k),
    candidateMedian: medianSorted(c),
    baselineMedian: medianSorted(b),
  });
}

/**
 * Steps 2 and 3 of the test, shared by `mannWhitneyU` and `mannWhitneyBinned` (which differ only
 * in how they rank and how they find order statistics of the pairwise differences): U, the
 * tie-corrected normal approximation (scipy's _get_mwu_z), and the effect sizes with the Moses
 * interval of the shift.
 */
export function mannWhitneyFromRanks(r: {
  rankSumCandidate: number;
  tieTerm: number;
  n1: number;
  n2: number;
  alternative: Alternative;
  continuity: boolean;
  alpha: number;
  hodgesLehmannShift: number;
  /** The k-th smallest (1-based) of the n1·n2 differences candidate − baseline. */
  kthDifference: (k: number) => number;
  candidateMedian: number;
  baselineMedian: number;
}): MannWhitneyResult {
  const { n1, n2, tieTerm, alternative, continuity, alpha, baselineMedian } = r;
  const u1 = r.rankSumCandidate - (n1 * (n1 + 1)) / 2;
  const u2 = n1 * n2 - u1;
  const n = n1 + n2;
  const mu = (n1 * n2) / 2;
  const s = Math.sqrt(((n1 * n2) / 12) * (n + 1 - (n > 1 ? tieTerm / (n * (n - 1)) : 0)));
  const u = alternative === "greater" ? u1 : alternative === "less" ? u2 : Math.max(u1, u2);
  const factor = alternative === "two-sided" ? 2 : 1;
  let z = 0;
  let pValue = 1;
  if (s > 0) {
    z = (u - mu - (continuity ? 0.5 : 0)) / s;
    pValue = Math.min(1, Math.max(0, factor * normalSf(z)));
  }
  const ps = u1 / (n1 * n2);
  const hl = r.hodgesLehmannShift;
  const k = Math.floor(mu - normalQuantile(1 - alpha / 2) * s);
  const shiftInterval: Interval | null =
    k >= 1
      ? { lower: r.kthDifference(k), upper: r.kthDifference(n1 * n2 + 1 - k), level: 1 - alpha }
      : null;
  return {
    test: "mann-whitney-u",
    alternative,
    continuity,
    nCandidate: n1,
    nBaseline: n2,
    u: u1,
    z,
    pValue,
    tieTerm,
    effect: {
      probabilityOfSuperiority: ps,
      rankBiserial: 2 * ps - 1,
      hodgesLehmannShift: hl,
      relativeShift: baselineMedian === 0 ? null : hl / baselineMedian,
      shiftInterval,
      candidateMedian: r.candidateMedian,
      baselineMedian,
    },
  };
}

/** Median of the values (mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median: no values");
  checkFinite(values, "values");
  return medianSorted(Float64Array.from(values).sort());
}

function medianSorted(s: Float64Array): number {
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Two-sample Hodges–Lehmann shift: the median of the n1·n2 differences candidate_i −
 * baseline_j, exactly, without forming them. The differences form a matrix whose rows
 * (fixed baseline value) are sorted, so the k-th smallest is found by randomized selection
 * in that sorted matrix (in the manner of Johnson & Mizoguchi 1978 and Monahan's 1984
 * algorithm for the one-sample estimator): pick a random remaining difference as pivot,
 * count the differences below it row by row with a monotone two-pointer sweep in
 * O(n1 + n2), and discard the side that cannot hold the k-th. Expected O(log(n1·n2))
 * rounds. The pivot choice uses a fixed-seed generator, so the result is deterministic (and
 * exact in any case). Differences are always computed as the same floating-point
 * expression, so counting is consistent with the final sort.
 */
export function hodgesLehmannShift(
  candidate: readonly number[],
  baseline: readonly number[],
): number {
  if (candidate.length === 0 || baseline.length === 0) {
    throw new RangeError("hodgesLehmannShift: both samples need at least one value");
  }
  checkFinite(candidate, "candidate");
  checkFinite(baseline, "baseline");
  return hodgesLehmannSorted(
    Float64Array.from(candidate).sort(),
    Float64Array.from(baseline).sort(),
  );
}

function hodgesLehmannSorted(c: Float64Array, b: Float64Array): number {
  const total = c.length * b.length;
  const k = Math.floor((total + 1) / 2);
  if (total % 2 === 1) return kthDifference(c, b, k);
  return (kthDifference(c, b, k) + kthDifference(c, b, k + 1)) / 2;
}

/** The k-th smallest (1-based) of c[j] − b[i] over all i, j; c and b sorted ascending. */
function kthDifference(c: Float64Array, b: Float64Array, k: number): number {
  const rows = b.length;
  const cols = c.length;
  const lo = new Int32Array(rows); // in row i, columns < lo[i] are known to be below the k-th
  const hi = new Int32Array(rows).fill(cols); // columns >= hi[i] are known to be above it
  const less = new Int32Array(rows);
  const lessOrEqual = new Int32Array(rows);
  const rng = mulberry32(0x9e3779b9);
  const smallEnough = Math.max(2048, rows + cols);
  for (;;) {
    let remaining = 0;
    let below = 0;
    for (let i = 0; i < rows; i++) {
      remaining += hi[i]! - lo[i]!;
      below += lo[i]!;
    }
    if (remaining <= smallEnough) {
      const rest = new Float64Array(remaining);
      let w = 0;
      for (let i = 0; i < rows; i++) {
        for (let j = lo[i]!; j < hi[i]!; j++) rest[w++] = c[j]! - b[i]!;
      }
      rest.sort();
      return rest[k - below - 1]!;
    }
    // A uniformly random remaining difference as the pivot.
    let r = Math.floor(rng() * remaining);
    let pivot = Number.NaN;
    for (let i = 0; i < rows; i++) {
      const width = hi[i]! - lo[i]!;
      if (r < width) {
        pivot = c[lo[i]! + r]! - b[i]!;
        break;
      }
      r -= width;
    }
    // Count differences < pivot and <= pivot in each row. As b[i] grows, c[j] − b[i]
    // shrinks, so both counts only grow with i and the pointers never move back.
    let totalLess = 0;
    let totalLessOrEqual = 0;
    let jl = 0;
    let jle = 0;
    for (let i = 0; i < rows; i++) {
      const bi = b[i]!;
      while (jl < cols && c[jl]! - bi < pivot) jl++;
      if (jle < jl) jle = jl;
      while (jle < cols && c[jle]! - bi <= pivot) jle++;
      less[i] = jl;
      lessOrEqual[i] = jle;
      totalLess += jl;
      totalLessOrEqual += jle;
    }
    if (totalLess >= k) {
      for (let i = 0; i < rows; i++) if (less[i]! < hi[i]!) hi[i] = less[i]!;
    } else if (totalLessOrEqual >= k) {
      return pivot;
    } else {
      for (let i = 0; i < rows; i++) if (lessOrEqual[i]! > lo[i]!) lo[i] = lessOrEqual[i]!;
    }
  }
}

/**
 * Drift of a prediction distribution, shadow against primary: the Population Stability Index
 * (PSI, over quantile bins of the primary, or over categories) and the two-sample
 * Kolmogorov-Smirnov test. Pure.
 */

/** Proportions below this are floored, so an empty bin does not make PSI infinite. */
const PSI_FLOOR = 1e-4;

/**
 * PSI of numeric samples: bins are the quantiles of `expected` (the primary), so each holds
 * about 1/bins of it; PSI = Σ (a − e) · ln(a / e). Rule of thumb: < 0.1 stable, 0.1–0.25
 * moderate shift, > 0.25 large shift. Null when either side is empty.
 *
 * @example psi([1, 2, 3, 4], [1, 2, 3, 4]) // 0
 */
export function psi(
  expected: readonly number[],
  actual: readonly number[],
  bins = 10,
): number | null {
  if (expected.length === 0 || actual.length === 0) return null;
  const e = [...expected].sort((x, y) => x - y);
  // Interior edges at the primary's quantiles; duplicates collapse (discrete predictions).
  const edges: number[] = [];
  for (let k = 1; k < bins; k++) {
    const q = e[Math.min(e.length - 1, Math.floor((k * e.length) / bins))]!;
    if (edges.length === 0 || q > edges[edges.length - 1]!) edges.push(q);
  }
  const ce = histogram(e, edges);
  const ca = histogram(actual, edges);
  return psiOfCounts(ce, ca);
}

/** PSI of categorical samples given as counts per category. Null when either side is empty. */
export function psiCategorical(
  expected: Readonly<Record<string, number>>,
  actual: Readonly<Record<string, number>>,
): number | null {
  const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
  return psiOfCounts(
    keys.map((k) => expected[k] ?? 0),
    keys.map((k) => actual[k] ?? 0),
  );
}

function psiOfCounts(ce: readonly number[], ca: readonly number[]): number | null {
  const ne = ce.reduce((s, x) => s + x, 0);
  const na = ca.reduce((s, x) => s + x, 0);
  if (ne === 0 || na === 0) return null;
  let sum = 0;
  for (let i = 0; i < ce.length; i++) {
    const pe = Math.max(PSI_FLOOR, ce[i]! / ne);
    const pa = Math.max(PSI_FLOOR, ca[i]! / na);
    sum += (pa - pe) * Math.log(pa / pe);
  }
  return sum;
}

/** Counts per bin: bin i holds values in (edges[i-1], edges[i]]; the last bin the rest. */
function histogram(values: readonly number[], edges: readonly number[]): number[] {
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const v of values) {
    let lo = 0;
    let hi = edges.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (v <= edges[mid]!) hi = mid;
      else lo = mid + 1;
    }
    counts[lo]! += 1;
  }
  return counts;
}

/**
 * Two-sample Kolmogorov-Smirnov test: D = sup |F_a − F_b| and its asymptotic p-value
 * (Numerical Recipes' `kstwo`, with Stephens' small-sample correction). Null when either side
 * is empty.
 */
export function ksTest(
  a: readonly number[],
  b: readonly number[],
): { statistic: number; pValue: number } | null {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) return null;
  const x = [...a].sort((p, q) => p - q);
  const y = [...b].sort((p, q) => p - q);
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < n && j < m) {
    const v = Math.min(x[i]!, y[j]!);
    while (i < n && x[i]! <= v) i++;
    while (j < m && y[j]! <= v) j++;
    d = Math.max(d, Math.abs(i / n - j / m));
  }
  const en = Math.sqrt((n * m) / (n + m));
  return { statistic: d, pValue: kolmogorovQ((en + 0.12 + 0.11 / en) * d) };
}

/** Q_KS(λ) = 2 Σ_{j≥1} (−1)^{j−1} e^{−2 j² λ²}: the Kolmogorov distribution's survival function. */
export function kolmogorovQ(lambda: number): number {
  if (lambda < 1e-3) return 1;
  let sum = 0;
  let sign = 1;
  for (let j = 1; j <= 100; j++) {
    const term = sign * Math.exp(-2 * j * j * lambda * lambda);
    sum += term;
    if (Math.abs(term) < 1e-12) break;
    sign = -sign;
  }
  return Math.min(1, Math.max(0, 2 * sum));
}

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_RELATIVE_ACCURACY, MIN_INDEXABLE_VALUE, Sketch } from "./sketch.js";

/** mulberry32: seeded, so every run checks the same data. */
function rng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal by Box-Muller. */
function normal(r: () => number): number {
  const u = 1 - r();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

const N = 100_000;
const DATASETS: Record<string, (r: () => number) => number> = {
  // A latency-like distribution: median e^1.5 ≈ 4.5 ms, long right tail.
  lognormal: (r) => Math.exp(1.5 + 0.8 * normal(r)),
  uniform: (r) => 0.2 + r() * 50,
  // Fast cache hits and slow misses.
  bimodal: (r) => (r() < 0.7 ? Math.exp(0 + 0.2 * normal(r)) : Math.exp(4 + 0.3 * normal(r))),
  // Nine decades, down to microseconds.
  wide: (r) => 10 ** (-3 + 9 * r()),
};
const QUANTILES = [0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1];

function sample(name: string, seed: number, n = N): number[] {
  const r = rng(seed);
  const gen = DATASETS[name]!;
  return Array.from({ length: n }, () => gen(r));
}

/** The exact value the sketch estimates: rank floor(q × (n − 1)) of the sorted values. */
function exactQuantile(sorted: number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))]!;
}

function relErr(estimate: number, exact: number): number {
  return Math.abs(estimate - exact) / Math.abs(exact);
}

describe("Sketch", () => {
  for (const [i, name] of Object.keys(DATASETS).entries()) {
    it(`${name}: quantiles within 1% of the exact ones (100k seeded values)`, () => {
      const values = sample(name, 42 + i);
      const s = new Sketch();
      for (const v of values) s.add(v);
      const sorted = [...values].sort((a, b) => a - b);
      assert.equal(s.count, N);
      assert.equal(s.min, sorted[0]);
      assert.equal(s.max, sorted[N - 1]);
      const exactSum = values.reduce((a, b) => a + b, 0);
      assert.ok(relErr(s.sum, exactSum) < 1e-9);
      for (const q of QUANTILES) {
        const exact = exactQuantile(sorted, q);
        const err = relErr(s.quantile(q), exact);
        // α plus floating-point slack for values that sit exactly on a bin boundary.
        assert.ok(
          err <= DEFAULT_RELATIVE_ACCURACY + 1e-12,
          `${name} q=${q}: ${s.quantile(q)} vs ${exact} (${(err * 100).toFixed(3)}%)`,
        );
      }
    });
  }

  it("merging per-part sketches equals one sketch of everything", () => {
    const values = sample("bimodal", 7);
    const whole = new Sketch();
    for (const v of values) whole.add(v);
    // 100 "seconds" of 1000 values each, merged in a scrambled order.
    const parts: Sketch[] = [];
    for (let p = 0; p < 100; p++) {
      const s = new Sketch();
      for (let k = p * 1000; k < (p + 1) * 1000; k++) s.add(values[k]!);
      parts.push(s);
    }
    const merged = new Sketch();
    for (let p = 0; p < 100; p++) merged.merge(parts[(p * 37) % 100]!);
    assert.equal(merged.count, whole.count);
    assert.equal(merged.min, whole.min);
    assert.equal(merged.max, whole.max);
    assert.ok(relErr(merged.sum, whole.sum) < 1e-9);
    for (const q of QUANTILES) assert.equal(merged.quantile(q), whole.quantile(q), `q=${q}`);
    const { sum: _a, ...mergedBins } = merged.toJSON();
    const { sum: _b, ...wholeBins } = whole.toJSON();
    assert.deepEqual(mergedBins, wholeBins);
  });

  it("merges into itself, and refuses a different accuracy", () => {
    const s = new Sketch();
    for (const v of [1, 2, 3]) s.add(v);
    s.merge(s);
    assert.equal(s.count, 6);
    assert.equal(s.sum, 12);
    assert.throws(() => s.merge(new Sketch({ alpha: 0.02 })), /different accuracy/);
  });

  it("round-trips through its JSON form, and the JSON is sparse", () => {
    const values = sample("lognormal", 3, 10_000);
    const s = new Sketch();
    for (const v of values) s.add(v);
    s.add(0);
    const json = JSON.parse(JSON.stringify(s));
    assert.equal(json.v, 1);
    assert.equal(json.zero, 1);
    assert.equal(json.i.length, s.binCount - 1);
    const back = Sketch.fromJSON(json);
    assert.deepEqual(back.toJSON(), s.toJSON());
    assert.equal(back.count, s.count);
    assert.equal(back.sum, s.sum);
    for (const q of QUANTILES) assert.equal(back.quantile(q), s.quantile(q));
    // Gaps, not absolute indexes, after the first: small numbers.
    assert.ok(json.i.slice(1).every((g: number) => g >= 1 && g < 50));

    const empty = Sketch.fromJSON(JSON.parse(JSON.stringify(new Sketch())));
    assert.equal(empty.count, 0);
    assert.ok(Number.isNaN(empty.quantile(0.5)));
    assert.ok(Number.isNaN(empty.min));
  });

  it("rejects malformed JSON with a reason", () => {
    const good = new Sketch();
    good.add(3);
    const j = good.toJSON();
    assert.throws(() => Sketch.fromJSON(null), /not an object/);
    assert.throws(() => Sketch.fromJSON({ ...j, v: 2 }), /unknown version/);
    assert.throws(() => Sketch.fromJSON({ ...j, c: [] }), /same length/);
    assert.throws(() => Sketch.fromJSON({ ...j, c: [-1] }), /positive count/);
    assert.throws(() => Sketch.fromJSON({ ...j, i: [1, 0], c: [1, 1] }), /gap/);
    assert.throws(() => Sketch.fromJSON({ ...j, min: undefined }), /min and max/);
  });

  it("keeps at most maxBins bins, collapsing the lowest, and the high quantiles stay exact to α", () => {
    const maxBins = 100;
    const s = new Sketch({ maxBins });
    const values = sample("wide", 11, 20_000);
    for (const v of values) s.add(v);
    assert.ok(s.capacity <= maxBins, `capacity ${s.capacity}`);
    assert.ok(s.binCount <= maxBins);
    assert.equal(s.count, values.length);
    const sorted = [...values].sort((a, b) => a - b);
    // 100 bins of 2% cover a ratio of about 7: only the top of nine decades stays apart.
    for (const q of [0.99, 0.999]) {
      const exact = exactQuantile(sorted, q);
      assert.ok(relErr(s.quantile(q), exact) <= 0.01 + 1e-12, `q=${q}`);
    }
    // Low quantiles collapsed upwards: an overestimate, never below the true value.
    assert.ok(s.quantile(0.01) >= exactQuantile(sorted, 0.01));

    // Merging respects the bound too, from either side.
    const low = new Sketch({ maxBins });
    for (let k = 0; k < 1000; k++) low.add(1e-6 * (1 + k / 1000));
    const merged = new Sketch({ maxBins });
    merged.merge(s);
    merged.merge(low);
    assert.ok(merged.capacity <= maxBins);
    assert.equal(merged.count, s.count + 1000);
    const other = new Sketch({ maxBins });
    other.merge(low);
    other.merge(s);
    assert.equal(other.quantile(0.999), merged.quantile(0.999));
  });

  it("bins match a naive map of ceil(log_γ v) however the range grows (seeded fuzz)", () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const s = new Sketch();
      const naive = new Map<number, number>();
      const n = 1 + Math.floor(r() * 300);
      // Within 1e-7..1e7: above the zero bin and below the collapse bound.
      const centre = -3 + r() * 6;
      const spread = r() * 8;
      for (let k = 0; k < n; k++) {
        const v = 10 ** (centre + (r() - 0.5) * spread);
        s.add(v);
        const idx = Math.ceil(Math.log(v) / Math.log(s.gamma));
        naive.set(idx, (naive.get(idx) ?? 0) + 1);
      }
      const expected = [...naive.entries()].sort((a, b) => a[0] - b[0]);
      const j = s.toJSON();
      let idx = 0;
      const got = j.i.map((g, k) => {
        idx = k === 0 ? g : idx + g;
        return [idx, j.c[k]!];
      });
      assert.deepEqual(got, expected, `seed ${seed}`);
    }
  });

  it("zero bin, negatives and non-finite values", () => {
    const s = new Sketch();
    s.add(0);
    s.add(-2);
    s.add(MIN_INDEXABLE_VALUE);
    s.add(Number.NaN);
    s.add(Number.POSITIVE_INFINITY);
    s.add(5);
    assert.equal(s.count, 4);
    assert.equal(s.min, -2);
    assert.equal(s.max, 5);
    assert.equal(s.quantile(0), -2);
    assert.equal(s.quantile(0.5), 0);
    assert.equal(s.quantile(1), 5);
    assert.throws(() => s.quantile(1.5), RangeError);
  });

  it("countAtOrBelow is the cumulative count to within a bin", () => {
    const values = sample("lognormal", 5, 50_000);
    const s = new Sketch();
    for (const v of values) s.add(v);
    for (const le of [0.5, 1, 2.5, 5, 10, 25, 100]) {
      const exactBelow = values.filter((v) => v <= le * 0.99).length;
      const exactAbove = values.filter((v) => v <= le * 1.01).length;
      const got = s.countAtOrBelow(le);
      assert.ok(got >= exactBelow && got <= exactAbove, `le=${le}: ${got}`);
    }
    assert.equal(s.countAtOrBelow(1e9), s.count);
    assert.equal(s.countAtOrBelow(0), 0);
  });

  it("clear() empties the sketch and keeps its bins for reuse", () => {
    const s = new Sketch();
    for (const v of sample("uniform", 9, 1000)) s.add(v);
    const capacity = s.capacity;
    s.clear();
    assert.equal(s.count, 0);
    assert.equal(s.binCount, 0);
    assert.equal(s.capacity, capacity);
    assert.deepEqual(s.toJSON(), new Sketch().toJSON());
    s.add(10);
    assert.equal(s.quantile(0.5), 10);
  });
});

describe("Sketch.bins", () => {
  it("lists every value once, in increasing order, each within the relative accuracy", () => {
    const s = new Sketch();
    const values = [0, 0, 0.5, 1, 1.004, 2, 10, 10, 250, 1000];
    for (const v of values) s.add(v);
    const bins = s.bins();
    assert.equal(
      bins.reduce((a, b) => a + b.count, 0),
      values.length,
    );
    for (let i = 1; i < bins.length; i++) assert.ok(bins[i]!.value > bins[i - 1]!.value);
    for (const v of values.filter((x) => x > 0)) {
      assert.ok(
        bins.some((b) => Math.abs(b.value - v) <= DEFAULT_RELATIVE_ACCURACY * v + 1e-12),
        `a bin represents ${v}`,
      );
    }
    assert.equal(bins[0]!.count, 2, "the zero bin comes first");
  });
});

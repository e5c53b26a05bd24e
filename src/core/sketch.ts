/**
 * A DDSketch-style quantile sketch (Masson, Rim, Lee: "DDSketch: a fast and fully-mergeable
 * quantile sketch with relative-error guarantees", VLDB 2019) for positive values such as
 * latencies in milliseconds.
 *
 * How it works: a value v > 0 goes to bin i = ceil(log_γ(v)) with γ = (1 + α) / (1 − α), so
 * bin i holds (γ^(i−1), γ^i]. Every value in a bin is within relative error α of the bin's
 * representative 2γ^i / (γ + 1), so every quantile the sketch returns is within α of the exact
 * one, whatever the distribution. Two sketches with the same α merge by adding bin counts,
 * exactly: merging per-second sketches gives the same answer as one sketch of all the values,
 * which is what lets routers keep 1-second buckets and analysis merge any window of them.
 *
 * Why hand-written rather than an npm port: the router adds one value per request, so `add`
 * must be a log, a ceil and an array increment, with no allocation once the bins cover the
 * range seen; and a per-second sketch must be cleared and reused instead of re-allocated.
 * `@datadog/sketches-js` (2.1.1, the latest on npm when checked) keeps its bins in a plain
 * `number[]` that it re-centres with `slice` and `unshift(...new Array(n).fill(0))` as values
 * spread, has no way to clear a sketch for reuse, and serializes only to protobuf through
 * `protobufjs`, which it `require`s lazily without declaring it as a dependency (and whose
 * `fromProto` drops min and max). The algorithm is short; owning it keeps the hot path and
 * the stored format (`SketchJson`) under our control.
 *
 * Pure: no I/O, no clock.
 */

/** Default relative accuracy: quantiles within 1% of the exact value. */
export const DEFAULT_RELATIVE_ACCURACY = 0.01;

/**
 * Default bound on the number of bins. With α = 1% one bin spans 2% in value, so 2048 bins
 * cover a ratio of e^41 between the smallest and largest value kept apart: far more than any
 * latency range (1 ns to a day is 8.6e13, about 1600 bins). Past it the lowest bins collapse,
 * which keeps the high quantiles (the ones that matter for latency) exact to α.
 */
export const DEFAULT_MAX_BINS = 2048;

/** Values at or below this go to the zero bin (latency in ms: one picosecond). */
export const MIN_INDEXABLE_VALUE = 1e-9;

/** Bins a sketch reserves on its first value; grows from there as values spread. */
const INITIAL_CAPACITY = 64;

/**
 * The stored form of a sketch (`toJSON`), version 1. Bins are sparse: `i` holds the index of
 * the first non-empty bin, then the gap to each next one (small integers, so the JSON stays
 * short); `c` holds their counts. `min` and `max` are absent when the sketch is empty.
 *
 * @example {"v":1,"alpha":0.01,"zero":0,"sum":12.5,"min":1.1,"max":7,"i":[5,12,40],"c":[1,3,1]}
 */
export interface SketchJson {
  v: 1;
  alpha: number;
  /** Values at or below MIN_INDEXABLE_VALUE (zero, or negative from a clock step). */
  zero: number;
  sum: number;
  min?: number;
  max?: number;
  i: number[];
  c: number[];
}

export interface SketchOptions {
  /** Relative accuracy α, in (0, 1). Default 0.01. */
  alpha?: number;
  /** Most bins kept; the lowest ones collapse beyond it. Default 2048. */
  maxBins?: number;
}

/**
 * A mergeable quantile sketch with relative error `alpha`.
 *
 * @example
 * const s = new Sketch();
 * for (const ms of latencies) s.add(ms);
 * s.quantile(0.99); // within 1% of the exact p99
 */
export class Sketch {
  readonly alpha: number;
  readonly gamma: number;
  readonly maxBins: number;
  /** 1 / ln γ: index = ceil(ln v × multiplier). */
  readonly #multiplier: number;
  readonly #lnGamma: number;
  /** Dense counts; `#bins[k]` is the count of bin index `#offset + k`. */
  #bins: Float64Array;
  #offset = 0;
  /** Lowest and highest non-empty bin index; `#lo > #hi` when no bin is used. */
  #lo = 1;
  #hi = 0;
  #zero = 0;
  #count = 0;
  #sum = 0;
  #min = Number.POSITIVE_INFINITY;
  #max = Number.NEGATIVE_INFINITY;

  constructor(opts: SketchOptions = {}) {
    const alpha = opts.alpha ?? DEFAULT_RELATIVE_ACCURACY;
    if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must be in (0, 1), got ${alpha}`);
    const maxBins = opts.maxBins ?? DEFAULT_MAX_BINS;
    if (!(Number.isInteger(maxBins) && maxBins >= 2)) {
      throw new RangeError(`maxBins must be an integer >= 2, got ${maxBins}`);
    }
    this.alpha = alpha;
    this.gamma = (1 + alpha) / (1 - alpha);
    this.#lnGamma = Math.log(this.gamma);
    this.#multiplier = 1 / this.#lnGamma;
    this.maxBins = maxBins;
    this.#bins = new Float64Array(0);
  }

  /** Number of values added (NaN and infinities are ignored, not counted). */
  get count(): number {
    return this.#count;
  }

  /** Sum of the values added (exact, not estimated). */
  get sum(): number {
    return this.#sum;
  }

  /** Smallest value added (exact); NaN when empty. */
  get min(): number {
    return this.#count === 0 ? Number.NaN : this.#min;
  }

  /** Largest value added (exact); NaN when empty. */
  get max(): number {
    return this.#count === 0 ? Number.NaN : this.#max;
  }

  /** Number of non-empty bins plus the zero bin when used (the size of the stored form). */
  get binCount(): number {
    let n = this.#zero > 0 ? 1 : 0;
    for (let i = this.#lo; i <= this.#hi; i++) if (this.#bins[i - this.#offset]! > 0) n++;
    return n;
  }

  /** Bins allocated; stays at most `maxBins`. */
  get capacity(): number {
    return this.#bins.length;
  }

  /**
   * Adds one value. Allocates only when the value falls outside the bins allocated so far
   * (growing them, up to `maxBins`); NaN and infinities are ignored.
   */
  add(value: number): void {
    // Also false for NaN: the one comparison rejects both.
    if (!(value > Number.NEGATIVE_INFINITY && value < Number.POSITIVE_INFINITY)) return;
    this.#count++;
    this.#sum += value;
    if (value < this.#min) this.#min = value;
    if (value > this.#max) this.#max = value;
    if (value <= MIN_INDEXABLE_VALUE) {
      this.#zero++;
      return;
    }
    const index = Math.ceil(Math.log(value) * this.#multiplier);
    const k = index - this.#offset;
    // Fast path: the bin is allocated and the used range does not need to move.
    if (k >= 0 && k < this.#bins.length && this.#lo <= this.#hi) {
      this.#bins[k]!++;
      if (index < this.#lo) this.#lo = index;
      else if (index > this.#hi) this.#hi = index;
      return;
    }
    this.#addToBin(index, 1);
  }

  /**
   * Adds every value of `other` (same alpha required); `other` is not changed. Exact: the
   * result is the sketch of all values of both.
   */
  merge(other: Sketch): void {
    if (other.gamma !== this.gamma) {
      throw new Error(
        `cannot merge sketches of different accuracy (alpha ${this.alpha} and ${other.alpha})`,
      );
    }
    if (other === this) {
      this.merge(this.clone());
      return;
    }
    if (other.#count === 0) return;
    this.#count += other.#count;
    this.#sum += other.#sum;
    this.#zero += other.#zero;
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
    if (other.#lo > other.#hi) return;
    // The two ends first: the range is reserved at once (at most two reallocations), and a
    // collapse, if any, happens once; the bins in between then land in place.
    const lo = other.#lo;
    const hi = other.#hi;
    this.#addToBin(hi, other.#bins[hi - other.#offset]!);
    if (lo < hi) this.#addToBin(lo, other.#bins[lo - other.#offset]!);
    for (let i = hi - 1; i > lo; i--) {
      const c = other.#bins[i - other.#offset]!;
      if (c > 0) this.#addToBin(i, c);
    }
  }

  /**
   * The value at quantile `q` (0..1): the sketch's estimate of the element of rank
   * floor(q × (count − 1)) in sorted order, within relative error `alpha`; exact min and max at
   * the ends. NaN when empty.
   */
  quantile(q: number): number {
    if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile must be in [0, 1], got ${q}`);
    if (this.#count === 0) return Number.NaN;
    const rank = Math.floor(q * (this.#count - 1));
    if (rank === 0) return this.#min;
    if (rank === this.#count - 1) return this.#max;
    let seen = this.#zero;
    if (seen > rank) return Math.max(this.#min, 0);
    for (let i = this.#lo; i <= this.#hi; i++) {
      seen += this.#bins[i - this.#offset]!;
      if (seen > rank) return this.#clamp(this.#binValue(i));
    }
    return this.#max;
  }

  /**
   * How many values are ≤ `value`, estimated per bin: a bin counts when its representative
   * value is ≤ `value`, so only values within `alpha` of `value` can be misplaced. Used to
   * render Prometheus histogram buckets from a sketch.
   */
  countAtOrBelow(value: number): number {
    if (this.#count === 0 || value < this.#min) return 0;
    if (value >= this.#max) return this.#count;
    let n = this.#zero;
    if (value <= MIN_INDEXABLE_VALUE) return n;
    for (let i = this.#lo; i <= this.#hi; i++) {
      if (this.#binValue(i) > value) break;
      n += this.#bins[i - this.#offset]!;
    }
    return n;
  }

  /** Empties the sketch and keeps its bins allocated, so reusing it does not allocate. */
  clear(): void {
    if (this.#lo <= this.#hi)
      this.#bins.fill(0, this.#lo - this.#offset, this.#hi - this.#offset + 1);
    this.#lo = 1;
    this.#hi = 0;
    this.#zero = 0;
    this.#count = 0;
    this.#sum = 0;
    this.#min = Number.POSITIVE_INFINITY;
    this.#max = Number.NEGATIVE_INFINITY;
  }

  /** A copy with the same options and values. */
  clone(): Sketch {
    const s = new Sketch({ alpha: this.alpha, maxBins: this.maxBins });
    s.merge(this);
    return s;
  }

  /**
   * The histogram: each non-empty bin's representative value (within the relative accuracy of
   * every value in it, clamped to min/max) and count, in increasing order; the zero bin first.
   * A rank test on these bins is exact for the binned data (values in one bin are ties).
   */
  bins(): { value: number; count: number }[] {
    const out: { value: number; count: number }[] = [];
    if (this.#zero > 0) out.push({ value: this.#clamp(0), count: this.#zero });
    for (let b = this.#lo; b <= this.#hi; b++) {
      const n = this.#bins[b - this.#offset]!;
      if (n > 0) out.push({ value: this.#clamp(this.#binValue(b)), count: n });
    }
    return out;
  }

  /** The compact stored form (see `SketchJson`). */
  toJSON(): SketchJson {
    const i: number[] = [];
    const c: number[] = [];
    let prev = 0;
    for (let b = this.#lo; b <= this.#hi; b++) {
      const n = this.#bins[b - this.#offset]!;
      if (n === 0) continue;
      i.push(i.length === 0 ? b : b - prev);
      c.push(n);
      prev = b;
    }
    const json: SketchJson = { v: 1, alpha: this.alpha, zero: this.#zero, sum: this.#sum, i, c };
    if (this.#count > 0) {
      json.min = this.#min;
      json.max = this.#max;
    }
    return json;
  }

  /** Reads the stored form back; throws on anything that is not a valid version-1 sketch. */
  static fromJSON(json: unknown, opts: { maxBins?: number } = {}): Sketch {
    const bad = (why: string): never => {
      throw new Error(`not a serialized sketch: ${why}`);
    };
    if (typeof json !== "object" || json === null) return bad("not an object");
    const j = json as Partial<SketchJson>;
    if (j.v !== 1) return bad(`unknown version ${JSON.stringify(j.v)}`);
    if (typeof j.alpha !== "number") return bad("alpha is not a number");
    if (!isCount(j.zero)) return bad("zero is not a count");
    if (typeof j.sum !== "number" || !Number.isFinite(j.sum)) return bad("sum is not a number");
    if (!Array.isArray(j.i) || !Array.isArray(j.c) || j.i.length !== j.c.length) {
      return bad("i and c must be arrays of the same length");
    }
    const s = new Sketch({ alpha: j.alpha, ...(opts.maxBins ? { maxBins: opts.maxBins } : {}) });
    let index = 0;
    let total = j.zero;
    for (let k = 0; k < j.i.length; k++) {
      const step = j.i[k];
      const count = j.c[k];
      if (!Number.isSafeInteger(step) || (k > 0 && (step as number) <= 0)) {
        return bad(`i[${k}] is not a valid bin index or gap`);
      }
      if (!isCount(count) || count === 0) return bad(`c[${k}] is not a positive count`);
      index = k === 0 ? (step as number) : index + (step as number);
      s.#addToBin(index, count);
      total += count;
    }
    s.#zero = j.zero;
    s.#sum = j.sum;
    s.#count = total;
    if (total > 0) {
      if (typeof j.min !== "number" || typeof j.max !== "number" || !(j.min <= j.max)) {
        return bad("min and max are required for a non-empty sketch");
      }
      s.#min = j.min;
      s.#max = j.max;
    }
    return s;
  }

  #binValue(index: number): number {
    return (2 * Math.exp(index * this.#lnGamma)) / (this.gamma + 1);
  }

  #clamp(v: number): number {
    return Math.min(Math.max(v, this.#min), this.#max);
  }

  /**
   * Adds `count` to bin `index`, growing the allocation or collapsing the lowest bins as needed.
   * Counts and stats other than the bins are the caller's business.
   */
  #addToBin(index: number, count: number): void {
    if (this.#lo > this.#hi) {
      if (this.#bins.length === 0) {
        this.#bins = new Float64Array(Math.min(INITIAL_CAPACITY, this.maxBins));
      }
      // Centre the first value: latencies spread both ways from the first one seen.
      this.#offset = index - (this.#bins.length >> 1);
      this.#lo = index;
      this.#hi = index;
      this.#bins[index - this.#offset]! += count;
      return;
    }
    let lo = Math.min(index, this.#lo);
    const hi = Math.max(index, this.#hi);
    if (hi - lo + 1 > this.maxBins) {
      const floor = hi - this.maxBins + 1;
      if (index < floor) {
        // A value below the kept range lands in its lowest bin.
        index = floor;
        lo = floor;
      } else {
        // A value above the range pushes it up: the bins below `floor` fold into it.
        this.#collapseBelow(floor);
        lo = floor;
      }
    }
    if (lo < this.#offset || hi >= this.#offset + this.#bins.length) this.#grow(lo, hi);
    this.#bins[index - this.#offset]! += count;
    if (index < this.#lo) this.#lo = index;
    if (index > this.#hi) this.#hi = index;
  }

  /** Folds the counts of every bin below `floor` into bin `floor`. */
  #collapseBelow(floor: number): void {
    if (this.#lo >= floor) return;
    let folded = 0;
    const end = Math.min(floor - 1, this.#hi);
    for (let i = this.#lo; i <= end; i++) {
      const k = i - this.#offset;
      folded += this.#bins[k]!;
      this.#bins[k] = 0;
    }
    if (this.#hi < floor) {
      // Everything folded: start over from an empty range, centred on `floor`.
      this.#lo = 1;
      this.#hi = 0;
      this.#addToBin(floor, folded);
      return;
    }
    // lo < floor <= hi: bin `floor` is already allocated.
    this.#lo = floor;
    this.#bins[floor - this.#offset]! += folded;
  }

  /**
   * Reallocates so that [lo, hi] fits, with room to spare on both sides (doubling, up to
   * maxBins) so that growth is amortized and stops once the range of values is known.
   */
  #grow(lo: number, hi: number): void {
    const needed = hi - lo + 1;
    let size = Math.max(this.#bins.length * 2, INITIAL_CAPACITY);
    while (size < needed) size *= 2;
    // Callers never ask for more than maxBins (they collapse first).
    size = Math.max(Math.min(size, this.maxBins), needed);
    const offset = lo - ((size - needed) >> 1);
    const bins = new Float64Array(size);
    if (this.#lo <= this.#hi) {
      const from = Math.max(this.#lo, lo);
      for (let i = from; i <= this.#hi; i++) bins[i - offset] = this.#bins[i - this.#offset]!;
    }
    this.#bins = bins;
    this.#offset = offset;
  }
}

function isCount(n: unknown): n is number {
  return typeof n === "number" && Number.isFinite(n) && n >= 0;
}

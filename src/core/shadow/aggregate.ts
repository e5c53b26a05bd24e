/**
 * The bounded aggregate of a shadow phase's comparisons, and the report built from it.
 *
 * Bounded whatever the traffic: counts by field (at most `MAX_FIELDS`), counts by the set of
 * fields a pair differed on (at most `MAX_DIFF_SETS`; these make the mismatch rate exact
 * once noise fields are known, which is only at report time), a few sample diffs, latency
 * sketches, and reservoirs of predictions for drift. The state is plain JSON, so routers flush
 * it to the store and several routers' states merge into one report.
 */
import { Sketch, type SketchJson } from "../sketch.js";
import { mulberry32, type Rng } from "../stats/random.js";
import { ksTest, psi, psiCategorical } from "./drift.js";
import { fieldOf } from "./json-diff.js";
import type { FieldDiff, PairResult } from "./types.js";

export const MAX_FIELDS = 200;
export const MAX_DIFF_SETS = 512;
export const MAX_SAMPLES = 20;
/** Sample diffs kept per leading field, so that one noisy field does not fill every slot. */
const MAX_SAMPLES_PER_FIELD = 4;
const MAX_DIFFS_PER_SAMPLE = 5;
/** Predictions kept per side for drift (reservoir sampling). */
export const RESERVOIR_SIZE = 2000;
const MAX_CATEGORIES = 100;
const MAX_CONFUSION = 50;
const OTHER = "(other)";

/**
 * Diffy's thresholds: a field is noise when the stable-vs-stable difference rate is within
 * 20% (relative) or 0.03 points (absolute) of the stable-vs-shadow rate.
 */
export const NOISE_RELATIVE_THRESHOLD = 0.2;
export const NOISE_ABSOLUTE_THRESHOLD = 0.0003;

/** One mismatched pair kept as an example. */
export interface SampleDiff {
  requestId: string;
  method: string;
  target: string;
  diffs: FieldDiff[];
}

export interface ShadowAggregateState {
  v: 1;
  /** Pairs compared (a shadow failure is a pair that differs on `status`). */
  pairs: number;
  shadowErrors: number;
  /** Pairs that differed on each field (indexes generalized: `$.items[*].score`). */
  fields: Record<string, number>;
  /** Pairs by the sorted set of fields they differed on, joined by "\n". */
  diffSets: Record<string, number>;
  /** Mismatched pairs whose field set did not fit in `diffSets`: counted as mismatches always. */
  overflowMismatches: number;
  /** Stable-vs-stable comparisons (noise learning), and their differences by field. */
  noisePairs: number;
  noiseFields: Record<string, number>;
  samples: SampleDiff[];
  classification: { compared: number; agree: number; confusion: Record<string, number> };
  regression: { compared: number; absErrSum: number; absErrMax: number };
  drift: {
    seen: number;
    primary: number[];
    shadow: number[];
    primaryLabels: Record<string, number>;
    shadowLabels: Record<string, number>;
  };
  latency: {
    pairs: number;
    diffSumMs: number;
    primary: SketchJson | null;
    shadow: SketchJson | null;
  };
  /** Copies sent to the shadow. */
  sent: number;
  /** Copies not made or not compared, by reason (`queue_full`, `timeout`, `body_too_large`...). */
  drops: Record<string, number>;
}

export function emptyAggregateState(): ShadowAggregateState {
  return {
    v: 1,
    pairs: 0,
    shadowErrors: 0,
    fields: {},
    diffSets: {},
    overflowMismatches: 0,
    noisePairs: 0,
    noiseFields: {},
    samples: [],
    classification: { compared: 0, agree: 0, confusion: {} },
    regression: { compared: 0, absErrSum: 0, absErrMax: 0 },
    drift: { seen: 0, primary: [], shadow: [], primaryLabels: {}, shadowLabels: {} },
    latency: { pairs: 0, diffSumMs: 0, primary: null, shadow: null },
    sent: 0,
    drops: {},
  };
}

/** Adds `n` to `map[key]`, folding keys beyond `max` into `(other)`. */
function bump(map: Record<string, number>, key: string, max: number, n = 1): void {
  if (map[key] === undefined && Object.keys(map).length >= max) key = OTHER;
  map[key] = (map[key] ?? 0) + n;
}

/** The mutable aggregate of one router (or of merged states). */
export class ShadowAggregate {
  readonly state: ShadowAggregateState;
  readonly #latencyPrimary: Sketch;
  readonly #latencyShadow: Sketch;
  readonly #rng: Rng;

  constructor(state: ShadowAggregateState = emptyAggregateState(), seed = 0x5eed) {
    this.state = state;
    this.#latencyPrimary = state.latency.primary
      ? Sketch.fromJSON(state.latency.primary)
      : new Sketch();
    this.#latencyShadow = state.latency.shadow
      ? Sketch.fromJSON(state.latency.shadow)
      : new Sketch();
    this.#rng = mulberry32(seed);
  }

  /** Counts a copy sent. */
  sent(): void {
    this.state.sent++;
  }

  /** Counts a copy dropped (or a pair left uncompared) for `reason`. */
  drop(reason: string, n = 1): void {
    bump(this.state.drops, reason, 50, n);
  }

  /** Adds a compared pair. */
  addPair(r: PairResult, req: { requestId: string; method: string; target: string }): void {
    const s = this.state;
    s.pairs++;
    // 1. Fields and the pair's field set.
    if (r.diffs.length > 0) {
      const fields = [...new Set(r.diffs.map((d) => fieldOf(d.path)))].sort();
      for (const f of fields) bump(s.fields, f, MAX_FIELDS);
      const key = fields.join("\n");
      if (s.diffSets[key] !== undefined || Object.keys(s.diffSets).length < MAX_DIFF_SETS)
        s.diffSets[key] = (s.diffSets[key] ?? 0) + 1;
      else s.overflowMismatches++;
      this.#sample(r.diffs, req, fields[0]!);
    }
    // 2. ML comparators.
    if (r.labels !== null) {
      const c = s.classification;
      c.compared++;
      if (r.labels.primary === r.labels.shadow) c.agree++;
      else bump(c.confusion, `${r.labels.primary} -> ${r.labels.shadow}`, MAX_CONFUSION);
    }
    if (r.values !== null) {
      const g = s.regression;
      const e = Math.abs(r.values.primary - r.values.shadow);
      g.compared++;
      g.absErrSum += e;
      if (e > g.absErrMax) g.absErrMax = e;
    }
    if (r.drift !== null) {
      const d = s.drift;
      if (typeof r.drift.primary === "string" || typeof r.drift.shadow === "string") {
        bump(d.primaryLabels, String(r.drift.primary), MAX_CATEGORIES);
        bump(d.shadowLabels, String(r.drift.shadow), MAX_CATEGORIES);
        d.seen++;
      } else {
        // Reservoir sampling (Algorithm R), one index for both sides so that they stay paired.
        d.seen++;
        if (d.primary.length < RESERVOIR_SIZE) {
          d.primary.push(r.drift.primary);
          d.shadow.push(r.drift.shadow);
        } else {
          const j = Math.floor(this.#rng() * d.seen);
          if (j < RESERVOIR_SIZE) {
            d.primary[j] = r.drift.primary;
            d.shadow[j] = r.drift.shadow;
          }
        }
      }
    }
    // 3. Latency of the pair.
    if (r.latencyMs.primary >= 0 && r.latencyMs.shadow >= 0) {
      s.latency.pairs++;
      s.latency.diffSumMs += r.latencyMs.shadow - r.latencyMs.primary;
      this.#latencyPrimary.add(Math.max(r.latencyMs.primary, 0.001));
      this.#latencyShadow.add(Math.max(r.latencyMs.shadow, 0.001));
    }
  }

  /** Adds a shadow failure (connection error, timeout): a pair that differs on `status`. */
  addShadowError(
    primaryStatus: number,
    why: string,
    req: { requestId: string; method: string; target: string },
  ): void {
    this.state.shadowErrors++;
    this.addPair(
      {
        diffs: [{ path: "status", primary: String(primaryStatus), shadow: `error (${why})` }],
        labels: null,
        values: null,
        drift: null,
        latencyMs: { primary: -1, shadow: -1 },
      },
      req,
    );
  }

  /** Adds a stable-vs-stable comparison (noise learning). */
  addNoise(diffs: readonly FieldDiff[]): void {
    const s = this.state;
    s.noisePairs++;
    for (const f of new Set(diffs.map((d) => fieldOf(d.path)))) bump(s.noiseFields, f, MAX_FIELDS);
  }

  #sample(
    diffs: readonly FieldDiff[],
    req: { requestId: string; method: string; target: string },
    lead: string,
  ): void {
    const samples = this.state.samples;
    if (samples.length >= MAX_SAMPLES) return;
    let same = 0;
    for (const x of samples) if (fieldOf(x.diffs[0]?.path ?? "") === lead) same++;
    if (same >= MAX_SAMPLES_PER_FIELD) return;
    samples.push({
      requestId: req.requestId,
      method: req.method,
      target: req.target.length > 200 ? `${req.target.slice(0, 199)}…` : req.target,
      diffs: diffs.slice(0, MAX_DIFFS_PER_SAMPLE),
    });
  }

  /** The state as JSON (latency sketches serialized). */
  toJSON(): ShadowAggregateState {
    return {
      ...this.state,
      latency: {
        ...this.state.latency,
        primary: this.#latencyPrimary.count > 0 ? this.#latencyPrimary.toJSON() : null,
        shadow: this.#latencyShadow.count > 0 ? this.#latencyShadow.toJSON() : null,
      },
    };
  }

  /** Adds another aggregate's state into this one (several routers, one report). */
  merge(o: ShadowAggregateState): void {
    const s = this.state;
    s.pairs += o.pairs;
    s.shadowErrors += o.shadowErrors;
    for (const [k, n] of Object.entries(o.fields)) bump(s.fields, k, MAX_FIELDS, n);
    for (const [k, n] of Object.entries(o.diffSets)) {
      if (s.diffSets[k] !== undefined || Object.keys(s.diffSets).length < MAX_DIFF_SETS)
        s.diffSets[k] = (s.diffSets[k] ?? 0) + n;
      else s.overflowMismatches += n;
    }
    s.overflowMismatches += o.overflowMismatches;
    s.noisePairs += o.noisePairs;
    for (const [k, n] of Object.entries(o.noiseFields)) bump(s.noiseFields, k, MAX_FIELDS, n);
    for (const x of o.samples) if (s.samples.length < MAX_SAMPLES) s.samples.push(x);
    s.classification.compared += o.classification.compared;
    s.classification.agree += o.classification.agree;
    for (const [k, n] of Object.entries(o.classification.confusion))
      bump(s.classification.confusion, k, MAX_CONFUSION, n);
    s.regression.compared += o.regression.compared;
    s.regression.absErrSum += o.regression.absErrSum;
    s.regression.absErrMax = Math.max(s.regression.absErrMax, o.regression.absErrMax);
    mergeReservoirs(s.drift, o.drift);
    for (const [k, n] of Object.entries(o.drift.primaryLabels))
      bump(s.drift.primaryLabels, k, MAX_CATEGORIES, n);
    for (const [k, n] of Object.entries(o.drift.shadowLabels))
      bump(s.drift.shadowLabels, k, MAX_CATEGORIES, n);
    s.latency.pairs += o.latency.pairs;
    s.latency.diffSumMs += o.latency.diffSumMs;
    if (o.latency.primary) this.#latencyPrimary.merge(Sketch.fromJSON(o.latency.primary));
    if (o.latency.shadow) this.#latencyShadow.merge(Sketch.fromJSON(o.latency.shadow));
    s.sent += o.sent;
    for (const [k, n] of Object.entries(o.drops)) bump(s.drops, k, 50, n);
  }

  /** The report: rates with noise fields excluded, ML summaries, latency and drops. */
  report(opts: { driftBins?: number } = {}): ShadowReport {
    return buildReport(this.toJSON(), this.#latencyPrimary, this.#latencyShadow, opts.driftBins);
  }
}

/**
 * Merges two paired reservoirs: each side contributes in proportion to how many predictions
 * it has seen, so the result is still (approximately) a uniform sample of both.
 */
function mergeReservoirs(
  into: ShadowAggregateState["drift"],
  o: ShadowAggregateState["drift"],
): void {
  const total = into.seen + o.seen;
  if (o.seen === 0) return;
  if (into.primary.length + o.primary.length <= RESERVOIR_SIZE) {
    into.primary.push(...o.primary);
    into.shadow.push(...o.shadow);
  } else {
    const fromInto = Math.round((RESERVOIR_SIZE * into.seen) / total);
    const a = Math.min(fromInto, into.primary.length);
    const b = Math.min(RESERVOIR_SIZE - a, o.primary.length);
    into.primary = [...into.primary.slice(0, a), ...o.primary.slice(0, b)];
    into.shadow = [...into.shadow.slice(0, a), ...o.shadow.slice(0, b)];
  }
  into.seen = total;
}

export interface FieldReport {
  field: string;
  /** Pairs that differed on the field. */
  mismatches: number;
  /** mismatches / pairs. */
  rate: number;
  /** Learned as noise: excluded from the mismatch rate. */
  noise: boolean;
  /** Share of stable-vs-stable comparisons that differed on it (null without noise learning). */
  noiseRate: number | null;
}

export interface ShadowReport {
  /** Pairs compared. */
  samples: number;
  /** Pairs that differ on at least one field that is not noise. */
  mismatches: number;
  mismatchRate: number | null;
  /** Classification agreement when a classifier is compared, else the share of matching pairs. */
  agreement: number | null;
  byField: FieldReport[];
  noise: { pairs: number; fields: string[] } | null;
  sampleDiffs: SampleDiff[];
  classification: {
    compared: number;
    agree: number;
    agreement: number | null;
    disagreements: { from: string; to: string; count: number }[];
  } | null;
  regression: { compared: number; mae: number | null; maxAbsError: number } | null;
  drift: {
    samples: number;
    psi: number | null;
    ks: { statistic: number; pValue: number } | null;
    primaryMean: number | null;
    shadowMean: number | null;
  } | null;
  latency: {
    pairs: number;
    primaryP50Ms: number;
    shadowP50Ms: number;
    primaryP99Ms: number;
    shadowP99Ms: number;
    meanDiffMs: number;
    /** shadow p50 / primary p50 − 1. */
    increase: number;
  } | null;
  shadowErrors: number;
  sent: number;
  drops: Record<string, number>;
}

/** The report of a state (see `ShadowAggregate.report`). */
export function reportOf(
  state: ShadowAggregateState,
  opts: { driftBins?: number } = {},
): ShadowReport {
  return new ShadowAggregate(structuredClone(state)).report(opts);
}

function buildReport(
  s: ShadowAggregateState,
  lp: Sketch,
  ls: Sketch,
  driftBins = 10,
): ShadowReport {
  // 1. Noise fields (Diffy): differences the two stable copies also show at about the same rate.
  const noise = new Set<string>();
  if (s.noisePairs > 0) {
    for (const [f, n] of Object.entries(s.fields)) {
      const raw = n / Math.max(1, s.pairs);
      const nr = (s.noiseFields[f] ?? 0) / s.noisePairs;
      if (nr === 0) continue;
      if (raw - nr <= NOISE_RELATIVE_THRESHOLD * raw || raw - nr < NOISE_ABSOLUTE_THRESHOLD)
        noise.add(f);
    }
  }
  // 2. Mismatches: pairs with a field that is not noise (exact, from the field sets).
  let mismatches = s.overflowMismatches;
  for (const [key, n] of Object.entries(s.diffSets)) {
    if (key.split("\n").some((f) => !noise.has(f))) mismatches += n;
  }
  const mismatchRate = s.pairs > 0 ? mismatches / s.pairs : null;
  const byField: FieldReport[] = Object.entries(s.fields)
    .map(([field, n]) => ({
      field,
      mismatches: n,
      rate: n / Math.max(1, s.pairs),
      noise: noise.has(field),
      noiseRate: s.noisePairs > 0 ? (s.noiseFields[field] ?? 0) / s.noisePairs : null,
    }))
    .sort((a, b) => b.mismatches - a.mismatches || (a.field < b.field ? -1 : 1))
    .slice(0, 50);

  // 3. ML comparators.
  const c = s.classification;
  const classification =
    c.compared > 0
      ? {
          compared: c.compared,
          agree: c.agree,
          agreement: c.agree / c.compared,
          disagreements: Object.entries(c.confusion)
            .map(([k, count]) => {
              const [from = k, to = ""] = k.split(" -> ");
              return { from, to, count };
            })
            .sort((a, b) => b.count - a.count)
            .slice(0, 10),
        }
      : null;
  const g = s.regression;
  const regression =
    g.compared > 0
      ? { compared: g.compared, mae: g.absErrSum / g.compared, maxAbsError: g.absErrMax }
      : null;
  const d = s.drift;
  let drift: ShadowReport["drift"] = null;
  if (d.primary.length > 0) {
    drift = {
      samples: d.seen,
      psi: psi(d.primary, d.shadow, driftBins),
      ks: ksTest(d.primary, d.shadow),
      primaryMean: mean(d.primary),
      shadowMean: mean(d.shadow),
    };
  } else if (Object.keys(d.primaryLabels).length > 0) {
    drift = {
      samples: d.seen,
      psi: psiCategorical(d.primaryLabels, d.shadowLabels),
      ks: null,
      primaryMean: null,
      shadowMean: null,
    };
  }
  const agreement =
    classification !== null
      ? classification.agreement
      : mismatchRate === null
        ? null
        : 1 - mismatchRate;

  // 4. Latency.
  const latency =
    s.latency.pairs > 0 && lp.count > 0 && ls.count > 0
      ? {
          pairs: s.latency.pairs,
          primaryP50Ms: lp.quantile(0.5),
          shadowP50Ms: ls.quantile(0.5),
          primaryP99Ms: lp.quantile(0.99),
          shadowP99Ms: ls.quantile(0.99),
          meanDiffMs: s.latency.diffSumMs / s.latency.pairs,
          increase: ls.quantile(0.5) / Math.max(lp.quantile(0.5), 1e-9) - 1,
        }
      : null;

  return {
    samples: s.pairs,
    mismatches,
    mismatchRate,
    agreement,
    byField,
    noise: s.noisePairs > 0 ? { pairs: s.noisePairs, fields: [...noise].sort() } : null,
    sampleDiffs: s.samples.filter((x) => x.diffs.some((df) => !noise.has(fieldOf(df.path)))),
    classification,
    regression,
    drift,
    latency,
    shadowErrors: s.shadowErrors,
    sent: s.sent,
    drops: { ...s.drops },
  };
}

function mean(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  let sum = 0;
  for (const x of xs) sum += x;
  return sum / xs.length;
}

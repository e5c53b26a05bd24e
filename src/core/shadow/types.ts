/**
 * Shadow deployments: the spec types users write (`shadow:` strategy and step, `setMirrorRoute:`
 * step, `compare:`), and the shapes the pure comparison core takes and returns. Pure types.
 */
import type { MatchRule } from "../model.js";

/** Numeric tolerance: two numbers are equal when either bound holds. */
export interface ToleranceSpec {
  /** |a - b| <= absolute. */
  absolute?: number;
  /** |a - b| <= relative × max(|a|, |b|). */
  relative?: number;
}

/** How each (primary, shadow) response pair is compared. */
export interface CompareSpec {
  /** Compare status codes. Default true. */
  status?: boolean;
  /** Response headers compared by value (case-insensitive names), e.g. [content-type]. */
  headers?: string[];
  /**
   * How bodies compare: `json` (deep diff by path; a body that is not JSON is compared as
   * text), `text`, `hash` (bytes, reported by hash: for binary bodies), `none`. Default json.
   */
  body?: "json" | "text" | "hash" | "none";
  /**
   * JSON paths left out of the diff: `$.meta.requestId`, `$.items[*].ts` (`*` is any key or
   * index), `$..timestamp` (any depth).
   */
  ignore?: string[];
  /** Numbers in JSON bodies within this tolerance are equal. */
  tolerance?: ToleranceSpec;
  /**
   * Classification agreement on a field: `label` compares the value as is; `argmax` takes the
   * index (array) or key (object) of the largest probability.
   */
  classification?: { field: string; mode?: "label" | "argmax" };
  /** Regression error on a numeric field: MAE and max absolute error. */
  regression?: { field: string };
  /**
   * Drift of the prediction distribution over the window, shadow against primary. The field
   * defaults to the regression field, else the classification field (categorical: PSI only).
   */
  drift?: { field?: string; bins?: number };
}

/** Limits of the mirror in the router (defaults in `DEFAULT_MIRROR_LIMITS`). */
export interface MirrorLimitsSpec {
  /** Copies in flight at once; more wait in the queue. */
  maxConcurrency?: number;
  /** Copies waiting; more are dropped (`queue_full`). */
  maxQueue?: number;
  /** Request bodies up to this size are buffered for the copy; larger are not mirrored. */
  maxBodyBytes?: number;
  /** Response bodies up to this size are compared; larger are compared by status and headers only. */
  maxCompareBytes?: number;
  /** A copy without response headers after this long is dropped (`timeout`). */
  timeoutSeconds?: number;
}

export const DEFAULT_MIRROR_LIMITS: Required<MirrorLimitsSpec> = {
  maxConcurrency: 64,
  maxQueue: 256,
  maxBodyBytes: 1024 * 1024,
  // Pairs waiting for a slot or a comparison hold both answers: 256 KiB bounds that memory.
  maxCompareBytes: 256 * 1024,
  timeoutSeconds: 5,
};

/** Methods a mirror may copy. */
export type MirrorMethod = "GET" | "HEAD" | "OPTIONS" | "POST" | "PUT" | "PATCH" | "DELETE";

/** What copies are made of: shared by `shadow` and `setMirrorRoute`. */
export interface MirrorSpec {
  /** Share of matching requests copied, 0.01..100. */
  percent: number;
  /** Methods copied. Default GET and HEAD; others need `sideEffectFree: true`. */
  methods?: MirrorMethod[];
  /** The service declares the mirrored endpoints free of side effects (e.g. model inference). */
  sideEffectFree?: boolean;
  /** Request headers removed from copies (e.g. authorization, cookie). */
  stripHeaders?: string[];
  /** Only requests that match are copied. */
  match?: Omit<MatchRule, "to">;
  limits?: MirrorLimitsSpec;
}

/** When a shadow phase passes. Fewer samples than `minSamples` is never a pass. */
export interface ShadowGateSpec {
  minSamples: number;
  /** Largest share of pairs that differ on a field that is not noise (0..1). */
  maxMismatchRate?: number;
  /** Smallest classification agreement (0..1); without a classifier, the share of matching pairs. */
  minAgreement?: number;
  /** Largest relative increase of the shadow's median latency over the primary's (0.2 = +20%). */
  maxLatencyIncrease?: number;
  /** Largest PSI of the prediction distribution (needs `compare.drift`). */
  maxDriftPsi?: number;
  /** The phase lasts at least this long, even with enough samples. */
  duration?: string | number;
}

/** `shadow: {...}`, as a strategy and as a step: mirror, compare, and pass or fail by the gate. */
export interface ShadowStep extends MirrorSpec {
  compare?: CompareSpec;
  /**
   * Diffy's noise filter: each copy also goes to a second instance of the stable version, and
   * fields that differ between the two stable answers are noise.
   */
  noise?: boolean;
  gate: ShadowGateSpec;
}

/** `setMirrorRoute: {percent, match?}`: mirror to the canary, no gate; `{}` removes it. */
export interface MirrorRouteStep {
  percent?: number;
  match?: Omit<MatchRule, "to">;
  methods?: MirrorMethod[];
  sideEffectFree?: boolean;
  stripHeaders?: string[];
}

/** The mirror the rollout has put in force, in the status (read by `routes.ts`). */
export interface ShadowStatus {
  /** Identifies the phase: reports are kept under it. */
  id: string;
  kind: "shadow" | "mirror";
  /** The version copies go to. */
  version: string;
  stepIndex: number;
  startedAt: number;
  mirror: MirrorSpec;
  compare?: CompareSpec;
  noise?: boolean;
}

// ---------------------------------------------------------------------------------------
// Comparison inputs and results
// ---------------------------------------------------------------------------------------

/** One response as the router captured it. */
export interface CapturedResponse {
  status: number;
  /** Lower-case names. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  body: Uint8Array;
  /** The body was longer than the compare limit: only status and headers are compared. */
  truncated: boolean;
  latencyMs: number;
}

/** One difference found in a pair. */
export interface FieldDiff {
  /** `status`, `header:<name>`, `body` or a JSON path `$.a.b[3]`. */
  path: string;
  primary: string;
  shadow: string;
}

/** What one pair's comparison found. */
export interface PairResult {
  /** Differences, at most `MAX_DIFFS_PER_PAIR`. */
  diffs: FieldDiff[];
  /** Classification: the two labels, or null when the field is missing on either side. */
  labels: { primary: string; shadow: string } | null;
  /** Regression: both values, or null. */
  values: { primary: number; shadow: number } | null;
  /** Drift: the prediction of each side (number or label), or null. */
  drift: { primary: number | string; shadow: number | string } | null;
  latencyMs: { primary: number; shadow: number };
}

/**
 * The mirror in a route table (`RouteTable.mirror`): where copies go and how they are made and
 * compared. Built by `routes.ts` from `ShadowStatus`; read by the router's mirror.
 */
export interface RouteMirror {
  /** The phase (`ShadowStatus.id`): the router aggregates and flushes reports under it. */
  id: string;
  /** The version copies go to, and its ready instances. */
  version: string;
  endpoints: string[];
  /** Stable instances that get a second copy for noise learning (absent: no noise learning). */
  noiseEndpoints?: string[];
  percent: number;
  /** Upper-case. */
  methods: string[];
  /** Lower-case. */
  stripHeaders: string[];
  match?: Omit<MatchRule, "to">;
  limits: Required<MirrorLimitsSpec>;
  compare: CompareSpec;
}

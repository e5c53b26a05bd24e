/**
 * Feature flags: the `Flag` and `Segment` resources as users write them, and the resolution
 * details the evaluation core returns. The shapes of the results follow the OpenFeature
 * specification (reasons and error codes are its strings, so that OFREP and the provider pass
 * them through untouched).
 */
import type { Metadata } from "../model.js";

/** The four OpenFeature flag types. */
export type FlagType = "boolean" | "string" | "number" | "object";

/** A variant's value: JSON of the flag's type. */
export type FlagValue = boolean | string | number | { [key: string]: unknown } | unknown[];

/** Condition operators on one context attribute. */
export type ConditionOp =
  | "equals"
  | "notEquals"
  | "in"
  | "notIn"
  | "startsWith"
  | "endsWith"
  | "contains"
  | "gt"
  | "gte"
  | "lt"
  | "lte"
  | "semverEq"
  | "semverGt"
  | "semverGte"
  | "semverLt"
  | "semverLte"
  | "matches"
  | "exists";

/**
 * One test of a context attribute. `value` for single-value operators, `values` for `in` and
 * `notIn`. A missing attribute fails every operator but `notIn`, `notEquals` and `exists: false`.
 */
export interface FlagCondition {
  /** A context attribute, e.g. "email", "plan", "targetingKey"; dots do not descend. */
  attribute: string;
  op: ConditionOp;
  value?: string | number | boolean;
  values?: (string | number | boolean)[];
}

/** Weights per variant, in percent with up to four decimals, summing to 100. */
export type VariantSplit = Record<string, number>;

/** A targeting rule: when all its conditions and segments hold, serve a variant or a split. */
export interface FlagRule {
  /** For people and for `flagMetadata.rule`. */
  name?: string;
  conditions?: FlagCondition[];
  /** Names of Segments the context must belong to (all of them). */
  segments?: string[];
  /** Exactly one of `variant` and `split`. */
  variant?: string;
  split?: VariantSplit;
}

/**
 * The percentage rollout applied to contexts no rule matched: `percentage`% of them (bucketed
 * by `bucketBy`, targetingKey by default) get `variant`; the rest get the default variant.
 */
export interface FlagRolloutSpec {
  variant: string;
  /** 0..100, down to 0.0001. */
  percentage: number;
}

export interface FlagSpec {
  type: FlagType;
  variants: Record<string, FlagValue>;
  /** Served when no rule and no rollout applies, and when the flag is disabled. */
  defaultVariant: string;
  /** DISABLED is the kill switch: every evaluation serves the default variant, reason DISABLED. */
  state: "ENABLED" | "DISABLED";
  rules?: FlagRule[];
  rollout?: FlagRolloutSpec;
  /** The context attribute that buckets splits and rollouts. Default "targetingKey". */
  bucketBy?: string;
  /** Hash salt for buckets; default the flag's key. Changing it reshuffles users. */
  salt?: string;
  description?: string;
}

export interface FlagResource {
  apiVersion: "turnout.dev/v1";
  kind: "Flag";
  metadata: Metadata;
  spec: FlagSpec;
}

/** A named set of contexts shared by flags: listed keys, or contexts meeting all conditions. */
export interface SegmentSpec {
  /** Values of `bucketBy`-independent `targetingKey` that always belong. */
  included?: string[];
  /** Values of `targetingKey` that never belong (wins over everything). */
  excluded?: string[];
  /** All must hold (a segment with neither conditions nor included keys is empty). */
  conditions?: FlagCondition[];
  description?: string;
}

export interface SegmentResource {
  apiVersion: "turnout.dev/v1";
  kind: "Segment";
  metadata: Metadata;
  spec: SegmentSpec;
}

/** OpenFeature resolution reasons used by Turnout. */
export type ResolutionReason =
  | "STATIC"
  | "DEFAULT"
  | "TARGETING_MATCH"
  | "SPLIT"
  | "DISABLED"
  | "ERROR";

/** OpenFeature error codes. */
export type FlagErrorCode =
  | "FLAG_NOT_FOUND"
  | "TYPE_MISMATCH"
  | "PARSE_ERROR"
  | "TARGETING_KEY_MISSING"
  | "INVALID_CONTEXT"
  | "GENERAL";

export type FlagMetadata = Readonly<Record<string, string | number | boolean>>;

/** What one evaluation returns; the OpenFeature `ResolutionDetails`. */
export interface ResolutionDetails {
  readonly value: FlagValue | undefined;
  readonly variant?: string;
  readonly reason: ResolutionReason;
  readonly errorCode?: FlagErrorCode;
  readonly errorMessage?: string;
  readonly flagMetadata: FlagMetadata;
}

/** The evaluation context: attributes of the subject, `targetingKey` first among them. */
export type EvaluationContext = Readonly<Record<string, unknown>>;

/**
 * What a rollout (setFlag steps) or a person changed on top of the resource: the effective
 * flag is the resource with these applied (see `effectiveSpec`).
 */
export interface FlagOverride {
  state?: "ENABLED" | "DISABLED";
  /** Replaces `rollout.percentage` (the flag must have a rollout, or `variant` names one). */
  percentage?: number;
  /** With `percentage`: the variant rolled out. Alone: served to everyone (static). */
  variant?: string;
}

/** What a service's rollout put on a flag (`ServiceStatus.flags[key]`). */
export interface FlagStepOverride extends FlagOverride {
  /** Clock ms of the change: the latest of this and a person's override wins. */
  at: number;
  /** The rollout (status.rolloutNumber) and step that made it. */
  rollout: number;
  step: number;
  /** Why, for the history (e.g. "rollout 3 aborted: analysis failed"). */
  reason: string;
}

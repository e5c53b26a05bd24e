/**
 * The flag evaluation core: pure, shared by the OFREP server, the router's edge evaluation and
 * the in-process provider, so that the three always agree.
 *
 * Flags are compiled once per change of definitions (`compileFlags`) and evaluated many times:
 * regexes, semantic versions, sets and bucket thresholds are prepared at compile time, and the
 * results an evaluation can return are built then too and shared (frozen), so that an
 * evaluation allocates nothing but what the caller's context makes it read.
 *
 * Evaluating a flag (`evaluate`), in order:
 *   1. The flag is unknown: FLAG_NOT_FOUND. The caller asked for another type: TYPE_MISMATCH.
 *   2. The context is not an object, or its targetingKey is not a string: INVALID_CONTEXT.
 *   3. The flag is DISABLED (the kill switch): the default variant, reason DISABLED.
 *   4. Rules in order: the first whose conditions and segments all hold serves its variant
 *      (TARGETING_MATCH) or its split (SPLIT, bucketed as in 6).
 *   5. No rules and no rollout: the default variant, reason STATIC.
 *   6. A rollout: the bucket of the `bucketBy` attribute (targetingKey by default) in
 *      [0, 1,000,000) by the router's versioned hash (`core/hashing.ts`, salt = the flag's
 *      key unless given); buckets below percentage × 10,000 get the rollout's variant, the
 *      others the default variant; reason SPLIT either way. Raising the percentage only adds
 *      buckets, so a user who had the feature keeps it. Without the attribute:
 *      TARGETING_KEY_MISSING (or INVALID_CONTEXT for another `bucketBy`).
 *   7. Otherwise the default variant, reason DEFAULT.
 */
import { BUCKET_SCALE, hashScheme } from "../hashing.js";
import { compileUserRegex } from "../regex.js";
import { compareSemver, parseSemver, type SemVer } from "./semver.js";
import type {
  EvaluationContext,
  FlagCondition,
  FlagErrorCode,
  FlagMetadata,
  FlagOverride,
  FlagSpec,
  FlagType,
  FlagValue,
  ResolutionDetails,
  SegmentSpec,
} from "./types.js";

/** The hashing scheme flags bucket with; a new scheme gets a new number, as for routes. */
export const FLAG_HASH_VERSION = 1;

/** One flag definition as the core takes it. */
export interface FlagDefinition {
  key: string;
  spec: FlagSpec;
  /** Stored generation of the resource, reported in flagMetadata. */
  generation?: number;
}

type Test = (ctx: EvaluationContext) => boolean;

interface CompiledSplit {
  /** Exclusive upper bucket bound of each variant, ascending; the last is BUCKET_SCALE. */
  ends: number[];
  results: ResolutionDetails[];
}

interface CompiledRule {
  test: Test;
  /** A fixed result, or a split. */
  result: ResolutionDetails | null;
  split: CompiledSplit | null;
}

export interface CompiledFlag {
  readonly key: string;
  readonly type: FlagType;
  /** The kill switch is on: every evaluation returns `disabled`. */
  readonly isDisabled: boolean;
  readonly disabled: ResolutionDetails;
  readonly rules: readonly CompiledRule[];
  /** Percentage rollout: buckets below `rolloutEnd` get `rolloutOn`, the rest `rolloutOff`. */
  readonly rolloutEnd: number;
  readonly rolloutOn: ResolutionDetails | null;
  readonly rolloutOff: ResolutionDetails | null;
  /** What falls through: STATIC (no rules or rollout) or DEFAULT. */
  readonly fallthrough: ResolutionDetails;
  readonly bucketBy: string;
  readonly salt: string;
  /** Every variant's name, for the edge header and measurement labels. */
  readonly variants: readonly string[];
}

/** Compiled flags by key. */
export type FlagSet = ReadonlyMap<string, CompiledFlag>;

const EMPTY: FlagMetadata = Object.freeze({});

function result(
  value: FlagValue | undefined,
  variant: string | undefined,
  reason: ResolutionDetails["reason"],
  flagMetadata: FlagMetadata,
): ResolutionDetails {
  const r: { -readonly [K in keyof ResolutionDetails]: ResolutionDetails[K] } = {
    value,
    reason,
    flagMetadata,
  };
  if (variant !== undefined) r.variant = variant;
  return Object.freeze(r);
}

/** An error result: no value (callers fall back to their default), the reason ERROR. */
export function errorResult(
  errorCode: FlagErrorCode,
  errorMessage: string,
  flagMetadata: FlagMetadata = EMPTY,
): ResolutionDetails {
  return Object.freeze({
    value: undefined,
    reason: "ERROR",
    errorCode,
    errorMessage,
    flagMetadata,
  });
}

/** The flag with a rollout's or a person's override applied (pure; the spec is not changed). */
export function effectiveSpec(spec: FlagSpec, o: FlagOverride | undefined): FlagSpec {
  if (o === undefined) return spec;
  const out: FlagSpec = { ...spec };
  if (o.state !== undefined) out.state = o.state;
  if (o.percentage !== undefined) {
    const variant = o.variant ?? spec.rollout?.variant ?? otherVariant(spec);
    if (variant !== undefined) out.rollout = { variant, percentage: o.percentage };
  } else if (o.variant !== undefined) {
    // A variant alone serves it to everyone: one unconditional rule, rules and rollout step
    // aside. The default variant stays what it was, so the kill switch still serves it.
    out.rules = [{ name: "override", variant: o.variant }];
    delete out.rollout;
  }
  return out;
}

/** The first variant that is not the default: what "on" means for a two-variant flag. */
function otherVariant(spec: FlagSpec): string | undefined {
  return Object.keys(spec.variants).find((v) => v !== spec.defaultVariant);
}

/**
 * Compiles flag definitions with the segments they may name. A definition that cannot compile
 * (a validation gap, or a definition written by a newer Turnout) evaluates to an error result
 * rather than failing the whole set.
 */
export function compileFlags(
  defs: readonly FlagDefinition[],
  segments: Readonly<Record<string, SegmentSpec>> = {},
): Map<string, CompiledFlag> {
  const segTests = new Map<string, Test>();
  const segmentTest = (name: string): Test => {
    let t = segTests.get(name);
    if (t === undefined) {
      const seg = segments[name];
      t = seg === undefined ? () => false : compileSegment(seg);
      segTests.set(name, t);
    }
    return t;
  };
  const out = new Map<string, CompiledFlag>();
  for (const d of defs) out.set(d.key, compileFlag(d, segmentTest));
  return out;
}

function compileFlag(d: FlagDefinition, segmentTest: (name: string) => Test): CompiledFlag {
  const { spec } = d;
  const meta: FlagMetadata =
    d.generation === undefined ? EMPTY : Object.freeze({ generation: d.generation });
  const variantValue = (v: string): FlagValue | undefined =>
    Object.hasOwn(spec.variants, v) ? spec.variants[v] : undefined;
  const byVariant = (reason: ResolutionDetails["reason"], m: FlagMetadata = meta) => {
    const map = new Map<string, ResolutionDetails>();
    return (v: string) => {
      let r = map.get(v);
      if (r === undefined) {
        r = result(variantValue(v), v, reason, m);
        map.set(v, r);
      }
      return r;
    };
  };
  const split = byVariant("SPLIT");
  // A rule's split carries the rule's name (metadata.rule), so that it can be told from the
  // flag's rollout, which is a split too.
  const compileSplit = (weights: Record<string, number>, m: FlagMetadata): CompiledSplit => {
    const ends: number[] = [];
    const results: ResolutionDetails[] = [];
    const ruleSplit = byVariant("SPLIT", m);
    let acc = 0;
    for (const [v, w] of Object.entries(weights)) {
      acc += Math.round(w * 10_000);
      ends.push(Math.min(acc, BUCKET_SCALE));
      results.push(ruleSplit(v));
    }
    // Rounding must never leave a bucket without a variant.
    if (ends.length > 0) ends[ends.length - 1] = BUCKET_SCALE;
    return { ends, results };
  };
  const rules: CompiledRule[] = (spec.rules ?? []).map((rule, i) => {
    const tests: Test[] = (rule.conditions ?? []).map(compileCondition);
    for (const s of rule.segments ?? []) tests.push(segmentTest(s));
    const ruleMeta: FlagMetadata = Object.freeze({ ...meta, rule: rule.name ?? `rule ${i + 1}` });
    return {
      test: allOf(tests),
      result:
        rule.variant !== undefined
          ? result(variantValue(rule.variant), rule.variant, "TARGETING_MATCH", ruleMeta)
          : null,
      split: rule.split !== undefined ? compileSplit(rule.split, ruleMeta) : null,
    };
  });
  const rollout = spec.rollout;
  const hasLogic = rules.length > 0 || rollout !== undefined;
  return {
    key: d.key,
    type: spec.type,
    isDisabled: spec.state === "DISABLED",
    disabled: result(variantValue(spec.defaultVariant), spec.defaultVariant, "DISABLED", meta),
    rules,
    rolloutEnd: rollout === undefined ? 0 : Math.round(rollout.percentage * 10_000),
    rolloutOn: rollout === undefined ? null : split(rollout.variant),
    rolloutOff: rollout === undefined ? null : split(spec.defaultVariant),
    fallthrough: result(
      variantValue(spec.defaultVariant),
      spec.defaultVariant,
      hasLogic ? "DEFAULT" : "STATIC",
      meta,
    ),
    bucketBy: spec.bucketBy ?? "targetingKey",
    salt: spec.salt ?? d.key,
    variants: Object.keys(spec.variants),
  };
}

function allOf(tests: Test[]): Test {
  if (tests.length === 0) return () => true;
  if (tests.length === 1) return tests[0]!;
  return (ctx) => {
    for (let i = 0; i < tests.length; i++) if (!tests[i]!(ctx)) return false;
    return true;
  };
}

function compileSegment(seg: SegmentSpec): Test {
  const included = new Set(seg.included ?? []);
  const excluded = new Set(seg.excluded ?? []);
  const conds = seg.conditions ?? [];
  const all = conds.length > 0 ? allOf(conds.map(compileCondition)) : null;
  return (ctx) => {
    const key = ctx.targetingKey;
    if (typeof key === "string") {
      if (excluded.has(key)) return false;
      if (included.has(key)) return true;
    }
    return all?.(ctx) === true;
  };
}

/** A context value as a string for text operators; objects never match. */
function text(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return undefined;
}

function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "string" && v.trim() !== "") return Number(v);
  return Number.NaN;
}

const never: Test = () => false;

function compileCondition(c: FlagCondition): Test {
  const a = c.attribute;
  const want = c.value === undefined ? "" : String(c.value);
  switch (c.op) {
    case "exists": {
      const should = c.value !== false;
      return (ctx) => (ctx[a] !== undefined && ctx[a] !== null) === should;
    }
    case "equals":
      return (ctx) => text(ctx[a]) === want;
    case "notEquals":
      return (ctx) => text(ctx[a]) !== want;
    case "in":
    case "notIn": {
      const set = new Set((c.values ?? []).map(String));
      const inside = c.op === "in";
      return (ctx) => {
        const t = text(ctx[a]);
        return (t !== undefined && set.has(t)) === inside;
      };
    }
    case "startsWith":
      return (ctx) => text(ctx[a])?.startsWith(want) === true;
    case "endsWith":
      return (ctx) => text(ctx[a])?.endsWith(want) === true;
    case "contains":
      return (ctx) => text(ctx[a])?.includes(want) === true;
    case "gt":
    case "gte":
    case "lt":
    case "lte": {
      const n = num(c.value);
      if (Number.isNaN(n)) return never;
      const op = c.op;
      return (ctx) => {
        const x = num(ctx[a]);
        if (Number.isNaN(x)) return false;
        return op === "gt" ? x > n : op === "gte" ? x >= n : op === "lt" ? x < n : x <= n;
      };
    }
    case "semverEq":
    case "semverGt":
    case "semverGte":
    case "semverLt":
    case "semverLte": {
      const target = parseSemver(want);
      if (target === null) return never;
      const op = c.op;
      return (ctx) => {
        const t = text(ctx[a]);
        const v: SemVer | null = t === undefined ? null : parseSemver(t);
        if (v === null) return false;
        const cmp = compareSemver(v, target);
        return op === "semverEq"
          ? cmp === 0
          : op === "semverGt"
            ? cmp > 0
            : op === "semverGte"
              ? cmp >= 0
              : op === "semverLt"
                ? cmp < 0
                : cmp <= 0;
      };
    }
    case "matches": {
      // Linear-time RE2 matching (core/regex.ts), whatever the pattern and the value; a
      // pattern validation would refuse (another Turnout wrote it) never matches.
      const re = compileUserRegex(want);
      if (typeof re === "string") return never;
      return (ctx) => {
        const t = text(ctx[a]);
        return t !== undefined && re.test(t);
      };
    }
    default:
      return never;
  }
}

const TYPE_OF_VALUE: Record<FlagType, (v: unknown) => boolean> = {
  boolean: (v) => typeof v === "boolean",
  string: (v) => typeof v === "string",
  number: (v) => typeof v === "number",
  object: (v) => typeof v === "object" && v !== null,
};

/** Whether a value is of an OpenFeature flag type (for validation and the provider). */
export function valueHasType(v: unknown, type: FlagType): boolean {
  return TYPE_OF_VALUE[type](v);
}

/**
 * Evaluates one flag for a context. `expectedType`, when given, is the type the caller asked
 * for (an SDK's `getBooleanValue`...): another type is TYPE_MISMATCH.
 *
 * @example evaluate(flags, "new-checkout", { targetingKey: "user-42" }).value
 */
export function evaluate(
  flags: FlagSet,
  key: string,
  context: EvaluationContext,
  expectedType?: FlagType,
): ResolutionDetails {
  const f = flags.get(key);
  if (f === undefined) return errorResult("FLAG_NOT_FOUND", `flag ${key} not found`);
  if (expectedType !== undefined && expectedType !== f.type) {
    return errorResult(
      "TYPE_MISMATCH",
      `flag ${key} is of type ${f.type}, not ${expectedType}`,
      f.fallthrough.flagMetadata,
    );
  }
  return evaluateCompiled(f, context);
}

/**
 * Why a context is invalid for every flag (step 2), or null: an OFREP bulk evaluation refuses
 * the request instead of answering the same error once per flag.
 */
export function invalidContext(context: unknown): string | null {
  if (typeof context !== "object" || context === null || Array.isArray(context))
    return "the evaluation context must be an object";
  const tk = (context as EvaluationContext).targetingKey;
  if (tk !== undefined && typeof tk !== "string") return "targetingKey must be a string";
  return null;
}

/** Evaluates a compiled flag (steps 2..7 of the module comment). */
export function evaluateCompiled(f: CompiledFlag, context: EvaluationContext): ResolutionDetails {
  const invalid = invalidContext(context);
  if (invalid !== null) return errorResult("INVALID_CONTEXT", invalid);
  if (f.isDisabled) return f.disabled;
  const rules = f.rules;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (!r.test(context)) continue;
    if (r.result !== null) return r.result;
    const s = r.split!;
    const b = bucketFor(f, context);
    if (typeof b !== "number") return b;
    for (let j = 0; j < s.ends.length; j++) if (b < s.ends[j]!) return s.results[j]!;
    return s.results[s.results.length - 1]!;
  }
  if (f.rolloutOn === null) return f.fallthrough;
  const b = bucketFor(f, context);
  if (typeof b !== "number") return b;
  return b < f.rolloutEnd ? f.rolloutOn : f.rolloutOff!;
}

const scheme = hashScheme(FLAG_HASH_VERSION);

function bucketFor(f: CompiledFlag, context: EvaluationContext): number | ResolutionDetails {
  const v = context[f.bucketBy];
  const key = typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined;
  if (key === undefined || key.length === 0) {
    return f.bucketBy === "targetingKey"
      ? errorResult(
          "TARGETING_KEY_MISSING",
          `flag ${f.key} splits by targetingKey; the context has none`,
          f.fallthrough.flagMetadata,
        )
      : errorResult(
          "INVALID_CONTEXT",
          `flag ${f.key} splits by the context attribute ${f.bucketBy}; the context has none`,
          f.fallthrough.flagMetadata,
        );
  }
  return scheme.bucket(f.salt, key);
}

/**
 * Which data plane carries a Service's traffic, and what each one can carry: pure, so `apply`
 * can refuse a Service whose strategy needs a feature its provider lacks before anything runs,
 * and so the conformance suite (src/traffic/conformance.ts) can skip by declared capability.
 *
 * The route table (`RouteTable`, model.ts) is the contract between the controller and every
 * data plane. A provider puts tables in force (src/traffic/provider.ts); this module says which
 * parts of a table ("features") a provider can put in force.
 */
import type { ExperimentSpec } from "./experiment/types.js";
import type { RouteTable, ServiceSpec, TrafficSpec } from "./model.js";
import type { BodyOf, StepKey } from "./steps/types.js";
import { compileStrategy } from "./strategies/index.js";

/** The parts of a route table a data plane may or may not carry. */
export const ROUTE_FEATURES = [
  /** Weighted split between versions (every provider). */
  "split",
  /** Sticky assignment by a header, cookie or query parameter (`spec.stickiness`). */
  "stickiness",
  /** Match rules and setHeaderRoute steps (`spec.routing.matches`). */
  "matches",
  /** The `x-turnout-version` override header (`spec.routing.versionOverride`). */
  "versionOverride",
  /** Blue-green's preview listener. */
  "preview",
  /** Copies of requests to a shadow version, compared with the primary's answers. */
  "mirror",
  /** A/B experiment arms with exposure logging. */
  "experiment",
  /** A/B metrics read from the service's response headers (`source: {responseHeader}`). */
  "experimentResponseHeaders",
  /** Flags evaluated per request at the edge (`spec.flags`). */
  "edgeFlags",
] as const;
export type RouteFeature = (typeof ROUTE_FEATURES)[number];

/** The data planes Turnout can drive. */
export const TRAFFIC_PROVIDER_KINDS = ["builtin", "haproxy"] as const;
export type TrafficProviderKind = (typeof TRAFFIC_PROVIDER_KINDS)[number];

/** The features a table uses (what a provider must carry to put it in force). */
export function tableFeatures(t: RouteTable): RouteFeature[] {
  const out: RouteFeature[] = ["split"];
  if (t.stickiness) out.push("stickiness");
  if (t.matches && t.matches.length > 0) out.push("matches");
  if (t.versionOverride) out.push("versionOverride");
  if (t.preview) out.push("preview");
  if (t.mirror) out.push("mirror");
  if (t.experiment) out.push("experiment");
  if ((t.experiment?.responseHeaders?.length ?? 0) > 0) out.push("experimentResponseHeaders");
  if (t.flags && t.flags.length > 0) out.push("edgeFlags");
  return out;
}

// ---------------------------------------------------------------------------------------
// What a Service asks of its data plane
// ---------------------------------------------------------------------------------------

/** One feature a Service's spec may put into its route tables, and the field that asks for it. */
export interface SpecFeature {
  feature: RouteFeature;
  /** Dotted path of the field, e.g. `spec.strategy.canary.steps[2].shadow`. */
  path: string;
}

/** A feature a step asks for: the step itself asks, or a field inside it (`at`, ".a.b[0]"). */
export type StepFeature = RouteFeature | { feature: RouteFeature; at: string };

/** The response-header sources of an experiment's metrics, each at its field. */
function responseHeaderSources(b: Pick<ExperimentSpec, "metrics">): StepFeature[] {
  const out: StepFeature[] = [];
  (b.metrics ?? []).forEach((m, j) => {
    for (const field of ["source", "denominator"] as const) {
      const src = m[field];
      if (src !== undefined && "responseHeader" in src)
        out.push({
          feature: "experimentResponseHeaders",
          at: `.metrics[${j}].${field}.responseHeader`,
        });
    }
  });
  return out;
}

/**
 * The route-table features each step kind may produce while it runs (what `routes.ts` reads
 * from the status the step writes). Typed by the step kinds, as `STEP_KINDS` is: a new step
 * kind without an entry here fails `tsc`, so a step can never slip past the capability check.
 */
export const STEP_FEATURES: { readonly [K in StepKey]: (body: BodyOf<K>) => StepFeature[] } = {
  setWeight: () => [],
  pause: () => [],
  analysis: () => [],
  // Without `match` the step removes the header route: nothing new to carry.
  setHeaderRoute: (b) => (b.match !== undefined ? ["matches"] : []),
  // The route table lists the response headers the router records (experiment/spec.ts).
  experiment: (b) => ["experiment", ...responseHeaderSources(b)],
  // A Flag resource changes; the table carries edge flags only through `spec.flags`.
  setFlag: () => [],
  shadow: () => ["mirror"],
  // `percent` 0 or absent removes the mirror.
  setMirrorRoute: (b) => (b.percent !== undefined && b.percent > 0 ? ["mirror"] : []),
  switch: () => [],
  rollingUpdate: () => [],
};

/**
 * Every feature a Service may put into its route tables over a rollout, each with the spec
 * path that asks for it, in spec order (one entry per path; a feature may appear twice).
 * Read from the compiled strategy (steps and preview), not the strategy's text, so presets
 * and hand-written steps are judged alike.
 */
export function specFeatures(spec: ServiceSpec): SpecFeature[] {
  const out: SpecFeature[] = [{ feature: "split", path: "spec" }];
  if (spec.stickiness) out.push({ feature: "stickiness", path: "spec.stickiness" });
  if ((spec.routing?.matches?.length ?? 0) > 0)
    out.push({ feature: "matches", path: "spec.routing.matches" });
  if (spec.routing?.versionOverride)
    out.push({ feature: "versionOverride", path: "spec.routing.versionOverride" });
  if ((spec.flags?.length ?? 0) > 0) out.push({ feature: "edgeFlags", path: "spec.flags" });

  const compiled = compileStrategy(spec);
  const base = `spec.strategy.${compiled.name}`;
  // A canary's steps are its list as written, so a step's index is its place in the YAML;
  // a preset's steps are made from its fields, so the preset itself is what asks.
  const stepPath = (i: number, key: string): string =>
    compiled.name === "canary" ? `${base}.steps[${i}].${key}` : base;
  compiled.steps.forEach((step, i) => {
    for (const [key, body] of Object.entries(step)) {
      const features = (STEP_FEATURES as Record<string, (b: unknown) => StepFeature[]>)[key];
      for (const f of features?.(body) ?? []) {
        if (typeof f === "string") out.push({ feature: f, path: stepPath(i, key) });
        // A field inside the step: below the step in a canary, below the preset otherwise.
        else
          out.push({
            feature: f.feature,
            path: `${compiled.name === "canary" ? stepPath(i, key) : base}${f.at}`,
          });
      }
    }
  });
  if (compiled.preview?.port !== undefined)
    out.push({ feature: "preview", path: `${base}.preview.port` });
  if (compiled.preview?.match !== undefined)
    out.push({ feature: "matches", path: `${base}.preview.match` });
  return out;
}

// ---------------------------------------------------------------------------------------
// What each data plane carries
// ---------------------------------------------------------------------------------------

/** The ways a Service's traffic can be carried: a provider kind, and for HAProxy its mode. */
export type TrafficMode = "builtin" | "haproxy" | "haproxyAttach";

export interface TrafficModeInfo {
  kind: TrafficProviderKind;
  /** For messages: "the haproxy provider". */
  name: string;
  features: ReadonlySet<RouteFeature>;
}

const ALL = new Set<RouteFeature>(ROUTE_FEATURES);
const except = (...no: RouteFeature[]) => new Set(ROUTE_FEATURES.filter((f) => !no.includes(f)));

/**
 * What each data plane carries. The built-in router: everything. An HAProxy that Turnout runs:
 * everything but mirroring with comparison, edge flags (both need the answer's body or a
 * per-request evaluation that only Turnout's own proxy does) and A/B metrics read from
 * response headers (its log carries no per-unit header values). An HAProxy someone else runs,
 * of which Turnout changes one backend's servers and weights: the split only.
 */
export const TRAFFIC_MODES: { readonly [M in TrafficMode]: TrafficModeInfo } = {
  builtin: { kind: "builtin", name: "the built-in router", features: ALL },
  haproxy: {
    kind: "haproxy",
    name: "the haproxy provider",
    features: except("mirror", "edgeFlags", "experimentResponseHeaders"),
  },
  haproxyAttach: {
    kind: "haproxy",
    name: "the haproxy provider in attach mode (runtimeApi and backend)",
    features: new Set<RouteFeature>(["split"]),
  },
};

/** The mode `spec.traffic` (or a table's `traffic`) selects; absent, the built-in router. */
export function trafficModeOf(traffic: TrafficSpec | undefined): TrafficMode {
  if (traffic === undefined || "builtin" in traffic) return "builtin";
  return traffic.haproxy.runtimeApi !== undefined ? "haproxyAttach" : "haproxy";
}

/** The provider kind that carries a table (what `partitionByProvider` sorts by). */
export function trafficKindOf(traffic: TrafficSpec | undefined): TrafficProviderKind {
  return TRAFFIC_MODES[trafficModeOf(traffic)].kind;
}

/** How each feature reads in a sentence: "... needs mirrored traffic, which ...". */
export const FEATURE_TEXT: { readonly [F in RouteFeature]: string } = {
  split: "a weighted split between versions",
  stickiness: "sticky assignment",
  matches: "match rules",
  versionOverride: "the x-turnout-version override header",
  preview: "a preview listener",
  mirror: "mirrored traffic",
  experiment: "A/B experiment arms",
  experimentResponseHeaders: "A/B metrics read from response headers",
  edgeFlags: "flags evaluated at the edge",
};

/** A feature a Service needs that its data plane does not carry. */
export interface TrafficProblem extends SpecFeature {
  mode: TrafficMode;
  /** "needs mirrored traffic, which the haproxy provider does not carry; use ..." */
  reason: string;
  /** The path and the reason: "spec.strategy.shadow needs mirrored traffic, ..." */
  message: string;
}

/**
 * Every feature the Service's spec needs that its `spec.traffic` provider lacks (none: the
 * spec can be applied). Pure, so apply and validate refuse before anything is stored or runs.
 */
export function trafficProblems(spec: ServiceSpec): TrafficProblem[] {
  const mode = trafficModeOf(spec.traffic);
  const info = TRAFFIC_MODES[mode];
  const out: TrafficProblem[] = [];
  for (const need of specFeatures(spec)) {
    if (info.features.has(need.feature)) continue;
    // Say the smallest change that makes the spec fit.
    const remedies: string[] = [];
    if (mode === "haproxyAttach" && TRAFFIC_MODES.haproxy.features.has(need.feature))
      remedies.push("an HAProxy that Turnout runs (remove runtimeApi and backend)");
    remedies.push("the built-in router (remove spec.traffic)");
    const other =
      need.feature === "experimentResponseHeaders"
        ? "an event source (POST /api/v1/events) for that metric"
        : need.path.startsWith("spec.strategy.")
          ? "another strategy"
          : `remove ${need.path}`;
    const reason = `needs ${FEATURE_TEXT[need.feature]}, which ${info.name} does not carry; use ${remedies.join(" or ")} or ${other}`;
    out.push({ ...need, mode, reason, message: `${need.path} ${reason}` });
  }
  return out;
}

/**
 * Which data plane carries a Service's traffic, and what each one can carry: pure, so `apply`
 * can refuse a Service whose strategy needs a feature its provider lacks before anything runs,
 * and so the conformance suite (src/traffic/conformance.ts) can skip by declared capability.
 *
 * The route table (`RouteTable`, model.ts) is the contract between the controller and every
 * data plane. A provider puts tables in force (src/traffic/provider.ts); this module says which
 * parts of a table ("features") a provider can put in force.
 */
import type { RouteTable } from "./model.js";

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
  if (t.flags && t.flags.length > 0) out.push("edgeFlags");
  return out;
}

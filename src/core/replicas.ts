/** Replica counts: the spec's, and Kubernetes' intOrPercent rounding for surge/unavailable. */
import type { IntOrPercent, ServiceSpec } from "./model.js";

/** Instances each version should run with, per the spec. */
export function replicasOf(spec: ServiceSpec): number {
  if ("process" in spec.runtime) return spec.runtime.process.replicas;
  return 1;
}

/**
 * An absolute count from an int or a percent of `total`: maxSurge rounds up, maxUnavailable
 * rounds down (Kubernetes' `ResolveFenceposts`).
 */
export function resolveIntOrPercent(v: IntOrPercent, total: number, roundUp: boolean): number {
  if (typeof v === "number") return v;
  const x = (Number.parseFloat(v) * total) / 100;
  return roundUp ? Math.ceil(x) : Math.floor(x);
}

/**
 * maxSurge and maxUnavailable resolved for `total` replicas. Both 0 cannot make progress;
 * Kubernetes then allows one unavailable, and so does Turnout.
 */
export function fenceposts(
  maxSurge: IntOrPercent,
  maxUnavailable: IntOrPercent,
  total: number,
): { surge: number; unavailable: number } {
  const surge = resolveIntOrPercent(maxSurge, total, true);
  let unavailable = resolveIntOrPercent(maxUnavailable, total, false);
  if (surge === 0 && unavailable === 0) unavailable = 1;
  return { surge, unavailable: Math.min(unavailable, total) };
}

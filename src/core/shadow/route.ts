/** The route table's mirror, from the status a `shadow`/`setMirrorRoute` step wrote. Pure. */
import type { ServiceStatus } from "../model.js";
import { DEFAULT_MIRROR_LIMITS, type RouteMirror } from "./types.js";

/** Methods copied when a step names none: safe ones only. */
export const DEFAULT_MIRROR_METHODS = ["GET", "HEAD"];

/**
 * The mirror for a route table, or null when none is in force: no mirror in the status, its
 * version has no ready instance, or the shadow step that set it is no longer the current step
 * (a `promote` skipped it).
 */
export function routeMirrorOf(
  status: ServiceStatus,
  endpoints: (version: string) => string[],
): RouteMirror | null {
  const sh = status.shadow;
  if (!sh) return null;
  if (sh.kind === "shadow" && status.stepIndex !== sh.stepIndex) return null;
  const eps = endpoints(sh.version);
  if (eps.length === 0) return null;
  const m = sh.mirror;
  const mirror: RouteMirror = {
    id: sh.id,
    version: sh.version,
    endpoints: eps,
    percent: m.percent,
    methods: (m.methods ?? DEFAULT_MIRROR_METHODS).map((x) => x.toUpperCase()),
    stripHeaders: (m.stripHeaders ?? []).map((h) => h.toLowerCase()),
    limits: { ...DEFAULT_MIRROR_LIMITS, ...(m.limits ?? {}) },
    compare: sh.compare ?? {},
  };
  if (m.match) mirror.match = m.match;
  if (sh.noise && status.stableVersion) {
    const stable = endpoints(status.stableVersion);
    if (stable.length > 0) mirror.noiseEndpoints = stable;
  }
  return mirror;
}

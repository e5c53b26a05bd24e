/**
 * Builds a service's route table from the decision (weights) and the ready endpoints: pure,
 * so the controller only gathers inputs and writes the result.
 */
import { routeExperimentOf } from "./experiment/spec.js";
import {
  DEFAULT_TRAFFIC_POLICY,
  type RouteMatch,
  type RouteTable,
  type ServiceSpec,
  type ServiceStatus,
} from "./model.js";
import type { VersionWeight } from "./rollout.js";
import { routeMirrorOf } from "./shadow/route.js";

/** The sticky hashing scheme in force; see core/hashing.ts. Bump only with a new scheme. */
export const HASH_VERSION = 1;

export interface RouteInputs {
  service: string;
  spec: ServiceSpec;
  status: ServiceStatus;
  weights: VersionWeight[];
  /** Ready endpoints per version. */
  endpoints: (version: string) => string[];
  now: number;
}

export function buildRouteTable(i: RouteInputs): Omit<RouteTable, "revision"> {
  const { spec, status } = i;
  // Canary first: sticky buckets are filled in backend order, so as the canary's weight grows
  // the users already on it stay on it and only new buckets move over.
  const ordered = [...i.weights].sort(
    (a, b) =>
      Number(b.version === status.canaryVersion) - Number(a.version === status.canaryVersion),
  );
  // An experiment's further arms (versions beside stable and canary) get backends without
  // weight: only the units assigned to them reach them.
  for (const arm of status.experiment?.arms ?? []) {
    if (!ordered.some((w) => w.version === arm.version))
      ordered.push({ version: arm.version, weight: 0 });
  }
  const running = new Set(i.weights.map((w) => w.version));
  const resolve = (to: string): string | null => {
    if (to === "canary") return status.canaryVersion;
    if (to === "stable") return status.stableVersion;
    return to;
  };
  const matches: RouteMatch[] = [];
  // A setHeaderRoute step's route comes first: it is the rollout's own, for testers of the canary.
  if (status.headerRoute && status.canaryVersion && running.has(status.canaryVersion)) {
    matches.push({ ...status.headerRoute, version: status.canaryVersion });
  }
  for (const rule of spec.routing?.matches ?? []) {
    const version = resolve(rule.to);
    // A rule whose target does not run now (no canary, unknown version) is skipped.
    if (version === null || !running.has(version)) continue;
    const { to: _to, ...conditions } = rule;
    matches.push({ ...conditions, version });
  }
  const table: Omit<RouteTable, "revision"> = {
    service: i.service,
    listen: { host: spec.listen.host, port: spec.listen.port },
    hashVersion: HASH_VERSION,
    backends: ordered.map((w) => ({
      version: w.version,
      weight: w.weight,
      endpoints: i.endpoints(w.version),
    })),
    policy: spec.trafficPolicy ?? DEFAULT_TRAFFIC_POLICY,
    updatedAt: i.now,
  };
  if (spec.stickiness)
    table.stickiness = { ...spec.stickiness, salt: spec.stickiness.salt ?? i.service };
  if (matches.length > 0) table.matches = matches;
  if (spec.routing?.versionOverride) table.versionOverride = true;
  if (spec.flags !== undefined && spec.flags.length > 0) table.flags = [...spec.flags];
  // An experiment step's arms: the router assigns units to them and logs exposures.
  const experiment = status.experiment ? routeExperimentOf(spec, status.experiment) : null;
  if (experiment) table.experiment = experiment;
  // A shadow or setMirrorRoute step's mirror: copies go to the candidate and are compared.
  const mirror = routeMirrorOf(status, i.endpoints);
  if (mirror) table.mirror = mirror;
  // Blue-green's preview listener: everything on it goes to the candidate, until the switch.
  if (status.preview && status.canaryVersion && running.has(status.canaryVersion)) {
    table.preview = {
      listen: { host: spec.listen.host, port: status.preview.port },
      version: status.canaryVersion,
    };
  }
  return table;
}

/** Suffix of the service name of a preview listener's table (its measurements are kept apart). */
export const PREVIEW_SUFFIX = ":preview";

/**
 * The tables a router serves: each table, plus one for its preview listener if it has one. The
 * preview table sends everything to the preview version (no split, no match rules), under the
 * service name + ":preview", so testers' requests never count in the service's analysis.
 */
export function expandPreviews(tables: RouteTable[]): RouteTable[] {
  const out: RouteTable[] = [];
  for (const t of tables) {
    out.push(t);
    if (!t.preview) continue;
    const backend = t.backends.find((b) => b.version === t.preview?.version);
    // Only what a plain listener needs: no match rules, mirror, experiment or edge flags, which
    // belong to the service's users, not to testers of the preview.
    out.push({
      service: `${t.service}${PREVIEW_SUFFIX}`,
      revision: t.revision,
      listen: t.preview.listen,
      hashVersion: t.hashVersion,
      backends: [{ version: t.preview.version, weight: 100, endpoints: backend?.endpoints ?? [] }],
      ...(t.policy ? { policy: t.policy } : {}),
      updatedAt: t.updatedAt,
    });
  }
  return out;
}

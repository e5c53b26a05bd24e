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
import { roundWeight } from "./steps/setWeight.js";
import type { CompiledStrategy } from "./strategies/index.js";
import { specFeatures } from "./traffic.js";

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
  /** `compileStrategy(spec)` when the caller has it (see `ReconcileInput.strategy`). */
  strategy?: CompiledStrategy;
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
    backends: servedWeights(ordered, i.endpoints),
    policy: spec.trafficPolicy ?? DEFAULT_TRAFFIC_POLICY,
    updatedAt: i.now,
  };
  if (spec.stickiness)
    table.stickiness = { ...spec.stickiness, salt: spec.stickiness.salt ?? i.service };
  if (matches.length > 0) table.matches = matches;
  if (
    spec.traffic !== undefined &&
    (matches.length > 0 || specFeatures(spec).some((f) => f.feature === "matches"))
  )
    table.mayMatch = true;
  if (spec.routing?.versionOverride) table.versionOverride = true;
  if (spec.flags !== undefined && spec.flags.length > 0) table.flags = [...spec.flags];
  // The data plane that carries it; absent (the built-in router), so tables stay as they were.
  if (spec.traffic !== undefined) table.traffic = structuredClone(spec.traffic);
  // An experiment step's arms: the router assigns units to them and logs exposures.
  const experiment = status.experiment
    ? routeExperimentOf(spec, status.experiment, i.strategy)
    : null;
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

/**
 * A version gets traffic only where routers have somewhere to send it: the share of a version
 * without a ready endpoint (all its instances unready for a moment, or not started yet) goes to
 * the versions that have one, in proportion to their weights. Routers would do the same on their
 * own, but the table then says what is really in force, for every data plane and every reader.
 * When no weighted version has an endpoint the weights stay as decided: there is nowhere to move
 * the traffic to, and sending users to a version the rollout gives nothing (a blue-green
 * preview, an aborted candidate) would be worse than the router's 503.
 */
function servedWeights(
  ordered: VersionWeight[],
  endpointsOf: (version: string) => string[],
): RouteTable["backends"] {
  const backends = ordered.map((w) => ({
    version: w.version,
    weight: w.weight,
    endpoints: endpointsOf(w.version),
  }));
  let lost = 0;
  let kept = 0;
  for (const b of backends) {
    if (b.weight <= 0) continue;
    if (b.endpoints.length === 0) lost += b.weight;
    else kept += b.weight;
  }
  if (lost === 0 || kept === 0) return backends;
  for (const b of backends) {
    if (b.weight <= 0) continue;
    b.weight = b.endpoints.length === 0 ? 0 : roundWeight(b.weight + (lost * b.weight) / kept);
  }
  return backends;
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

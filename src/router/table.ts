/**
 * A route table compiled for the hot path: integer weights, the state of the weighted
 * round-robin, upstream pools and counters resolved once per table instead of once per
 * request. A compiled table is never replaced in place: the router swaps the reference, so a
 * request keeps the table it started with (its SWRR state is only touched synchronously, when
 * a request picks its backend).
 */

import { hashScheme } from "../core/hashing.js";
import { DEFAULT_TRAFFIC_POLICY, type RouteTable } from "../core/model.js";
import { compileUserRegex } from "../core/regex.js";
import { type CompiledFeatures, compileFeatures, type FeatureEnvs } from "./features.js";
import type { UpstreamPools } from "./pools.js";
import {
  CONDITION_EQUALS,
  CONDITION_EXISTS,
  CONDITION_REGEX,
  type CompiledBackend,
  type CompiledCondition,
  type CompiledEndpoint,
  type CompiledMatch,
  type CompiledSelection,
  type CompiledSticky,
  type FeatureHooks,
  type SeriesRecorder,
  type TableCore,
  WEIGHT_SCALE,
} from "./types.js";

export {
  CONDITION_EQUALS,
  CONDITION_EXISTS,
  CONDITION_REGEX,
  type CompiledBackend,
  type CompiledCondition,
  type CompiledEndpoint,
  type CompiledMatch,
  type CompiledSelection,
  type CompiledSticky,
  type ConditionKind,
  ISSUED_COOKIE_ATTRIBUTES,
  WEIGHT_SCALE,
} from "./types.js";

/**
 * A compiled table: the core (backends, split, selection, policy) and one readonly field per
 * feature (`experiment`, `flags`, `mirror`: see features.ts), null when the table does not use
 * it. `selectors` and `interceptors` are the features with a `select` or `request` hook, in
 * the registry's order, so that the proxy runs no hook of an unused feature (one length check
 * each per request).
 */
export interface CompiledTable extends TableCore, CompiledFeatures {
  readonly selectors: readonly Required<Pick<FeatureHooks, "select">>[];
  readonly interceptors: readonly Required<Pick<FeatureHooks, "request">>[];
}

export interface CompileContext {
  pools: UpstreamPools;
  /** The counters of a version of this service (the same object across tables). */
  counters(version: string): SeriesRecorder;
  /** The table being replaced, to carry balancing state over when the split is unchanged. */
  previous?: CompiledTable | undefined;
  /**
   * What each feature needs from the router (its exposure log, edge flag source, mirrors); a
   * feature without one compiles as it does alone (experiments log nothing, no flags, no mirror).
   */
  features?: FeatureEnvs;
}

/** Compiles a table. Never throws: bad endpoints and weights are skipped and described in `problems`. */
export function compileTable(
  table: RouteTable,
  ctx: CompileContext,
): { table: CompiledTable; problems: string[] } {
  const problems: string[] = [];
  const backends: CompiledBackend[] = [];
  const origins = new Set<string>();
  const byVersion = new Map<string, CompiledBackend>();
  // Rules, the override and experiment arms may send requests to a version the split gives
  // nothing (a preview, an experiment's further arm).
  const targetable =
    (table.matches?.length ?? 0) > 0 ||
    table.versionOverride === true ||
    (table.experiment?.arms.length ?? 0) > 0;
  let totalWeight = 0;
  for (const b of table.backends) {
    const endpoints: CompiledEndpoint[] = [];
    for (const url of b.endpoints) {
      const ep = parseEndpoint(url);
      if (typeof ep === "string") {
        problems.push(`version ${b.version}: endpoint ${JSON.stringify(url)} skipped: ${ep}`);
        continue;
      }
      origins.add(ep.origin);
      endpoints.push(ctx.pools.endpoint(url, ep.origin, ep.pathPrefix));
    }
    const weight =
      Number.isFinite(b.weight) && b.weight > 0 ? Math.round(b.weight * WEIGHT_SCALE) : 0;
    if (!(Number.isFinite(b.weight) && b.weight >= 0)) {
      problems.push(`version ${b.version}: weight ${b.weight} is not a number >= 0; treated as 0`);
    }
    // A version without endpoints gives its share to the others rather than failing its
    // share of requests: during a rollout an instance may briefly be unready, and users
    // should not see 503s for it. Its counters then show that it received nothing.
    if (endpoints.length === 0 || (weight === 0 && !targetable)) continue;
    const backend: CompiledBackend = {
      version: b.version,
      weight,
      current: 0,
      endpoints,
      cursor: 0,
      counters: ctx.counters(b.version),
    };
    if (!byVersion.has(b.version)) byVersion.set(b.version, backend);
    if (weight === 0) continue;
    backends.push(backend);
    totalWeight += weight;
  }
  carryState(ctx.previous, backends);
  const selection = compileSelection(table, byVersion, backends, problems);
  const core: TableCore = {
    service: table.service,
    revision: table.revision,
    listen: { host: table.listen.host, port: table.listen.port },
    backends,
    totalWeight,
    origins,
    policy: table.policy ?? DEFAULT_TRAFFIC_POLICY,
    byVersion,
    selection,
  };
  const { features, selectors, interceptors } = compileFeatures(
    table,
    core,
    ctx.features,
    problems,
  );
  return { table: { ...core, ...features, selectors, interceptors }, problems };
}

/**
 * Keeps the balancing state when a table changes without changing the split (e.g. an instance
 * became ready). SWRR starting again from zero after every such swap would favour the first
 * backend each time and could starve a 0.01% canary entirely if tables change more often than
 * every 10,000 requests. When the split changes the state restarts, which is what nginx does on
 * reload: the new sequence is exact from its start.
 */
function carryState(prev: TableCore | undefined, next: CompiledBackend[]): void {
  if (prev === undefined) return;
  const sameSplit =
    prev.backends.length === next.length &&
    next.every(
      (b, i) => prev.backends[i]?.version === b.version && prev.backends[i]?.weight === b.weight,
    );
  for (let i = 0; i < next.length; i++) {
    const b = next[i]!;
    const old = sameSplit ? prev.backends[i] : prev.backends.find((p) => p.version === b.version);
    if (old === undefined) continue;
    if (sameSplit) b.current = old.current;
    b.cursor = old.cursor % b.endpoints.length;
  }
}

function parseEndpoint(url: string): { origin: string; pathPrefix: string } | string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "not a URL";
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return `unsupported scheme ${u.protocol}`;
  if (u.search !== "" || u.hash !== "") return "a base URL has no query or fragment";
  const pathPrefix = u.pathname.endsWith("/") ? u.pathname.slice(0, -1) : u.pathname;
  return { origin: u.origin, pathPrefix };
}

/**
 * Smooth weighted round-robin (nginx's `ngx_http_upstream_get_peer`): every pick adds each
 * backend's weight to its `current`, takes the largest, and subtracts the total from it.
 * Chosen over random weighted choice because it is exact, not just right on average: over any
 * `total / gcd(weights)` consecutive picks each backend gets exactly its share, so a 0.01%
 * canary gets 1 request in every 10,000 instead of a Poisson-distributed handful, and early
 * analysis sees the split it asked for. It also interleaves (90/10 gives 9 a, 1 b, not 90 a then
 * 10 b). O(number of backends), no allocation.
 */
export function pickBackend(table: TableCore): CompiledBackend | null {
  const bs = table.backends;
  let best: CompiledBackend | null = null;
  for (let i = 0; i < bs.length; i++) {
    const b = bs[i]!;
    b.current += b.weight;
    if (best === null || b.current > best.current) best = b;
  }
  if (best !== null) best.current -= table.totalWeight;
  return best;
}

/** Round robin over the endpoints of a version; null when it has none. */
export function pickEndpoint(backend: CompiledBackend): CompiledEndpoint | null {
  const eps = backend.endpoints;
  if (eps.length === 0) return null;
  const i = backend.cursor < eps.length ? backend.cursor : 0;
  backend.cursor = i + 1 === eps.length ? 0 : i + 1;
  return eps[i]!;
}

// ---------------------------------------------------------------------------------------
// Selection: the override header, match rules and sticky ranges, compiled once per table so
// that select.ts does no parsing, lower-casing or regex compiling per request.
// ---------------------------------------------------------------------------------------

function compileSelection(
  table: RouteTable,
  byVersion: ReadonlyMap<string, CompiledBackend>,
  backends: readonly CompiledBackend[],
  problems: string[],
): CompiledSelection | null {
  const matches: CompiledMatch[] = [];
  (table.matches ?? []).forEach((m, i) => {
    const what = `match rule ${i + 1} (to ${m.version})`;
    const backend = byVersion.get(m.version);
    // No endpoints (e.g. not ready yet): the rule falls through, as if it did not match.
    if (backend === undefined) return;
    const header = m.header ? compileCondition(m.header, true, `${what}: header`, problems) : null;
    const cookie = m.cookie ? compileCondition(m.cookie, false, `${what}: cookie`, problems) : null;
    if (header === undefined || cookie === undefined) return;
    const pathPrefix = m.pathPrefix === undefined ? null : m.pathPrefix;
    if (pathPrefix !== null && !pathPrefix.startsWith("/")) {
      problems.push(
        `${what}: pathPrefix ${JSON.stringify(pathPrefix)} does not start with "/"; rule skipped`,
      );
      return;
    }
    if (header === null && cookie === null && pathPrefix === null) {
      problems.push(`${what}: no condition; rule skipped`);
      return;
    }
    matches.push({ header, cookie, pathPrefix, backend });
  });
  const sticky = compileSticky(table, backends, problems);
  const versionOverride = table.versionOverride === true;
  if (!versionOverride && matches.length === 0 && sticky === null) return null;
  return { versionOverride, matches, sticky };
}

/** A compiled condition, or undefined (reported in `problems`) when it cannot be used. */
function compileCondition(
  c: { name: string; equals?: string; regex?: string; exists?: boolean },
  isHeader: boolean,
  what: string,
  problems: string[],
): CompiledCondition | undefined {
  const name = isHeader ? c.name.toLowerCase() : c.name;
  if (typeof c.equals === "string") {
    return { name, kind: CONDITION_EQUALS, equals: c.equals, regex: null, exists: true };
  }
  if (typeof c.regex === "string") {
    const regex = compileUserRegex(c.regex);
    if (typeof regex === "string") {
      problems.push(`${what} ${c.name}: regex ${JSON.stringify(c.regex)} ${regex}; rule skipped`);
      return undefined;
    }
    return { name, kind: CONDITION_REGEX, equals: "", regex, exists: true };
  }
  if (typeof c.exists === "boolean") {
    return { name, kind: CONDITION_EXISTS, equals: "", regex: null, exists: c.exists };
  }
  problems.push(`${what} ${c.name}: needs one of equals, regex or exists; rule skipped`);
  return undefined;
}

function compileSticky(
  table: RouteTable,
  backends: readonly CompiledBackend[],
  problems: string[],
): CompiledSticky | null {
  const st = table.stickiness;
  if (st === undefined) return null;
  let bucket: (salt: string, key: string) => number;
  try {
    bucket = hashScheme(table.hashVersion).bucket;
  } catch (err) {
    // Better an exact split than a guess at a scheme this build does not know.
    problems.push(`stickiness off: ${(err as Error).message}`);
    return null;
  }
  const source = "header" in st ? "header" : "cookie" in st ? "cookie" : "query";
  const raw = "header" in st ? st.header : "cookie" in st ? st.cookie : st.query;
  const ends: number[] = [];
  const owners: (CompiledBackend | null)[] = [];
  let end = 0;
  for (const b of table.backends) {
    const size =
      Number.isFinite(b.weight) && b.weight > 0 ? Math.round(b.weight * WEIGHT_SCALE) : 0;
    if (size === 0) continue;
    end += size;
    ends.push(end);
    owners.push(backends.find((x) => x.version === b.version) ?? null);
  }
  if (end !== 100 * WEIGHT_SCALE) {
    problems.push(
      `sticky ranges cover ${end / WEIGHT_SCALE}% of the buckets, not 100%; keys outside them follow the split`,
    );
  }
  return {
    source,
    name: source === "header" ? raw.toLowerCase() : raw,
    salt: st.salt,
    hashVersion: table.hashVersion,
    bucket,
    ends,
    owners,
    cookiePrefix: `${raw}=`,
  };
}

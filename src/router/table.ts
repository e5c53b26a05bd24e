/**
 * A route table compiled for the hot path: integer weights, the state of the weighted
 * round-robin, upstream pools and counters resolved once per table instead of once per
 * request. A compiled table is never replaced in place: the router swaps the reference, so a
 * request keeps the table it started with (its SWRR state is only touched synchronously, when
 * a request picks its backend).
 */
import type { Pool } from "undici";
import type { RouteTable } from "../core/model.js";
import type { UpstreamPools } from "./pools.js";
import type { VersionCounters } from "./stats.js";

/**
 * Weights are percentages with up to four decimals (0.0001%); scaled by this factor they are
 * exact integers, so the split has no rounding drift and SWRR's arithmetic stays integral.
 */
export const WEIGHT_SCALE = 10_000;

export interface CompiledEndpoint {
  /** The endpoint as the table names it, e.g. "http://127.0.0.1:9001". */
  readonly url: string;
  readonly origin: string;
  /** Path of the base URL without its trailing slash ("" for none); prefixed to request paths. */
  readonly pathPrefix: string;
  readonly pool: Pool;
}

export interface CompiledBackend {
  readonly version: string;
  /** Percent × WEIGHT_SCALE. */
  readonly weight: number;
  /** SWRR's running "current weight"; mutated by `pickBackend`. */
  current: number;
  readonly endpoints: readonly CompiledEndpoint[];
  /** Index of the next endpoint (round robin); mutated by `pickEndpoint`. */
  cursor: number;
  readonly counters: VersionCounters;
}

export interface CompiledTable {
  readonly service: string;
  readonly revision: number;
  readonly listen: { readonly host: string; readonly port: number };
  /** Backends that can take traffic: weight > 0 and at least one endpoint. */
  readonly backends: readonly CompiledBackend[];
  /** Sum of the weights of `backends`. */
  readonly totalWeight: number;
  /** Origins of all endpoints, so that unused pools can be closed. */
  readonly origins: ReadonlySet<string>;
}

export interface CompileContext {
  pools: UpstreamPools;
  /** The counters of a version of this service (the same object across tables). */
  counters(version: string): VersionCounters;
  /** The table being replaced, to carry balancing state over when the split is unchanged. */
  previous?: CompiledTable | undefined;
}

/** Compiles a table. Never throws: bad endpoints and weights are skipped and described in `problems`. */
export function compileTable(
  table: RouteTable,
  ctx: CompileContext,
): { table: CompiledTable; problems: string[] } {
  const problems: string[] = [];
  const backends: CompiledBackend[] = [];
  const origins = new Set<string>();
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
      endpoints.push({
        url,
        origin: ep.origin,
        pathPrefix: ep.pathPrefix,
        pool: ctx.pools.get(ep.origin),
      });
    }
    const weight =
      Number.isFinite(b.weight) && b.weight > 0 ? Math.round(b.weight * WEIGHT_SCALE) : 0;
    if (!(Number.isFinite(b.weight) && b.weight >= 0)) {
      problems.push(`version ${b.version}: weight ${b.weight} is not a number >= 0; treated as 0`);
    }
    // A version without endpoints gives its share to the others rather than failing its
    // share of requests: during a rollout an instance may briefly be unready, and users
    // should not see 503s for it. Its counters then show that it received nothing.
    if (weight === 0 || endpoints.length === 0) continue;
    backends.push({
      version: b.version,
      weight,
      current: 0,
      endpoints,
      cursor: 0,
      counters: ctx.counters(b.version),
    });
    totalWeight += weight;
  }
  carryState(ctx.previous, backends);
  return {
    table: {
      service: table.service,
      revision: table.revision,
      listen: { host: table.listen.host, port: table.listen.port },
      backends,
      totalWeight,
      origins,
    },
    problems,
  };
}

/**
 * Keeps the balancing state when a table changes without changing the split (e.g. an instance
 * became ready). SWRR starting again from zero after every such swap would favour the first
 * backend each time and could starve a 0.01% canary entirely if tables change more often than
 * every 10,000 requests. When the split changes the state restarts, which is what nginx does on
 * reload: the new sequence is exact from its start.
 */
function carryState(prev: CompiledTable | undefined, next: CompiledBackend[]): void {
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
export function pickBackend(table: CompiledTable): CompiledBackend | null {
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

/**
 * Upstream endpoints and their connection pools.
 *
 * One `Endpoint` per upstream URL and one undici `Pool` per origin, both shared by every table
 * that names them. Keeping them across table swaps matters twice: a canary moves its weight
 * every few seconds, and dropping warm keep-alive connections at each step would add a TCP
 * handshake to the first requests after every swap; and the endpoint carries state that must
 * outlive a table (outstanding requests for least-request balancing, ejection and health).
 *
 * Endpoints that leave every table are closed only after a grace period: a rollout often takes
 * an instance out and puts it back (alternating tables, an instance that flaps between ready and
 * not), and the v1 router, which closed pools at once, saw 504s for requests that still waited
 * for a connection of a pool being closed.
 */
import { Pool } from "undici";
import { type Clock, type HealthTarget, type ProbeTarget, systemClock } from "./health.js";

export interface PoolOptions {
  /** Default time to wait for an upstream's response headers (requests may set their own). */
  headersTimeoutMs: number;
  /** Longest idle time between two chunks of a response body (undici `bodyTimeout`). */
  bodyTimeoutMs: number;
  /** Time to wait for a TCP (or TLS) connection to an upstream. */
  connectTimeoutMs: number;
  /** How long an endpoint that no table names is kept before its pool closes. Default 10 s. */
  idleGraceMs?: number;
  clock?: Clock;
  /** Called when an endpoint is dropped for good (to stop its timers). */
  onRetire?: (endpoint: Endpoint) => void;
}

/**
 * One upstream instance (a base URL) and what the router knows about it. The balancer reads
 * `available` and `outstanding`; everything else belongs to health.ts.
 */
export class Endpoint implements ProbeTarget, HealthTarget {
  /** Requests dispatched to this endpoint and not finished, over all tables. */
  outstanding = 0;
  available = true;
  consecutiveFailures = 0;
  ejected = false;
  ejections = 0;
  lastUnejectedAt = 0;
  ejectionTimer: unknown = null;
  activeHealthy = true;

  constructor(
    /** The endpoint as tables name it, e.g. "http://127.0.0.1:9001". */
    readonly url: string,
    readonly origin: string,
    /** Path of the base URL without its trailing slash ("" for none); prefixed to request paths. */
    readonly pathPrefix: string,
    readonly pool: Pool,
  ) {}
}

export class UpstreamPools {
  readonly #pools = new Map<string, Pool>();
  readonly #endpoints = new Map<string, Endpoint>();
  /** Endpoints no table names, with the time they left the last one. */
  readonly #idleSince = new Map<string, number>();
  readonly #closing = new Set<Promise<void>>();
  readonly #graceMs: number;
  readonly #clock: Clock;
  #sweepTimer: unknown = null;

  constructor(private readonly opts: PoolOptions) {
    this.#graceMs = opts.idleGraceMs ?? 10_000;
    this.#clock = opts.clock ?? systemClock;
  }

  /** The pool of `origin` (e.g. "http://127.0.0.1:9001"), created on first use. */
  get(origin: string): Pool {
    let pool = this.#pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, {
        headersTimeout: this.opts.headersTimeoutMs,
        bodyTimeout: this.opts.bodyTimeoutMs,
        connect: { timeout: this.opts.connectTimeoutMs },
        // One request per connection at a time: pipelining lets one slow response hold up the
        // ones queued behind it, which would blur per-version latency.
        pipelining: 1,
      });
      this.#pools.set(origin, pool);
    }
    return pool;
  }

  /** The endpoint of `url`, created on first use; an idle one is taken back into service. */
  endpoint(url: string, origin: string, pathPrefix: string): Endpoint {
    let ep = this.#endpoints.get(url);
    if (ep === undefined) {
      ep = new Endpoint(url, origin, pathPrefix, this.get(origin));
      this.#endpoints.set(url, ep);
    } else {
      this.#idleSince.delete(url);
    }
    return ep;
  }

  /** Endpoints known now (in use or within their grace period). */
  endpoints(): IterableIterator<Endpoint> {
    return this.#endpoints.values();
  }

  /** Number of open pools. */
  get size(): number {
    return this.#pools.size;
  }

  /**
   * Marks the endpoints whose URL is not in `inUse` as idle; they are dropped, and their pools
   * closed, once they have stayed idle for the grace period.
   */
  retainOnly(inUse: ReadonlySet<string>): void {
    const now = this.#clock.now();
    for (const url of this.#endpoints.keys()) {
      if (inUse.has(url)) this.#idleSince.delete(url);
      else if (!this.#idleSince.has(url)) this.#idleSince.set(url, now);
    }
    if (this.#idleSince.size > 0 && this.#sweepTimer === null) this.#scheduleSweep();
  }

  #scheduleSweep(): void {
    let oldest = Number.POSITIVE_INFINITY;
    for (const t of this.#idleSince.values()) oldest = Math.min(oldest, t);
    const wait = Math.max(0, oldest + this.#graceMs - this.#clock.now());
    this.#sweepTimer = this.#clock.setTimeout(() => {
      this.#sweepTimer = null;
      this.#sweep();
    }, wait);
  }

  #sweep(): void {
    const now = this.#clock.now();
    for (const [url, since] of this.#idleSince) {
      if (now - since < this.#graceMs) continue;
      this.#idleSince.delete(url);
      const ep = this.#endpoints.get(url);
      this.#endpoints.delete(url);
      if (ep !== undefined) this.opts.onRetire?.(ep);
    }
    const origins = new Set<string>();
    for (const ep of this.#endpoints.values()) origins.add(ep.origin);
    for (const [origin, pool] of this.#pools) {
      if (origins.has(origin)) continue;
      this.#pools.delete(origin);
      // `Pool.close()` is graceful: requests already dispatched finish first.
      this.#track(pool.close());
    }
    if (this.#idleSince.size > 0) this.#scheduleSweep();
  }

  /** Closes every pool; waits for in-flight requests to end (and for earlier closes). */
  async closeAll(): Promise<void> {
    if (this.#sweepTimer !== null) this.#clock.clearTimeout(this.#sweepTimer);
    this.#sweepTimer = null;
    for (const ep of this.#endpoints.values()) this.opts.onRetire?.(ep);
    this.#endpoints.clear();
    this.#idleSince.clear();
    for (const pool of this.#pools.values()) this.#track(pool.close());
    this.#pools.clear();
    await Promise.all([...this.#closing]);
  }

  #track(p: Promise<void>): void {
    const tracked = p.catch(() => {}).finally(() => this.#closing.delete(tracked));
    this.#closing.add(tracked);
  }
}

/** What the balancer needs of a version: its endpoints and a rotating start index. */
export interface Balanced {
  readonly endpoints: readonly Endpoint[];
  /** Where the next scan starts; advanced by every pick. */
  cursor: number;
}

/** Above this many endpoints least-request samples two ("power of two choices") instead of scanning all. */
const SCAN_LIMIT = 16;

/** xorshift32 state for the two random choices; seeded, so runs are reproducible. */
let rngState = 0x9e3779b9;

function nextRandom(): number {
  let x = rngState;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  rngState = x >>> 0;
  return rngState;
}

/** Seeds the random choices of `pickInstance` (tests). */
export function seedBalancer(seed: number): void {
  rngState = seed >>> 0 || 1;
}

/**
 * Picks one of a version's endpoints, skipping `exclude` (the endpoint a retry moves away from)
 * and endpoints that are ejected or failing their health checks.
 *
 * - least request (`leastRequest`): the endpoint with the fewest outstanding requests. The scan
 *   starts one further at every pick and keeps the first of equals, so equal load spreads round
 *   robin instead of piling onto the first endpoint; above `SCAN_LIMIT` endpoints it compares
 *   two random ones (power of two choices), as Envoy does.
 * - round robin: the next available endpoint.
 *
 * When no endpoint is available the unavailable ones are used anyway (Envoy's "panic mode"):
 * a version whose every instance fails keeps being tried rather than answering 503s, so the
 * instances' own answers (or errors) reach the client and the measurements. Returns null only
 * when there is nothing but `exclude`. No allocation.
 */
export function pickInstance(
  b: Balanced,
  leastRequest: boolean,
  exclude: Endpoint | null,
): Endpoint | null {
  const eps = b.endpoints;
  const n = eps.length;
  if (n === 1) {
    const only = eps[0]!;
    return only === exclude ? null : only;
  }
  if (n === 0) return null;
  if (leastRequest && n > SCAN_LIMIT) {
    const x = eps[nextRandom() % n]!;
    const y = eps[nextRandom() % n]!;
    const xOk = x.available && x !== exclude;
    const yOk = y.available && y !== exclude;
    if (xOk && yOk) return y.outstanding < x.outstanding ? y : x;
    if (xOk) return x;
    if (yOk) return y;
    // Both unusable: fall through to a full scan.
  }
  const start = b.cursor < n ? b.cursor : 0;
  let best = -1;
  let fallback = -1;
  for (let k = 0, i = start; k < n; k++, i = i + 1 === n ? 0 : i + 1) {
    const ep = eps[i]!;
    if (ep === exclude) continue;
    if (!ep.available) {
      if (fallback < 0 || (leastRequest && ep.outstanding < eps[fallback]!.outstanding))
        fallback = i;
      continue;
    }
    if (!leastRequest) {
      best = i;
      break;
    }
    if (best < 0 || ep.outstanding < eps[best]!.outstanding) best = i;
  }
  const chosen = best >= 0 ? best : fallback;
  if (chosen < 0) return null;
  // The next scan starts after the one chosen (as nginx's round robin does), so skipping an
  // unavailable endpoint does not hand its turns to its neighbour.
  b.cursor = chosen + 1 === n ? 0 : chosen + 1;
  return eps[chosen]!;
}

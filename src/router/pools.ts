/**
 * One undici `Pool` per upstream origin, shared by every table that names the origin. Keeping
 * pools across table swaps matters: a canary moves its weight every few seconds, and dropping
 * warm keep-alive connections at each step would add a TCP handshake to the first requests
 * after every swap (and a burst of TIME_WAIT sockets on the upstreams).
 */
import { Pool } from "undici";

export interface PoolOptions {
  /** Time to wait for the response headers of an upstream (undici `headersTimeout`). */
  headersTimeoutMs: number;
  /** Longest idle time between two chunks of a response body (undici `bodyTimeout`). */
  bodyTimeoutMs: number;
  /** Time to wait for a TCP (or TLS) connection to an upstream. */
  connectTimeoutMs: number;
}

export class UpstreamPools {
  readonly #pools = new Map<string, Pool>();
  readonly #closing = new Set<Promise<void>>();

  constructor(private readonly opts: PoolOptions) {}

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

  get size(): number {
    return this.#pools.size;
  }

  /**
   * Closes the pools of origins that no table uses any more. `Pool.close()` is graceful: it
   * lets requests already dispatched (by a request that started with an older table) finish
   * before it closes the connections.
   */
  retainOnly(inUse: ReadonlySet<string>): void {
    for (const [origin, pool] of this.#pools) {
      if (inUse.has(origin)) continue;
      this.#pools.delete(origin);
      this.#track(pool.close());
    }
  }

  /** Closes every pool; waits for in-flight requests to end (and for earlier closes). */
  async closeAll(): Promise<void> {
    for (const pool of this.#pools.values()) this.#track(pool.close());
    this.#pools.clear();
    await Promise.all([...this.#closing]);
  }

  #track(p: Promise<void>): void {
    const tracked = p.catch(() => {}).finally(() => this.#closing.delete(tracked));
    this.#closing.add(tracked);
  }
}

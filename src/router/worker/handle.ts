/**
 * What the rest of `turnout up` (API, /metrics, tests) may ask of the built-in router, without
 * touching its objects: every answer is a promise, so the router can run on its own thread
 * (`thread.ts`, the default) or in the caller's (`LocalRouterHandle`, for an injected clock and
 * for measuring the difference). Nothing here is on the request path.
 *
 * "In force": a command that changes a route table (abort, promote...) answers only once the
 * router serves the new revision, so `turnout abort` means "traffic is back on stable now".
 * The router reports, after each reload, the revision of every table it applied
 * (`TrackedSource`); `inForce(service, revision)` waits for it with a deadline.
 */

import type { MetricFamily } from "../../api/metrics.js";
import type { RouteTable } from "../../core/model.js";
import { AppliedRevisions, DEFAULT_IN_FORCE_TIMEOUT_MS } from "../../traffic/applied-revisions.js";
import type { MirrorStats } from "../mirror.js";
import type {
  EndpointInfo,
  ListenerInfo,
  ReloadEvent,
  Router,
  RouteTableSource,
  VersionStats,
} from "../router.js";

export interface RouterHandle {
  start(): Promise<void>;
  /** Closes the listeners (in-flight requests drain) and releases the router's resources. */
  stop(): Promise<void>;
  /** Counters of every version the service has routed to (`Router.stats`). */
  stats(service: string): Promise<VersionStats[]>;
  /** One entry per service with a table (`Router.listeners`). */
  listeners(): Promise<ListenerInfo[]>;
  /** The mirror's counters for a service; null without a mirror (`Router.mirrorStats`). */
  mirrorStats(service: string): Promise<MirrorStats | null>;
  /** The endpoints of the service's table in force (`Router.endpoints`). */
  endpoints(service: string): Promise<EndpointInfo[]>;
  /** The router's /metrics families (`ROUTER_METRIC_NAMES`, `MIRROR_METRIC_NAMES`, `BUFFER_METRIC_NAMES`). */
  metrics(): Promise<MetricFamily[]>;
  /**
   * Resolves once the flag snapshot the caller holds now is the one the router evaluates at the
   * edge (the kill switch answers only when it is in force).
   */
  flagsInForce(): Promise<void>;
  /**
   * Resolves true once the router serves `revision` (or a later one) of the service's table,
   * false if that has not happened within `timeoutMs` (default 5 s).
   */
  inForce(service: string, revision: number, timeoutMs?: number): Promise<boolean>;
  /** Subscribes to the outcome of every reload (`Router.onReload`). */
  onReload(listener: (e: ReloadEvent) => void): () => void;
}

export { AppliedRevisions, DEFAULT_IN_FORCE_TIMEOUT_MS };

/**
 * A route table source that remembers the revisions it last handed out. The router applies
 * every table of a successful read before it reports the reload, so after an `ok` reload these
 * are the revisions in force.
 */
export class TrackedSource implements RouteTableSource {
  readonly #inner: RouteTableSource;
  #listed: Map<string, number> = new Map();

  /** The router registry passes through, so a router on a thread reports its revisions too. */
  readonly reportRouter?: RouteTableSource["reportRouter"];
  readonly removeRouter?: RouteTableSource["removeRouter"];

  constructor(inner: RouteTableSource) {
    this.#inner = inner;
    if (inner.reportRouter) this.reportRouter = inner.reportRouter.bind(inner);
    if (inner.removeRouter) this.removeRouter = inner.removeRouter.bind(inner);
  }

  routeTablesFingerprint(): Promise<string> {
    return this.#inner.routeTablesFingerprint();
  }

  async listRouteTables(): Promise<RouteTable[]> {
    const tables = await this.#inner.listRouteTables();
    this.#listed = new Map(tables.map((t) => [t.service, t.revision]));
    return tables;
  }

  onChange(listener: Parameters<RouteTableSource["onChange"]>[0]): () => void {
    return this.#inner.onChange(listener);
  }

  /** Service -> revision of the last read (read it on an `ok` reload). */
  get listed(): ReadonlyMap<string, number> {
    return this.#listed;
  }
}

/**
 * A router in the caller's thread behind the same handle: API work and the router then share
 * one event loop (what DESIGN invariant 8 warns about), so `turnout up` uses it only when the
 * router must read a clock object it cannot share with a thread.
 */
export class LocalRouterHandle implements RouterHandle {
  readonly #router: Router;
  readonly #collect: () => Promise<MetricFamily[]>;
  readonly #applied = new AppliedRevisions();
  readonly #off: () => void;

  /** `source` must be the `TrackedSource` the router was built with. */
  constructor(router: Router, source: TrackedSource, collect: () => Promise<MetricFamily[]>) {
    this.#router = router;
    this.#collect = collect;
    this.#off = router.onReload((e) => {
      if (e.ok) this.#applied.set(new Map(source.listed));
    });
  }

  start(): Promise<void> {
    return this.#router.start();
  }

  async stop(): Promise<void> {
    this.#off();
    this.#applied.cancelAll();
    await this.#router.stop();
  }

  async stats(service: string): Promise<VersionStats[]> {
    return this.#router.stats(service);
  }

  async listeners(): Promise<ListenerInfo[]> {
    return this.#router.listeners();
  }

  async mirrorStats(service: string): Promise<MirrorStats | null> {
    return this.#router.mirrorStats(service);
  }

  async endpoints(service: string): Promise<EndpointInfo[]> {
    return this.#router.endpoints(service);
  }

  metrics(): Promise<MetricFamily[]> {
    return this.#collect();
  }

  /** The router reads the caller's own snapshot: nothing to wait for. */
  async flagsInForce(): Promise<void> {}

  inForce(service: string, revision: number, timeoutMs?: number): Promise<boolean> {
    return this.#applied.wait(service, revision, timeoutMs);
  }

  onReload(listener: (e: ReloadEvent) => void): () => void {
    return this.#router.onReload(listener);
  }
}

/**
 * The built-in router with everything it writes to: measurements, A/B exposures and shadow
 * comparisons go to the store it is given, flags are evaluated at the edge from `flags`, and its
 * /metrics families live in a registry of its own. The router thread builds one on its own store
 * connection (`entry.ts`); `turnout up` with an injected clock builds one in its own thread.
 */
import { Registry } from "prom-client";
import { type MetricFamily, registerRouterMetrics } from "../../api/metrics.js";
import { trafficKindOf } from "../../core/traffic.js";
import { ExperimentStore } from "../../store/experiment-store.js";
import { ShadowStore } from "../../store/shadow-store.js";
import type { SqlStore } from "../../store/sql-store.js";
import { withBufferMetrics } from "../buffer-metrics.js";
import { type EdgeFlagSource, EdgeFlags } from "../flags-edge.js";
import { withMirrorMetrics } from "../mirror-metrics.js";
import { Router, type RouterLogger, type RouteTableSource } from "../router.js";
import { TrackedSource } from "./handle.js";

/** `source` with only the tables the built-in router carries (`trafficKindOf` is "builtin"). */
export function builtinTablesOf(source: RouteTableSource): RouteTableSource {
  return {
    routeTablesFingerprint: () => source.routeTablesFingerprint(),
    listRouteTables: async () =>
      (await source.listRouteTables()).filter((t) => trafficKindOf(t.traffic) === "builtin"),
    onChange: (listener) => source.onChange(listener),
    ...(source.reportRouter ? { reportRouter: source.reportRouter.bind(source) } : {}),
    ...(source.removeRouter ? { removeRouter: source.removeRouter.bind(source) } : {}),
  };
}

export interface RouterNodeOptions {
  store: SqlStore;
  /** Where route tables are read and watched; default `store`. */
  source?: RouteTableSource;
  flags: EdgeFlagSource;
  logger: RouterLogger;
  pollIntervalMs: number;
  /** The clock measurements are stamped with, when it is not the system's. */
  now?: () => number;
  /** How often completed seconds are written to the store. Default 1000 ms. */
  flushIntervalMs?: number;
  /**
   * Bind every listener on this address instead of the host its table names
   * (`--router-address`), so that several routers can serve the same ports on one machine.
   */
  listenAddress?: string;
}

/** `source` whose tables listen on `address` (the port stays the table's). */
export function listeningOn(source: RouteTableSource, address: string): RouteTableSource {
  return {
    ...source,
    routeTablesFingerprint: () => source.routeTablesFingerprint(),
    listRouteTables: async () =>
      (await source.listRouteTables()).map((t) => ({
        ...t,
        listen: { ...t.listen, host: address },
      })),
    onChange: (listener) => source.onChange(listener),
  };
}

export interface RouterNode {
  router: Router;
  source: TrackedSource;
  /** The router's /metrics families, read now. */
  collect(): Promise<MetricFamily[]>;
}

export function buildRouterNode(opts: RouterNodeOptions): RouterNode {
  const { store } = opts;
  // The built-in router serves the tables no other provider carries (`spec.traffic`); the
  // others go to their providers (src/traffic/agent.ts).
  const tables = builtinTablesOf(opts.source ?? store);
  const source = new TrackedSource(
    opts.listenAddress !== undefined ? listeningOn(tables, opts.listenAddress) : tables,
  );
  const router = new Router({
    source,
    exposures: new ExperimentStore(store),
    edgeFlags: new EdgeFlags(opts.flags),
    shadowSink: new ShadowStore(store),
    logger: opts.logger,
    pollIntervalMs: opts.pollIntervalMs,
    measurements: {
      sink: store,
      ...(opts.now !== undefined ? { now: opts.now } : {}),
      ...(opts.flushIntervalMs !== undefined ? { flushIntervalMs: opts.flushIntervalMs } : {}),
    },
  });
  const registry = new Registry();
  registerRouterMetrics(registry, router.measurements);
  withMirrorMetrics(registry, router.mirrors);
  withBufferMetrics(registry, router);
  return { router, source, collect: () => registry.getMetricsAsJSON() };
}

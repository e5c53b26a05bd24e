/**
 * What the router holds for the store, in Prometheus text (`/metrics`): rows waiting to be
 * written while the store is unreachable, rows dropped because a bound was reached (cumulative
 * since the router started), per kind, and whether the router can reach the store at all. The
 * same numbers go with every heartbeat to the router registry (`turnout get routers`). HAProxy's
 * data plane (src/traffic/haproxy/measurements.ts) is a source too; `/metrics` adds its rows to
 * the router's.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { RouterBuffers } from "../store/store.js";

/** The families, in the order `/metrics` prints them (after the process metrics). */
export const BUFFER_METRIC_NAMES = [
  "turnout_router_store_reachable",
  "turnout_router_buffered_rows",
  "turnout_router_dropped_rows_total",
] as const;

/** What the families read at scrape time (a `Router` fits). */
export interface BufferSource {
  buffers(): RouterBuffers;
  readonly storeReachable: boolean;
}

/** Adds the buffer families to `registry` and returns it. */
export function withBufferMetrics(registry: Registry, router: BufferSource): Registry {
  new Gauge({
    name: "turnout_router_store_reachable",
    help: "1 while the router can read and write the store, 0 during an outage (it then serves its last route tables and buffers what it writes).",
    // Where several data planes share a process (the router, HAProxy's intake), any one cut
    // off is an outage: merged families take the lowest (src/api/metrics.ts).
    aggregator: "min",
    registers: [registry],
    collect() {
      this.set(router.storeReachable ? 1 : 0);
    },
  });
  new Gauge({
    name: "turnout_router_buffered_rows",
    help: "Rows the router holds in memory because the store did not take them yet, by kind (measurements, exposures, events, shadow).",
    labelNames: ["kind"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, b] of Object.entries(router.buffers())) this.set({ kind }, b.buffered);
    },
  });
  new Counter({
    name: "turnout_router_dropped_rows_total",
    help: "Rows the router dropped because the store was down for longer than its buffer holds (measurements: seconds of a series older than the window; the others: beyond their row bound), by kind.",
    labelNames: ["kind"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, b] of Object.entries(router.buffers())) this.inc({ kind }, b.dropped);
    },
  });
  return registry;
}

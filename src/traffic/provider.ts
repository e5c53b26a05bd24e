/**
 * A data plane, as the rest of Turnout sees it (Argo Rollouts' `TrafficRoutingReconciler`,
 * reduced to what a route table needs): put tables in force, say what is in force, declare
 * which route-table features it carries. One folder per implementation (`builtin/`,
 * `haproxy/`), one shared conformance suite (`conformance.ts`) that every provider passes,
 * with skips declared as data.
 *
 * Who calls it: the router role watches the store's route tables (DESIGN invariant 6), hands
 * each provider the tables of the services it carries (`spec.traffic`, copied into the table
 * as `RouteTable.traffic`), and reports the revisions in force to the router registry, which
 * the controller's stop gate waits for (invariant 9). A provider never reads the store itself
 * on the request path (invariant 8).
 *
 * A provider that writes to the store itself (HAProxy's measurements and exposures) holds what
 * it cannot write during an outage as the built-in router does, and says so through `buffers`
 * and `storeUse` (src/router/outage.ts), so that the router role reports it and tells one outage
 * once.
 */
import type { RouteTable } from "../core/model.js";
import type { RouteFeature, TrafficProviderKind } from "../core/traffic.js";
import type { StoreUseReporter } from "../router/outage.js";
import type { RouterBuffers } from "../store/store.js";

/** The outcome of putting one service's table in force. */
export type TableOutcome =
  | { service: string; revision: number; ok: true }
  /** The table was refused; the service keeps serving the table it had (or none). */
  | { service: string; revision: number; ok: false; error: Error };

export interface TrafficProvider {
  readonly kind: TrafficProviderKind;
  /** The route-table features this provider can put in force (`core/traffic.ts`). */
  readonly features: ReadonlySet<RouteFeature>;
  start(): Promise<void>;
  /** Stops serving and releases everything it started (listeners, processes): nothing left running. */
  stop(): Promise<void>;
  /**
   * Makes `tables` the complete set this provider serves: new services start, changed tables
   * are swapped without dropping a request, services absent from `tables` stop. Resolves once
   * every outcome is known; a table is `ok` only when it is in force. A table that uses a
   * feature outside `features` is refused with TURNOUT_ERR_TRAFFIC_UNSUPPORTED, naming both.
   */
  apply(tables: readonly RouteTable[]): Promise<TableOutcome[]>;
  /** The revision in force per service (what the router registry reports). */
  inForce(): ReadonlyMap<string, number>;
  /**
   * Tables that were in force and are not any more, found between applies (an attached
   * HAProxy whose runtime API stopped answering), each with why; taken once. The router role
   * reports them as not served and applies them again until they are. Absent: nothing is lost
   * between applies.
   */
  lost?(): TableOutcome[];
  /**
   * Rows held for the store per kind and rows dropped since start, sent with every registry
   * heartbeat (`turnout get routers`). Absent when the provider writes nothing to the store.
   */
  buffers?(): RouterBuffers;
  /**
   * The provider's store outage account: the router role tells it how reading route tables and
   * reporting to the registry went, so an outage is told once, with the provider's counts.
   * Absent: the router role keeps its own.
   */
  readonly storeUse?: StoreUseReporter;
}

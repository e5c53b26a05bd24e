/**
 * A store outage as the router lives it, told once. The router uses the store for five things:
 * reading route tables, reporting to the registry, and writing measurements, exposures (with
 * header events) and shadow reports. None of them is on a request's path (DESIGN invariants 4
 * and 8): while they fail the router serves its last tables and keeps what it would write in
 * bounded buffers (stats.ts, exposures.ts, mirror.ts), which count what they have to drop.
 *
 * 1. An outage begins when a use fails while none was failing: one warning, naming it.
 * 2. Further failures are not logged (a flusher fails every second of an outage).
 * 3. It ends when every use that failed has succeeded again; for the writers that means the
 *    rows they held are written. One info line then says how long it lasted, how many held rows
 *    went out, and how many were dropped during it, per kind (`RouterBuffers`).
 * 4. Stopping with rows still held (their last write failed): one warning says what is lost.
 *
 * The same account serves HAProxy as a data plane (src/traffic/haproxy/measurements.ts): its
 * measurements and exposures are held, counted and told the same way, and the router role that
 * drives it (src/traffic/agent.ts) reports its route-table reads and registry heartbeats here.
 */
import type { RouterBufferKind, RouterBuffers } from "../store/store.js";

/** What the router uses the store for. */
export type StoreUse = "routeTables" | "registry" | "measurements" | "exposures" | "shadow";

/** How the parts that use the store tell the router how it went. */
export interface StoreUseReporter {
  failed(use: StoreUse, err: unknown): void;
  /** `written`: rows of each kind that went out with this success (writers only). */
  succeeded(use: StoreUse, written?: Partial<Record<RouterBufferKind, number>>): void;
}

const WHAT: Record<StoreUse, string> = {
  routeTables: "cannot read route tables",
  registry: "cannot report to the router registry",
  measurements: "cannot write measurements",
  exposures: "cannot write exposures",
  shadow: "cannot write shadow reports",
};

const KINDS: readonly RouterBufferKind[] = ["measurements", "exposures", "events", "shadow"];

type PerKind = Record<RouterBufferKind, number>;

const zero = (): PerKind => ({ measurements: 0, exposures: 0, events: 0, shadow: 0 });

type Held = { buffered: number; dropped: number };

/**
 * A router's buffers from its writers' own counts: the measurement flusher, the exposure log
 * (exposures and events) and, where there is one, the shadow reports (none: nothing held).
 */
export function writerBuffers(writers: {
  measurements: { buffers(): Held };
  exposures: { buffers(): { exposures: Held; events: Held } };
  shadow?: { buffers(): Held };
}): RouterBuffers {
  const x = writers.exposures.buffers();
  return {
    measurements: writers.measurements.buffers(),
    exposures: x.exposures,
    events: x.events,
    shadow: writers.shadow?.buffers() ?? { buffered: 0, dropped: 0 },
  };
}

/** Buffers of a router that holds nothing. */
function noBuffers(): RouterBuffers {
  const none = { buffered: 0, dropped: 0 };
  return {
    measurements: { ...none },
    exposures: { ...none },
    events: { ...none },
    shadow: { ...none },
  };
}

function pick(b: RouterBuffers, field: "buffered" | "dropped"): PerKind {
  const out = zero();
  for (const k of KINDS) out[k] = b[k][field];
  return out;
}

/** Where the account is told (a `RouterLogger` fits). */
export interface StoreOutageLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface StoreOutageOptions {
  logger: StoreOutageLogger;
  /**
   * Which data plane's account it is, first in each line: "router" (the default) or a traffic
   * provider's kind ("haproxy"), since one process may run both, each with its own account.
   */
  name?: string;
  /** Epoch ms (the router's wall clock). */
  now: () => number;
  /** The router's buffers now; without it (a router role that writes nothing), nothing is held. */
  buffers?: () => RouterBuffers;
}

/** The router's account of store outages; see the module comment. */
export class StoreOutage implements StoreUseReporter {
  readonly #opts: StoreOutageOptions;
  readonly #buffers: () => RouterBuffers;
  readonly #name: string;
  readonly #failing = new Set<StoreUse>();
  #since: number | null = null;
  #droppedBefore: PerKind = zero();
  #written: PerKind = zero();

  constructor(opts: StoreOutageOptions) {
    this.#opts = opts;
    this.#buffers = opts.buffers ?? noBuffers;
    this.#name = opts.name ?? "router";
  }

  /** Epoch ms the outage in progress began, or null when the store is reachable. */
  get since(): number | null {
    return this.#since;
  }

  failed(use: StoreUse, err: unknown): void {
    this.#failing.add(use);
    if (this.#since !== null) return;
    this.#since = this.#opts.now();
    this.#droppedBefore = pick(this.#buffers(), "dropped");
    this.#written = zero();
    this.#opts.logger.warn(
      { err, use },
      `${this.#name}: ${WHAT[use]}: the store is unreachable; serving the last known route tables, and keeping measurements, exposures and shadow reports in memory (bounded, drops counted) until it is back`,
    );
  }

  succeeded(use: StoreUse, written?: Partial<Record<RouterBufferKind, number>>): void {
    if (this.#since === null) return;
    for (const k of KINDS) this.#written[k] += written?.[k] ?? 0;
    if (!this.#failing.delete(use) || this.#failing.size > 0) return;
    const now = this.#buffers();
    const droppedNow = pick(now, "dropped");
    const dropped = zero();
    for (const k of KINDS) dropped[k] = droppedNow[k] - this.#droppedBefore[k];
    const outageMs = this.#opts.now() - this.#since;
    this.#since = null;
    this.#opts.logger.info(
      { outageMs, written: this.#written, dropped, buffered: pick(now, "buffered") },
      `${this.#name}: the store is reachable again after ${(outageMs / 1000).toFixed(1)} s; the rows held meanwhile are written (counts by kind: written, dropped)`,
    );
  }

  /** Step 4: called at stop, after the last writes; the rows still held go with the process. */
  stopped(): void {
    const held = Object.entries(this.#buffers()).filter(([, b]) => b.buffered > 0);
    if (held.length === 0) return;
    this.#opts.logger.warn(
      { lost: Object.fromEntries(held.map(([k, b]) => [k, b.buffered])) },
      `${this.#name}: stopping while the store is unreachable; the rows it could not take are lost`,
    );
  }
}

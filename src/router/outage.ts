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
 */
import type { RouterBufferKind, RouterBuffers } from "../store/store.js";
import type { RouterLogger } from "./types.js";

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

function pick(b: RouterBuffers, field: "buffered" | "dropped"): PerKind {
  const out = zero();
  for (const k of KINDS) out[k] = b[k][field];
  return out;
}

export interface StoreOutageOptions {
  logger: RouterLogger;
  /** Epoch ms (the router's wall clock). */
  now: () => number;
  /** The router's buffers now. */
  buffers: () => RouterBuffers;
}

/** The router's account of store outages; see the module comment. */
export class StoreOutage implements StoreUseReporter {
  readonly #opts: StoreOutageOptions;
  readonly #failing = new Set<StoreUse>();
  #since: number | null = null;
  #droppedBefore: PerKind = zero();
  #written: PerKind = zero();

  constructor(opts: StoreOutageOptions) {
    this.#opts = opts;
  }

  /** Epoch ms the outage in progress began, or null when the store is reachable. */
  get since(): number | null {
    return this.#since;
  }

  failed(use: StoreUse, err: unknown): void {
    this.#failing.add(use);
    if (this.#since !== null) return;
    this.#since = this.#opts.now();
    this.#droppedBefore = pick(this.#opts.buffers(), "dropped");
    this.#written = zero();
    this.#opts.logger.warn(
      { err, use },
      `router: ${WHAT[use]}: the store is unreachable; serving the last known route tables, and keeping measurements, exposures and shadow reports in memory (bounded, drops counted) until it is back`,
    );
  }

  succeeded(use: StoreUse, written?: Partial<Record<RouterBufferKind, number>>): void {
    if (this.#since === null) return;
    for (const k of KINDS) this.#written[k] += written?.[k] ?? 0;
    if (!this.#failing.delete(use) || this.#failing.size > 0) return;
    const now = this.#opts.buffers();
    const droppedNow = pick(now, "dropped");
    const dropped = zero();
    for (const k of KINDS) dropped[k] = droppedNow[k] - this.#droppedBefore[k];
    const outageMs = this.#opts.now() - this.#since;
    this.#since = null;
    this.#opts.logger.info(
      { outageMs, written: this.#written, dropped, buffered: pick(now, "buffered") },
      `router: the store is reachable again after ${(outageMs / 1000).toFixed(1)} s; the rows held meanwhile are written (counts by kind: written, dropped)`,
    );
  }
}

/**
 * Test helpers for the router: an in-memory route table source. Tests of the real store go
 * through the end-to-end suite; this one lets router tests control exactly when a change is
 * announced (`onChange`), only visible to polling, or when the source fails. Also: a logger
 * that keeps its lines, and the store outage both data planes are checked against.
 */
import type { RouteTable } from "../core/model.js";
import type { RouteTableSource } from "./router.js";
import type { RouterLogger } from "./types.js";

/**
 * The store outage longer than the buffers hold that the built-in router
 * (src/router/outage.test.ts) and HAProxy's intake (src/traffic/haproxy/measurements.test.ts)
 * go through, by an injected clock from `t0`: a `windowSeconds` measurement window and room for
 * `maxRows` exposures (and events), then `seconds` of traffic with `perSecond` new units a
 * second while the store is down. The first `seconds - windowSeconds` seconds and all but
 * `maxRows` units must be dropped and counted.
 */
export const OUTAGE_SCENARIO = {
  t0: 1_800_000_000_000,
  windowSeconds: 5,
  maxRows: 10,
  seconds: 12,
  perSecond: 2,
} as const;

/** A log line as `captureLog` keeps it. */
export interface LogLine {
  level: "debug" | "info" | "warn" | "error";
  obj: Record<string, unknown>;
  msg: string;
}

/** A logger that keeps every line in `lines` (pino's call shapes: `(obj, msg)` or `(msg)`). */
export function captureLog(lines: LogLine[]): RouterLogger {
  const at =
    (level: LogLine["level"]) =>
    (a: unknown, b?: unknown): void => {
      const [obj, msg] =
        typeof a === "string" ? [{}, a] : [(a ?? {}) as Record<string, unknown>, String(b ?? "")];
      lines.push({ level, obj, msg });
    };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") } as never;
}

type ChangeKind = "resources" | "commands" | "routeTables" | "status";

export class MemoryRouteTableSource implements RouteTableSource {
  readonly #tables = new Map<string, RouteTable>();
  readonly #listeners = new Set<(what: ChangeKind) => void>();
  #version = 0;
  /** When set, every read rejects with this error (a store outage). */
  failWith: Error | null = null;
  /** Number of `listRouteTables` calls, to see that the router reloaded (or did not). */
  reads = 0;

  /**
   * Puts (or replaces) a table. `notify: false` makes the change visible only through the
   * fingerprint, as a write by another process would be. The revision is bumped when omitted.
   */
  set(
    table: Omit<RouteTable, "revision" | "updatedAt" | "hashVersion"> & Partial<RouteTable>,
    opts: { notify?: boolean } = {},
  ): RouteTable {
    const prev = this.#tables.get(table.service);
    const full: RouteTable = {
      hashVersion: 1,
      updatedAt: 0,
      ...table,
      revision: table.revision ?? (prev?.revision ?? 0) + 1,
    };
    this.#tables.set(full.service, full);
    this.#changed(opts.notify ?? true);
    return full;
  }

  delete(service: string, opts: { notify?: boolean } = {}): void {
    this.#tables.delete(service);
    this.#changed(opts.notify ?? true);
  }

  async listRouteTables(): Promise<RouteTable[]> {
    this.reads++;
    if (this.failWith) throw this.failWith;
    // Copies, as a store would return: the router must not depend on object identity.
    return structuredClone([...this.#tables.values()]);
  }

  async routeTablesFingerprint(): Promise<string> {
    if (this.failWith) throw this.failWith;
    return String(this.#version);
  }

  onChange(listener: (what: ChangeKind) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(notify: boolean): void {
    this.#version++;
    if (!notify) return;
    for (const l of this.#listeners) l("routeTables");
  }
}

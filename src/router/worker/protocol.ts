/**
 * Messages between `turnout up`'s main thread and its router thread. Everything is plain data
 * (structured clone); errors travel as `{ message, code }`.
 */
import type { FlagDefinition } from "../../core/flags/evaluate.js";
import type { SegmentSpec } from "../../core/flags/types.js";
import type { StoreChange } from "../../store/store.js";

/** `workerData` of the router thread. */
export interface RouterThreadConfig {
  /** The SQLite file; the thread opens its own connection to it (WAL lets them share). */
  dbPath: string;
  /**
   * A PostgreSQL URL (`--store`): the thread opens its own PostgreSQL store instead of `dbPath`,
   * and hears other processes' route tables through its own LISTEN.
   */
  storeUrl?: string;
  /** `--router-address`: every listener binds this address instead of its table's host. */
  listenAddress?: string;
  pollIntervalMs: number;
  /** Lowest pino level value forwarded to the main thread's logger (info = 30). */
  logLevel: number;
  /** The main thread's flag snapshot at start; later ones arrive as `flags` messages. */
  flags: FlagsMessage;
}

/** The effective flag definitions the main thread serves (OFREP, API) to evaluate at the edge. */
export interface FlagsMessage {
  type: "flags";
  etag: string;
  definitions: FlagDefinition[];
  segments: Record<string, SegmentSpec>;
}

export type CallMethod =
  | "stats"
  | "listeners"
  | "mirrorStats"
  | "endpoints"
  | "metrics"
  | "ping"
  | "stop";

export type ToRouterThread =
  /** A write in the main thread changed the store (the thread reloads on `routeTables`). */
  | { type: "changed"; what: StoreChange }
  | FlagsMessage
  | { type: "call"; id: number; method: CallMethod; args: string[] };

export interface WireError {
  message: string;
  code?: string;
}

export type FromRouterThread =
  | { type: "ready" }
  | { type: "failed"; error: WireError }
  | {
      type: "reload";
      ok: boolean;
      changed: string[];
      error?: WireError;
      /** After an `ok` reload: service -> revision of every table in force. */
      revisions?: [string, number][];
    }
  | { type: "log"; level: LogLevel; obj: Record<string, unknown>; msg: string }
  | { type: "result"; id: number; ok: true; value: unknown }
  | { type: "result"; id: number; ok: false; error: WireError };

export type LogLevel = "debug" | "info" | "warn" | "error";

/** pino's level values. */
export const LEVEL_VALUES: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50 };

export function toWireError(err: unknown): WireError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { message: err.message, ...(typeof code === "string" ? { code } : {}) };
  }
  return { message: String(err) };
}

/**
 * A log record's fields made cloneable: errors become pino's `{ type, message, stack, code }`,
 * anything else that cannot be cloned becomes its string form.
 */
export function cloneableFields(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v instanceof Error) {
      const code = (v as { code?: unknown }).code;
      out[k] = {
        type: v.name,
        message: v.message,
        stack: v.stack,
        ...(code !== undefined ? { code: String(code) } : {}),
      };
    } else if (typeof v === "function" || typeof v === "symbol") {
      out[k] = String(v);
    } else out[k] = v;
  }
  return out;
}

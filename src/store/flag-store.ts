/**
 * The feature flags' store: what people change on top of Flag resources (the kill switch,
 * `turnout flags set`), its history, and the snapshot every evaluator works from.
 *
 * Where each part of a flag lives (the store stays the one source of truth):
 * - the definition: the `Flag` resource (and `Segment`s), applied like any resource, versioned
 *   in `resource_revisions`;
 * - a person's override (`flags enable|disable|set`): `flag_overrides`, one row per flag, and
 *   one `flag_history` row per change, with who and why;
 * - a rollout's override (setFlag steps, and the kill after a rollback): the service's status
 *   (`status.flags`), written by the controller only.
 *
 * The effective flag is the resource with the overrides laid over it, oldest first (so the
 * latest change of a field wins), except that a person's DISABLED always wins: a rollout never
 * turns back on a flag a person killed. `FlagSnapshotCache` keeps the compiled result for the
 * OFREP server and the router, reloading on every write in this process (at once) and by
 * polling (other processes).
 */
import type { FlagDefinition, FlagSet } from "../core/flags/evaluate.js";
import type { FlagOverride, SegmentSpec } from "../core/flags/types.js";
import { SqlFlagStore } from "./sql-flag-store.js";
import type { Store } from "./store.js";

export {
  EMPTY_FLAG_SNAPSHOT,
  FlagSnapshotCache,
  layer,
  loadFlagSnapshot,
} from "./flag-snapshot.js";

/** A person's override of one flag. */
export interface StoredFlagOverride {
  flag: string;
  override: FlagOverride;
  actor: string;
  reason: string | null;
  updatedAt: number;
}

/** One entry of a flag's history, oldest first. */
export interface FlagHistoryEntry {
  time: number;
  actor: string;
  /**
   * "applied" (a new generation of the resource), "enable", "disable", "set", "reset", "rollout",
   * "deleted" (the resource deleted, with the overrides removed with it).
   */
  action: string;
  message: string;
  data: Record<string, unknown>;
}

/** What every evaluator works from: the effective flags, compiled, and their ETag. */
export interface FlagSnapshot {
  /** Strong validator of the effective definitions: changes whenever any evaluation could. */
  etag: string;
  flags: FlagSet;
  /** The effective definitions (resource + overrides), by key order: for sync and listing. */
  definitions: FlagDefinition[];
  segments: Record<string, SegmentSpec>;
}

/** The flag store's contract: people's overrides and their history. */
export interface FlagStore {
  /** The core store the flags are in (their resources, the services' statuses). */
  readonly store: Store;
  /** Every override, by flag name. */
  listOverrides(): Promise<StoredFlagOverride[]>;
  getOverride(flag: string): Promise<StoredFlagOverride | null>;
  /**
   * Merges `patch` into the flag's override (`null` removes it: the resource and rollouts
   * decide again) and appends a history entry, in one transaction. Tells this process's
   * listeners that resources changed, so that snapshots reload at once.
   */
  changeOverride(
    flag: string,
    patch: FlagOverride | null,
    opts: { actor: string; reason?: string; now: number; action: string; message: string },
  ): Promise<StoredFlagOverride | null>;
  /**
   * The flag's history, oldest first, the last `limit` entries (default 200): every generation
   * of its resource, every change a person made, and what rollouts did to it (the services'
   * FlagChanged events and the kills after a rollback in their statuses).
   */
  history(flag: string, limit?: number): Promise<FlagHistoryEntry[]>;
  /** The effective flags, compiled (`loadFlagSnapshot` over this store and its core store). */
  loadSnapshot(): Promise<FlagSnapshot>;
}

/**
 * The SQL implementation under the name it had before the interface existed, so that
 * `new FlagStore(sqlStore)` keeps working; new code says `SqlFlagStore` or gets it from
 * `sqlFeatureStores`.
 */
export const FlagStore = SqlFlagStore;

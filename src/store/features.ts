/**
 * The feature stores beside the core `Store`, over the same database: one object per
 * implementation, so that a second store implementation is one folder that opens the core
 * store and its feature stores, and passes the one conformance suite (`store.conformance.ts`
 * takes a factory that returns both).
 */
import type { ExperimentStore } from "./experiment-store.js";
import type { FlagStore } from "./flag-store.js";
import type { ShadowStore } from "./shadow-store.js";
import { SqlExperimentStore } from "./sql-experiment-store.js";
import { SqlFlagStore } from "./sql-flag-store.js";
import { SqlShadowStore, type SqlShadowStoreOptions } from "./sql-shadow-store.js";
import type { SqlStore } from "./sql-store.js";

/**
 * Experiments, exposures and outcome events; flag overrides and their history (flags and
 * segments themselves are core resources); shadow reports.
 */
export interface FeatureStores {
  experiments: ExperimentStore;
  flags: FlagStore;
  shadow: ShadowStore;
}

/**
 * The feature stores of a SQL store (SQLite or PostgreSQL: the SQL is written once, over
 * kysely). They share the core store's connection, transactions and change notifications.
 *
 * @example const { experiments, flags, shadow } = sqlFeatureStores(await openSqliteStore(o));
 */
export function sqlFeatureStores(
  store: SqlStore,
  opts: { shadow?: SqlShadowStoreOptions } = {},
): FeatureStores {
  return {
    experiments: new SqlExperimentStore(store),
    flags: new SqlFlagStore(store),
    shadow: new SqlShadowStore(store, opts.shadow),
  };
}

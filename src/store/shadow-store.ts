/**
 * The shadow store: routers' aggregates of mirror phases, merged into one report per phase for
 * the controller's shadow step, the API and `turnout status`. This file is the contract
 * (`ShadowStore`); `sql-shadow-store.ts` implements it over any SQL store, and every
 * implementation passes `shadow-store.conformance.ts`, part of the store conformance suite.
 */

import type { ShadowAggregateRow, ShadowAggregateSink } from "../core/measurements.js";
import type { ShadowReport } from "../core/shadow/aggregate.js";
import { SqlShadowStore } from "./sql-shadow-store.js";

/** A phase's report merged over every router that mirrored it. */
export interface StoredShadowReport {
  /** The phase (`ShadowStatus.id`). */
  id: string;
  version: string;
  /** Routers whose numbers are in it. */
  routers: number;
  /** Latest flush (clock ms). */
  updatedAt: number;
  report: ShadowReport;
}

/**
 * One point of a phase's history: the report merged over every router as it stood after one
 * flush of routers' aggregates.
 */
export interface ShadowHistoryPoint {
  /** The flush's clock ms (the latest `updatedAt` of the rows it wrote for the phase). */
  at: number;
  version: string;
  /** Routers whose numbers are in it. */
  routers: number;
  /** Pairs compared. */
  samples: number;
  mismatches: number;
  mismatchRate: number | null;
  agreement: number | null;
}

export interface ShadowHistoryQuery {
  /** Only points after this clock ms (exclusive). */
  since?: number;
  /** At most this many points: the newest ones. */
  limit?: number;
}

export interface ShadowStore extends ShadowAggregateSink {
  /**
   * Upserts routers' cumulative aggregates (one row per service, phase and router: a later
   * flush of a router replaces its row), and appends one history point per phase in `rows`
   * (the merged report after the write), in one transaction.
   */
  saveShadowAggregates(rows: ShadowAggregateRow[]): Promise<void>;
  /**
   * The merged report of a phase, or of the service's latest phase when `phase` is omitted;
   * null when no router has flushed one.
   */
  report(service: string, phase?: string): Promise<StoredShadowReport | null>;
  /**
   * A phase's history, oldest first. At most `historyPoints` are kept per phase: past that,
   * every other point is dropped (the first and the newest stay), so the history always spans
   * the whole phase and the recent past has the finest grain.
   */
  history(
    service: string,
    phase: string,
    query?: ShadowHistoryQuery,
  ): Promise<ShadowHistoryPoint[]>;
  /** The most points kept per phase (see `history`). */
  readonly historyPoints: number;
  /** The phases a service has reports for, latest first. */
  phases(service: string): Promise<{ id: string; version: string; updatedAt: number }[]>;
}

/**
 * The SQL implementation under the name it had before the interface existed, so that
 * `new ShadowStore(sqlStore)` keeps working; new code says `SqlShadowStore` or gets it from
 * `sqlFeatureStores`.
 */
export const ShadowStore = SqlShadowStore;

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

export interface ShadowStore extends ShadowAggregateSink {
  /**
   * Upserts routers' cumulative aggregates (one row per service, phase and router: a later
   * flush of a router replaces its row), in one transaction.
   */
  saveShadowAggregates(rows: ShadowAggregateRow[]): Promise<void>;
  /**
   * The merged report of a phase, or of the service's latest phase when `phase` is omitted;
   * null when no router has flushed one.
   */
  report(service: string, phase?: string): Promise<StoredShadowReport | null>;
  /** The phases a service has reports for, latest first. */
  phases(service: string): Promise<{ id: string; version: string; updatedAt: number }[]>;
}

/**
 * The SQL implementation under the name it had before the interface existed, so that
 * `new ShadowStore(sqlStore)` keeps working; new code says `SqlShadowStore` or gets it from
 * `sqlFeatureStores`.
 */
export const ShadowStore = SqlShadowStore;

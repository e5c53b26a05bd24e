/**
 * The experiment store: A/B experiments' declarations and state, units' first exposures and
 * outcome events. This file is the contract (`ExperimentStore`), written to by the router
 * (exposures, header events), the API (outcome events) and read by the controller and the API;
 * the experiment rows themselves are written only by the controller, inside its commit
 * (`ControllerCommit.experiments`), so a tick's decision and the experiment's state can never
 * disagree. `sql-experiment-store.ts` implements it over any SQL store (tables from migration
 * 0004, declared in `schema.ts`); every implementation passes
 * `experiment-store.conformance.ts`, part of the store conformance suite.
 *
 * Durability: `recordEvents` returns only once its write has committed, and the API replies
 * only after that, so an accepted event is never lost. Idempotency: a retried batch counts once
 * (the idempotency key is unique). Exposures: the first exposure of a unit in an experiment is
 * kept, whichever router (or retry) writes it first.
 */
import type { ExperimentData, ResolvedArm } from "../core/experiment/index.js";
import type { ExperimentSpec } from "../core/experiment/types.js";
import { SqlExperimentStore } from "./sql-experiment-store.js";

/** One outcome event, validated (see api/experiments.ts). */
export interface OutcomeEvent {
  idempotencyKey: string;
  unit: string;
  metric: string;
  value: number;
  /** Clock ms when it happened. */
  timestamp: number;
}

/** An event whose idempotency key is stored with another payload: which fields differ. */
export interface EventConflict {
  /** Index of the event in its batch. */
  index: number;
  idempotencyKey: string;
  fields: ("unit" | "metric" | "value" | "timestamp")[];
}

export interface Exposure {
  experiment: string;
  unit: string;
  arm: string;
  /** Clock ms. */
  at: number;
}

/** An experiment as stored: its declaration and what the controller last said about it. */
export interface StoredExperiment {
  name: string;
  service: string;
  spec: ExperimentSpec;
  arms: ResolvedArm[];
  /** "running", or the verdict it ended with, and the one-line summary. */
  state: { status: string; summary?: string; endedAt?: number };
  startedAt: number;
  updatedAt: number;
}

// The SQL implementation's constructor is re-exported below under the interface's name; the
// implementation imports only types from here, so loading either module first works.
export { CLOCK_SKEW_MS } from "./sql-experiment-store.js";

/** The experiment store's contract; see the module comment. */
export interface ExperimentStore {
  /**
   * Stores events; returns how many were new and how many were duplicates (already stored with
   * the same payload). A key already stored with a different payload is a conflict: then
   * nothing of the batch is stored and the conflicts are returned (the API answers 422), since
   * dropping the new event silently would lose data, and replacing the old one would count a
   * retry twice. Without `rejectConflicts` (the router's own events, whose keys it makes
   * unique), a conflicting event is skipped and counted as a duplicate. One transaction.
   */
  recordEvents(
    events: readonly OutcomeEvent[],
    receivedAt: number,
    opts?: { rejectConflicts?: boolean },
  ): Promise<{ accepted: number; duplicates: number } | { conflicts: EventConflict[] }>;
  /** Stores first exposures; a unit already exposed in the experiment keeps its first row. */
  recordExposures(exposures: readonly Exposure[]): Promise<void>;
  /** Every experiment, latest started first. */
  listExperiments(): Promise<StoredExperiment[]>;
  getExperiment(name: string): Promise<StoredExperiment | null>;
  /**
   * Everything the analysis needs, aggregated, as of `now` (exposures and events with later
   * timestamps are left out, so an ended experiment reads as it was when it was decided): units
   * per arm, and per metric and arm the per-unit sums (events after the unit's first exposure,
   * `CLOCK_SKEW_MS` allowed) or, for builtin metrics, the router's measurements of the arm's
   * version since the start. Reads only.
   */
  data(
    e: Pick<StoredExperiment, "name" | "service" | "spec" | "arms" | "startedAt">,
    now: number,
  ): Promise<ExperimentData>;
}

/**
 * The SQL implementation under the name it had before the interface existed, so that
 * `new ExperimentStore(sqlStore)` keeps working; new code says `SqlExperimentStore` or gets it
 * from `sqlFeatureStores`.
 */
export const ExperimentStore = SqlExperimentStore;

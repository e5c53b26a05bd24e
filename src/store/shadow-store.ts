/**
 * The shadow store: routers' aggregates of mirror phases (migration 0003), merged into one
 * report per phase for the controller's shadow step, the API and `turnout status`. Uses
 * `SqlStore.transact` / `SqlStore.query`, like the other feature stores.
 */
import type { Kysely, Transaction } from "kysely";
import type { ShadowAggregateRow, ShadowAggregateSink } from "../core/measurements.js";
import {
  ShadowAggregate,
  type ShadowAggregateState,
  type ShadowReport,
} from "../core/shadow/aggregate.js";
import type { SqlStore } from "./sql-store.js";

type ShadowTables = {
  shadow_reports: {
    service: string;
    phase: string;
    router_id: string;
    version: string;
    state: string;
    updated_at: number;
  };
};

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

export class ShadowStore implements ShadowAggregateSink {
  constructor(private readonly store: Pick<SqlStore, "transact" | "query">) {}

  #write<T>(fn: (db: Transaction<ShadowTables>) => Promise<T>): Promise<T> {
    return this.store.transact((trx) => fn(trx.withTables<ShadowTables>() as never));
  }

  #read<T>(fn: (db: Kysely<ShadowTables>) => Promise<T>): Promise<T> {
    return this.store.query((db) => fn(db.withTables<ShadowTables>() as never));
  }

  /** Upserts routers' cumulative aggregates (one row per service, phase and router). */
  async saveShadowAggregates(rows: ShadowAggregateRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.#write(async (db) => {
      for (const r of rows) {
        const state = JSON.stringify(r.state);
        await db
          .insertInto("shadow_reports")
          .values({
            service: r.service,
            phase: r.id,
            router_id: r.routerId,
            version: r.version,
            state,
            updated_at: r.updatedAt,
          })
          .onConflict((oc) =>
            oc
              .columns(["service", "phase", "router_id"])
              .doUpdateSet({ state, version: r.version, updated_at: r.updatedAt }),
          )
          .execute();
      }
    });
  }

  /**
   * The merged report of a phase, or of the service's latest phase when `phase` is omitted;
   * null when no router has flushed one.
   */
  async report(service: string, phase?: string): Promise<StoredShadowReport | null> {
    const rows = await this.#read(async (db) => {
      let id = phase;
      if (id === undefined) {
        const latest = await db
          .selectFrom("shadow_reports")
          .select(["phase"])
          .where("service", "=", service)
          .orderBy("updated_at", "desc")
          .limit(1)
          .executeTakeFirst();
        if (latest === undefined) return [];
        id = latest.phase;
      }
      return db
        .selectFrom("shadow_reports")
        .selectAll()
        .where("service", "=", service)
        .where("phase", "=", id)
        .orderBy("router_id")
        .execute();
    });
    if (rows.length === 0) return null;
    const agg = new ShadowAggregate(JSON.parse(rows[0]!.state) as ShadowAggregateState);
    for (const r of rows.slice(1)) agg.merge(JSON.parse(r.state) as ShadowAggregateState);
    return {
      id: rows[0]!.phase,
      version: rows[0]!.version,
      routers: rows.length,
      updatedAt: Math.max(...rows.map((r) => Number(r.updated_at))),
      report: agg.report(),
    };
  }

  /** The phases a service has reports for, latest first. */
  async phases(service: string): Promise<{ id: string; version: string; updatedAt: number }[]> {
    const rows = await this.#read((db) =>
      db
        .selectFrom("shadow_reports")
        .select(["phase", "version", "updated_at"])
        .where("service", "=", service)
        .orderBy("updated_at", "desc")
        .execute(),
    );
    const seen = new Map<string, { id: string; version: string; updatedAt: number }>();
    for (const r of rows)
      if (!seen.has(r.phase))
        seen.set(r.phase, { id: r.phase, version: r.version, updatedAt: Number(r.updated_at) });
    return [...seen.values()];
  }
}

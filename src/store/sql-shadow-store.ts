/**
 * `ShadowStore` over the SQL store (SQLite, PostgreSQL): `shadow_reports` (migration 0003) and
 * `shadow_history` (migration 0010), declared in `schema.ts`, through `SqlStore.transact` /
 * `SqlStore.query`.
 */

import type { ShadowAggregateRow } from "../core/measurements.js";
import { ShadowAggregate } from "../core/shadow/aggregate.js";
import { mapShadowReport } from "./mappers.js";
import type {
  ShadowHistoryPoint,
  ShadowHistoryQuery,
  ShadowStore,
  StoredShadowReport,
} from "./shadow-store.js";
import type { SqlStore } from "./sql-store.js";

/**
 * Points kept per phase by default. Routers flush about once a second while a phase gets
 * traffic: the first hour is kept at full grain up to here, and thinning keeps the whole phase
 * after that (a chart a few hundred pixels wide has no use for more).
 */
export const SHADOW_HISTORY_POINTS = 720;

export interface SqlShadowStoreOptions {
  /** Points kept per phase (at least 4); default SHADOW_HISTORY_POINTS. */
  historyPoints?: number;
}

export class SqlShadowStore implements ShadowStore {
  readonly historyPoints: number;

  constructor(
    private readonly store: Pick<SqlStore, "transact" | "query">,
    opts: SqlShadowStoreOptions = {},
  ) {
    this.historyPoints = Math.max(4, Math.floor(opts.historyPoints ?? SHADOW_HISTORY_POINTS));
  }

  async saveShadowAggregates(rows: ShadowAggregateRow[]): Promise<void> {
    if (rows.length === 0) return;
    // One point per phase per flush, however many of its rows the flush holds.
    const phases = new Map<
      string,
      { service: string; phase: string; version: string; at: number }
    >();
    for (const r of rows) {
      const key = JSON.stringify([r.service, r.id]);
      const p = phases.get(key);
      if (p === undefined)
        phases.set(key, { service: r.service, phase: r.id, version: r.version, at: r.updatedAt });
      else if (r.updatedAt >= p.at) Object.assign(p, { version: r.version, at: r.updatedAt });
    }
    await this.store.transact(async (db) => {
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
      for (const p of phases.values()) {
        const merged = await db
          .selectFrom("shadow_reports")
          .selectAll()
          .where("service", "=", p.service)
          .where("phase", "=", p.phase)
          .orderBy("router_id")
          .execute();
        const report = mergeReports(merged.map(mapShadowReport));
        if (report === null) continue;
        await db
          .insertInto("shadow_history")
          .values({
            service: p.service,
            phase: p.phase,
            version: p.version,
            at: p.at,
            routers: merged.length,
            samples: report.samples,
            mismatches: report.mismatches,
            mismatch_rate: report.mismatchRate,
            agreement: report.agreement,
          })
          .execute();
        const { n } = await db
          .selectFrom("shadow_history")
          .select((eb) => eb.fn.countAll<number | string>().as("n"))
          .where("service", "=", p.service)
          .where("phase", "=", p.phase)
          .executeTakeFirstOrThrow();
        if (Number(n) <= this.historyPoints) continue;
        // Thinning: every other point goes, the first and the newest stay. Each pass halves
        // the grain of what is older than the previous pass, so the history keeps spanning
        // the whole phase in a bounded number of rows.
        const ids = await db
          .selectFrom("shadow_history")
          .select("id")
          .where("service", "=", p.service)
          .where("phase", "=", p.phase)
          .orderBy("at")
          .orderBy("id")
          .execute();
        const drop = ids.filter((_, i) => i % 2 === 1 && i < ids.length - 1).map((x) => x.id);
        if (drop.length > 0)
          await db.deleteFrom("shadow_history").where("id", "in", drop).execute();
      }
    });
  }

  async history(
    service: string,
    phase: string,
    query: ShadowHistoryQuery = {},
  ): Promise<ShadowHistoryPoint[]> {
    const rows = await this.store.query((db) => {
      let q = db
        .selectFrom("shadow_history")
        .selectAll()
        .where("service", "=", service)
        .where("phase", "=", phase);
      if (query.since !== undefined) q = q.where("at", ">", query.since);
      // Newest first, so that a limit keeps the newest; turned oldest first below.
      q = q.orderBy("at", "desc").orderBy("id", "desc");
      if (query.limit !== undefined) q = q.limit(Math.max(0, Math.floor(query.limit)));
      return q.execute();
    });
    return rows.reverse().map((r) => ({
      at: Number(r.at),
      version: r.version,
      routers: Number(r.routers),
      samples: Number(r.samples),
      mismatches: Number(r.mismatches),
      mismatchRate: r.mismatch_rate === null ? null : Number(r.mismatch_rate),
      agreement: r.agreement === null ? null : Number(r.agreement),
    }));
  }

  async report(service: string, phase?: string): Promise<StoredShadowReport | null> {
    const rows = await this.store.query(async (db) => {
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
    const mapped = rows.map(mapShadowReport);
    return {
      id: mapped[0]!.phase,
      version: mapped[0]!.version,
      routers: mapped.length,
      updatedAt: Math.max(...mapped.map((r) => r.updatedAt)),
      report: mergeReports(mapped)!,
    };
  }

  async phases(service: string): Promise<{ id: string; version: string; updatedAt: number }[]> {
    const rows = await this.store.query((db) =>
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

/** The report of a phase's router rows merged into one; null for no rows. */
function mergeReports(rows: ReturnType<typeof mapShadowReport>[]) {
  if (rows.length === 0) return null;
  const agg = new ShadowAggregate(rows[0]!.state);
  for (const r of rows.slice(1)) agg.merge(r.state);
  return agg.report();
}

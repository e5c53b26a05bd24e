/**
 * `ShadowStore` over the SQL store (SQLite, PostgreSQL): `shadow_reports` (migration 0003,
 * declared in `schema.ts`), through `SqlStore.transact` / `SqlStore.query`.
 */

import type { ShadowAggregateRow } from "../core/measurements.js";
import { ShadowAggregate } from "../core/shadow/aggregate.js";
import { mapShadowReport } from "./mappers.js";
import type { ShadowStore, StoredShadowReport } from "./shadow-store.js";
import type { SqlStore } from "./sql-store.js";

export class SqlShadowStore implements ShadowStore {
  constructor(private readonly store: Pick<SqlStore, "transact" | "query">) {}

  async saveShadowAggregates(rows: ShadowAggregateRow[]): Promise<void> {
    if (rows.length === 0) return;
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
    });
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
    const agg = new ShadowAggregate(mapped[0]!.state);
    for (const r of mapped.slice(1)) agg.merge(r.state);
    return {
      id: mapped[0]!.phase,
      version: mapped[0]!.version,
      routers: mapped.length,
      updatedAt: Math.max(...mapped.map((r) => r.updatedAt)),
      report: agg.report(),
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

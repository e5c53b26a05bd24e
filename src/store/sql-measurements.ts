/**
 * The `measurements` table of the SQL store (`SqlStore`): one row per service, second,
 * version, labels and router, written by routers, read by analysis (and by experiments,
 * `sql-experiment-store.ts`), pruned by age.
 */
import type { Kysely, Transaction } from "kysely";
import { batches } from "./batches.js";
import { mapMeasurement } from "./mappers.js";
import type { Database } from "./schema.js";
import type { MeasurementQuery, MeasurementRow } from "./store.js";

/** Measurement rows per INSERT: 15 parameters each, 7500 per statement. */
const MEASUREMENT_BATCH = 500;

/**
 * Upserts rows in the caller's transaction, in batches of MEASUREMENT_BATCH. A row with an
 * existing key replaces it (never adds to it), so writing a second again, complete after
 * partial or again after a failed commit, is idempotent.
 */
export async function writeMeasurements(
  trx: Transaction<Database>,
  rows: readonly MeasurementRow[],
): Promise<void> {
  for (const batch of batches(rows, MEASUREMENT_BATCH)) {
    await trx
      .insertInto("measurements")
      .values(
        batch.map((r) => ({
          service: r.service,
          second: r.second,
          version: r.version,
          labels: r.labels,
          router_id: r.routerId,
          requests: r.requests,
          s2xx: r.s2xx,
          s3xx: r.s3xx,
          s4xx: r.s4xx,
          s5xx: r.s5xx,
          upstream_errors: r.upstreamErrors,
          // A row made without the count (a caller that predates it) means none.
          abandoned: r.abandoned ?? 0,
          // Absent: the writer does not count starts ("not known", not "none").
          started: r.started ?? null,
          responded: r.started === undefined ? null : (r.responded ?? 0),
          // Sketch.toJSON() has a fixed key order: plain JSON is canonical enough.
          latency: JSON.stringify(r.latency),
        })),
      )
      .onConflict((oc) =>
        oc.columns(["service", "second", "version", "labels", "router_id"]).doUpdateSet({
          requests: (eb) => eb.ref("excluded.requests"),
          s2xx: (eb) => eb.ref("excluded.s2xx"),
          s3xx: (eb) => eb.ref("excluded.s3xx"),
          s4xx: (eb) => eb.ref("excluded.s4xx"),
          s5xx: (eb) => eb.ref("excluded.s5xx"),
          upstream_errors: (eb) => eb.ref("excluded.upstream_errors"),
          abandoned: (eb) => eb.ref("excluded.abandoned"),
          started: (eb) => eb.ref("excluded.started"),
          responded: (eb) => eb.ref("excluded.responded"),
          latency: (eb) => eb.ref("excluded.latency"),
        }),
      )
      .execute();
  }
}

export async function readMeasurements(
  db: Kysely<Database>,
  q: MeasurementQuery,
): Promise<MeasurementRow[]> {
  let query = db
    .selectFrom("measurements")
    .selectAll()
    .where("service", "=", q.service)
    .where("second", ">=", q.fromSec)
    .where("second", "<", q.toSec);
  if (q.version !== undefined) query = query.where("version", "=", q.version);
  const rows = await query
    .orderBy("second")
    .orderBy("version")
    .orderBy("labels")
    .orderBy("router_id")
    .execute();
  return rows.map(mapMeasurement);
}

/** Deletes rows with `second < olderThanSec`; returns how many. */
export async function pruneMeasurements(
  trx: Transaction<Database>,
  olderThanSec: number,
): Promise<number> {
  const r = await trx
    .deleteFrom("measurements")
    .where("second", "<", olderThanSec)
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}

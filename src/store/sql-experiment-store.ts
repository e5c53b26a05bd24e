/**
 * `ExperimentStore` over the SQL store (SQLite, PostgreSQL): tables from migration 0004,
 * declared in `schema.ts`, through `SqlStore.transact` and `SqlStore.query`. The aggregation
 * for the analysis is done in SQL (one query per metric), so the rows never leave the database.
 */

import type { Kysely, RawBuilder } from "kysely";
import { sql } from "kysely";
import type {
  ExperimentData,
  MetricArmData,
  MetricSource,
  ResolvedArm,
} from "../core/experiment/index.js";
import { responseHeaderMetric } from "../core/experiment/index.js";
import { errorCount } from "../core/measurements.js";
import { Sketch } from "../core/sketch.js";
import { batches } from "./batches.js";
import type {
  EventConflict,
  ExperimentStore,
  Exposure,
  OutcomeEvent,
  StoredExperiment,
} from "./experiment-store.js";
import { mapExperiment } from "./mappers.js";
import type { Database, ExperimentEventsTable } from "./schema.js";
import type { SqlStore } from "./sql-store.js";
import type { MeasurementRow } from "./store.js";

/**
 * Events whose timestamp is up to this much before the unit's first exposure still count: the
 * application's clock and the router's differ a little, and an event sent in reply to the very
 * first response must not be lost to that.
 */
export const CLOCK_SKEW_MS = 5_000;

/** Rows per INSERT (keys per IN list): at most 6 parameters each (`batches.ts`). */
const BATCH = 500;

type Db = Kysely<Database>;

export class SqlExperimentStore implements ExperimentStore {
  constructor(private readonly store: Pick<SqlStore, "transact" | "query" | "readMeasurements">) {}

  /**
   * Stores events; returns how many were new and how many were duplicates (already stored with
   * the same payload). A key already stored with a different payload is a conflict: then
   * nothing of the batch is stored and the conflicts are returned (the API answers 422), since
   * dropping the new event silently would lose data, and replacing the old one would count a
   * retry twice. Without `rejectConflicts` (the router's own events, whose keys it makes
   * unique), a conflicting event is skipped and counted as a duplicate.
   */
  async recordEvents(
    events: readonly OutcomeEvent[],
    receivedAt: number,
    opts: { rejectConflicts?: boolean } = {},
  ): Promise<{ accepted: number; duplicates: number } | { conflicts: EventConflict[] }> {
    if (events.length === 0) return { accepted: 0, duplicates: 0 };
    return this.store.transact(async (db) => {
      // Checked and inserted in one transaction: no other writer comes between the two.
      if (opts.rejectConflicts === true) {
        const conflicts = await eventConflicts(db, events);
        if (conflicts.length > 0) return { conflicts };
      }
      let inserted = 0;
      for (const batch of batches(events, BATCH)) {
        const rows = batch.map((e) => ({
          idempotency_key: e.idempotencyKey,
          unit: e.unit,
          metric: e.metric,
          value: e.value,
          ts: e.timestamp,
          received_at: receivedAt,
        }));
        const r = await db
          .insertInto("experiment_events")
          .values(rows)
          .onConflict((oc) => oc.column("idempotency_key").doNothing())
          .executeTakeFirst();
        inserted += Number(r.numInsertedOrUpdatedRows ?? 0);
      }
      return { accepted: inserted, duplicates: events.length - inserted };
    });
  }

  /** Stores first exposures; a unit already exposed in the experiment keeps its first row. */
  async recordExposures(exposures: readonly Exposure[]): Promise<void> {
    if (exposures.length === 0) return;
    await this.store.transact(async (db) => {
      for (const batch of batches(exposures, BATCH)) {
        await db
          .insertInto("experiment_exposures")
          .values(
            batch.map((x) => ({
              experiment: x.experiment,
              unit: x.unit,
              arm: x.arm,
              first_at: x.at,
            })),
          )
          .onConflict((oc) => oc.columns(["experiment", "unit"]).doNothing())
          .execute();
      }
    });
  }

  async listExperiments(): Promise<StoredExperiment[]> {
    const rows = await this.store.query((db) =>
      db.selectFrom("experiments").selectAll().orderBy("started_at", "desc").execute(),
    );
    return rows.map(mapExperiment);
  }

  async getExperiment(name: string): Promise<StoredExperiment | null> {
    const row = await this.store.query((db) =>
      db.selectFrom("experiments").selectAll().where("name", "=", name).executeTakeFirst(),
    );
    return row ? mapExperiment(row) : null;
  }

  /**
   * Everything the analysis needs, aggregated in SQL, as of `now` (exposures and events with
   * later timestamps are left out, so an ended experiment reads as it was when it was decided):
   * units per arm, and per metric and arm the per-unit sums (events after the unit's first
   * exposure, `CLOCK_SKEW_MS` allowed) or, for builtin metrics, the router's measurements of the
   * arm's version since the start.
   */
  async data(
    e: Pick<StoredExperiment, "name" | "service" | "spec" | "arms" | "startedAt">,
    now: number,
  ): Promise<ExperimentData> {
    return this.store.query(async (db) => {
      const units: Record<string, number> = {};
      const counted = await db
        .selectFrom("experiment_exposures")
        .select(["arm", (eb) => eb.fn.countAll<number>().as("n")])
        .where("experiment", "=", e.name)
        .where("first_at", "<=", now)
        .groupBy("arm")
        .execute();
      for (const r of counted) units[r.arm] = Number(r.n);
      const metrics: ExperimentData["metrics"] = {};
      let measured: Map<string, MetricArmData> | null = null;
      for (const m of e.spec.metrics) {
        if ("builtin" in m.source) {
          measured ??= await this.#measured(e, now);
          metrics[m.name] = builtinData(e.arms, measured);
          continue;
        }
        // The unit's own events of the metric, and for a ratio its denominator's, for CUPED
        // its covariate's from before exposure.
        const own = afterExposure(e.name, eventName(m.source), now);
        if (m.kind === "ratio" && m.denominator) {
          const denominator = afterExposure(e.name, eventName(m.denominator), now);
          metrics[m.name] = await perArm(db, e.name, now, ratioSums, own, denominator);
        } else if (m.kind === "mean" && m.covariate) {
          const covariate = beforeExposure(e.name, m.covariate.event);
          metrics[m.name] = await perArm(db, e.name, now, cupedSums, own, covariate);
        } else {
          metrics[m.name] = await perArm(db, e.name, now, meanSums, own);
        }
      }
      return { experiment: e.name, units, metrics, readAt: now };
    });
  }

  /** Per version: requests, errors and latency moments since the experiment started. */
  async #measured(
    e: Pick<StoredExperiment, "service" | "startedAt">,
    now: number,
  ): Promise<Map<string, MetricArmData>> {
    const rows: MeasurementRow[] = await this.store.readMeasurements({
      service: e.service,
      fromSec: Math.floor(e.startedAt / 1000),
      toSec: Math.floor(now / 1000) + 1,
    });
    const acc = new Map<string, { requests: number; errors: number; sketch: Sketch }>();
    for (const r of rows) {
      if (r.labels !== "") continue;
      let a = acc.get(r.version);
      if (!a) {
        a = { requests: 0, errors: 0, sketch: new Sketch() };
        acc.set(r.version, a);
      }
      a.requests += r.requests;
      // Errors as the builtin error_rate counts them everywhere: 5xx and abandoned requests.
      a.errors += errorCount(r);
      a.sketch.merge(Sketch.fromJSON(r.latency));
    }
    const out = new Map<string, MetricArmData>();
    for (const [version, a] of acc) {
      // Latency moments from the sketch's bins (values within 1% of the truth).
      let n = 0;
      let s = 0;
      let ss = 0;
      for (const b of a.sketch.bins()) {
        n += b.count;
        s += b.value * b.count;
        ss += b.value * b.value * b.count;
      }
      const mean = n > 0 ? s / n : 0;
      const variance = n > 1 ? Math.max(0, (ss - n * mean * mean) / (n - 1)) : 0;
      out.set(version, {
        kind: "requests",
        requests: a.requests,
        errors: a.errors,
        mean,
        variance,
      });
    }
    return out;
  }
}

/** The event name a source reads: the event itself, or the router's record of a header. */
function eventName(s: MetricSource): string {
  if ("event" in s) return s.event;
  if ("responseHeader" in s) return responseHeaderMetric(s.responseHeader);
  throw new Error("builtin sources have no events");
}

/** Per arm: the router's measurements of the arm's version. */
function builtinData(
  arms: readonly ResolvedArm[],
  measured: Map<string, MetricArmData>,
): Record<string, MetricArmData> {
  const out: Record<string, MetricArmData> = {};
  for (const a of arms) {
    const d = measured.get(a.version);
    if (d) out[a.name] = d;
  }
  return out;
}

/**
 * The stored events that `events` would conflict with: the same idempotency key with another
 * payload. Each is named by its index in `events` and the fields that differ, in input order.
 */
async function eventConflicts(db: Db, events: readonly OutcomeEvent[]): Promise<EventConflict[]> {
  const byKey = new Map<string, Pick<ExperimentEventsTable, "unit" | "metric" | "value" | "ts">>();
  for (const batch of batches(events, BATCH)) {
    const stored = await db
      .selectFrom("experiment_events")
      .select(["idempotency_key", "unit", "metric", "value", "ts"])
      .where(
        "idempotency_key",
        "in",
        batch.map((e) => e.idempotencyKey),
      )
      .execute();
    for (const r of stored) byKey.set(r.idempotency_key, r);
  }
  const conflicts: EventConflict[] = [];
  for (const [index, e] of events.entries()) {
    const r = byKey.get(e.idempotencyKey);
    if (r === undefined) continue;
    const fields = (
      [
        ["unit", r.unit, e.unit],
        ["metric", r.metric, e.metric],
        // Number(): PostgreSQL drivers return BIGINT (and may return doubles) as strings.
        ["value", Number(r.value), e.value],
        ["timestamp", Number(r.ts), e.timestamp],
      ] as const
    )
      .filter(([, a, b]) => a !== b)
      .map(([f]) => f);
    if (fields.length > 0) conflicts.push({ index, idempotencyKey: e.idempotencyKey, fields });
  }
  return conflicts;
}

/**
 * Per exposed unit: the sum (`v`) and count (`c`) of its `metric` events whose timestamp meets
 * `when`, a condition on `e.ts` and the unit's first exposure `x2.first_at`.
 */
function perUnit(experiment: string, metric: string, when: RawBuilder<unknown>) {
  return sql`
      SELECT e.unit AS unit, SUM(e.value) AS v, COUNT(*) AS c
      FROM experiment_events e
      JOIN experiment_exposures x2 ON x2.experiment = ${experiment} AND x2.unit = e.unit
      WHERE e.metric = ${metric} AND ${when}
      GROUP BY e.unit`;
}

/**
 * What a metric counts of a unit: its events from its first exposure (less the clock-skew
 * allowance) until `until`.
 */
function afterExposure(experiment: string, metric: string, until: number) {
  return perUnit(
    experiment,
    metric,
    sql`e.ts >= x2.first_at - ${CLOCK_SKEW_MS} AND e.ts <= ${until}`,
  );
}

/**
 * A CUPED covariate's pre-period: the unit's events before its first exposure (less the
 * allowance).
 */
function beforeExposure(experiment: string, covariate: string) {
  return perUnit(experiment, covariate, sql`e.ts < x2.first_at - ${CLOCK_SKEW_MS}`);
}

/** One arm's sums over its units; the `b` sums are 0 when there was no `b`. */
interface ArmSums {
  n: number;
  /** Σ of the per-unit values `a`, Σ of their squares, and the units with at least one event. */
  s: number;
  ss: number;
  conv: number;
  /** Σ and Σ of squares of the per-unit values `b`, and Σ of a unit's `a` × `b`. */
  bs: number;
  bss: number;
  sab: number;
}

/**
 * Per arm, over its units exposed until `until`: `of` the sums of the per-unit values `a` (and
 * `b`, when given). A unit without events counts with 0 (the joins are LEFT JOINs), so every
 * exposed unit is in `n`.
 */
async function perArm(
  db: Db,
  experiment: string,
  until: number,
  of: (sums: ArmSums) => MetricArmData,
  a: RawBuilder<unknown>,
  b?: RawBuilder<unknown>,
): Promise<Record<string, MetricArmData>> {
  const bSums =
    b === undefined
      ? sql``
      : sql`,
           SUM(COALESCE(b.v, 0)) AS bs, SUM(COALESCE(b.v, 0) * COALESCE(b.v, 0)) AS bss,
           SUM(COALESCE(a.v, 0) * COALESCE(b.v, 0)) AS sab`;
  const bJoin = b === undefined ? sql`` : sql`LEFT JOIN (${b}) b ON b.unit = x.unit`;
  type Sum = number | string | null;
  const r = await sql<
    { arm: string; n: Sum; s: Sum; ss: Sum; conv: Sum } & Partial<Record<"bs" | "bss" | "sab", Sum>>
  >`
    SELECT x.arm AS arm, COUNT(*) AS n,
           SUM(COALESCE(a.v, 0)) AS s, SUM(COALESCE(a.v, 0) * COALESCE(a.v, 0)) AS ss,
           SUM(CASE WHEN a.c > 0 THEN 1 ELSE 0 END) AS conv${bSums}
    FROM experiment_exposures x
    LEFT JOIN (${a}) a ON a.unit = x.unit
    ${bJoin}
    WHERE x.experiment = ${experiment} AND x.first_at <= ${until}
    GROUP BY x.arm`.execute(db);
  const out: Record<string, MetricArmData> = {};
  for (const row of r.rows) {
    // Number(): PostgreSQL drivers return SUM and COUNT of integers as strings.
    out[row.arm] = of({
      n: Number(row.n),
      s: Number(row.s ?? 0),
      ss: Number(row.ss ?? 0),
      conv: Number(row.conv ?? 0),
      bs: Number(row.bs ?? 0),
      bss: Number(row.bss ?? 0),
      sab: Number(row.sab ?? 0),
    });
  }
  return out;
}

/** A mean (or binomial) metric: units, Σ per-unit value, Σ of its square, units converted. */
function meanSums(r: ArmSums): Extract<MetricArmData, { kind: "sums" }> {
  return { kind: "sums", n: r.n, sum: r.s, sumSquares: r.ss, converted: r.conv };
}

/** A ratio: the per-unit numerator x (`a`) and denominator y (`b`) sums, for the delta method. */
function ratioSums(r: ArmSums): MetricArmData {
  return { kind: "ratio", n: r.n, sumX: r.s, sumX2: r.ss, sumY: r.bs, sumY2: r.bss, sumXY: r.sab };
}

/**
 * CUPED: the metric's per-unit sums (after exposure) with its pre-period covariate's (`b`: the
 * unit's events of the covariate from before its first exposure, less the skew allowance).
 */
function cupedSums(r: ArmSums): MetricArmData {
  return { ...meanSums(r), covariate: { sumX: r.bs, sumX2: r.bss, sumXY: r.sab } };
}

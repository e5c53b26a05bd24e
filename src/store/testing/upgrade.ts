/**
 * A check that both SQL dialects' tests run (sqlite-store.test.ts, postgres-store.test.ts): a
 * measurement row written by a Turnout from before migration 0013 reads as no request abandoned
 * once the store is upgraded, and (0015) without counts of requests started. Not part of the package (the build skips `testing/` folders).
 */
import assert from "node:assert/strict";
import { type Kysely, Migrator, sql } from "kysely";
import type { SqlDialectName } from "../migrations/dialect.js";
import { turnoutMigrations } from "../migrations/index.js";
import type { Database } from "../schema.js";
import type { Store } from "../store.js";

const BEFORE = "0012_router_buffers";
const ADDED = "0013_abandoned_requests";

/**
 * `db`: a migrated database, which this rolls back to before 0013 (its `down`), writes one row
 * into as that Turnout did, and destroys; `openStore` then opens a store over the same data
 * (running 0013), which must read the row with `abandoned: 0`.
 */
export async function checkRowsFromBeforeAbandoned(
  dialect: SqlDialectName,
  db: Kysely<Database>,
  openStore: () => Promise<Store>,
): Promise<void> {
  const migrator = new Migrator({
    db: db as Kysely<unknown>,
    provider: { getMigrations: async () => turnoutMigrations(dialect) },
  });
  const down = await migrator.migrateTo(BEFORE);
  assert.equal(down.error, undefined, String(down.error));
  // 0013 and every later migration go down, the latest first.
  const later = Object.keys(turnoutMigrations(dialect))
    .sort()
    .filter((name) => name > BEFORE)
    .reverse();
  assert.equal(later.at(-1), ADDED);
  assert.deepEqual(
    down.results?.map((r) => [r.migrationName, r.direction, r.status]),
    later.map((name) => [name, "Down", "Success"]),
  );
  const second = 1_700_000_000;
  await sql`insert into measurements
    (service, second, version, labels, router_id, requests, s2xx, s3xx, s4xx, s5xx, upstream_errors, latency)
    values ('svc', ${second}, 'v1', '', 'old-router', 5, 4, 0, 1, 0, 0,
      '{"v":1,"alpha":0.01,"zero":0,"sum":10,"min":1,"max":4,"i":[0],"c":[5]}')`.execute(db);
  await db.destroy();

  const store = await openStore();
  try {
    const rows = await store.readMeasurements({
      service: "svc",
      fromSec: second,
      toSec: second + 1,
    });
    assert.deepEqual(
      rows.map((r) => [r.routerId, r.requests, r.s4xx, r.abandoned]),
      [["old-router", 5, 1, 0]],
    );
    // 0015: its starts were not counted, which is not "none sent".
    assert.equal(rows[0]?.started, undefined);
    assert.equal(rows[0]?.responded, undefined);
    assert.ok(!("started" in rows[0]!), JSON.stringify(rows[0]));
  } finally {
    await store.close();
  }
}

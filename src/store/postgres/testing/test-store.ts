/**
 * The store the feature stores' tests (experiment, flag, shadow) run on, so that the same test
 * files cover both databases: SQLite by default, PostgreSQL when `TURNOUT_TEST_STORE` says so:
 * - `TURNOUT_TEST_STORE=postgres`: a private cluster for the test process (test/support/postgres.ts);
 * - `TURNOUT_TEST_STORE=postgres://USER@HOST:PORT/DB`: a fresh database on that server, made by
 *   that (super)user; postgres-store.test.ts runs the files so, against its own cluster.
 * Each call gives a new, empty database. Test-only (excluded from the build by `testing/`).
 */
import pg from "pg";
import { requirePostgres, sharedCluster } from "../../../../test/support/postgres.js";
import type { SqlStore } from "../../sql-store.js";
import { openSqliteStore } from "../../sqlite/sqlite-store.js";
import { openPostgresStore } from "../postgres-store.js";

let counter = 0;

/** A fresh store; `sqlitePath` is where the SQLite one lives (default: in memory). */
export async function openTestStore(sqlitePath = ":memory:"): Promise<SqlStore> {
  const which = process.env.TURNOUT_TEST_STORE ?? "";
  if (which === "" || which === "sqlite") return openSqliteStore({ path: sqlitePath });
  if (which === "postgres") {
    const missing = requirePostgres();
    if (missing !== undefined) throw new Error(`TURNOUT_TEST_STORE=postgres: ${missing}`);
    const cluster = await sharedCluster();
    return openPostgresStore({ url: await cluster.createDatabase() });
  }
  if (/^postgres(ql)?:\/\//.test(which)) {
    const name = `t_${process.pid}_feature_${++counter}`;
    const admin = new pg.Client({ connectionString: which });
    await admin.connect();
    try {
      await admin.query(`create database "${name}"`);
    } finally {
      await admin.end();
    }
    const url = new URL(which);
    url.pathname = `/${name}`;
    return openPostgresStore({ url: url.toString() });
  }
  throw new Error(`TURNOUT_TEST_STORE must be sqlite, postgres or a postgres:// URL, got ${which}`);
}

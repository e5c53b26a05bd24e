/**
 * The PostgreSQL store against a real PostgreSQL: a private cluster for this file
 * (test/support/postgres.ts), a fresh database per test. Runs the same conformance suite as
 * SQLite (core store, writer epoch, and the experiment, flag and shadow stores), and what is
 * PostgreSQL's own: migrations, the writers' lock, LISTEN/NOTIFY across store instances, and
 * the errors of bad URLs and credentials.
 *
 * Where PostgreSQL is not installed, everything here skips with the reason; under CI it fails.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sql } from "kysely";
import pg from "pg";
import {
  PASSWORD,
  PASSWORD_ROLE,
  type PgCluster,
  requirePostgres,
  sharedCluster,
  startCluster,
} from "../../../test/support/postgres.js";
import { API_VERSION, type RouteTable, type ServiceResource } from "../../core/model.js";
import { sqlFeatureStores } from "../features.js";
import { turnoutMigrations } from "../migrations/index.js";
import { describeStoreConformance } from "../store.conformance.js";
import type { StoreChange } from "../store.js";
import { checkRowsFromBeforeAbandoned } from "../testing/upgrade.js";
import {
  CHANGE_CHANNEL,
  openPostgresDatabase,
  openPostgresStore,
  type PostgresStore,
  parsePostgresUrl,
  WRITE_LOCK_KEY,
} from "./postgres-store.js";

const T0 = 1_700_000_000_000;
const missing = requirePostgres();

if (missing !== undefined) {
  it("PostgreSQL store", { skip: missing }, () => undefined);
} else {
  let cluster: PgCluster;
  let admin: pg.Client;
  let counter = 0;
  const TEMPLATE = "turnout_migrated";

  before(async () => {
    cluster = await sharedCluster();
    admin = new pg.Client({ connectionString: cluster.url() });
    await admin.connect();
    // Conformance tests start from a migrated template (copying it is far quicker than
    // migrating each time); the migration tests below start from empty databases.
    await admin.query(`create database ${TEMPLATE}`);
    const s = await openPostgresStore({ url: cluster.url(TEMPLATE), listen: false });
    await s.close();
  });
  after(async () => {
    await admin?.end();
    await cluster?.stop();
  });

  /** A new database: migrated (from the template) or empty. */
  const newDatabase = async (migrated: boolean): Promise<string> => {
    const name = `t${++counter}`;
    await admin.query(`create database ${name}${migrated ? ` template ${TEMPLATE}` : ""}`);
    return cluster.url(name);
  };
  const dropDatabase = async (url: string) => {
    const name = new URL(url).pathname.slice(1);
    await admin.query(`drop database if exists ${name} with (force)`);
  };

  describeStoreConformance("postgres", async () => {
    const url = await newDatabase(true);
    const store = await openPostgresStore({ url });
    return {
      store,
      // A small history bound, so the thinning test is quick.
      features: sqlFeatureStores(store, { shadow: { historyPoints: 16 } }),
      reopen: () => openPostgresStore({ url }),
      cleanup: async () => {
        await store.close();
        await dropDatabase(url);
      },
    };
  });

  describe("PostgreSQL store", () => {
    /** A database for `fn`, dropped afterwards whatever happens. */
    const withDatabase = async (
      migrated: boolean,
      fn: (url: string) => Promise<void>,
    ): Promise<void> => {
      const url = await newDatabase(migrated);
      try {
        await fn(url);
      } finally {
        await dropDatabase(url);
      }
    };

    it("migrates an empty database once, records it, and runs nothing on reopen", async () => {
      await withDatabase(false, async (url) => {
        const all = Object.keys(turnoutMigrations("postgres"));
        const first = await openPostgresDatabase({ url });
        assert.deepEqual(first.migrated, all);
        await first.db.destroy();
        const again = await openPostgresDatabase({ url });
        assert.deepEqual(again.migrated, []);
        const recorded = await sql<{
          name: string;
        }>`select name from kysely_migration order by name`.execute(again.db);
        assert.deepEqual(
          recorded.rows.map((r) => r.name),
          all,
        );
        // Auto-increment ids are identity columns, clock columns BIGINT.
        const cols = await sql<{ column_name: string; data_type: string; is_identity: string }>`
          select column_name, data_type, is_identity from information_schema.columns
          where table_name = 'events' and column_name in ('id', 'time') order by column_name`.execute(
          again.db,
        );
        assert.deepEqual(cols.rows, [
          { column_name: "id", data_type: "bigint", is_identity: "YES" },
          { column_name: "time", data_type: "bigint", is_identity: "NO" },
        ]);
        await again.db.destroy();
      });
    });

    it("measurements written before 0013 read as none abandoned after the upgrade", async () => {
      await withDatabase(true, async (url) => {
        const { db } = await openPostgresDatabase({ url });
        await checkRowsFromBeforeAbandoned("postgres", db, () => openPostgresStore({ url }));
      });
    });

    it("several stores opening an empty database at once migrate it exactly once", async () => {
      await withDatabase(false, async (url) => {
        const opened = await Promise.all(
          [1, 2, 3, 4].map(() => openPostgresDatabase({ url, poolSize: 2 })),
        );
        try {
          const ran = opened.map((o) => o.migrated.length);
          assert.equal(
            ran.reduce((a, b) => a + b, 0),
            Object.keys(turnoutMigrations("postgres")).length,
            `migrations run per opener: ${ran.join(", ")}`,
          );
        } finally {
          for (const o of opened) await o.db.destroy();
        }
      });
    });

    it("refuses a database migrated by a newer Turnout, changing nothing", async () => {
      await withDatabase(true, async (url) => {
        const name = new URL(url).pathname.slice(1);
        cluster.psql(
          "insert into kysely_migration (name, timestamp) values ('9999_future', 'x')",
          name,
        );
        const before = cluster.psql("select count(*) from kysely_migration", name);
        await assert.rejects(openPostgresStore({ url }), (err: Error & { code?: string }) => {
          assert.equal(err.code, "TURNOUT_ERR_STORE_SCHEMA_NEWER");
          assert.match(err.message, /it has migration 9999_future/);
          assert.match(err.message, /run a newer Turnout/);
          return true;
        });
        assert.equal(cluster.psql("select count(*) from kysely_migration", name), before);
        // Even with a migration of its own still to run, it refuses before running any.
        cluster.psql("delete from kysely_migration where name = '0007_routers'", name);
        cluster.psql("drop table router_revisions; drop table routers", name);
        await assert.rejects(openPostgresStore({ url }), {
          code: "TURNOUT_ERR_STORE_SCHEMA_NEWER",
        });
        assert.equal(
          cluster
            .psql(
              "select count(*) from information_schema.tables where table_name = 'routers'",
              name,
            )
            .trim(),
          "0",
        );
      });
    });

    it("serializes writers of several stores: nothing lost, generations and revisions exact", {
      timeout: 120_000,
    }, async () => {
      await withDatabase(true, async (url) => {
        const stores = await Promise.all(
          [0, 1, 2].map(() => openPostgresStore({ url, poolSize: 3, listen: false })),
        );
        const rounds = 15;
        try {
          await stores[0]!.applyResources([service("shared", "v0")], { actor: "x", now: T0 });
          // Each store runs its rounds with its writes in flight at once; the three stores'
          // transactions interleave at the database.
          await Promise.all(
            stores.map(async (store, w) => {
              for (let i = 0; i < rounds; i++) {
                const now = T0 + 1 + i;
                await Promise.all([
                  store.applyResources([service("shared", `w${w}-${i}`)], { actor: `w${w}`, now }),
                  store.commit({
                    service: "shared",
                    routeTable: table("shared", now),
                    events: [
                      {
                        service: "shared",
                        type: "StepCompleted",
                        actor: `w${w}`,
                        message: "",
                        data: {},
                        time: now,
                      },
                    ],
                    now,
                  }),
                  store.enqueueCommand(
                    { service: "shared", type: "pause", args: {}, actor: `w${w}` },
                    now,
                  ),
                ]);
              }
            }),
          );
          const s = stores[0]!;
          const total = stores.length * rounds;
          assert.equal((await s.getResource("Service", "shared"))?.generation, total + 1);
          assert.equal((await s.getRouteTable("shared"))?.revision, total);
          assert.equal(await s.routeTablesFingerprint(), String(total));
          const events = await s.listEvents("shared");
          assert.equal(events.filter((e) => e.type === "StepCompleted").length, total);
          assert.equal(events.filter((e) => e.type === "ResourceApplied").length, total + 1);
          const generations = events
            .filter((e) => e.type === "ResourceApplied")
            .map((e) => e.data.generation);
          assert.deepEqual(
            generations,
            Array.from({ length: total + 1 }, (_, i) => i + 1),
            "one event per generation, in order",
          );
          assert.equal((await s.pendingCommands("shared")).length, total);
        } finally {
          for (const s of stores) await s.close();
        }
      });
    });

    it("a write waiting too long for another writer gives up with TURNOUT_ERR_STORE_UNAVAILABLE, and the connection stays usable", async () => {
      await withDatabase(true, async (url) => {
        // One connection, so the write after the failure reuses the one that failed.
        const store = await openPostgresStore({
          url,
          poolSize: 1,
          lockTimeoutMs: 100,
          listen: false,
        });
        const other = new pg.Client({ connectionString: url });
        await other.connect();
        try {
          await other.query(`begin; select pg_advisory_xact_lock(${WRITE_LOCK_KEY})`);
          await assert.rejects(
            store.applyResources([service("a")], { actor: "alice", now: T0 }),
            (err: Error & { code?: string; details?: { sqlState?: string } }) => {
              assert.equal(err.code, "TURNOUT_ERR_STORE_UNAVAILABLE");
              assert.equal(err.details?.sqlState, "55P03");
              return true;
            },
          );
          // Reads do not wait for writers.
          assert.equal(await store.getResource("Service", "a"), null);
          await other.query("rollback");
          const [outcome] = await store.applyResources([service("a")], { actor: "alice", now: T0 });
          assert.equal(outcome?.action, "created");
        } finally {
          await other.end();
          await store.close();
        }
      });
    });

    it("onChange hears other stores' committed writes through LISTEN/NOTIFY, and its own once", async () => {
      await withDatabase(true, async (url) => {
        const a = await openPostgresStore({ url });
        const b = await openPostgresStore({ url });
        try {
          assert.ok(a.listening && b.listening);
          const heardByA = changeLog(a);
          const heardByB = changeLog(b);
          await b.applyResources([service("s")], { actor: "bob", now: T0 });
          await heardByA.waitFor("resources");
          // A failed write of B (a fenced commit) notifies nobody; the write after it does, and
          // notifications arrive in commit order, so A has heard all it will of the first.
          await b.acquireWriterEpoch("b", T0);
          await assert.rejects(
            b.commit({ service: "s", epoch: 99, routeTable: table("s", T0), now: T0 }),
            { code: "TURNOUT_ERR_STORE_FENCED" },
          );
          await b.enqueueCommand({ service: "s", type: "pause", args: {}, actor: "bob" }, T0);
          await heardByA.waitFor("commands");
          assert.deepEqual(heardByA.seen, ["resources", "commands"]);
          // B heard its own writes once each (directly, after commit), not again by NOTIFY.
          await a.commit({ service: "s", epoch: 1, routeTable: table("s", T0), now: T0 });
          await heardByB.waitFor("routeTables");
          assert.deepEqual(heardByB.seen, ["resources", "commands", "routeTables"]);
          assert.deepEqual(heardByA.seen, ["resources", "commands", "routeTables"]);
        } finally {
          await a.close();
          await b.close();
        }
      });
    });

    it("a store's listening connection comes back after it is killed, and says everything may have changed", async () => {
      await withDatabase(true, async (url) => {
        const a = await openPostgresStore({ url });
        const b = await openPostgresStore({ url, listen: false });
        try {
          const pid = a.listenerPid;
          assert.ok(pid !== null);
          const heard = changeLog(a);
          await admin.query("select pg_terminate_backend($1)", [pid]);
          // Reconnected: it tells listeners about every kind, since NOTIFYs meanwhile are lost.
          await heard.waitFor("routers");
          assert.deepEqual([...heard.seen].sort(), [
            "commands",
            "resources",
            "routeTables",
            "routers",
            "status",
          ]);
          assert.ok(a.listening);
          assert.notEqual(a.listenerPid, pid);
          const after = changeLog(a);
          await b.applyResources([service("s")], { actor: "bob", now: T0 });
          await after.waitFor("resources");
          assert.deepEqual(after.seen, ["resources"]);
        } finally {
          await a.close();
          await b.close();
        }
      });
    });

    it("after PostgreSQL was down for seconds, the listening connection is back within about a second of its restart", async (t) => {
      // A cluster of its own: this one is stopped and started again.
      const own = await startCluster({ crashSafe: true });
      const url = await own.createDatabase();
      const a = await openPostgresStore({ url, applicationName: "outage" });
      const b = await openPostgresStore({ url, listen: false });
      try {
        const before = a.listenerPid;
        own.down();
        await until(() => !a.listening);
        // Down long enough for the reconnect back-off to grow (100 ms doubling): it must not
        // grow past the second that a router may wait for a notification.
        await new Promise((r) => setTimeout(r, 4000));
        assert.equal(a.listening, false);
        own.up();
        const upAt = performance.now();
        await until(() => a.listening);
        const backMs = performance.now() - upAt;
        t.diagnostic(`listening again ${backMs.toFixed(0)} ms after the restart`);
        assert.ok(backMs < 1500, `listening again ${backMs.toFixed(0)} ms after the restart`);
        assert.notEqual(a.listenerPid, before);
        // And it hears other processes' writes again (b's pool replaced its broken connections).
        const heard = changeLog(a);
        await b.applyResources([service("s")], { actor: "bob", now: T0 });
        await heard.waitFor("resources");
      } finally {
        await a.close();
        await b.close();
        await own.stop();
      }
    });

    it("replaces pooled connections that the server dropped", async () => {
      await withDatabase(true, async (url) => {
        const store = await openPostgresStore({
          url,
          poolSize: 2,
          listen: false,
          applicationName: "pooltest",
        });
        try {
          await store.applyResources([service("s")], { actor: "x", now: T0 });
          const killed = await admin.query(
            "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'pooltest'",
          );
          assert.ok(killed.rowCount !== null && killed.rowCount > 0);
          // A query may still catch a connection the pool has not yet seen die: that one fails
          // as unavailable (never as a bug); the pool then opens a new one.
          let served = false;
          for (let i = 0; i < 5 && !served; i++) {
            try {
              assert.equal((await store.getResource("Service", "s"))?.generation, 1);
              served = true;
            } catch (err) {
              assert.equal((err as { code?: string }).code, "TURNOUT_ERR_STORE_UNAVAILABLE");
            }
          }
          assert.ok(served);
        } finally {
          await store.close();
        }
      });
    });

    it("a notification names its store, so a store ignores its own and takes others'", async () => {
      await withDatabase(true, async (url) => {
        const a = await openPostgresStore({ url });
        try {
          const heard = changeLog(a);
          // A NOTIFY from outside any store (another Turnout version, a person): unknown kinds
          // are ignored, known ones delivered.
          cluster.psql(
            `select pg_notify('${CHANGE_CHANNEL}', 'someone-else status,bogus')`,
            new URL(url).pathname.slice(1),
          );
          await heard.waitFor("status");
          assert.deepEqual(heard.seen, ["status"]);
        } finally {
          await a.close();
        }
      });
    });

    describe("bad URLs and credentials", () => {
      it("rejects malformed URLs before connecting, naming what is wrong", () => {
        const cases: [string, RegExp][] = [
          ["not a url", /it is not a URL/],
          ["mysql://u@h:1/db", /scheme must be postgres:\/\/ or postgresql:\/\//],
          ["postgres:///db", /names no host/],
          ["postgres://u@127.0.0.1:5432", /names no database/],
          ["postgres://u@127.0.0.1:5432/", /names no database/],
          ["postgres://u@127.0.0.1:99999/db", /it is not a URL/],
        ];
        for (const [url, why] of cases) {
          assert.throws(
            () => parsePostgresUrl(url),
            (err: Error & { code?: string }) => {
              assert.equal(err.code, "TURNOUT_ERR_STORE_URL_INVALID", url);
              assert.match(err.message, why, url);
              return true;
            },
          );
        }
        assert.deepEqual(parsePostgresUrl("postgresql://me:pw@db.example:6543/turn%20out"), {
          url: "postgresql://me:pw@db.example:6543/turn%20out",
          redacted: "postgresql://me:***@db.example:6543/turn%20out",
          host: "db.example",
          port: 6543,
          database: "turn out",
          user: "me",
        });
        // The password never appears in the message.
        assert.throws(
          () => parsePostgresUrl("mysql://me:hunter2@h/db"),
          (err: Error) => {
            assert.doesNotMatch(err.message, /hunter2/);
            return true;
          },
        );
      });

      it("an unreachable server is TURNOUT_ERR_STORE_UNAVAILABLE, saying what to check", async () => {
        // A port nobody listens on: the cluster's port + 1 is not guaranteed free, so bind one
        // and close it.
        const port = await closedPort();
        await assert.rejects(
          openPostgresStore({
            url: `postgres://postgres@127.0.0.1:${port}/x`,
            connectTimeoutMs: 2000,
          }),
          (err: Error & { code?: string }) => {
            assert.equal(err.code, "TURNOUT_ERR_STORE_UNAVAILABLE");
            assert.match(err.message, new RegExp(`cannot reach PostgreSQL at 127.0.0.1:${port}`));
            assert.match(err.message, /is the server running/);
            return true;
          },
        );
      });

      it("wrong or missing credentials are TURNOUT_ERR_STORE_AUTH_FAILED, without the password", async () => {
        const base = `127.0.0.1:${cluster.port}/postgres`;
        for (const url of [
          `postgres://${PASSWORD_ROLE}:wrong-password@${base}`,
          `postgres://${PASSWORD_ROLE}@${base}`,
        ]) {
          await assert.rejects(openPostgresStore({ url }), (err: Error & { code?: string }) => {
            assert.equal(err.code, "TURNOUT_ERR_STORE_AUTH_FAILED", url);
            assert.match(err.message, new RegExp(`credentials of ${PASSWORD_ROLE}`));
            assert.doesNotMatch(err.message, /wrong-password/);
            return true;
          });
        }
        // The right password gets through (to a database it may not use: that is not auth).
        await withDatabase(false, async (url) => {
          const name = new URL(url).pathname.slice(1);
          cluster.psql(
            `grant all on database ${name} to ${PASSWORD_ROLE}; alter database ${name} owner to ${PASSWORD_ROLE}`,
          );
          const store = await openPostgresStore({
            url: `postgres://${PASSWORD_ROLE}:${PASSWORD}@127.0.0.1:${cluster.port}/${name}`,
          });
          await store.close();
        });
      });

      it("a database that does not exist says how to create it", async () => {
        await assert.rejects(
          openPostgresStore({ url: cluster.url("no_such_db") }),
          (err: Error & { code?: string }) => {
            assert.equal(err.code, "TURNOUT_ERR_STORE_UNAVAILABLE");
            assert.match(err.message, /does not exist; create it \(createdb no_such_db\)/);
            return true;
          },
        );
      });
    });
  });
}

/**
 * Records what a store's listeners are told. `waitFor(kind)` waits for one more of that kind
 * than earlier `waitFor(kind)` calls waited for (already there counts), so a notification that
 * arrives before the call is not missed.
 */
function changeLog(store: PostgresStore): {
  seen: StoreChange[];
  waitFor(what: StoreChange): Promise<void>;
} {
  const seen: StoreChange[] = [];
  const waited = new Map<StoreChange, number>();
  const waiters: { what: StoreChange; n: number; resolve: () => void }[] = [];
  const count = (what: StoreChange) => seen.filter((s) => s === what).length;
  store.onChange((what) => {
    seen.push(what);
    for (const w of [...waiters]) {
      if (count(w.what) >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  return {
    seen,
    waitFor(what) {
      const n = (waited.get(what) ?? 0) + 1;
      waited.set(what, n);
      if (count(what) >= n) return Promise.resolve();
      return new Promise<void>((resolve) => waiters.push({ what, n, resolve }));
    },
  };
}

/** Resolves once `check` holds (checked every 10 ms), or fails after 15 s. */
async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${check}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function closedPort(): Promise<number> {
  const { createServer } = await import("node:net");
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const a = s.address();
  const port = typeof a === "object" && a !== null ? a.port : 0;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function service(name: string, version = "v1"): ServiceResource {
  return {
    apiVersion: API_VERSION,
    kind: "Service",
    metadata: { name },
    spec: {
      listen: { port: 8080, host: "127.0.0.1" },
      runtime: { static: { versions: { [version]: { upstreams: ["http://127.0.0.1:9001"] } } } },
      version,
    },
  };
}

function table(svc: string, now: number): Omit<RouteTable, "revision"> {
  return {
    service: svc,
    listen: { host: "127.0.0.1", port: 8080 },
    hashVersion: 1,
    backends: [{ version: "v1", weight: 100, endpoints: ["http://127.0.0.1:9001"] }],
    updatedAt: now,
  };
}

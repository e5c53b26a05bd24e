import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import BetterSqlite3 from "better-sqlite3";
import { API_VERSION, type ServiceResource } from "../../core/model.js";
import { sqlFeatureStores } from "../features.js";
import { turnoutMigrations } from "../migrations/index.js";
import { describeStoreConformance } from "../store.conformance.js";
import type { Store } from "../store.js";
import { checkRowsFromBeforeAbandoned } from "../testing/upgrade.js";
import { openSqliteDatabase, openSqliteStore } from "./sqlite-store.js";

const T0 = 1_700_000_000_000;

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "turnout-store-"));
}

describeStoreConformance("sqlite file", async () => {
  const dir = tempDir();
  const file = path.join(dir, "turnout.db");
  const store = await openSqliteStore({ path: file });
  return {
    store,
    // A small history bound, so the thinning test is quick (:memory: below keeps the default).
    features: sqlFeatureStores(store, { shadow: { historyPoints: 16 } }),
    reopen: () => openSqliteStore({ path: file }),
    cleanup: async () => {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

describeStoreConformance("sqlite :memory:", async () => {
  const store = await openSqliteStore({ path: ":memory:" });
  return { store, features: sqlFeatureStores(store), cleanup: () => store.close() };
});

describe("SQLite store", () => {
  /** A temp dir removed after `fn`, whatever happens. */
  const inTempDir = async (fn: (dir: string) => Promise<void>) => {
    const dir = tempDir();
    try {
      await fn(dir);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  it("sets WAL, busy_timeout, foreign_keys and synchronous on its connection", async () => {
    await inTempDir(async (dir) => {
      const { db, raw } = await openSqliteDatabase({ path: path.join(dir, "t.db") });
      try {
        assert.equal(raw.pragma("journal_mode", { simple: true }), "wal");
        assert.equal(raw.pragma("busy_timeout", { simple: true }), 5000);
        assert.equal(raw.pragma("foreign_keys", { simple: true }), 1);
        assert.equal(raw.pragma("synchronous", { simple: true }), 1, "NORMAL");
      } finally {
        await db.destroy();
      }
      // WAL is a property of the file, so another connection sees it too.
      const other = new BetterSqlite3(path.join(dir, "t.db"), { readonly: true });
      try {
        assert.equal(other.pragma("journal_mode", { simple: true }), "wal");
      } finally {
        other.close();
      }
    });
  });

  it("creates the directory of the file", async () => {
    await inTempDir(async (dir) => {
      const file = path.join(dir, "nested", "deeper", "turnout.db");
      const store = await openSqliteStore({ path: file });
      await store.close();
      assert.ok(fs.existsSync(file));
    });
  });

  it("records migrations and does not run them again on reopen", async () => {
    await inTempDir(async (dir) => {
      const file = path.join(dir, "t.db");
      const first = await openSqliteDatabase({ path: file });
      const all = Object.keys(turnoutMigrations("sqlite"));
      assert.deepEqual(all.slice(0, 2), ["0001_initial", "0002_measurements"]);
      assert.deepEqual(first.migrated, all);
      await first.db.destroy();

      const before = readMigrations(file);
      assert.deepEqual(
        before.map((m) => m.name),
        all,
      );

      const second = await openSqliteDatabase({ path: file });
      assert.deepEqual(second.migrated, [], "nothing left to run");
      await second.db.destroy();
      assert.deepEqual(readMigrations(file), before, "the record is untouched");
    });
  });

  it("measurements written before 0013 read as none abandoned after the upgrade", async () => {
    await inTempDir(async (dir) => {
      const file = path.join(dir, "t.db");
      const { db } = await openSqliteDatabase({ path: file });
      await checkRowsFromBeforeAbandoned("sqlite", db, () => openSqliteStore({ path: file }));
    });
  });

  it("refuses a database written by a newer Turnout", async () => {
    await inTempDir(async (dir) => {
      const file = path.join(dir, "t.db");
      await (await openSqliteStore({ path: file })).close();
      const raw = new BetterSqlite3(file);
      raw
        .prepare("insert into kysely_migration (name, timestamp) values (?, ?)")
        .run("9999_future", "x");
      raw.close();
      await assert.rejects(openSqliteStore({ path: file }), (err: Error & { code?: string }) => {
        assert.equal(err.code, "TURNOUT_ERR_STORE_SCHEMA_NEWER");
        assert.match(err.message, /newer than this Turnout: it has migration 9999_future/);
        return true;
      });
    });
  });

  it("two store instances on one file see each other's writes", async () => {
    await inTempDir(async (dir) => {
      const file = path.join(dir, "shared.db");
      // Opened one after the other, as two processes would; the second finds the schema made.
      const controller = await openSqliteStore({ path: file });
      const router = await openSqliteStore({ path: file });
      try {
        await controller.applyResources([service("a")], { actor: "alice", now: T0 });
        assert.equal((await router.getResource("Service", "a"))?.generation, 1);

        const before = await router.routeTablesFingerprint();
        const { routeTable } = await controller.commit({
          service: "a",
          routeTable: {
            service: "a",
            listen: { host: "127.0.0.1", port: 8080 },
            hashVersion: 1,
            backends: [{ version: "v1", weight: 100, endpoints: ["http://127.0.0.1:9001"] }],
            updatedAt: T0 + 1,
          },
          now: T0 + 1,
        });
        assert.notEqual(await router.routeTablesFingerprint(), before);
        assert.deepEqual(await router.getRouteTable("a"), routeTable);

        // And the other way: a command queued by one is pending for the other.
        const cmd = await router.enqueueCommand(
          { service: "a", type: "pause", args: {}, actor: "cli" },
          T0 + 2,
        );
        assert.deepEqual(
          (await controller.pendingCommands("a")).map((c) => c.id),
          [cmd.id],
        );

        // Generations are computed from the file, not from anything either instance holds.
        await router.applyResources([service("a", "v2")], { actor: "bob", now: T0 + 3 });
        assert.deepEqual(
          await controller.applyResources([service("a", "v3")], { actor: "carol", now: T0 + 4 }),
          [{ kind: "Service", name: "a", action: "configured", generation: 3 }],
        );
      } finally {
        await controller.close();
        await router.close();
      }
    });
  });

  it("several processes writing the same service at once lose nothing", {
    timeout: 60_000,
  }, async () => {
    await inTempDir(async (dir) => {
      const file = path.join(dir, "multi.db");
      const workers = 3;
      const rounds = 40;
      // The workers open a fresh file at the same moment, so they race on the migrations too.
      const worker = fileURLToPath(new URL("./concurrency-worker.ts", import.meta.url));
      const children = Array.from({ length: workers }, (_, w) => {
        const child = spawn(
          process.execPath,
          ["--import", "tsx", worker, file, String(w), String(rounds)],
          {
            stdio: ["pipe", "pipe", "pipe"],
          },
        );
        let output = "";
        const collect = (d: Buffer) => {
          output += d.toString();
        };
        child.stdout.on("data", collect);
        child.stderr.on("data", collect);
        const exited = once(child, "exit").then(([code]) => code as number | null);
        const ready = Promise.race([
          once(child.stdout, "data"),
          exited.then((code) => {
            throw new Error(`worker ${w} exited (${code}) before it was ready:\n${output}`);
          }),
        ]);
        return { child, exited, ready, output: () => output };
      });
      try {
        // All workers ready before any starts writing, so their transactions overlap.
        await Promise.all(children.map((c) => c.ready));
        for (const c of children) c.child.stdin.end("go\n");
        const codes = await Promise.all(children.map((c) => c.exited));
        assert.deepEqual(codes, Array(workers).fill(0), children.map((c) => c.output()).join("\n"));
      } finally {
        for (const c of children) if (c.child.exitCode === null) c.child.kill();
      }

      const store = await openSqliteStore({ path: file });
      try {
        const total = workers * rounds;
        // Every apply changed the content, so every one is a generation: 1 (created) + the rest.
        assert.equal((await store.getResource("Service", "shared"))?.generation, total);
        assert.equal((await store.getRouteTable("shared"))?.revision, total);
        assert.equal(await store.routeTablesFingerprint(), String(total));
        const events = await store.listEvents("shared");
        assert.equal(events.filter((e) => e.type === "Tick").length, total);
        assert.equal(events.filter((e) => e.type === "ResourceApplied").length, total);
        assert.equal((await store.pendingCommands("shared")).length, total);
      } finally {
        await store.close();
      }
    });
  });

  it("gives up with TURNOUT_ERR_STORE_UNAVAILABLE when another connection keeps the write lock", async () => {
    await inTempDir(async (dir) => {
      const file = path.join(dir, "busy.db");
      const store = await openSqliteStore({ path: file, busyTimeoutMs: 50 });
      // Another connection holds the write lock, as another process in a long transaction
      // would. With a short busy_timeout the store gives up with a clear error, not a hang.
      const other = new BetterSqlite3(file);
      other.exec("begin immediate");
      try {
        await assert.rejects(store.applyResources([service("a")], { actor: "alice", now: T0 }), {
          code: "TURNOUT_ERR_STORE_UNAVAILABLE",
        });
        // Reads still work under WAL while the other connection writes.
        assert.equal(await store.getResource("Service", "a"), null);
      } finally {
        other.exec("rollback");
        other.close();
      }
      // Once the lock is gone, the same write goes through.
      assert.equal(
        (await store.applyResources([service("a")], { actor: "alice", now: T0 }))[0]?.action,
        "created",
      );
      await store.close();
    });
  });

  it("keeps stored JSON canonical, so equal content is equal text", async () => {
    await inTempDir(async (dir) => {
      const file = path.join(dir, "t.db");
      const store: Store = await openSqliteStore({ path: file });
      await store.applyResources([service("a")], { actor: "alice", now: T0 });
      await store.close();
      const raw = new BetterSqlite3(file, { readonly: true });
      try {
        const row = raw
          .prepare("select body from resources where kind = ? and name = ?")
          .get("Service", "a") as {
          body: string;
        };
        assert.ok(
          row.body.startsWith('{"apiVersion":"turnout.dev/v1","kind":"Service","metadata":'),
        );
      } finally {
        raw.close();
      }
    });
  });
});

function readMigrations(file: string): { name: string; timestamp: string }[] {
  const raw = new BetterSqlite3(file, { readonly: true });
  try {
    return raw.prepare("select name, timestamp from kysely_migration order by name").all() as {
      name: string;
      timestamp: string;
    }[];
  } finally {
    raw.close();
  }
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

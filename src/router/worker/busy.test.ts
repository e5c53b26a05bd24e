/**
 * The router thread's store connection never blocks its event loop on another connection's
 * write lock: a write that finds the lock taken is retried on timers and succeeds once the lock
 * is free, while timers keep firing. The plain connection, for contrast, blocks synchronously.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import BetterSqlite3 from "better-sqlite3";
import { tempDir } from "../../../test/helpers.js";
import { API_VERSION, type ServiceResource } from "../../core/model.js";
import type { SqlStore } from "../../store/sql-store.js";
import { openSqliteStore } from "../../store/sqlite/sqlite-store.js";
import { noBusyWait, retryingBusy } from "./busy.js";

const service = (name: string): ServiceResource => ({
  apiVersion: API_VERSION,
  kind: "Service",
  metadata: { name },
  spec: {
    listen: { port: 8080, host: "127.0.0.1" },
    runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9001"] } } } },
    version: "v1",
  },
});

describe("busy-retrying store (router thread)", () => {
  let dir: string;
  let path: string;
  let holder: BetterSqlite3.Database;
  const opened: SqlStore[] = [];

  before(async () => {
    dir = tempDir("turnout-busy-");
    path = join(dir, "turnout.db");
    opened.push(await openSqliteStore({ path }));
    holder = new BetterSqlite3(path);
  });

  after(async () => {
    holder.close();
    for (const s of opened) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("retries a write on timers while another connection holds the lock", async () => {
    const plain = await openSqliteStore({ path });
    opened.push(plain);
    await noBusyWait(plain);
    const store = retryingBusy(plain);
    holder.exec("BEGIN IMMEDIATE");
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    setTimeout(() => holder.exec("COMMIT"), 200);
    const started = Date.now();
    const [outcome] = await store.applyResources([service("a")], { actor: "t", now: 1 });
    const waited = Date.now() - started;
    clearInterval(timer);
    assert.equal(outcome?.action, "created");
    assert.ok(waited >= 150, `waited for the lock (${waited} ms)`);
    assert.ok(ticks >= 10, `the event loop kept turning meanwhile (${ticks} ticks)`);
  });

  it("gives up after the timeout with the store's unavailable error", async () => {
    const plain = await openSqliteStore({ path });
    opened.push(plain);
    await noBusyWait(plain);
    const store = retryingBusy(plain, 100);
    holder.exec("BEGIN IMMEDIATE");
    try {
      await assert.rejects(
        store.applyResources([service("b")], { actor: "t", now: 1 }),
        (err: { code?: string }) => err.code === "TURNOUT_ERR_STORE_UNAVAILABLE",
      );
    } finally {
      holder.exec("COMMIT");
    }
  });

  it("(contrast) a plain connection waits for the lock synchronously", async () => {
    const plain = await openSqliteStore({ path, busyTimeoutMs: 200 });
    opened.push(plain);
    holder.exec("BEGIN IMMEDIATE");
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    try {
      await assert.rejects(plain.applyResources([service("c")], { actor: "t", now: 1 }));
    } finally {
      clearInterval(timer);
      holder.exec("COMMIT");
    }
    assert.ok(ticks <= 1, `no timer fired while it waited (${ticks})`);
  });
});

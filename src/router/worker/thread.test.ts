/**
 * The router thread against a real SQLite file and real sockets: route tables committed in this
 * thread are in force there at once (no poll), questions are answered across the thread, a
 * crashed thread is restarted and serves again, and stop leaves no listener behind.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { request } from "undici";
import { freePort, tempDir } from "../../../test/helpers.js";
import { API_VERSION } from "../../core/model.js";
import { FlagSnapshotCache, FlagStore } from "../../store/flag-store.js";
import type { SqlStore } from "../../store/sql-store.js";
import { openSqliteStore } from "../../store/sqlite/sqlite-store.js";
import { ThreadRouterHandle } from "./thread.js";

const NOW = 1_700_000_000_000;

async function upstream(name: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    res.end(name);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address();
  return { url: `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`, server };
}

async function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(true));
  });
}

describe("the router thread", () => {
  let dir: string;
  let store: SqlStore;
  let cache: FlagSnapshotCache;
  let router: ThreadRouterHandle;
  let port: number;
  const logs: { level: number; part?: string; msg: string }[] = [];
  const servers: Server[] = [];
  let v1: string;
  let v2: string;

  const commit = async (url: string) => {
    const r = await store.commit({
      service: "web",
      routeTable: {
        service: "web",
        listen: { host: "127.0.0.1", port },
        hashVersion: 1,
        backends: [{ version: "v", weight: 100, endpoints: [url] }],
        updatedAt: NOW,
      },
      now: NOW,
    });
    return r.routeTable!.revision;
  };
  const get = async () => await (await request(`http://127.0.0.1:${port}/`)).body.text();

  before(async () => {
    dir = tempDir("turnout-router-thread-");
    const path = join(dir, "turnout.db");
    store = await openSqliteStore({ path });
    cache = new FlagSnapshotCache(new FlagStore(store));
    const a = await upstream("v1");
    const b = await upstream("v2");
    servers.push(a.server, b.server);
    v1 = a.url;
    v2 = b.url;
    port = await freePort();
    await store.applyResources(
      [
        {
          apiVersion: API_VERSION,
          kind: "Service",
          metadata: { name: "web" },
          spec: {
            listen: { port, host: "127.0.0.1" },
            runtime: { static: { versions: { v: { upstreams: [v1] } } } },
            version: "v",
          },
        },
      ],
      { actor: "test", now: NOW },
    );
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split("\n")) if (line) logs.push(JSON.parse(line));
        done();
      },
    });
    router = new ThreadRouterHandle({
      dbPath: path,
      store,
      flags: cache,
      logger: pino({ level: "info" }, sink),
      // Long enough that only the forwarded change can explain a prompt reload.
      pollIntervalMs: 60_000,
      restartDelayMs: { min: 20, max: 100 },
    });
    await router.start();
  });

  after(async () => {
    await router?.stop();
    cache?.stop();
    await store?.close();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("puts a table committed in this thread in force at once and answers across the thread", async () => {
    const revision = await commit(v1);
    assert.equal(await router.inForce("web", revision, 5000), true);
    assert.equal(await get(), "v1");
    assert.deepEqual(await router.listeners(), [{ service: "web", host: "127.0.0.1", port }]);
    const stats = await router.stats("web");
    assert.equal(stats[0]?.requests, 1);
    assert.equal((await router.endpoints("web"))[0]?.url, v1);
    assert.equal(await router.mirrorStats("web"), null);
    const names = (await router.metrics()).map((f) => f.name);
    assert.ok(names.includes("turnout_router_requests_total"), names.join(","));
    assert.ok(names.includes("turnout_mirror_copies_total"), names.join(","));

    const next = await commit(v2);
    assert.equal(await router.inForce("web", next, 5000), true);
    assert.equal(await get(), "v2", "the first request after inForce gets the new table");
    // Its own log lines reach this thread's logger, labelled.
    assert.ok(logs.some((l) => l.part === "router" && l.msg === "router: route table applied"));
  });

  it("says false when a revision is not in force by the deadline", async () => {
    const current = (await store.getRouteTable("web"))!.revision;
    assert.equal(await router.inForce("web", current + 1, 100), false);
    assert.equal(await router.inForce("nope", 1, 50), false);
  });

  it("restarts a thread that dies, which binds the listener again from the store", async () => {
    const revision = (await store.getRouteTable("web"))!.revision;
    await router.simulateCrash();
    // Nothing is in force until the new thread reports; then the same revision is.
    assert.equal(await router.inForce("web", revision, 10_000), true);
    assert.equal(await get(), "v2");
    assert.ok(
      logs.some((l) => l.level === 50 && /router thread exited; restarting/.test(l.msg)),
      "the crash is logged",
    );
    // Questions go to the new thread.
    assert.equal((await router.stats("web"))[0]?.requests, 1);
  });

  it("stops cleanly: no listener left, questions refused", async () => {
    await router.stop();
    assert.equal(await refused(port), true);
    await assert.rejects(router.stats("web"), /stopped/);
    await router.stop();
  });
});

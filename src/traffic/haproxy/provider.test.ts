/**
 * The HAProxy provider against real HAProxy processes and real upstreams: what a table asks for
 * is what requests get, live changes drop no request, a refused config keeps the old one, attach
 * mode changes only its backend, nothing is left running, measurements arrive, gRPC end to end.
 * The shared conformance suite (src/traffic/conformance.ts) covers the contract besides these.
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Pool } from "undici";
import { dueMeasurements, observe, startRun } from "../../core/analysis/run.js";
import { DEFAULT_TRAFFIC_POLICY, type RouteTable } from "../../core/model.js";
import type { TurnoutError } from "../../errors.js";
import { StoreMeasurementSource } from "../../metrics/measurements.js";
import { BuiltinProvider } from "../../metrics/providers/builtin/builtin-provider.js";
import { openSqliteStore } from "../../store/sqlite/sqlite-store.js";
import type { TableOutcome } from "../provider.js";
import { haproxyBucketOf } from "./hash.js";
import { HaproxyProvider } from "./provider.js";
import { RuntimeApi } from "./runtime-api.js";
import {
  accepts,
  freePort,
  needsHaproxy,
  operatorConfig,
  rawRequest,
  runHaproxy,
  startUpstream,
  tempDir,
  type Upstream,
  waitFor,
} from "./testing.js";

const skip = needsHaproxy();

/** Whether a process runs (a zombie waiting for its parent to reap it does not). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function table(
  service: string,
  port: number,
  backends: RouteTable["backends"],
  extra: Partial<RouteTable> = {},
  revision = 1,
): RouteTable {
  return {
    service,
    revision,
    listen: { host: "127.0.0.1", port },
    hashVersion: 1,
    backends,
    policy: DEFAULT_TRAFFIC_POLICY,
    updatedAt: 0,
    traffic: { haproxy: {} },
    ...extra,
  };
}

/**
 * The version HAProxy gives a sticky key: its own bucket (hash.ts, haproxy-xxh32-v1) in the
 * router's ranges (select.ts step 3), canary first.
 */
function haproxyAssignment(t: RouteTable, key: string): string {
  const b = haproxyBucketOf(t.stickiness!.salt, key, t.hashVersion);
  let end = 0;
  for (const x of t.backends) {
    end += Math.round(x.weight * 10_000);
    if (b < end) return x.version;
  }
  throw new Error("bucket outside the ranges");
}

interface Reply {
  status: number;
  servedBy: string | undefined;
  body: string;
}

function get(
  port: number,
  agent: http.Agent,
  headers: Record<string, string> = {},
  path = "/",
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent, headers }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d) => {
          body += d;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode!,
            servedBy: res.headers["x-served-by"] as string | undefined,
            body,
          }),
        );
      })
      .on("error", reject);
  });
}

/**
 * Keeps `concurrency` clients sending requests until `stop()`; counts answers by server and
 * failures (a connection error or any status but 200).
 */
function load(port: number, concurrency = 8) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const served = new Map<string, number>();
  const failures: string[] = [];
  let total = 0;
  let running = true;
  const worker = async () => {
    while (running) {
      try {
        const r = await get(port, agent);
        total++;
        if (r.status !== 200) failures.push(`status ${r.status}: ${r.body.slice(0, 200)}`);
        else served.set(r.servedBy!, (served.get(r.servedBy!) ?? 0) + 1);
      } catch (err) {
        total++;
        failures.push(String(err));
      }
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, worker));
  return {
    served,
    failures,
    get total() {
      return total;
    },
    async stop() {
      running = false;
      await done;
      agent.destroy();
    },
  };
}

describe("HaproxyProvider, managed mode", skip, () => {
  let dir: ReturnType<typeof tempDir>;
  let v1: Upstream;
  let v2: Upstream;
  let hx: HaproxyProvider;

  before(async () => {
    dir = tempDir();
    [v1, v2] = await Promise.all([startUpstream("v1"), startUpstream("v2")]);
    hx = new HaproxyProvider({
      dataDir: dir.path,
      measurements: { routerId: "hx-provider-test" },
    });
    await hx.start();
  });
  after(async () => {
    await hx.stop();
    await Promise.all([v1.close(), v2.close()]);
    dir.remove();
  });

  test("a 90/10 split is exact over a run of requests, and measured per version", async () => {
    const port = await freePort();
    const t = table("split", port, [
      { version: "v2", weight: 10, endpoints: [v2.url] },
      { version: "v1", weight: 90, endpoints: [v1.url] },
    ]);
    const [out] = await hx.apply([t]);
    assert.deepEqual(out, { service: "split", revision: 1, ok: true });
    assert.equal(hx.inForce().get("split"), 1);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const n = 1000;
    const by = new Map<string, number>();
    for (let i = 0; i < n; i += 4) {
      const rs = await Promise.all(Array.from({ length: 4 }, () => get(port, agent)));
      for (const r of rs) by.set(r.servedBy!, (by.get(r.servedBy!) ?? 0) + 1);
    }
    agent.destroy();
    // The Weyl sequence spreads consecutive requests: within a few of 10 % over 1000.
    assert.ok(Math.abs((by.get("v2") ?? 0) - 100) <= 3, `v2 got ${by.get("v2")} of ${n}`);
    assert.equal((by.get("v1") ?? 0) + (by.get("v2") ?? 0), n);
    // Measurements: the same numbers, by version, with status classes.
    await waitFor("every log line", () => hx.intakeStats().lines >= n);
    const stats = Object.fromEntries(hx.measurements.stats("split").map((s) => [s.version, s]));
    assert.equal(stats.v2!.requests, by.get("v2"));
    assert.equal(stats.v1!.requests, by.get("v1"));
    assert.equal(stats.v1!.status["2xx"], by.get("v1"));
    assert.equal(hx.intakeStats().lost, 0);
  });

  test("sticky keys get HAProxy's bucket's version (haproxy-xxh32-v1); header match, override and preview", async () => {
    const [port, previewPort] = [await freePort(), await freePort()];
    const t = table(
      "sticky",
      port,
      [
        { version: "v2", weight: 30, endpoints: [v2.url] },
        { version: "v1", weight: 70, endpoints: [v1.url] },
      ],
      {
        stickiness: { header: "x-user-id", salt: "sticky-salt" },
        matches: [{ header: { name: "x-beta", equals: "yes" }, version: "v2" }],
        versionOverride: true,
        preview: { listen: { host: "127.0.0.1", port: previewPort }, version: "v2" },
      },
    );
    const [out] = await hx.apply([t]);
    assert.ok(out!.ok, out!.ok ? "" : out!.error.message);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    try {
      let onV2 = 0;
      for (let i = 0; i < 300; i++) {
        const key = `user-${i}`;
        const r = await get(port, agent, { "x-user-id": key });
        assert.equal(r.servedBy, haproxyAssignment(t, key), `key ${key}`);
        if (r.servedBy === "v2") onV2++;
        // The same key again: the same version.
        if (i % 50 === 0) {
          assert.equal((await get(port, agent, { "x-user-id": key })).servedBy, r.servedBy);
        }
      }
      assert.ok(onV2 > 60 && onV2 < 120, `about 30 % of keys on v2: ${onV2}`);
      // A key on v1 with the beta header goes to v2 (rules before stickiness).
      const k1 = [...Array(100).keys()]
        .map((i) => `user-${i}`)
        .find((k) => haproxyAssignment(t, k) === "v1")!;
      assert.equal((await get(port, agent, { "x-user-id": k1, "x-beta": "yes" })).servedBy, "v2");
      assert.equal((await get(port, agent, { "x-user-id": k1, "x-beta": "no" })).servedBy, "v1");
      // The override names a version; an unknown one is ignored.
      const k2 = [...Array(100).keys()]
        .map((i) => `user-${i}`)
        .find((k) => haproxyAssignment(t, k) === "v2")!;
      assert.equal(
        (await get(port, agent, { "x-user-id": k2, "x-turnout-version": "v1" })).servedBy,
        "v1",
      );
      assert.equal(
        (await get(port, agent, { "x-user-id": k2, "x-turnout-version": "v9" })).servedBy,
        "v2",
      );
      // The preview listener serves its version only.
      for (let i = 0; i < 10; i++) {
        assert.equal((await get(previewPort, agent, { "x-user-id": k1 })).servedBy, "v2");
      }
      // Rules change live: the beta header now matches v1 only on /v1-beta paths.
      const t2 = {
        ...t,
        revision: 2,
        matches: [{ header: { name: "x-beta", equals: "yes" }, pathPrefix: "/x", version: "v2" }],
      };
      const reloads = hx.status().find((s) => s.service === "sticky")!.process!.reloads;
      const [o2] = await hx.apply([t, t2].slice(1));
      assert.ok(o2!.ok);
      assert.equal(hx.status().find((s) => s.service === "sticky")!.process!.reloads, reloads);
      assert.equal((await get(port, agent, { "x-user-id": k1, "x-beta": "yes" })).servedBy, "v1");
      assert.equal(
        (await get(port, agent, { "x-user-id": k1, "x-beta": "yes" }, "/x/1")).servedBy,
        "v2",
      );
      // Measurements of the preview go to their own series.
      await waitFor("preview lines", () =>
        hx.measurements.stats("sticky:preview").some((s) => s.version === "v2" && s.requests >= 10),
      );
    } finally {
      agent.destroy();
      await hx.apply([]);
    }
  });

  test("weights changed every 100 ms under load: no request fails, no reload", async () => {
    const port = await freePort();
    const backends = (w: number) => [
      { version: "v2", weight: w, endpoints: [v2.url] },
      { version: "v1", weight: 100 - w, endpoints: [v1.url] },
    ];
    let rev = 1;
    assert.ok((await hx.apply([table("weights", port, backends(0), {}, rev)]))[0]!.ok);
    const l = load(port);
    try {
      // A fixed walk of weights (deterministic), ending at 100 % on v2.
      const walk = [5, 10, 25, 50, 75, 100, 0, 33.3, 66.7, 1.5, 90, 50, 20, 80, 100];
      for (const w of [...walk, ...walk, ...walk]) {
        const started = Date.now();
        const [o] = await hx.apply([table("weights", port, backends(w), {}, ++rev)]);
        assert.ok(o!.ok, o!.ok ? "" : o!.error.message);
        const left = 100 - (Date.now() - started);
        if (left > 0) await new Promise((r) => setTimeout(r, left));
      }
      // The last weight is in force: everything goes to v2 from now on, but for the requests
      // already in flight when it changed (at most one per client).
      const v1Then = l.served.get("v1") ?? 0;
      const totalThen = l.total;
      await waitFor("200 requests after the last change", () => l.total > totalThen + 200);
      const v1Now = l.served.get("v1") ?? 0;
      assert.ok(v1Now - v1Then <= 8, `v1 got ${v1Now - v1Then} after 100 % on v2`);
    } finally {
      await l.stop();
    }
    assert.deepEqual(l.failures, []);
    assert.ok(l.total > 100, `load ran: ${l.total}`);
    assert.equal(hx.status().find((s) => s.service === "weights")!.process!.reloads, 0);
    await hx.apply([]);
  });

  test("instances added, drained and removed under load: no request fails", async () => {
    const port = await freePort();
    const extra = await startUpstream("v1b");
    const t = (rev: number, endpoints: string[]) =>
      table("instances", port, [{ version: "v1", weight: 100, endpoints }], {}, rev);
    assert.ok((await hx.apply([t(1, [v1.url])]))[0]!.ok);
    const l = load(port);
    try {
      // Added (by host name, resolved for HAProxy): it takes requests.
      const byName = `http://localhost:${extra.port}`;
      assert.ok((await hx.apply([t(2, [v1.url, byName])]))[0]!.ok);
      await waitFor("the new instance to serve", () => (l.served.get("v1b") ?? 0) > 20);
      // The first one leaves: drained at once, deleted once it has no connection.
      assert.ok((await hx.apply([t(3, [byName])]))[0]!.ok);
      const atDrain = l.served.get("v1") ?? 0;
      await waitFor(
        "the drained server to be deleted",
        () => hx.status().find((s) => s.service === "instances")!.draining === 0,
      );
      // Requests sent before the drain may finish after it; none started after.
      assert.ok((l.served.get("v1") ?? 0) - atDrain <= 8);
      const api = managedApi(hx, "instances");
      const servers = (await api.serversState()).filter((r) => r.be_name!.startsWith("slot"));
      assert.deepEqual(
        servers.map((r) => r.srv_port),
        [String(extra.port)],
      );
      // And back again: a second instance of the same address range comes and goes.
      assert.ok((await hx.apply([t(4, [byName, v1.url])]))[0]!.ok);
      await waitFor("the returning instance to serve", async () => {
        const before = l.served.get("v1") ?? 0;
        await new Promise((r) => setTimeout(r, 50));
        return (l.served.get("v1") ?? 0) > before;
      });
    } finally {
      await l.stop();
      await hx.apply([]);
      await extra.close();
    }
    assert.deepEqual(l.failures, []);
    assert.ok(l.total > 100);
  });

  test("a structural change (a new preview port) reloads hitlessly under load, and every line of the old worker arrives", async () => {
    const [port, previewPort] = [await freePort(), await freePort()];
    const backends = [
      { version: "v2", weight: 0, endpoints: [v2.url] },
      { version: "v1", weight: 100, endpoints: [v1.url] },
    ];
    assert.ok((await hx.apply([table("structural", port, backends, {}, 1)]))[0]!.ok);
    const l = load(port);
    try {
      await waitFor("load to run", () => l.total > 50);
      const preview = { listen: { host: "127.0.0.1", port: previewPort }, version: "v2" };
      const [o] = await hx.apply([table("structural", port, backends, { preview }, 2)]);
      assert.ok(o!.ok, o!.ok ? "" : o!.error.message);
      assert.equal(hx.status().find((s) => s.service === "structural")!.process!.reloads, 1);
      const before = l.total;
      await waitFor("load to go on after the reload", () => l.total > before + 100);
      const agent = new http.Agent();
      assert.equal((await get(previewPort, agent)).servedBy, "v2");
      agent.destroy();
    } finally {
      await l.stop();
    }
    assert.deepEqual(l.failures, []);
    // The old worker's last lines (written after its ring forwarding closed at the reload) come
    // over its runtime API session: every request answered is measured, none twice.
    const measured = () => hx.measurements.stats("structural").reduce((n, v) => n + v.requests, 0);
    await waitFor("a line for every request answered", () => measured() >= l.total);
    assert.equal(measured(), l.total);
    await hx.apply([]);
  });

  test("a reload under unthrottled load: every request answered is measured once, the old worker's last ones too", async () => {
    const port = await freePort();
    const backends = [
      { version: "v2", weight: 30, endpoints: [v2.url] },
      { version: "v1", weight: 70, endpoints: [v1.url] },
    ];
    assert.ok((await hx.apply([table("reloaded", port, backends, {}, 1)]))[0]!.ok);
    // 8 connections, each sending its next request as soon as the answer comes: at the reload
    // every connection has a request in flight or about to come, which the old worker serves
    // after its ring forwarding has closed.
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8 });
    const N = 3000;
    let sent = 0;
    let answered = 0;
    const worker = async () => {
      while (sent < N) {
        sent++;
        const r = await pool.request({ path: "/", method: "GET" });
        await r.body.text();
        if (r.statusCode === 200) answered++;
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    await waitFor("load to run", () => sent > 200);
    const policy = { ...DEFAULT_TRAFFIC_POLICY, retries: { attempts: 2 } };
    const [o] = await hx.apply([table("reloaded", port, backends, { policy }, 2)]);
    assert.ok(o!.ok, o!.ok ? "" : o!.error.message);
    await load;
    await pool.close();
    assert.equal(answered, N);
    assert.equal(hx.status().find((s) => s.service === "reloaded")!.process!.reloads, 1);
    const measured = () => hx.measurements.stats("reloaded").reduce((n, v) => n + v.requests, 0);
    await waitFor("a line for every request answered", () => measured() >= N, 10_000).catch(
      (err) => {
        throw new Error(
          `${err.message}: ${measured()} of ${N}, ${JSON.stringify(hx.intakeStats())}`,
        );
      },
    );
    assert.equal(measured(), N);
    await hx.apply([]);
  });

  test("a config HAProxy refuses keeps the old one serving, and says why", async () => {
    const [port, taken] = [await freePort(), await freePort()];
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(taken, "127.0.0.1", r));
    const backends = [{ version: "v1", weight: 100, endpoints: [v1.url] }];
    try {
      assert.ok((await hx.apply([table("refused", port, backends, {}, 1)]))[0]!.ok);
      const preview = { listen: { host: "127.0.0.1", port: taken }, version: "v1" };
      const [o] = await hx.apply([table("refused", port, backends, { preview }, 2)]);
      assert.equal(o!.ok, false);
      const err = errorOf(o);
      assert.equal(err.code, "TURNOUT_ERR_HAPROXY_PORT_IN_USE");
      assert.match(err.message, new RegExp(String(taken)));
      assert.equal(hx.inForce().get("refused"), 1);
      const agent = new http.Agent();
      assert.equal((await get(port, agent)).servedBy, "v1");
      // The old state still changes live: revision 3 without the preview is in force.
      const [o3] = await hx.apply([table("refused", port, backends, {}, 3)]);
      assert.ok(o3!.ok);
      assert.equal(hx.inForce().get("refused"), 3);
      assert.equal((await get(port, agent)).servedBy, "v1");
      // A binary that does not exist: refused, and the HAProxy in force keeps serving.
      const [o5] = await hx.apply([
        table(
          "refused",
          port,
          backends,
          { traffic: { haproxy: { binary: "/nonexistent/haproxy" } } },
          4,
        ),
      ]);
      assert.equal(errorOf(o5).code, "TURNOUT_ERR_HAPROXY_NOT_FOUND");
      assert.match(errorOf(o5).message, /nonexistent\/haproxy.*not found/);
      assert.equal(hx.inForce().get("refused"), 3);
      assert.equal((await get(port, agent)).servedBy, "v1");
      agent.destroy();
      // A port taken at the first start: refused at apply, nothing runs.
      const outcomes = await hx.apply([
        table("refused", port, backends, {}, 3),
        table("taken", taken, backends, {}, 1),
      ]);
      const tk = outcomes.find((x) => x.service === "taken")!;
      assert.equal(tk.ok, false);
      assert.equal(errorOf(tk).code, "TURNOUT_ERR_HAPROXY_PORT_IN_USE");
      assert.equal(hx.inForce().has("taken"), false);
      // Another service's HAProxy on the same port: refused too, never a shared port.
      const [, same] = await hx.apply([
        table("refused", port, backends, {}, 3),
        table("same-port", port, backends, {}, 1),
      ]);
      assert.equal(errorOf(same).code, "TURNOUT_ERR_HAPROXY_PORT_IN_USE");
    } finally {
      blocker.close();
      await hx.apply([]);
    }
  });

  test("features outside the provider's are refused, naming them", async () => {
    const port = await freePort();
    const [o] = await hx.apply([
      table("mirrored", port, [{ version: "v1", weight: 100, endpoints: [v1.url] }], {
        flags: ["new-ui"],
      }),
    ]);
    assert.equal(o!.ok, false);
    const err = errorOf(o);
    assert.equal(err.code, "TURNOUT_ERR_TRAFFIC_UNSUPPORTED");
    assert.match(err.message, /flags evaluated at the edge.*haproxy provider/);
    assert.equal(hx.inForce().has("mirrored"), false);
    assert.equal(hx.features.has("mirror"), false);
    assert.equal(hx.features.has("stickiness"), true);
  });
});

/** The runtime API of a managed service's HAProxy (read back in tests). */
function managedApi(hx: HaproxyProvider, service: string): RuntimeApi {
  const p = hx.status().find((s) => s.service === service)!.process!;
  assert.ok(p.running);
  return hx.runtimeApi(service)!;
}

function errorOf(o: TableOutcome | undefined): TurnoutError {
  assert.ok(o !== undefined && !o.ok, "the outcome is a refusal");
  return o.error as TurnoutError;
}

describe("HaproxyProvider, lifecycle and measurements", skip, () => {
  test("stop leaves no process and no socket; a killed HAProxy comes back with its state", async () => {
    const dir = tempDir();
    const v1 = await startUpstream("v1");
    const hx = new HaproxyProvider({ dataDir: dir.path, restartInitialMs: 50 });
    try {
      const [a, b] = [await freePort(), await freePort()];
      const backends = [{ version: "v1", weight: 100, endpoints: [v1.url] }];
      const out = await hx.apply([table("one", a, backends), table("two", b, backends)]);
      assert.ok(out.every((o) => o.ok));
      const procs = hx.status().map((s) => s.process!);
      const pids = procs.flatMap((p) => [p.masterPid!, p.workerPid!]);
      assert.equal(pids.length, 4);
      assert.ok(pids.every(alive));
      // A live change, then HAProxy killed: it restarts from the files, with the change.
      const extra = await startUpstream("v1b");
      const [o2] = await hx.apply([
        table("one", a, [{ version: "v1", weight: 100, endpoints: [extra.url] }], {}, 2),
        table("two", b, backends),
      ]);
      assert.ok(o2!.ok);
      process.kill(procs[0]!.masterPid!, "SIGKILL");
      await waitFor("a restart", () => {
        const p = hx.status().find((s) => s.service === "one")!.process!;
        return p.restarts === 1 && p.running;
      });
      const agent = new http.Agent();
      assert.equal((await get(a, agent)).servedBy, "v1b");
      agent.destroy();
      const after = hx.status().flatMap((s) => [s.process!.masterPid!, s.process!.workerPid!]);
      const sockets = ["one", "two"].map((s) => hx.runtimeApi(s)!.socketPath);
      assert.ok(sockets.every((p) => existsSync(p)));
      await hx.stop();
      assert.ok(
        sockets.every((p) => !existsSync(p)),
        "runtime API sockets removed",
      );
      // Stopped means stopped when stop() resolves: the processes and the listeners are gone.
      for (const pid of after) assert.equal(alive(pid), false, `pid ${pid} still runs`);
      assert.equal(await accepts(a), false);
      assert.equal(await accepts(b), false);
      // The first master was killed: its worker follows it on its own.
      for (const pid of pids) {
        await waitFor(`pid ${pid} to end`, () => !alive(pid));
      }
      assert.equal(hx.status().length, 0);
      assert.equal(hx.inForce().size, 0);
      await extra.close();
    } finally {
      await hx.stop();
      await v1.close();
      dir.remove();
    }
  });

  test("a server drained when HAProxy dies can come back after the restart", async () => {
    const dir = tempDir();
    const [a, b] = await Promise.all([startUpstream("a"), startUpstream("b")]);
    // No reaping during the test: the drained server is still Turnout's when HAProxy dies.
    const hx = new HaproxyProvider({
      dataDir: dir.path,
      restartInitialMs: 50,
      reapIntervalMs: 600_000,
    });
    try {
      const port = await freePort();
      const t = (rev: number, endpoints: string[]) =>
        table("revive", port, [{ version: "v1", weight: 100, endpoints }], {}, rev);
      assert.ok((await hx.apply([t(1, [a.url, b.url])]))[0]!.ok);
      assert.ok((await hx.apply([t(2, [a.url])]))[0]!.ok);
      assert.equal(hx.status()[0]!.draining, 1);
      process.kill(hx.status()[0]!.process!.masterPid!, "SIGKILL");
      await waitFor("a restart", () => {
        const p = hx.status()[0]!.process!;
        return p.restarts === 1 && p.running;
      });
      assert.equal(hx.status()[0]!.draining, 0);
      const [o] = await hx.apply([t(3, [a.url, b.url])]);
      assert.ok(o!.ok, o!.ok ? "" : o!.error.message);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
      await waitFor("b to serve again", async () => (await get(port, agent)).servedBy === "b");
      agent.destroy();
    } finally {
      await hx.stop();
      await Promise.all([a.close(), b.close()]);
      dir.remove();
    }
  });

  test("measurements reach the store as the router's rows; a canary is judged from them; no data never passes", async () => {
    const dir = tempDir();
    const [v1, v2] = await Promise.all([startUpstream("v1"), startUpstream("v2")]);
    v2.status = 503;
    const store = await openSqliteStore({ path: ":memory:" });
    const hx = new HaproxyProvider({
      dataDir: dir.path,
      measurements: { sink: store, routerId: "hx-judge", flushIntervalMs: 100 },
    });
    try {
      const [port, quietPort] = [await freePort(), await freePort()];
      const backends = (v2url: string) => [
        { version: "v2", weight: 20, endpoints: [v2url] },
        { version: "v1", weight: 80, endpoints: [v1.url] },
      ];
      const start = Date.now();
      const out = await hx.apply([
        table("judged", port, backends(v2.url)),
        table("quiet", quietPort, backends(v2.url)),
      ]);
      assert.ok(out.every((o) => o.ok));
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      for (let i = 0; i < 500; i += 4) {
        await Promise.all(Array.from({ length: 4 }, () => get(port, agent)));
      }
      agent.destroy();
      await waitFor("every line", () => hx.intakeStats().lines >= 500);
      await hx.flushMeasurements();
      const end = Date.now() + 1000;
      const rows = await store.readMeasurements({
        service: "judged",
        fromSec: Math.floor(start / 1000),
        toSec: Math.ceil(end / 1000),
      });
      const sum = (v: string, f: (r: (typeof rows)[number]) => number) =>
        rows.filter((r) => r.version === v).reduce((a, r) => a + f(r), 0);
      assert.equal(
        sum("v2", (r) => r.requests),
        100,
      );
      assert.equal(
        sum("v2", (r) => r.s5xx),
        100,
      );
      assert.equal(
        sum("v1", (r) => r.s2xx),
        400,
      );
      assert.ok(rows.every((r) => r.routerId === "hx-judge"));
      // The builtin metric source and a threshold judge, as a canary's analysis runs them.
      const metrics = new BuiltinProvider({ measurements: new StoreMeasurementSource(store) });
      const judgeFor = async (service: string) => {
        let run = startRun(
          [
            {
              name: "errors",
              spec: {
                metrics: [
                  {
                    name: "error-rate",
                    source: { builtin: "error_rate" },
                    judge: { threshold: { max: 0.05 } },
                    count: 1,
                    minSamples: 10,
                  },
                ],
              },
            },
          ],
          {},
          start - 1000,
        );
        const now = Math.max(end, run.metrics[0]!.nextDueAt!);
        for (const due of dueMeasurements(run, now)) {
          const m = await metrics.measure(
            {
              metric: due.metric,
              source: due.source,
              args: {},
              service,
              candidate: "v2",
              baseline: "v1",
              fromMs: due.fromMs,
              toMs: Math.min(due.toMs, end),
              now,
            },
            new AbortController().signal,
          );
          run = observe(run, due.metric, m, now);
        }
        return run;
      };
      const judged = await judgeFor("judged");
      assert.equal(judged.phase, "Failed", judged.message);
      // HAProxy carries "quiet", but nothing was measured: inconclusive, never a pass.
      const quiet = await judgeFor("quiet");
      assert.notEqual(quiet.phase, "Successful");
      assert.equal(quiet.phase, "Inconclusive", quiet.message);
    } finally {
      await hx.stop();
      await store.close();
      await Promise.all([v1.close(), v2.close()]);
      dir.remove();
    }
  });
});

describe("HaproxyProvider, clients that give up", skip, () => {
  test("a version that hangs counts as 5xx errors at the upstream timeout, even after its clients left; a half-closing client is answered", async () => {
    const dir = tempDir();
    const [v1, v2] = await Promise.all([startUpstream("v1"), startUpstream("v2")]);
    v1.hang = true;
    const hx = new HaproxyProvider({ dataDir: dir.path });
    try {
      const [port, okPort] = [await freePort(), await freePort()];
      const policy = {
        ...DEFAULT_TRAFFIC_POLICY,
        timeouts: { ...DEFAULT_TRAFFIC_POLICY.timeouts, upstreamSeconds: 1 },
      };
      const out = await hx.apply([
        table("hung", port, [{ version: "v1", weight: 100, endpoints: [v1.url] }], { policy }),
        table("fine", okPort, [{ version: "v2", weight: 100, endpoints: [v2.url] }]),
      ]);
      assert.ok(out.every((o) => o.ok));
      // Three clients each wait until the version has their request, then leave.
      for (let i = 1; i <= 3; i++) {
        const req = http.get({ host: "127.0.0.1", port, path: "/", agent: false });
        req.on("error", () => {});
        await waitFor("the version has the request", () => v1.count === i);
        req.destroy();
      }
      await waitFor("three 5xx measured at the upstream timeout", () => {
        const s = hx.measurements.stats("hung").find((x) => x.version === "v1");
        return s !== undefined && s.status["5xx"] === 3;
      });
      // A client that half-closes after its request (`connection: close`, then FIN) is
      // answered, not taken for one that left.
      const r = await rawRequest(okPort, "/", {});
      assert.equal(r.status, 200, r.headers);
    } finally {
      await hx.stop();
      await Promise.all([v1.close(), v2.close()]);
      dir.remove();
    }
  });
});

describe("HaproxyProvider, attach mode", skip, () => {
  test("changes only the named backend's servers and weights; bad sockets and backends are refused", async () => {
    const dir = tempDir();
    const [v1, v2, other] = await Promise.all([
      startUpstream("v1"),
      startUpstream("v2"),
      startUpstream("other"),
    ]);
    const port = await freePort();
    const sock = join(dir.path, "admin.sock");
    const api = new RuntimeApi(sock);
    const cfg = operatorConfig({
      socket: sock,
      port,
      frontend: ["  use_backend other if { path_beg /other }", "  default_backend app"],
      backends: [
        "backend app",
        "  balance roundrobin",
        // The operator's own server for v1's address: reused, not duplicated.
        `  server static1 127.0.0.1:${v1.port}`,
        "backend other",
        `  server o1 127.0.0.1:${other.port}`,
      ],
    });
    const owner = await runHaproxy(dir.path, cfg, () => api.answers());
    const hx = new HaproxyProvider({ dataDir: dir.path, reapIntervalMs: 100 });
    const attach = { haproxy: { runtimeApi: `unix:${sock}`, backend: "app" } };
    const t = (rev: number, w2: number, extra: Partial<RouteTable> = {}) =>
      table(
        "attached",
        port,
        [
          { version: "v2", weight: w2, endpoints: w2 > 0 ? [v2.url] : [] },
          { version: "v1", weight: 100 - w2, endpoints: [v1.url] },
        ],
        { traffic: attach, ...extra },
        rev,
      );
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const count = async (n: number) => {
      const by = new Map<string, number>();
      for (let i = 0; i < n; i += 4) {
        for (const r of await Promise.all(Array.from({ length: 4 }, () => get(port, agent)))) {
          assert.equal(r.status, 200);
          by.set(r.servedBy!, (by.get(r.servedBy!) ?? 0) + 1);
        }
      }
      return by;
    };
    try {
      // What identifies a server and what Turnout could change (not its clocks).
      const otherState = async () =>
        (await api.serversState("other")).map((r) =>
          [r.srv_name, r.srv_addr, r.srv_port, r.srv_uweight, r.srv_admin_state].join(" "),
        );
      const otherBefore = await otherState();
      const [o] = await hx.apply([t(1, 10)]);
      assert.ok(o!.ok, o!.ok ? "" : o!.error.message);
      const by = await count(1000);
      // Weights 256 and 28: 9.9 % of a smooth round-robin.
      assert.ok(Math.abs((by.get("v2") ?? 0) - 99) <= 5, `v2 got ${by.get("v2")}`);
      const rows = await api.serversState("app");
      assert.deepEqual(rows.map((r) => [r.srv_name, r.srv_uweight]).sort(), [
        ["static1", "256"],
        [`turnout-127.0.0.1_${v2.port}`, "28"],
      ]);
      // Live: 50/50, then v2 leaves (drained, then deleted as Turnout's own).
      assert.ok((await hx.apply([t(2, 50)]))[0]!.ok);
      const half = await count(400);
      assert.ok(Math.abs((half.get("v2") ?? 0) - 200) <= 4, `v2 got ${half.get("v2")}`);
      assert.ok((await hx.apply([t(3, 0)]))[0]!.ok);
      assert.deepEqual([...(await count(100)).keys()], ["v1"]);
      await waitFor("turnout's server deleted", async () =>
        (await api.serversState("app")).every((r) => r.srv_name === "static1"),
      );
      // The other backend is untouched.
      assert.deepEqual(await otherState(), otherBefore);
      // Split only: stickiness is refused, naming it and the mode.
      const [s] = await hx.apply([t(4, 10, { stickiness: { header: "x-user", salt: "s" } })]);
      assert.equal(errorOf(s).code, "TURNOUT_ERR_TRAFFIC_UNSUPPORTED");
      assert.match(errorOf(s).message, /sticky assignment.*attach mode/);
      assert.equal(hx.inForce().get("attached"), 3);
      // A backend that does not exist.
      const missing = { haproxy: { runtimeApi: `unix:${sock}`, backend: "nope" } };
      const [m] = await hx.apply([t(5, 10, { traffic: missing })]);
      assert.equal(errorOf(m).code, "TURNOUT_ERR_HAPROXY_BACKEND_NOT_FOUND");
      assert.match(errorOf(m).message, /no backend "nope" \(it has .*app/);
      // A socket nobody answers on.
      const dead = {
        haproxy: { runtimeApi: `unix:${join(dir.path, "none.sock")}`, backend: "app" },
      };
      const [d] = await hx.apply([t(6, 10, { traffic: dead })]);
      assert.equal(errorOf(d).code, "TURNOUT_ERR_HAPROXY_RUNTIME_API");
      assert.match(errorOf(d).message, /none\.sock.*does not exist/);
    } finally {
      agent.destroy();
      await hx.stop();
      await owner.stop();
      await Promise.all([v1.close(), v2.close(), other.close()]);
      dir.remove();
    }
  });
});

type PredictFn = (req: Buffer, cb: (err: grpc.ServiceError | null, res: Buffer) => void) => void;

describe("HaproxyProvider, gRPC", skip, () => {
  /** A unary method on raw bytes: no .proto needed for a test of the transport. */
  const predict = {
    path: "/turnout.test.Model/Predict",
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  } as const;
  const definition = { Predict: predict } as grpc.ServiceDefinition;

  async function grpcUpstream(
    name: string,
    fail: grpc.status | null,
  ): Promise<{ url: string; close(): Promise<void> }> {
    const server = new grpc.Server();
    server.addService(definition, {
      Predict: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        if (fail !== null) cb({ code: fail, details: `${name} is failing` });
        else cb(null, Buffer.from(`${name}:${call.request.toString()}`));
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    return {
      url: `http://127.0.0.1:${port}`,
      close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
    };
  }

  test("HTTP/2 end to end; gRPC errors counted from grpc-status in the measurements", async () => {
    const dir = tempDir();
    const v1 = await grpcUpstream("v1", null);
    const v2 = await grpcUpstream("v2", grpc.status.UNAVAILABLE);
    const hx = new HaproxyProvider({ dataDir: dir.path });
    const Client = grpc.makeGenericClientConstructor(definition, "Model");
    let client: grpc.Client | null = null;
    try {
      const port = await freePort();
      const [o] = await hx.apply([
        table(
          "model",
          port,
          [
            { version: "v2", weight: 20, endpoints: [v2.url] },
            { version: "v1", weight: 80, endpoints: [v1.url] },
          ],
          { traffic: { haproxy: { protocol: "grpc" } } },
        ),
      ]);
      assert.ok(o!.ok, o!.ok ? "" : o!.error.message);
      client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      const call = (i: number) =>
        new Promise<{ ok: string } | { code: grpc.status }>((resolve) => {
          (client as unknown as { Predict: PredictFn }).Predict(
            Buffer.from(String(i)),
            (err: grpc.ServiceError | null, res: Buffer) =>
              resolve(err ? { code: err.code } : { ok: res.toString() }),
          );
        });
      const n = 200;
      const results = [];
      for (let i = 0; i < n; i += 10) {
        results.push(...(await Promise.all(Array.from({ length: 10 }, (_, j) => call(i + j)))));
      }
      const ok = results.filter((r) => "ok" in r) as { ok: string }[];
      const failed = results.filter((r) => "code" in r) as { code: grpc.status }[];
      assert.equal(ok.length, 160);
      assert.ok(ok.every((r) => /^v1:\d+$/.test(r.ok)));
      assert.equal(failed.length, 40);
      assert.ok(failed.every((r) => r.code === grpc.status.UNAVAILABLE));
      await waitFor("every line", () => hx.intakeStats().lines >= n);
      const by = Object.fromEntries(hx.measurements.stats("model").map((s) => [s.version, s]));
      assert.equal(by.v1!.requests, 160);
      assert.equal(by.v1!.status["2xx"], 160);
      // UNAVAILABLE arrives as HTTP 200 with grpc-status 14: counted as the 503 it maps to.
      assert.equal(by.v2!.requests, 40);
      assert.equal(by.v2!.status["5xx"], 40);
    } finally {
      client?.close();
      await hx.stop();
      await Promise.all([v1.close(), v2.close()]);
      dir.remove();
    }
  });
});

describe("HaproxyProvider, A/B experiments", skip, () => {
  test("units get their arms by HAProxy's bucket, forced arms are served unexposed, first exposures are logged", async () => {
    const dir = tempDir();
    const [v1, v2] = await Promise.all([startUpstream("v1"), startUpstream("v2")]);
    const exposures: { experiment: string; unit: string; arm: string }[] = [];
    const hx = new HaproxyProvider({
      dataDir: dir.path,
      exposures: {
        async recordExposures(x) {
          exposures.push(...x.map(({ experiment, unit, arm }) => ({ experiment, unit, arm })));
        },
        async recordEvents() {},
      },
    });
    try {
      const port = await freePort();
      const experiment = {
        name: "ranker",
        arms: [
          { name: "control", version: "v1", weight: 50 },
          { name: "treatment", version: "v2", weight: 50 },
        ],
        key: { header: "x-unit" },
        salt: "ranker-salt",
        force: { header: "x-arm" },
      };
      const t = table(
        "ab",
        port,
        [
          { version: "v1", weight: 100, endpoints: [v1.url] },
          { version: "v2", weight: 0, endpoints: [v2.url] },
        ],
        { experiment },
      );
      const [o] = await hx.apply([t]);
      assert.ok(o!.ok, o!.ok ? "" : o!.error.message);
      const armOf = (unit: string) =>
        haproxyBucketOf("ranker-salt", unit, 1) < 500_000 ? "v1" : "v2";
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const seen = new Set<string>();
      for (let i = 0; i < 60; i++) {
        const unit = `unit-${i}`;
        for (let j = 0; j < 2; j++) {
          assert.equal((await get(port, agent, { "x-unit": unit })).servedBy, armOf(unit), unit);
        }
        seen.add(armOf(unit));
      }
      assert.deepEqual([...seen].sort(), ["v1", "v2"]);
      // Forced: served by the arm named, never an exposure.
      assert.equal(
        (await get(port, agent, { "x-unit": "forced-unit", "x-arm": "treatment" })).servedBy,
        "v2",
      );
      // No unit: the split (v1 100 %).
      assert.equal((await get(port, agent)).servedBy, "v1");
      agent.destroy();
      await waitFor("every line", () => hx.intakeStats().lines >= 122);
      await hx.flushMeasurements();
      // One exposure per unit (the second request of each is not a new one), none forced.
      assert.equal(exposures.length, 60);
      assert.ok(exposures.every((x) => x.experiment === "ranker"));
      for (const x of exposures) {
        assert.equal(x.arm, armOf(x.unit) === "v1" ? "control" : "treatment");
      }
      assert.ok(!exposures.some((x) => x.unit === "forced-unit"));
      // An experiment recording response headers is refused, naming the feature and the
      // provider, with the code apply uses for it (core/traffic.ts refuses it there first).
      const [r] = await hx.apply([
        { ...t, revision: 2, experiment: { ...experiment, responseHeaders: ["x-score"] } },
      ]);
      assert.equal(errorOf(r).code, "TURNOUT_ERR_TRAFFIC_UNSUPPORTED");
      assert.match(errorOf(r).message, /A\/B metrics read from response headers.*haproxy provider/);
      assert.equal(hx.inForce().get("ab"), 1);
    } finally {
      await hx.stop();
      await Promise.all([v1.close(), v2.close()]);
      dir.remove();
    }
  });
});

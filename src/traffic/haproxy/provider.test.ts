/**
 * The HAProxy provider against real HAProxy processes and real upstreams: what a table asks for
 * is what requests get, live changes drop no request, a refused config keeps the old one, attach
 * mode changes only its backend, nothing is left running, measurements arrive, gRPC end to end.
 * The shared conformance suite (src/traffic/conformance.ts) covers the contract besides these.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { bucketOf } from "../../core/hashing.js";
import { DEFAULT_TRAFFIC_POLICY, type RouteTable } from "../../core/model.js";
import type { TurnoutError } from "../../errors.js";
import type { TableOutcome } from "../provider.js";
import { HaproxyProvider } from "./provider.js";
import type { RuntimeApi } from "./runtime-api.js";
import {
  freePort,
  needsHaproxy,
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

/** The version the built-in router gives a sticky key (select.ts step 3). */
function routerAssignment(t: RouteTable, key: string): string {
  const b = bucketOf(t.stickiness!.salt, key, t.hashVersion);
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

  test("sticky keys get the built-in router's version; header match, override and preview", async () => {
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
        assert.equal(r.servedBy, routerAssignment(t, key), `key ${key}`);
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
        .find((k) => routerAssignment(t, k) === "v1")!;
      assert.equal((await get(port, agent, { "x-user-id": k1, "x-beta": "yes" })).servedBy, "v2");
      assert.equal((await get(port, agent, { "x-user-id": k1, "x-beta": "no" })).servedBy, "v1");
      // The override names a version; an unknown one is ignored.
      const k2 = [...Array(100).keys()]
        .map((i) => `user-${i}`)
        .find((k) => routerAssignment(t, k) === "v2")!;
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
      // Added: it takes requests.
      assert.ok((await hx.apply([t(2, [v1.url, extra.url])]))[0]!.ok);
      await waitFor("the new instance to serve", () => (l.served.get("v1b") ?? 0) > 20);
      // The first one leaves: drained at once, deleted once it has no connection.
      assert.ok((await hx.apply([t(3, [extra.url])]))[0]!.ok);
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
      assert.ok((await hx.apply([t(4, [extra.url, v1.url])]))[0]!.ok);
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

  test("a structural change (a new preview port) reloads hitlessly under load", async () => {
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
    assert.equal(err.code, "TURNOUT_ERR_HAPROXY_UNSUPPORTED");
    assert.match(err.message, /haproxy provider.*edgeFlags/);
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

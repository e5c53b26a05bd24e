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
import { HaproxyProvider } from "./provider.js";
import { RuntimeApi } from "./runtime-api.js";
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
});

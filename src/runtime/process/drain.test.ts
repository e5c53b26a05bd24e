/**
 * Drain through the whole chain, in one process: a scale-down marks the instance "stopping",
 * the runtime's onChange makes the controller tick, the route table in force in the router no
 * longer has the instance, and only then (drainSeconds later) the instance gets SIGTERM. The
 * request it was serving completes with 200; no request sent after the swap reaches it.
 * Waits are on observable states (outstanding requests, the router's endpoints), not on time.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { type RunningTurnout, startTurnout } from "../../server.js";
import { PortAllocator } from "./ports.js";
import { isRunning } from "./proc.js";

const node = process.execPath;

/** Logs every request with its path, answers /slow after 1.5 s, closes gracefully on SIGTERM. */
const SERVER = `
  const http = require("node:http");
  let closing = false;
  const server = http.createServer((req, res) => {
    if (req.url !== "/healthz") console.log("request " + req.url + " pid=" + process.pid);
    const answer = () => {
      res.writeHead(200, { "content-type": "application/json", ...(closing ? { connection: "close" } : {}) });
      res.end(JSON.stringify({ pid: process.pid, path: req.url }));
    };
    if (req.url === "/slow") setTimeout(answer, 1500); else answer();
  }).listen(Number(process.env.PORT), "127.0.0.1");
  process.on("SIGTERM", () => {
    closing = true;
    console.log("SIGTERM");
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  });
`;

function get(port: number, p: string): Promise<{ status: number; body: { pid: number } }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: p, agent: false }, (res) => {
        let text = "";
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      })
      .on("error", reject);
  });
}

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("drain through controller and router", { timeout: 60_000 }, () => {
  let dir: string;
  let up: RunningTurnout;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "turnout-drain-"));
    up = await startTurnout({ dataDir: dir, port: 0, logger: pino({ level: "silent" }) });
  });
  after(async () => {
    await up?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(`${up.url}${p}`, {
      method,
      headers: {
        authorization: `Bearer ${up.token}`,
        ...(body ? { "content-type": "application/json" } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await res.json()) as any;
    assert.ok(res.status < 400, `${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };

  it("a scale-down drains: in-flight completes, no new request reaches the instance, SIGTERM after drainSeconds", async () => {
    const listen = await new PortAllocator().allocate();
    const service = (replicas: number) => ({
      apiVersion: "turnout.dev/v1",
      kind: "Service",
      metadata: { name: "shop" },
      spec: {
        listen: { port: listen },
        runtime: {
          process: {
            command: [node, "-e", SERVER],
            replicas,
            readiness: { path: "/healthz", periodSeconds: 0.05 },
            drainSeconds: 3,
          },
        },
        version: "v1",
      },
    });
    await call("POST", "/api/v1/apply", service(2));
    await until("two endpoints in force", async () =>
      (await up.router.endpoints("shop")).length === 2 ? true : undefined,
    );
    const status = await call("GET", "/api/v1/services/shop/status");
    const doomed = status.instances.find((i: { index: number }) => i.index === 1);
    // 1. One slow request in flight on each instance (least-request balancing spreads them).
    const slow = [get(listen, "/slow"), get(listen, "/slow")];
    await until("a request in flight on each instance", async () =>
      (await up.router.endpoints("shop")).every((e) => e.outstanding === 1) ? true : undefined,
    );
    // 2. Scale down: instance 1 goes. The table in force drops it while its process still runs.
    await call("POST", "/api/v1/apply", service(1));
    await until("the table without the doomed instance", async () =>
      (await up.router.endpoints("shop")).length === 1 ? true : undefined,
    );
    assert.notEqual((await up.router.endpoints("shop"))[0]!.url, doomed.url);
    // 3. New requests: all answered, none by the draining instance, which still runs.
    for (let n = 0; n < 20; n++) {
      const r = await get(listen, "/work");
      assert.equal(r.status, 200);
      assert.notEqual(r.body.pid, doomed.pid);
    }
    assert.ok(isRunning(doomed.pid), "still running during the drain");
    // 4. The requests in flight complete, one of them on the draining instance.
    const answers = await Promise.all(slow);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200],
    );
    assert.ok(answers.some((a) => a.body.pid === doomed.pid));
    // 5. Then SIGTERM, a clean exit, and the instance is gone.
    const log = await until("the doomed instance's exit logged", () => {
      const text = readFileSync(doomed.logFile, "utf8");
      return /exited with|killed by/.test(text) ? text : undefined;
    });
    assert.ok(!isRunning(doomed.pid));
    assert.deepEqual(
      log.split("\n").filter((l) => l.startsWith("request ")),
      [`request /slow pid=${doomed.pid}`],
      "the only request the doomed instance saw is the one in flight before the scale-down",
    );
    assert.match(log, /SIGTERM\n.*exited with code 0/);
  });
});

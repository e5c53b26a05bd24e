/**
 * The process runtime's lifecycle with real child processes: drain order, liveness restarts,
 * logs and their rotation, and adoption after the parent Turnout was SIGKILLed. Back-off delays
 * run on a fake scheduler, so nothing here sleeps for a restart.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { Clock } from "../../core/clock.js";
import type { ProbeSpec, ProcessRuntimeSpec } from "../../core/model.js";
import { httpGet, waitForInstances } from "../runtime.conformance.js";
import { readServiceLogs } from "./logs.js";
import { PortAllocator } from "./ports.js";
import { isRunning } from "./proc.js";
import { type ProcessInstance, ProcessRuntime } from "./process-runtime.js";

const MODEL_SERVER = fileURLToPath(new URL("../../../examples/model/server.mjs", import.meta.url));
const RUNTIME_MODULE = fileURLToPath(new URL("./process-runtime.ts", import.meta.url));
const node = process.execPath;
const FAST_PROBE: ProbeSpec = {
  path: "/healthz",
  periodSeconds: 0.05,
  timeoutSeconds: 1,
  initialDelaySeconds: 0,
};

function spec(overrides: Partial<ProcessRuntimeSpec> = {}): { process: ProcessRuntimeSpec } {
  return {
    process: {
      command: [node, MODEL_SERVER],
      env: { MODEL_VERSION: "${version}" },
      replicas: 1,
      readiness: FAST_PROBE,
      startupTimeoutSeconds: 10,
      terminationGracePeriodSeconds: 5,
      drainSeconds: 0,
      ...overrides,
    },
  };
}

/** An inline HTTP server for `node -e`: `body(req)` is JS returning [status, jsonValue]. */
function inlineServer(body: string, prelude = ""): string[] {
  return [
    node,
    "-e",
    `${prelude}
     require("node:http").createServer((req, res) => {
       const [status, value] = (${body})(req);
       res.writeHead(status, { "content-type": "application/json", connection: "close" });
       res.end(JSON.stringify(value));
     }).listen(Number(process.env.PORT), "127.0.0.1");`,
  ];
}

class FakeScheduler implements Clock {
  t = 0;
  pending: { fn: () => void; ms: number; at: number }[] = [];
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const h = { fn, ms, at: this.t + ms };
    this.pending.push(h);
    return h;
  }
  clearTimeout(handle: unknown): void {
    this.pending = this.pending.filter((h) => h !== handle);
  }
  fireNext(): number {
    this.pending.sort((a, b) => a.at - b.at);
    const h = this.pending.shift();
    if (!h) assert.fail("no timer pending");
    this.t = Math.max(this.t, h.at);
    h.fn();
    return h.ms;
  }
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const gone = (pid: number) => !isRunning(pid);
const ready = (rt: ProcessRuntime, n: number, version = "v1", service = "svc") =>
  waitForInstances(
    rt,
    service,
    (l) => l.filter((i) => i.version === version && i.state === "ready").length === n,
    `${n} ready`,
  ) as Promise<ProcessInstance[]>;

let root: string;
let dirs = 0;
const freshDir = () => path.join(root, `d${dirs++}`);
before(() => {
  root = mkdtempSync(path.join(tmpdir(), "turnout-lifecycle-"));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

describe("ProcessRuntime lifecycle", { timeout: 30_000 }, () => {
  it("drains on scale-down: unlisted at once, in-flight request completes with 200, SIGTERM only after drainSeconds", async () => {
    const dataDir = freshDir();
    const rt = new ProcessRuntime({ dataDir });
    try {
      const s = spec({
        replicas: 2,
        drainSeconds: 0.5,
        env: { MODEL_VERSION: "${version}", LATENCY_MS: "700", LOG_REQUESTS: "1" },
      });
      await rt.ensure("svc", s, [{ version: "v1", replicas: 2 }]);
      const [, doomed] = await ready(rt, 2);
      // A request in flight to the instance that is about to go (it answers after 700 ms).
      const t0 = Date.now();
      const inFlight = httpGet(`${doomed!.url}/`);
      await until("the request in the handler", () =>
        readFileSync(doomed!.logFile!, "utf8").includes("request GET /"),
      );
      let changed = 0;
      const off = rt.onChange(() => changed++);
      await rt.ensure("svc", s, [{ version: "v1", replicas: 1 }]);
      // 1. Not ready any more the moment ensure returns, and the controller was told, so its next
      //    route table leaves the instance out.
      const now = rt.instances("svc").find((i) => i.id === doomed!.id);
      assert.equal(now?.state, "stopping");
      assert.match(now?.message ?? "", /draining for 0.5s/);
      assert.ok(changed > 0, "onChange fired");
      off();
      // 2. During the drain it still serves (a router with the previous table gets answers).
      const late = await httpGet(`${doomed!.url}/healthz`);
      assert.equal(late.status, 200);
      // 3. The request in flight completes.
      const res = await inFlight;
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).version, "v1");
      await waitForInstances(rt, "svc", (l) => l.length === 1, "scaled to 1");
      // 4. SIGTERM came after the drain, and the server exited 0 by itself.
      const log = readFileSync(doomed!.logFile!, "utf8");
      assert.match(log, /got SIGTERM, closing/);
      assert.match(log, /exited with code 0/);
      assert.ok(Date.now() - t0 >= 500, "not stopped before drainSeconds");
      assert.ok(gone(doomed!.pid!));
    } finally {
      await rt.shutdown();
    }
  });

  it("stop order: drain, then SIGTERM to the group, then SIGKILL after the grace period", async () => {
    const dataDir = freshDir();
    const rt = new ProcessRuntime({ dataDir });
    try {
      const command = inlineServer(
        "() => [200, { ok: true }]",
        `process.on("SIGTERM", () => console.log("TERM at " + Date.now()));`,
      );
      await rt.ensure(
        "svc",
        spec({ command, drainSeconds: 0.3, terminationGracePeriodSeconds: 0.4 }),
        [{ version: "v1", replicas: 1 }],
      );
      const [i] = await ready(rt, 1);
      const t0 = Date.now();
      await rt.remove("svc");
      const t1 = Date.now();
      const log = readFileSync(i!.logFile!, "utf8");
      const term = Number(/TERM at (\d+)/.exec(log)?.[1]);
      assert.ok(term - t0 >= 290, `SIGTERM ${term - t0}ms after the stop began, before the drain`);
      assert.match(log, /killed by SIGKILL/);
      // The kill timer starts when SIGTERM is sent (the child may log it a little later).
      assert.ok(t1 - t0 >= 690, `stopped after ${t1 - t0}ms, before drain + grace period`);
      assert.ok(t1 >= term, "SIGKILL after SIGTERM");
      assert.ok(gone(i!.pid!));
    } finally {
      await rt.shutdown();
    }
  });

  it("restarts an instance that fails its liveness probe, and counts the restart", async () => {
    const sched = new FakeScheduler();
    const marker = path.join(root, "liveness-marker");
    // The first process stops being alive after it was ready; its restart is healthy.
    const command = inlineServer(
      `(req) => req.url === "/live" && first && Date.now() - t0 > 200 ? [500, { alive: false }] : [200, { ok: true }]`,
      `const fs = require("node:fs"); const first = !fs.existsSync(${JSON.stringify(marker)});
       fs.writeFileSync(${JSON.stringify(marker)}, "x"); const t0 = Date.now();`,
    );
    const rt = new ProcessRuntime({ dataDir: freshDir(), clock: sched });
    try {
      await rt.ensure(
        "svc",
        spec({
          command,
          liveness: { path: "/live", periodSeconds: 0.05, timeoutSeconds: 1, failureThreshold: 2 },
        }),
        [{ version: "v1", replicas: 1 }],
      );
      const [first] = await ready(rt, 1);
      const [restarting] = await waitForInstances(
        rt,
        "svc",
        () => sched.pending.length === 1,
        "liveness restart scheduled",
      );
      assert.equal(restarting!.state, "starting", "one liveness restart is not a failure");
      assert.match(restarting!.lastExit!, /^liveness probe failed 2 times \(HTTP 500\)$/);
      assert.ok(gone(first!.pid!), "the unhealthy process is gone");
      assert.equal(sched.fireNext(), 1000);
      const [again] = await ready(rt, 1);
      assert.equal(again!.restarts, 1);
      assert.notEqual(again!.pid, first!.pid);
      assert.equal(again!.port, first!.port, "a restart keeps the instance's port");
    } finally {
      await rt.shutdown();
    }
  });

  it("keeps probing readiness after ready: 3 failures in a row take it out of traffic, a pass brings it back, nothing restarts", async () => {
    const sick = path.join(root, "readiness-sick");
    const command = inlineServer(
      `() => require("node:fs").existsSync(${JSON.stringify(sick)}) ? [503, { ok: false }] : [200, { ok: true }]`,
    );
    const sched = new FakeScheduler();
    const rt = new ProcessRuntime({ clock: sched });
    try {
      await rt.ensure("svc", spec({ command }), [{ version: "v1", replicas: 1 }]);
      const [before] = await ready(rt, 1);
      writeFileSync(sick, "x");
      const [unready] = await waitForInstances(
        rt,
        "svc",
        (l) => l[0]?.state === "starting",
        "out of traffic",
      );
      assert.match(
        unready!.message!,
        /^not ready: readiness probe failed 3 times in a row \(HTTP 503\)$/,
      );
      rmSync(sick);
      const [back] = await ready(rt, 1);
      assert.equal(back!.pid, before!.pid, "the same process: readiness never restarts");
      assert.equal(back!.restarts, 0);
      assert.equal(sched.pending.length, 0);
    } finally {
      rmSync(sick, { force: true });
      await rt.shutdown();
    }
  });

  it("keeps each instance's output in its log file, rotates it by size, and reads it back (tail, follow)", async () => {
    const dataDir = freshDir();
    const rt = new ProcessRuntime({ dataDir, logCheckIntervalMs: 20 });
    const command = inlineServer(
      "() => [200, { ok: true }]",
      `let n = 0; setInterval(() => { n++; console.log("line " + n + " " + "x".repeat(80));
         if (n % 10 === 0) console.error("err " + n); }, 2);`,
    );
    try {
      await rt.ensure("svc", spec({ command, logs: { maxBytes: 4096, maxFiles: 3 } }), [
        { version: "v1", replicas: 1 },
      ]);
      const [i] = await ready(rt, 1);
      const file = i!.logFile!;
      assert.equal(file, path.join(dataDir, "logs", "svc", "v1-0.log"));
      await until("two rotations", () => existsSync(`${file}.2`));
      // Bounded: maxFiles files at most, each near maxBytes (one check interval of output over).
      assert.ok(!existsSync(`${file}.3`));
      assert.ok(statSync(`${file}.1`).size < 4096 + 64 * 1024);
      const [tail] = readServiceLogs(dataDir, "svc", { version: "v1", tail: 5 });
      assert.equal(tail!.lines.length, 5);
      assert.ok(tail!.lines.every((l) => /^(line|err) \d+/.test(l)));
      assert.ok(tail!.lines.some((l) => l.startsWith("line")));
      // Follow: from the returned offset, later lines only, each line whole.
      let next: ReturnType<typeof readServiceLogs>[number] | undefined;
      await until("newer lines", () => {
        [next] = readServiceLogs(dataDir, "svc", { from: tail!.offset });
        return next!.lines.length > 0;
      });
      const lastNum = (l: string) => Number(/^(?:line|err) (\d+)/.exec(l)?.[1]);
      const lastTail = lastNum(tail!.lines.filter((l) => l.startsWith("line")).at(-1)!);
      const firstNext = next!.lines.find((l) => l.startsWith("line"));
      if (firstNext) assert.ok(lastNum(firstNext) > lastTail, "follow returns only newer lines");
      assert.deepEqual(readServiceLogs(dataDir, "svc", { version: "v9" }), []);
      assert.deepEqual(readServiceLogs(dataDir, "nobody"), []);
    } finally {
      await rt.shutdown();
    }
    // Kept after the instance stopped, with the runtime's own lines.
    const [kept] = readServiceLogs(dataDir, "svc", { tail: 1 });
    assert.match(
      kept!.lines[0]!,
      /^--- turnout: .* svc\/v1\/0 (killed by SIGTERM|exited with code)/,
    );
  });
});

/**
 * Adoption: a Node process runs a ProcessRuntime on a data dir and is SIGKILLed (no exit hook
 * runs, its instances live on); a new runtime on the same data dir adopts them.
 */
describe("ProcessRuntime adoption after a SIGKILL of its parent", { timeout: 30_000 }, () => {
  const driver = (dataDir: string) => `
    import { ProcessRuntime } from ${JSON.stringify(RUNTIME_MODULE)};
    const rt = new ProcessRuntime({ dataDir: ${JSON.stringify(dataDir)} });
    await rt.ensure("svc", ${JSON.stringify(spec())}, [{ version: "v1", replicas: 3 }]);
    await new Promise((resolve) => {
      const check = () => {
        if (rt.instances("svc").filter((i) => i.state === "ready").length === 3) resolve();
      };
      rt.onChange(check);
      check();
    });
    console.log(JSON.stringify(rt.instances("svc").map((i) => ({ pid: i.pid, port: i.port, id: i.id }))));
    setInterval(() => {}, 1000);
  `;

  it("adopts live instances (same pid, port reserved, re-probed), replaces dead ones, and leaves nothing after shutdown", async () => {
    const dataDir = freshDir();
    const child = spawn(node, ["--import", "tsx", "--input-type=module", "-e", driver(dataDir)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    await until("the driver's instances", () => out.includes("\n"), 20_000);
    const before = JSON.parse(out.trim()) as { pid: number; port: number; id: string }[];
    assert.equal(before.length, 3);
    // 1. SIGKILL: no hook runs; the instances survive their parent.
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    for (const b of before) assert.ok(isRunning(b.pid), `${b.id} survived`);
    // One of them dies while no Turnout runs.
    const dead = before[1]!;
    process.kill(-dead.pid, "SIGKILL");
    await until("instance 1 gone", () => gone(dead.pid));

    // 2. A new runtime on the same data dir adopts the two live ones, ready after one probe.
    const ports = new PortAllocator();
    const rt = new ProcessRuntime({ dataDir, ports });
    try {
      await rt.adopted;
      const adopted = rt.instances("svc");
      assert.deepEqual(
        adopted.map((i) => [i.id, i.state, i.pid, i.port, i.adopted]),
        [before[0]!, before[2]!].map((b) => [b.id, "ready", b.pid, b.port, true]),
      );
      assert.deepEqual(rt.serviceNames(), ["svc"]);
      for (const b of [before[0]!, before[2]!])
        assert.equal(ports.reserve(b.port), false, `port ${b.port} of ${b.id} stays reserved`);
      // 3. ensure keeps them and starts only the missing index, on another port.
      await rt.ensure("svc", spec(), [{ version: "v1", replicas: 3 }]);
      const list = await ready(rt, 3);
      assert.deepEqual(
        list.map((i) => i.pid),
        [before[0]!.pid, list[1]!.pid, before[2]!.pid],
      );
      assert.equal(new Set(list.map((i) => i.port)).size, 3, "no duplicate ports");
      assert.ok(!adopted.some((a) => a.port === list[1]!.port));
      // The adopted one still answers as before.
      const res = await httpGet(`${list[0]!.url}/`);
      assert.equal(JSON.parse(res.body).pid, before[0]!.pid);
      // 4. An adopted instance that dies is noticed (no exit event: polling) and restarted.
      process.kill(-before[2]!.pid, "SIGKILL");
      const [, , restarted] = await waitForInstances(
        rt,
        "svc",
        (l) => l[2]?.lastExit !== undefined,
        "adopted death noticed",
      );
      assert.match(restarted!.lastExit!, /adopted: exit status unknown/);
    } finally {
      await rt.shutdown();
    }
    // 5. Nothing left, and nothing recorded to adopt next time.
    for (const b of before) await until(`${b.id} gone`, () => gone(b.pid));
    const file = JSON.parse(readFileSync(path.join(dataDir, "runtime", "instances.json"), "utf8"));
    assert.deepEqual(file.instances, []);
  });

  it("does not adopt or signal a recorded pid that now belongs to another process", async () => {
    const dataDir = freshDir();
    const { InstancesFile } = await import("./instances-file.js");
    // This test's own process stands in for "another program that got the pid".
    new InstancesFile(dataDir).write([
      {
        service: "svc",
        version: "v1",
        index: 0,
        port: 1,
        pid: process.pid,
        startTicks: "1",
        startedAt: 0,
        restarts: 0,
        launch: {
          argv: ["x"],
          cwd: "/",
          env: {},
          readiness: FAST_PROBE,
          startupTimeoutMs: 1000,
          graceMs: 1000,
          drainMs: 0,
          restart: {
            initialBackoffSeconds: 1,
            maxBackoffSeconds: 1,
            resetAfterSeconds: 1,
            failureThreshold: 1,
          },
          logs: { maxBytes: 1024, maxFiles: 1 },
        },
      },
    ]);
    const rt = new ProcessRuntime({ dataDir });
    await rt.adopted;
    assert.deepEqual(rt.instances("svc"), []);
    await rt.shutdown();
  });
});

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { Clock } from "../../core/clock.js";
import type { ProbeSpec, ProcessRuntimeSpec } from "../../core/model.js";
import { describeRuntimeConformance, httpGet, waitForInstances } from "../runtime.conformance.js";
import type { Instance } from "../runtime.js";
import { PortAllocator } from "./ports.js";
import { type ProcessInstance, ProcessRuntime, template } from "./process-runtime.js";

const MODEL_SERVER = fileURLToPath(new URL("../../../examples/model/server.mjs", import.meta.url));
const RUNTIME_MODULE = fileURLToPath(new URL("./process-runtime.ts", import.meta.url));
const node = process.execPath;
const FAST_PROBE: ProbeSpec = {
  path: "/healthz",
  periodSeconds: 0.05,
  timeoutSeconds: 1,
  initialDelaySeconds: 0,
};

function processSpec(overrides: Partial<ProcessRuntimeSpec> = {}): { process: ProcessRuntimeSpec } {
  return {
    process: {
      command: [node, MODEL_SERVER],
      env: { MODEL_VERSION: "${version}" },
      replicas: 1,
      readiness: FAST_PROBE,
      startupTimeoutSeconds: 10,
      terminationGracePeriodSeconds: 5,
      // Short but not zero: stops of ready instances go through the drain path.
      drainSeconds: 0.1,
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

/**
 * True once `pid` runs no more. A killed process whose parent is gone is reparented to init and
 * stays a zombie until init reaps it; some container inits never do. A zombie runs no code and
 * holds no port, so it counts as gone.
 */
function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return true;
    throw err;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

async function waitGone(pid: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!isGone(pid)) {
    if (Date.now() > deadline) assert.fail(`process ${pid} still alive after ${timeoutMs}ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Restart back-off in scheduler time: nothing fires until the test says so. */
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
  /** Moves time to the earliest timer and runs it; returns its delay. */
  fireNext(): number {
    this.pending.sort((a, b) => a.at - b.at);
    const h = this.pending.shift();
    if (!h) assert.fail("no timer pending");
    this.t = Math.max(this.t, h.at);
    h.fn();
    return h.ms;
  }
}

const one = (version = "v1") => [{ version, replicas: 1 }];
const readyOne = (rt: ProcessRuntime, service = "svc") =>
  waitForInstances(
    rt,
    service,
    (l) => l.length === 1 && l[0]!.state === "ready",
    "one ready instance",
  ).then((l) => l[0] as ProcessInstance);

let dataRoot: string;
before(() => {
  dataRoot = mkdtempSync(path.join(tmpdir(), "turnout-process-runtime-"));
});
after(() => {
  rmSync(dataRoot, { recursive: true, force: true });
});
let dirs = 0;
const freshDataDir = () => path.join(dataRoot, `d${dirs++}`);

describeRuntimeConformance("process", () => ({
  runtime: new ProcessRuntime({ dataDir: freshDataDir() }),
  spec: () => processSpec(),
  cleanup: async () => {},
}));

describe("ProcessRuntime", { timeout: 20_000 }, () => {
  it("templates ${version}, ${port} and ${instance} in argv and env, sets PORT, uses cwd and per-version overrides", async () => {
    const rt = new ProcessRuntime();
    const cwd = path.relative(process.cwd(), dataRoot) || ".";
    const echo = inlineServer(
      `() => [200, { argv: process.argv.slice(1), port: process.env.PORT, greeting: process.env.GREETING,
          raw: process.env.RAW, extra: process.env.EXTRA, cwd: process.cwd() }]`,
    );
    try {
      await rt.ensure(
        "svc",
        processSpec({
          command: [...echo, "${version}", "port=${port}", "${instance}"],
          cwd,
          env: { GREETING: "hello-${version}-${instance}", RAW: "${HOME} $port", EXTRA: "base" },
          readiness: { ...FAST_PROBE, path: "/" },
          versions: {
            v1: { env: { EXTRA: "v1-only" } },
            v2: {
              command: [node, MODEL_SERVER],
              env: { MODEL_VERSION: "model-${version}-${port}" },
            },
          },
        }),
        [
          { version: "v1", replicas: 1 },
          { version: "v2", replicas: 1 },
        ],
      );
      const list = (await waitForInstances(
        rt,
        "svc",
        (l) => l.length === 2 && l.every((i) => i.state === "ready"),
        "ready",
      )) as ProcessInstance[];
      const [v1, v2] = list as [ProcessInstance, ProcessInstance];
      const echoed = JSON.parse((await httpGet(`${v1.url}/`)).body);
      assert.deepEqual(echoed, {
        argv: ["v1", `port=${v1.port}`, "0"],
        port: String(v1.port),
        greeting: "hello-v1-0",
        raw: "${HOME} $port",
        extra: "v1-only",
        cwd: realpathSync(dataRoot),
      });
      const model = JSON.parse((await httpGet(`${v2.url}/`)).body);
      assert.deepEqual(model, { version: `model-v2-${v2.port}`, port: v2.port, pid: v2.pid });
    } finally {
      await rt.shutdown();
    }
  });

  it("stays starting until the readiness probe passes (READY_AFTER_MS)", async () => {
    const rt = new ProcessRuntime();
    try {
      const t0 = Date.now();
      await rt.ensure(
        "svc",
        processSpec({ env: { MODEL_VERSION: "v1", READY_AFTER_MS: "600" } }),
        one(),
      );
      // The probe has answered 503 at least once while the model "loads".
      await waitForInstances(
        rt,
        "svc",
        (l) => l[0]?.state === "starting" && /HTTP 503/.test(l[0].message ?? ""),
        "a 503 probe",
      );
      await readyOne(rt);
      assert.ok(Date.now() - t0 >= 600, `ready after ${Date.now() - t0}ms, before READY_AFTER_MS`);
      assert.equal(rt.instances("svc")[0]!.message, undefined);
    } finally {
      await rt.shutdown();
    }
  });

  it("marks an instance failed when it is not ready within startupTimeoutSeconds, and stops its process", async () => {
    const sched = new FakeScheduler();
    const rt = new ProcessRuntime({ clock: sched });
    try {
      const t0 = Date.now();
      await rt.ensure(
        "svc",
        processSpec({
          command: inlineServer("() => [503, { ok: false }]"),
          startupTimeoutSeconds: 1,
        }),
        one(),
      );
      const pid = (rt.instances("svc")[0] as ProcessInstance).pid!;
      const [failed] = await waitForInstances(rt, "svc", (l) => l[0]?.state === "failed", "failed");
      // A few ms of slack: Node timers may fire a hair before the ms Date.now() reports.
      assert.ok(Date.now() - t0 >= 990, "not before the startup timeout");
      assert.match(failed!.message!, /not ready within 1s \(readiness probe: HTTP 503\)/);
      await waitGone(pid);
      await waitForInstances(rt, "svc", () => sched.pending.length === 1, "a restart scheduled");
      // Kept listed as failed, so the controller can see why, while its restart waits out the
      // back-off (the fake scheduler never fires it here).
      await rt.ensure("svc", processSpec({ startupTimeoutSeconds: 1 }), one());
      assert.deepEqual(
        rt.instances("svc").map((i) => [i.id, i.state, i.restarts]),
        [["svc/v1/0", "failed", 0]],
      );
      assert.deepEqual(
        sched.pending.map((t) => t.ms),
        [1000],
      );
      assert.match(rt.instances("svc")[0]!.lastExit!, /^not ready within 1s/);
    } finally {
      await rt.shutdown();
    }
  });

  it("restarts a crashed instance with exponential back-off, and reports it failed after failureThreshold crashes in a row", async () => {
    const sched = new FakeScheduler();
    const rt = new ProcessRuntime({ dataDir: freshDataDir(), clock: sched });
    try {
      const spec = processSpec({
        command: [node, "-e", "process.exit(3)"],
        restartPolicy: { initialBackoffSeconds: 1, maxBackoffSeconds: 4, failureThreshold: 3 },
      });
      await rt.ensure("svc", spec, one());
      // A crash schedules exactly one restart; firing it spawns (pending 0) until the next crash.
      const crash = (what: string) =>
        waitForInstances(rt, "svc", () => sched.pending.length === 1, what);
      // 1. The first crash: restarting, not failed (one crash during start-up is not a verdict).
      let [i] = await crash("crash 1");
      assert.equal(i!.state, "starting");
      assert.match(i!.message!, /^process exited with code 3; restart in 1s; log: .*v1-0\.log$/);
      assert.equal(i!.lastExit, "process exited with code 3");
      assert.equal(i!.restarts, 0);
      // 2. Delays double: 1 s, 2 s, then capped at 4 s; restarts are counted.
      const delays: number[] = [];
      for (let n = 2; n <= 4; n++) {
        delays.push(sched.fireNext());
        await crash(`crash ${n}`);
      }
      delays.push(sched.pending[0]!.ms);
      assert.deepEqual(delays, [1000, 2000, 4000, 4000]);
      [i] = rt.instances("svc");
      assert.equal(i!.restarts, 3);
      // 3. failureThreshold (3) crashes in a row without being ready: failed, still restarting.
      assert.equal(i!.state, "failed");
      assert.match(i!.message!, /crash loop: 4 in a row\); restart in 4s/);
      // Dropping the version forgets the failed instance and cancels its restart.
      await rt.ensure("svc", spec, []);
      await waitForInstances(rt, "svc", (l) => l.length === 0, "no instances");
      assert.equal(sched.pending.length, 0);
    } finally {
      await rt.shutdown();
    }
  });

  it("resets the back-off after a run of resetAfterSeconds, and a restart that becomes ready is ready again", async () => {
    const sched = new FakeScheduler();
    const dataDir = freshDataDir();
    const marker = path.join(dataRoot, `crash-once-${dirs}`);
    // Crashes on its first start only (the marker file remembers), then serves.
    const command = inlineServer(
      "() => [200, { ok: true }]",
      `const fs = require("node:fs"); if (!fs.existsSync(${JSON.stringify(marker)})) {
         fs.writeFileSync(${JSON.stringify(marker)}, "x"); process.exit(7); }`,
    );
    const rt = new ProcessRuntime({ dataDir, clock: sched });
    try {
      await rt.ensure(
        "svc",
        processSpec({ command, restartPolicy: { resetAfterSeconds: 10 } }),
        one(),
      );
      await waitForInstances(rt, "svc", () => sched.pending.length === 1, "crash");
      assert.equal(sched.fireNext(), 1000);
      const ready = await readyOne(rt);
      assert.equal(ready.restarts, 1);
      assert.equal(ready.lastExit, "process exited with code 7");
      // Ran 20 s (scheduler time) then crashed: the next delay is back to 1 s.
      sched.t += 20_000;
      process.kill(ready.pid!, "SIGKILL");
      const [i] = await waitForInstances(rt, "svc", () => sched.pending.length === 1, "crash 2");
      assert.equal(sched.pending[0]!.ms, 1000);
      assert.equal(i!.state, "starting", "one crash after being ready is not a failure");
      assert.equal(i!.lastExit, "process killed by SIGKILL");
    } finally {
      await rt.shutdown();
    }
  });

  it("marks an instance failed at once when its command cannot start", async () => {
    const rt = new ProcessRuntime({ clock: new FakeScheduler() });
    try {
      await rt.ensure(
        "svc",
        processSpec({ command: [path.join(dataRoot, "no-such-binary")] }),
        one(),
      );
      const [i] = await waitForInstances(rt, "svc", (l) => l[0]?.state === "failed", "failed");
      assert.match(i!.message!, /^could not start: .*ENOENT.*; restart in 1s$/);
      await rt.ensure("svc", processSpec({ cwd: path.join(dataRoot, "no-such-dir") }), one("v2"));
      const [j] = await waitForInstances(
        rt,
        "svc",
        (l) => l[0]?.state === "failed" && l[0].version === "v2",
        "v2 failed",
      );
      assert.match(
        j!.message!,
        /^could not start: cwd .*no-such-dir is not a directory; restart in 1s$/,
      );
    } finally {
      await rt.shutdown();
    }
  });

  it("SIGKILLs an instance that ignores SIGTERM after terminationGracePeriodSeconds", async () => {
    const dataDir = freshDataDir();
    const rt = new ProcessRuntime({ dataDir });
    try {
      const command = inlineServer("() => [200, { ok: true }]", `process.on("SIGTERM", () => {});`);
      await rt.ensure("svc", processSpec({ command, terminationGracePeriodSeconds: 0.5 }), one());
      const { pid, logFile } = await readyOne(rt);
      let sawStopping = false;
      const off = rt.onChange(() => {
        if (rt.instances("svc")[0]?.state === "stopping") sawStopping = true;
      });
      const t0 = Date.now();
      await rt.remove("svc");
      off();
      const took = Date.now() - t0;
      assert.ok(sawStopping, "marked stopping first, so the router drops it");
      assert.ok(took >= 490 && took < 4000, `stopped after ${took}ms`);
      await waitGone(pid!);
      assert.match(readFileSync(logFile!, "utf8"), /svc\/v1\/0 killed by SIGKILL/);
    } finally {
      await rt.shutdown();
    }
  });

  it("kills the whole process group: a grandchild that ignores SIGTERM goes too", async () => {
    const rt = new ProcessRuntime();
    try {
      const command = inlineServer(
        "() => [200, { grandchild: grandchild.pid }]",
        `const grandchild = require("node:child_process").spawn(process.execPath,
           ["-e", "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"], { stdio: "ignore" });`,
      );
      await rt.ensure("svc", processSpec({ command, terminationGracePeriodSeconds: 5 }), one());
      const { url, pid } = await readyOne(rt);
      const { grandchild } = JSON.parse((await httpGet(`${url}/`)).body) as { grandchild: number };
      assert.ok(!isGone(grandchild));
      const t0 = Date.now();
      await rt.remove("svc");
      // The leader exits on SIGTERM; the runtime then kills what is left of its group at once
      // instead of waiting out the 5 s grace period.
      assert.ok(Date.now() - t0 < 4000);
      await waitGone(pid!);
      await waitGone(grandchild);
    } finally {
      await rt.shutdown();
    }
  });

  it("never gives two instances the same port, across services and runtimes", async () => {
    const a = new ProcessRuntime();
    const b = new ProcessRuntime();
    try {
      const spec = processSpec();
      await Promise.all([
        a.ensure("s1", spec, [{ version: "v1", replicas: 3 }]),
        a.ensure("s2", spec, [{ version: "v1", replicas: 2 }]),
        b.ensure("s1", spec, [{ version: "v1", replicas: 3 }]),
      ]);
      const ports = [...a.instances("s1"), ...a.instances("s2"), ...b.instances("s1")].map(
        (i) => i.port,
      );
      assert.equal(ports.length, 8);
      assert.equal(new Set(ports).size, 8, `ports: ${ports.join(",")}`);
    } finally {
      await Promise.all([a.shutdown(), b.shutdown()]);
    }
    const alloc = new PortAllocator();
    const many = await Promise.all(Array.from({ length: 100 }, () => alloc.allocate()));
    assert.equal(new Set(many).size, 100);
  });

  it("writes each instance's output to <dataDir>/logs/<service>/<version>-<i>.log", async () => {
    const dataDir = freshDataDir();
    const rt = new ProcessRuntime({ dataDir });
    try {
      await rt.ensure("svc", processSpec(), [{ version: "v1", replicas: 2 }]);
      await waitForInstances(
        rt,
        "svc",
        (l) => l.length === 2 && l.every((i) => i.state === "ready"),
        "ready",
      );
      const file = (i: number) => path.join(dataDir, "logs", "svc", `v1-${i}.log`);
      assert.equal((rt.instances("svc")[1] as ProcessInstance).logFile, path.resolve(file(1)));
      await rt.remove("svc");
      for (const i of [0, 1]) {
        const log = readFileSync(file(i), "utf8");
        assert.match(log, /^--- turnout: .* starting svc\/v1\/\d on port \d+/);
        assert.match(log, /model server version=v1 listening on/);
        assert.match(log, /got SIGTERM, closing/);
        assert.match(log, /svc\/v1\/\d exited with code 0\n$/);
      }
    } finally {
      await rt.shutdown();
    }
  });

  it("scales down highest index first and up at the lowest free index", async () => {
    const rt = new ProcessRuntime();
    const ids = () => rt.instances("svc").map((i) => i.id);
    const live = (l: Instance[]) => l.filter((i) => i.state !== "stopping");
    try {
      const spec = processSpec();
      await rt.ensure("svc", spec, [{ version: "v1", replicas: 3 }]);
      assert.deepEqual(ids(), ["svc/v1/0", "svc/v1/1", "svc/v1/2"]);
      await rt.ensure("svc", spec, [{ version: "v1", replicas: 1 }]);
      assert.deepEqual(
        rt.instances("svc").map((i) => [i.id, i.state === "stopping"]),
        [
          ["svc/v1/0", false],
          ["svc/v1/1", true],
          ["svc/v1/2", true],
        ],
      );
      await waitForInstances(rt, "svc", (l) => l.length === 1, "scaled down");
      await rt.ensure("svc", spec, [{ version: "v1", replicas: 2 }]);
      assert.deepEqual(
        live(rt.instances("svc")).map((i) => i.id),
        ["svc/v1/0", "svc/v1/1"],
      );
    } finally {
      await rt.shutdown();
    }
  });

  it("shutdown() during a first ensure still stops what that ensure starts", async () => {
    const rt = new ProcessRuntime();
    const ensuring = rt.ensure("svc", processSpec(), one());
    const shutting = rt.shutdown();
    await ensuring;
    const pid = (rt.instances("svc")[0] as ProcessInstance | undefined)?.pid;
    assert.ok(pid !== undefined, "the ensure ran before the shutdown");
    await shutting;
    assert.deepEqual(rt.instances("svc"), []);
    await waitGone(pid);
  });

  it("refuses to ensure after shutdown and rejects a static spec", async () => {
    const rt = new ProcessRuntime();
    await assert.rejects(
      rt.ensure("svc", { static: { versions: {} } }, []),
      /no process runtime spec/,
    );
    await rt.shutdown();
    await assert.rejects(rt.ensure("svc", processSpec(), one()), /after shutdown/);
  });

  it("template() replaces only the three known names", () => {
    assert.equal(
      template("${version}:${port}:${instance}:${other}:$version", {
        version: "v1",
        port: "80",
        instance: "2",
      }),
      "v1:80:2:${other}:$version",
    );
  });
});

/**
 * No orphans when Turnout's process ends. These run a separate Node process (through tsx, like
 * this test) that starts one instance and then ends in one of three ways: process.exit() and an
 * uncaught exception skip `shutdown()`, so the exit hook must SIGKILL the instance; after
 * `shutdown()` the event loop must run dry by itself (no timer or handle left behind).
 */
describe("ProcessRuntime in a Node process that ends", { timeout: 20_000 }, () => {
  type Ending = "exit" | "crash" | "shutdown";
  const driver = (ending: Ending) => `
    import { ProcessRuntime } from ${JSON.stringify(RUNTIME_MODULE)};
    const rt = new ProcessRuntime();
    await rt.ensure("svc", ${JSON.stringify(processSpec())}, [{ version: "v1", replicas: 1 }]);
    await new Promise((resolve) => {
      const off = rt.onChange(() => {
        if (rt.instances("svc")[0]?.state === "ready") { off(); resolve(); }
      });
    });
    console.log(JSON.stringify({ pid: rt.instances("svc")[0].pid }));
    ${{ exit: "process.exit(0);", crash: 'throw new Error("boom");', shutdown: "await rt.shutdown();" }[ending]}
  `;

  async function runDriver(ending: Ending): Promise<{ code: number | null; pid: number }> {
    const child = spawn(node, ["--import", "tsx", "--input-type=module", "-e", driver(ending)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`driver (${ending}) did not exit within 10s; stdout: ${out}`));
      }, 10_000);
      child.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    const line = out.trim().split("\n").pop() ?? "";
    return { code, pid: (JSON.parse(line) as { pid: number }).pid };
  }

  for (const [ending, exitCode] of [
    ["exit", 0],
    ["crash", 1],
    ["shutdown", 0],
  ] as const) {
    it(`leaves no instance process behind after ${ending}`, async () => {
      const { code, pid } = await runDriver(ending);
      assert.equal(code, exitCode);
      await waitGone(pid);
    });
  }
});

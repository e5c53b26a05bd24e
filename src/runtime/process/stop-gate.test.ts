/**
 * The process runtime's side of DESIGN invariant 9: the stop of an instance that served asks
 * the installed gate and sends no signal before the gate resolves, however long that takes
 * (there is no fixed drain in between any more); an instance that never served, and
 * `shutdown()`, do not ask. Real child processes (one that exits at once on SIGTERM, so a
 * signal sent too early would show as a dead process), waits on observable states.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { ProcessRuntimeSpec } from "../../core/model.js";
import { waitForInstances } from "../runtime.conformance.js";
import type { StoppingInstance } from "../runtime.js";
import { PortAllocator } from "./ports.js";
import { isRunning } from "./proc.js";
import { type ProcessInstance, ProcessRuntime } from "./process-runtime.js";

const ABRUPT = [
  process.execPath,
  "-e",
  `require("node:http").createServer((req, res) => res.end("ok"))
     .listen(Number(process.env.PORT), "127.0.0.1");
   process.on("SIGTERM", () => process.exit(0));`,
];

function spec(overrides: Partial<ProcessRuntimeSpec> = {}): { process: ProcessRuntimeSpec } {
  return {
    process: {
      command: ABRUPT,
      replicas: 1,
      readiness: { path: "/", periodSeconds: 0.05, timeoutSeconds: 1, initialDelaySeconds: 0 },
      startupTimeoutSeconds: 10,
      terminationGracePeriodSeconds: 5,
      drainSeconds: 0,
      ...overrides,
    },
  };
}

/** A gate the test opens by hand. */
function manualGate() {
  const asked: StoppingInstance[] = [];
  const opens: (() => void)[] = [];
  let notify: (() => void) | null = null;
  return {
    asked,
    gate: (i: StoppingInstance) =>
      new Promise<void>((resolve) => {
        asked.push(i);
        opens.push(resolve);
        notify?.();
      }),
    whenAsked: (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (asked.length >= n) resolve();
        };
        notify = check;
        check();
      }),
    open: () => {
      for (const o of opens.splice(0)) o();
    },
  };
}

describe("process runtime: stops wait on the stop gate", () => {
  const runtimes: ProcessRuntime[] = [];
  const fresh = () => {
    const r = new ProcessRuntime({ ports: new PortAllocator() });
    runtimes.push(r);
    return r;
  };
  after(async () => {
    for (const r of runtimes) await r.shutdown();
  });

  it("an instance that served is signalled only after the gate resolves", async () => {
    const runtime = fresh();
    const g = manualGate();
    runtime.setStopGate(g.gate);
    await runtime.ensure("web", spec(), [{ version: "v1", replicas: 1 }]);
    const [ready] = (await waitForInstances(
      runtime,
      "web",
      (l) => l[0]?.state === "ready",
      "v1 ready",
    )) as ProcessInstance[];
    const pid = ready!.pid!;

    await runtime.ensure("web", spec(), []);
    await g.whenAsked(1);
    assert.deepEqual(g.asked, [{ service: "web", id: "web/v1/0", version: "v1", url: ready!.url }]);
    const held = runtime.instances("web")[0] as ProcessInstance;
    assert.equal(held.state, "stopping");
    assert.match(held.message ?? "", /waiting until every router/);
    // The process answers yet: it has not been signalled (it would exit at once).
    assert.equal(isRunning(pid), true);
    const res = await fetch(ready!.url);
    assert.equal(res.status, 200);
    await res.arrayBuffer();

    g.open();
    await waitForInstances(runtime, "web", (l) => l.length === 0, "instance gone");
    assert.equal(isRunning(pid), false);
  });

  it("drainSeconds starts after the gate: the instance lives on for requests in flight", async () => {
    const runtime = fresh();
    const g = manualGate();
    runtime.setStopGate(g.gate);
    const s = spec({ drainSeconds: 30 });
    await runtime.ensure("web", s, [{ version: "v1", replicas: 1 }]);
    await waitForInstances(runtime, "web", (l) => l[0]?.state === "ready", "v1 ready");
    await runtime.ensure("web", s, []);
    await g.whenAsked(1);
    g.open();
    await waitForInstances(
      runtime,
      "web",
      (l) => /draining for 30s/.test(l[0]?.message ?? ""),
      "draining after the gate",
    );
    const pid = (runtime.instances("web")[0] as ProcessInstance).pid!;
    assert.equal(isRunning(pid), true);
    // shutdown() cuts the drain: no gate, no drain, as when Turnout stops.
    await runtime.shutdown();
    assert.equal(isRunning(pid), false);
  });

  it("shutdown() does not wait for a gate that never opens", async () => {
    const runtime = fresh();
    const g = manualGate();
    runtime.setStopGate(g.gate);
    await runtime.ensure("web", spec(), [{ version: "v1", replicas: 1 }]);
    await waitForInstances(runtime, "web", (l) => l[0]?.state === "ready", "v1 ready");
    const pid = (runtime.instances("web")[0] as ProcessInstance).pid!;
    await runtime.ensure("web", spec(), []);
    await g.whenAsked(1);
    await runtime.shutdown();
    assert.equal(isRunning(pid), false);
  });

  it("an instance that never became ready is stopped without asking", async () => {
    const runtime = fresh();
    const g = manualGate();
    runtime.setStopGate(g.gate);
    const never = spec({
      readiness: { path: "/", periodSeconds: 60, timeoutSeconds: 1, initialDelaySeconds: 60 },
    });
    await runtime.ensure("web", never, [{ version: "v1", replicas: 1 }]);
    await runtime.ensure("web", never, []);
    await waitForInstances(runtime, "web", (l) => l.length === 0, "instance gone");
    assert.deepEqual(g.asked, []);
  });
});

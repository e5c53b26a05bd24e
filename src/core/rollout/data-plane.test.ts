import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "../clock.js";
import type { CanaryStep, Command, CommandType, ServiceSpec, ServiceStatus } from "../model.js";
import { type ReconcileOutput, reconcile } from "../rollout.js";

const BIND = "cannot listen on 0.0.0.0:8080: address already in use (EADDRINUSE) (router r1)";

/** Ticks the pure core with a fake clock and what the router registry reports, as the controller does. */
class Scenario {
  clock = new FakeClock();
  status: ServiceStatus | null = null;
  generation = 1;
  spec: ServiceSpec;
  down: string | null = null;
  private queue: Command[] = [];
  private nextId = 1;
  last!: ReconcileOutput;

  constructor(steps: CanaryStep[]) {
    this.spec = {
      listen: { host: "0.0.0.0", port: 8080 },
      runtime: {
        static: {
          versions: {
            v1: { upstreams: ["http://127.0.0.1:1"] },
            v2: { upstreams: ["http://127.0.0.1:2"] },
          },
        },
      },
      version: "v1",
      strategy: { canary: { steps } },
    };
  }
  setVersion(v: string) {
    this.spec = { ...this.spec, version: v };
    this.generation += 1;
  }
  command(type: CommandType, args: Record<string, unknown> = {}) {
    this.queue.push({
      id: this.nextId++,
      service: "svc",
      type,
      args,
      actor: "alice",
      createdAt: this.clock.now(),
    });
  }
  tick(): ReconcileOutput {
    this.last = reconcile({
      now: this.clock.now(),
      service: { name: "svc", generation: this.generation, spec: this.spec },
      status: this.status,
      commands: this.queue,
      readiness: { v1: { ready: 1, failed: 0 }, v2: { ready: 1, failed: 0 } },
      ...(this.down !== null ? { dataPlane: { serving: false, reason: this.down } } : {}),
    });
    this.queue = [];
    this.status = this.last.status;
    return this.last;
  }
  get s(): ServiceStatus {
    return this.status as ServiceStatus;
  }
  data(i: number): unknown {
    return this.last.events[i]?.data;
  }
  types(): string[] {
    return this.last.events.map((e) => e.type);
  }
  weight(v: string): number {
    return this.last.weights.find((w) => w.version === v)?.weight ?? 0;
  }
}

const STEPS: CanaryStep[] = [{ setWeight: 10 }, { pause: { duration: "30s" } }, { setWeight: 50 }];

describe("a data plane that does not serve the route table", () => {
  it("turns a quiet Healthy service Degraded, and back once it is served", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    assert.equal(sc.s.phase, "Healthy");
    sc.clock.advance(1000);
    sc.down = BIND;
    sc.tick();
    assert.equal(sc.s.phase, "Degraded");
    assert.equal(sc.s.message, `not serving: ${BIND}`);
    assert.deepEqual(sc.s.dataPlane, {
      serving: false,
      reason: BIND,
      since: sc.clock.now(),
      underlying: { phase: "Healthy", message: "v1 serves 100% (1/1 ready)" },
    });
    assert.equal(sc.s.lastTransitionAt, sc.clock.now());
    assert.deepEqual(sc.types(), ["DataPlaneNotServing"]);

    // Still down: nothing changes, no second event, the transition time stays.
    const before = structuredClone(sc.s);
    sc.clock.advance(5000);
    sc.tick();
    assert.deepEqual(sc.s, before);
    assert.deepEqual(sc.last.events, []);

    sc.clock.advance(4000);
    sc.down = null;
    sc.tick();
    assert.equal(sc.s.phase, "Healthy");
    assert.equal(sc.s.message, "v1 serves 100% (1/1 ready)");
    assert.equal(sc.s.dataPlane, null);
    assert.equal(sc.s.lastTransitionAt, sc.clock.now());
    assert.deepEqual(sc.types(), ["DataPlaneServing"]);
    assert.deepEqual(sc.data(0), { reason: BIND, heldMs: 9000 });
  });

  it("starts no rollout until the table is served", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.down = BIND;
    sc.tick();
    sc.setVersion("v2");
    sc.tick();
    assert.equal(sc.s.canaryVersion, null);
    assert.equal(sc.s.observedGeneration, 2, "the new generation is seen, only held");
    assert.equal(sc.weight("v1"), 100);
    assert.equal(sc.s.phase, "Degraded");
    assert.equal(sc.s.message, `not serving: ${BIND}; the rollout to v2 starts once it is served`);
    assert.ok(!sc.types().includes("RolloutStarted"));

    sc.down = null;
    sc.tick();
    assert.deepEqual(sc.types(), ["RolloutStarted", "WeightChanged", "DataPlaneServing"]);
    assert.equal(sc.s.canaryVersion, "v2");
    assert.equal(sc.weight("v2"), 10);
    assert.equal(sc.s.phase, "Progressing");
  });

  it("holds a rollout at its step: no weight change, promote refused, the pause's clock stopped", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.tick();
    assert.equal(sc.s.stepIndex, 1, "in the 30s pause");
    assert.equal(sc.weight("v2"), 10);
    const underlying = { phase: sc.s.phase, message: sc.s.message };

    sc.clock.advance(10_000);
    sc.down = BIND;
    sc.tick();
    assert.equal(sc.s.phase, "Degraded");
    assert.equal(
      sc.s.message,
      `not serving: ${BIND}; the rollout to v2 holds at step 2/3 (v2 at 10%)`,
    );
    assert.deepEqual(sc.s.dataPlane?.underlying, underlying);
    assert.deepEqual(sc.data(0), { reason: BIND, canary: "v2", stepIndex: 1 });

    // Well past the pause's end: still held at the same step and weight.
    sc.clock.advance(60_000);
    sc.tick();
    assert.equal(sc.s.stepIndex, 1);
    assert.equal(sc.weight("v2"), 10);

    sc.command("promote");
    sc.command("promote", { full: true });
    sc.tick();
    assert.equal(sc.s.stepIndex, 1);
    assert.equal(sc.weight("v2"), 10);
    for (const r of sc.last.commandResults) {
      assert.equal(r.outcome, "rejected");
      assert.match(
        r.message,
        /^cannot promote svc while its data plane does not serve its route table \(cannot listen on 0\.0\.0\.0:8080: .*\); the rollout holds until it does$/,
      );
    }

    // Served again: the 20 s the pause had left are still left.
    sc.down = null;
    sc.tick();
    assert.equal(sc.s.phase, underlying.phase);
    assert.equal(sc.s.stepIndex, 1);
    assert.equal(sc.s.dataPlane, null);
    sc.clock.advance(19_000);
    sc.tick();
    assert.equal(sc.s.stepIndex, 1, "1 s of the pause left");
    sc.clock.advance(2000);
    sc.tick();
    // The pause ended: setWeight 50, the last step, and the rollout completes.
    assert.ok(sc.types().includes("RolloutCompleted"));
    assert.equal(sc.s.phase, "Completed");
    assert.equal(sc.s.stableVersion, "v2");
  });

  it("still aborts while held (back to the stable version), and stays aborted once served", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.tick();
    sc.down = BIND;
    sc.tick();
    sc.command("abort");
    sc.tick();
    assert.equal(sc.last.commandResults[0]?.outcome, "applied");
    assert.equal(sc.s.canaryVersion, null);
    assert.equal(sc.weight("v1"), 100);
    assert.equal(sc.s.phase, "Degraded");
    assert.match(sc.s.message, /^not serving: /);
    assert.equal(sc.s.dataPlane?.underlying.phase, "Degraded");
    assert.match(
      sc.s.dataPlane?.underlying.message ?? "",
      /rollout to v2 aborted: aborted by alice/,
    );

    sc.down = null;
    sc.tick();
    assert.equal(sc.s.phase, "Degraded");
    assert.match(sc.s.message, /rollout to v2 aborted: aborted by alice/);
    assert.equal(sc.s.abortedVersion, "v2");
    assert.equal(sc.s.dataPlane, null);
  });
});

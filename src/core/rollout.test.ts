import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "./clock.js";
import type { CanaryStep, Command, CommandType, ServiceSpec, ServiceStatus } from "./model.js";
import {
  planVersionChange,
  type ReconcileOutput,
  reconcile,
  type VersionReadiness,
  weightsOf,
} from "./rollout.js";

/** A scenario driver: ticks the pure core with a fake clock, like the controller does. */
class Scenario {
  clock = new FakeClock();
  status: ServiceStatus | null = null;
  generation = 1;
  spec: ServiceSpec;
  readiness: Record<string, VersionReadiness> = {};
  /** What the router registry reports: a reason while the data plane does not serve. */
  notServing: string | null = null;
  private nextId = 1;
  private queue: Command[] = [];
  last!: ReconcileOutput;

  constructor(steps: CanaryStep[] | undefined, version = "v1") {
    this.spec = {
      listen: { host: "127.0.0.1", port: 8080 },
      runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:1"] } } } },
      version,
      ...(steps ? { strategy: { canary: { steps } } } : {}),
    };
    this.ready("v1");
  }
  ready(v: string, ready = 1, failed = 0, message?: string) {
    this.readiness[v] = { ready, failed, ...(message ? { message } : {}) };
  }
  setVersion(v: string) {
    this.spec = { ...this.spec, version: v };
    this.generation += 1;
  }
  command(type: CommandType, args: Record<string, unknown> = {}, actor = "alice", reason?: string) {
    this.queue.push({
      id: this.nextId++,
      service: "svc",
      type,
      args,
      actor,
      createdAt: this.clock.now(),
      ...(reason ? { reason } : {}),
    });
  }
  tick(): ReconcileOutput {
    this.last = reconcile({
      now: this.clock.now(),
      service: { name: "svc", generation: this.generation, spec: this.spec },
      status: this.status,
      commands: this.queue,
      readiness: this.readiness,
      ...(this.notServing !== null
        ? { dataPlane: { serving: false, reason: this.notServing } }
        : {}),
    });
    this.queue = [];
    this.status = this.last.status;
    return this.last;
  }
  get s(): ServiceStatus {
    return this.status as ServiceStatus;
  }
  weightOf(version: string): number {
    return this.last.weights.find((x) => x.version === version)?.weight ?? 0;
  }
  canaryWeight(): number {
    return this.last.weights.find((x) => x.version === this.s.canaryVersion)?.weight ?? 0;
  }
  eventTypes(): string[] {
    return this.last.events.map((e) => e.type);
  }
  /** The data of this tick's i-th event. */
  eventData(i: number): unknown {
    return this.last.events[i]?.data;
  }
}

const STEPS: CanaryStep[] = [
  { setWeight: 10 },
  { pause: { duration: "30s" } },
  { setWeight: 50 },
  { pause: {} },
  { setWeight: 80 },
];

describe("rollout core", () => {
  it("makes the first version stable at once (Healthy, 100%)", () => {
    const sc = new Scenario(STEPS);
    const out = sc.tick();
    assert.equal(sc.s.phase, "Healthy");
    assert.equal(sc.s.stableVersion, "v1");
    assert.equal(sc.s.canaryVersion, null);
    assert.deepEqual(out.weights, [{ version: "v1", weight: 100 }]);
    assert.deepEqual(out.targets, [{ version: "v1", replicas: 1 }]);
    assert.deepEqual(sc.eventTypes(), ["StableVersionSet"]);
    // A second tick with nothing new changes nothing and emits nothing.
    const before = structuredClone(sc.s);
    sc.tick();
    assert.deepEqual(sc.s, before);
    assert.deepEqual(sc.last.events, []);
  });

  it("walks Healthy -> Progressing -> Paused -> Completed through the steps", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    // Not ready yet: the rollout starts but waits with 0% on the canary.
    sc.tick();
    assert.equal(sc.s.phase, "Progressing");
    assert.equal(sc.s.canaryVersion, "v2");
    assert.match(sc.s.message, /waiting for v2: 0\/1 instances ready/);
    assert.deepEqual(sc.last.targets, [
      { version: "v1", replicas: 1 },
      { version: "v2", replicas: 1 },
    ]);
    assert.equal(sc.canaryWeight(), 0);
    assert.deepEqual(sc.eventTypes(), ["RolloutStarted"]);

    sc.ready("v2");
    sc.tick();
    // setWeight 10 ran, now in the 30s pause.
    assert.equal(sc.s.phase, "Progressing");
    assert.equal(sc.s.stepIndex, 1);
    assert.deepEqual(sc.last.weights, [
      { version: "v1", weight: 90 },
      { version: "v2", weight: 10 },
    ]);
    assert.equal(sc.last.wakeAt, sc.clock.now() + 30_000);

    sc.clock.advance(29_999);
    sc.tick();
    assert.equal(sc.s.stepIndex, 1, "a timed pause does not end early");

    sc.clock.advance(1);
    sc.tick();
    // Pause done, setWeight 50, then the indefinite pause.
    assert.equal(sc.s.phase, "Paused");
    assert.equal(sc.s.stepIndex, 3);
    assert.equal(sc.canaryWeight(), 50);
    assert.match(sc.s.message, /until promoted/);
    assert.equal(sc.last.wakeAt, null);

    sc.clock.advance(3_600_000);
    sc.tick();
    assert.equal(sc.s.phase, "Paused", "an indefinite pause waits for a person");

    sc.command("promote");
    sc.tick();
    assert.equal(sc.last.commandResults[0]?.outcome, "applied");
    assert.equal(sc.s.phase, "Completed");
    assert.equal(sc.s.stableVersion, "v2");
    assert.equal(sc.s.canaryVersion, null);
    assert.deepEqual(sc.s.previousStableVersions, ["v1"]);
    assert.deepEqual(sc.last.weights, [{ version: "v2", weight: 100 }]);
    assert.deepEqual(sc.last.targets, [{ version: "v2", replicas: 1 }]);
    const types = sc.eventTypes();
    assert.deepEqual(types, ["Promoted", "WeightChanged", "RolloutCompleted"]);
    const done = sc.last.events.at(-1)!;
    assert.equal(done.data.tookMs, 3_630_000);
  });

  it("supports fractional weights down to 0.0001%", () => {
    const sc = new Scenario([
      { setWeight: 0.01 },
      { pause: {} },
      { setWeight: 33.3333 },
      { pause: {} },
    ]);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    assert.deepEqual(sc.last.weights, [
      { version: "v1", weight: 99.99 },
      { version: "v2", weight: 0.01 },
    ]);
    sc.command("promote");
    sc.tick();
    assert.deepEqual(sc.last.weights, [
      { version: "v1", weight: 66.6667 },
      { version: "v2", weight: 33.3333 },
    ]);
    const sum = sc.last.weights.reduce((a, b) => a + b.weight, 0);
    assert.ok(Math.abs(sum - 100) < 1e-9);
  });

  it("abort sends all traffic back to stable at once and records who and why (Degraded)", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    assert.equal(sc.canaryWeight(), 10);
    sc.command("abort", {}, "bob", "errors in checkout");
    sc.tick();
    assert.equal(sc.s.phase, "Degraded");
    assert.deepEqual(sc.last.weights, [{ version: "v1", weight: 100 }]);
    // The candidate keeps running (no traffic) for the default 30 s, for people to look at.
    assert.deepEqual(
      sc.last.targets.map((t) => t.version),
      ["v1", "v2"],
    );
    assert.equal(sc.s.abortedVersion, "v2");
    assert.match(sc.s.message, /aborted by bob \(errors in checkout\)/);
    const ev = sc.last.events.find((e) => e.type === "RolloutAborted")!;
    assert.equal(ev.actor, "bob");
    assert.equal(ev.data.fromWeight, 10);
    assert.equal(ev.data.reason, "errors in checkout");
    // Stays Degraded: the aborted version does not restart by itself.
    sc.clock.advance(60_000);
    sc.tick();
    assert.equal(sc.s.phase, "Degraded");
    assert.equal(sc.s.canaryVersion, null);
  });

  it("retry restarts an aborted rollout from the first step", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    sc.command("abort");
    sc.tick();
    sc.command("retry");
    sc.tick();
    assert.equal(sc.last.commandResults[0]?.outcome, "applied");
    assert.equal(sc.s.canaryVersion, "v2");
    assert.equal(sc.s.rolloutNumber, 2);
    assert.equal(sc.canaryWeight(), 10);
    assert.equal(sc.s.phase, "Progressing");
  });

  it("a Degraded service recovers when the desired version goes back to stable", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    sc.command("abort");
    sc.tick();
    sc.setVersion("v1");
    sc.tick();
    assert.equal(sc.s.phase, "Healthy");
    assert.equal(sc.s.abortedVersion, null);
  });

  it("pause and resume by a person; time paused does not count toward a timed pause", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick(); // at the 30s pause
    sc.clock.advance(20_000);
    sc.command("pause", {}, "carol");
    sc.tick();
    assert.equal(sc.s.phase, "Paused");
    assert.equal(sc.s.pausedByUser, true);
    sc.clock.advance(120_000);
    sc.tick();
    assert.equal(sc.s.phase, "Paused");
    assert.equal(sc.s.stepIndex, 1);
    sc.command("resume", {}, "carol");
    sc.tick();
    assert.equal(sc.s.phase, "Progressing");
    assert.equal(sc.s.stepIndex, 1);
    // 20 s of the 30 s pause had passed before the person paused: 10 s are left, not 30.
    assert.equal(sc.s.pausedAt, null);
    const resumed = sc.last.events.find((e) => e.type === "Resumed");
    assert.match(resumed?.message ?? "", /resumed by carol after 2m; 10s of the pause left/);
    assert.equal(resumed?.data.heldMs, 120_000);
    assert.equal(sc.last.wakeAt, sc.clock.now() + 10_000);
    sc.clock.advance(9_000);
    sc.tick();
    assert.equal(sc.s.stepIndex, 1);
    sc.clock.advance(1_000);
    sc.tick();
    assert.equal(sc.s.stepIndex, 3);
  });

  it("pausing twice and resuming twice counts neither hold toward the timed pause", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick(); // the 30s pause starts
    for (const [before, held] of [
      [5_000, 60_000],
      [10_000, 3_000],
    ] as const) {
      sc.clock.advance(before);
      sc.command("pause");
      sc.tick();
      sc.command("pause"); // "already paused": the hold keeps its start
      sc.clock.advance(held);
      sc.tick();
      sc.command("resume");
      sc.tick();
      assert.equal(sc.s.stepIndex, 1);
    }
    // 15 s counted so far.
    sc.clock.advance(14_999);
    sc.tick();
    assert.equal(sc.s.stepIndex, 1);
    sc.clock.advance(1);
    sc.tick();
    assert.equal(sc.s.stepIndex, 3);
  });

  it("a status written before pausedAt existed resumes with the whole pause ahead", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    sc.clock.advance(20_000);
    sc.command("pause");
    sc.tick();
    delete sc.s.pausedAt;
    sc.clock.advance(5_000);
    sc.command("resume");
    sc.tick();
    assert.equal(sc.s.stepStartedAt, sc.clock.now());
  });

  it("resume on an indefinite pause step moves on, like promote", () => {
    const sc = new Scenario([{ setWeight: 20 }, { pause: {} }, { setWeight: 60 }, { pause: {} }]);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    assert.equal(sc.s.phase, "Paused");
    sc.command("resume");
    sc.tick();
    assert.equal(sc.canaryWeight(), 60);
  });

  it("promote --full skips every remaining step", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    sc.command("promote", { full: true });
    sc.tick();
    assert.equal(sc.s.phase, "Completed");
    assert.deepEqual(sc.last.weights, [{ version: "v2", weight: 100 }]);
  });

  it("rejects commands that do not apply, and changes nothing", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    const before = structuredClone(sc.s);
    for (const t of ["promote", "abort", "pause", "resume", "retry"] as const) sc.command(t);
    sc.tick();
    assert.deepEqual(
      sc.last.commandResults.map((r) => r.outcome),
      ["rejected", "rejected", "rejected", "rejected", "rejected"],
    );
    assert.match(sc.last.commandResults[0]!.message, /no rollout in progress/);
    assert.deepEqual(sc.s, before);
  });

  it("without a strategy a new version takes 100% as soon as it is ready", () => {
    const sc = new Scenario(undefined);
    sc.tick();
    sc.setVersion("v2");
    sc.tick();
    assert.equal(sc.s.phase, "Progressing");
    assert.deepEqual(sc.last.weights, [
      { version: "v1", weight: 100 },
      { version: "v2", weight: 0 },
    ]);
    sc.ready("v2");
    sc.tick();
    assert.equal(sc.s.phase, "Completed");
    assert.deepEqual(sc.last.weights, [{ version: "v2", weight: 100 }]);
  });

  it("a candidate whose instances fail is rolled back automatically with the reason", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2", 0, 1, "exited with code 1");
    sc.tick();
    assert.equal(sc.s.phase, "Degraded");
    assert.match(sc.s.message, /v2 failed to start \(exited with code 1\)/);
    assert.deepEqual(sc.last.weights, [{ version: "v1", weight: 100 }]);
  });

  it("changing the desired version mid-rollout restarts with the new candidate", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    sc.setVersion("v3");
    sc.tick();
    assert.equal(sc.s.canaryVersion, "v3");
    assert.equal(sc.s.stepIndex, 0);
    assert.deepEqual(sc.last.targets, [
      { version: "v1", replicas: 1 },
      { version: "v3", replicas: 1 },
    ]);
    assert.match(sc.last.events[0]!.message, /v2 replaced by v3/);
    assert.match(sc.s.message, /waiting for v3/);
  });

  it("setting the desired version back to stable mid-rollout cancels it (Healthy)", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    sc.setVersion("v1");
    sc.tick();
    assert.equal(sc.s.phase, "Healthy");
    assert.deepEqual(sc.last.weights, [{ version: "v1", weight: 100 }]);
    assert.deepEqual(sc.eventTypes(), ["RolloutCancelled"]);
  });

  it("resumes at the same step from a persisted status (crash safety)", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    sc.clock.advance(10_000);
    // Round-trip the status through JSON as the store does.
    sc.status = JSON.parse(JSON.stringify(sc.s));
    sc.tick();
    assert.equal(sc.s.stepIndex, 1);
    assert.equal(sc.canaryWeight(), 10);
    sc.clock.advance(20_000);
    sc.tick();
    assert.equal(sc.s.stepIndex, 3);
  });

  it("setHeaderRoute sends matching requests to the canary until the rollout ends", async () => {
    const { buildRouteTable } = await import("./routes.js");
    const sc = new Scenario([
      { setHeaderRoute: { match: { header: { name: "x-tester", equals: "1" } } } },
      { setWeight: 10 },
      { pause: {} },
    ]);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    const table = buildRouteTable({
      service: "svc",
      spec: sc.spec,
      status: sc.s,
      weights: sc.last.weights,
      endpoints: () => ["http://127.0.0.1:1"],
      now: sc.clock.now(),
    });
    assert.deepEqual(table.matches, [{ header: { name: "x-tester", equals: "1" }, version: "v2" }]);
    assert.equal(
      table.backends[0]?.version,
      "v2",
      "canary first, so sticky users stay as it grows",
    );
    sc.command("promote");
    sc.tick();
    assert.equal(sc.s.headerRoute, null);
  });

  it("a version within the rollback window comes back without steps", () => {
    const sc = new Scenario(STEPS);
    sc.spec = {
      ...sc.spec,
      strategy: { canary: { steps: STEPS, rollbackWindow: { revisions: 2 } } },
    };
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    sc.command("promote", { full: true });
    sc.tick();
    assert.equal(sc.s.stableVersion, "v2");
    sc.setVersion("v1");
    sc.tick();
    assert.equal(sc.s.phase, "Completed");
    assert.equal(sc.s.stableVersion, "v1");
    assert.match(sc.last.events[0]!.message, /rollback window/);
  });

  it("an aborted candidate keeps running without traffic for abortScaleDownDelaySeconds", () => {
    const sc = new Scenario(STEPS);
    sc.spec = {
      ...sc.spec,
      strategy: { canary: { steps: STEPS, abortScaleDownDelaySeconds: 60 } },
    };
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    sc.command("abort");
    sc.tick();
    assert.deepEqual(sc.last.weights, [{ version: "v1", weight: 100 }]);
    assert.deepEqual(
      sc.last.targets.map((t) => t.version),
      ["v1", "v2"],
    );
    assert.equal(sc.last.wakeAt, sc.clock.now() + 60_000);
    sc.clock.advance(60_000);
    sc.tick();
    assert.deepEqual(
      sc.last.targets.map((t) => t.version),
      ["v1"],
    );
  });

  it("the RolloutStarted text counts its steps in good English: (1 step), (5 steps)", () => {
    for (const [steps, text] of [
      [[{ setWeight: 50 }], "(1 step)"],
      [STEPS, "(5 steps)"],
    ] as const) {
      const sc = new Scenario([...steps]);
      sc.tick();
      sc.setVersion("v2");
      sc.tick();
      const started = sc.last.events.find((e) => e.type === "RolloutStarted");
      assert.equal(started?.message, `rollout 1: v1 -> v2 ${text}`);
    }
  });

  it("weightsOf ignores a canary equal to stable", () => {
    const s = new Scenario(STEPS);
    s.tick();
    assert.deepEqual(weightsOf({ ...s.s, canaryVersion: "v1", canaryWeight: 40 }), [
      { version: "v1", weight: 100 },
    ]);
  });
});

describe("planVersionChange: what an apply that changes spec.version will do", () => {
  const undo = { actor: "cli:alice", time: Date.UTC(2026, 11, 2, 21, 40, 3), from: "v2", to: "v1" };

  it("re-applying after an undo to a version in the rollback window: says it skips every step", () => {
    const sc = new Scenario(STEPS);
    sc.spec = {
      ...sc.spec,
      strategy: { canary: { steps: STEPS, rollbackWindow: { revisions: 1 } } },
    };
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    sc.command("promote", { full: true });
    sc.tick();
    sc.setVersion("v1"); // the undo
    sc.tick();
    assert.equal(sc.s.stableVersion, "v1");
    const note = planVersionChange("v1", { ...sc.spec, version: "v2" }, sc.s, undo);
    assert.equal(
      note,
      "spec.version v1 was set by `turnout undo` (cli:alice, 2026-12-02 21:40:03 UTC); this apply changes it to v2, undoing the undo: " +
        "v2 is a recent stable version (rollback window 1), so it takes 100% at once, skipping all 5 steps " +
        "(setWeight 10, pause 30s, setWeight 50, pause (until promoted), setWeight 80)",
    );
    // And that is what the core then does.
    sc.setVersion("v2");
    sc.tick();
    assert.equal(sc.s.phase, "Completed");
  });

  it("outside the rollback window: a new rollout with its steps", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    assert.match(
      planVersionChange("v1", { ...sc.spec, version: "v2" }, sc.s, undo) ?? "",
      /undoing the undo: a new rollout v1 -> v2 of 5 steps$/,
    );
    assert.equal(
      planVersionChange("v1", { ...sc.spec, version: "v2" }, sc.s),
      "spec.version v1 -> v2: a new rollout v1 -> v2 of 5 steps",
    );
  });

  it("an aborted version, the stable one, no change", () => {
    const sc = new Scenario(STEPS);
    sc.tick();
    sc.setVersion("v2");
    sc.ready("v2");
    sc.tick();
    assert.match(
      planVersionChange("v2", { ...sc.spec, version: "v1" }, sc.s) ?? "",
      /v1 is the stable version: the rollout to v2 is cancelled; it serves 100%/,
    );
    sc.command("abort");
    sc.tick();
    assert.match(
      planVersionChange("v3", { ...sc.spec, version: "v2" }, sc.s) ?? "",
      /v2 was aborted and does not start again by itself: `turnout retry`/,
    );
    assert.equal(planVersionChange("v2", sc.spec, sc.s), null);
  });
});

const BIND = "cannot listen on 0.0.0.0:8080: address already in use (EADDRINUSE) (router r1)";

const DP_STEPS: CanaryStep[] = [
  { setWeight: 10 },
  { pause: { duration: "30s" } },
  { setWeight: 50 },
];

/** A service at v1 whose v2 instances are ready too, with DP_STEPS. */
function dataPlaneScenario(): Scenario {
  const sc = new Scenario(DP_STEPS);
  sc.ready("v2");
  return sc;
}

describe("a data plane that does not serve the route table", () => {
  it("turns a quiet Healthy service Degraded, and back once it is served", () => {
    const sc = dataPlaneScenario();
    sc.tick();
    assert.equal(sc.s.phase, "Healthy");
    sc.clock.advance(1000);
    sc.notServing = BIND;
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
    assert.deepEqual(sc.eventTypes(), ["DataPlaneNotServing"]);

    // Still down: nothing changes, no second event, the transition time stays.
    const before = structuredClone(sc.s);
    sc.clock.advance(5000);
    sc.tick();
    assert.deepEqual(sc.s, before);
    assert.deepEqual(sc.last.events, []);

    sc.clock.advance(4000);
    sc.notServing = null;
    sc.tick();
    assert.equal(sc.s.phase, "Healthy");
    assert.equal(sc.s.message, "v1 serves 100% (1/1 ready)");
    assert.equal(sc.s.dataPlane, null);
    assert.equal(sc.s.lastTransitionAt, sc.clock.now());
    assert.deepEqual(sc.eventTypes(), ["DataPlaneServing"]);
    assert.deepEqual(sc.eventData(0), { reason: BIND, heldMs: 9000 });
  });

  it("starts no rollout until the table is served", () => {
    const sc = dataPlaneScenario();
    sc.tick();
    sc.notServing = BIND;
    sc.tick();
    // `apply` says so before it happens.
    assert.equal(
      planVersionChange("v1", { ...sc.spec, version: "v2" }, sc.s),
      `spec.version v1 -> v2: a new rollout v1 -> v2 of 3 steps; it starts once the route table is served (not serving: ${BIND})`,
    );
    sc.setVersion("v2");
    sc.tick();
    assert.equal(sc.s.canaryVersion, null);
    assert.equal(sc.s.observedGeneration, 2, "the new generation is seen, only held");
    assert.equal(sc.weightOf("v1"), 100);
    assert.equal(sc.s.phase, "Degraded");
    assert.equal(sc.s.message, `not serving: ${BIND}; the rollout to v2 starts once it is served`);
    assert.ok(!sc.eventTypes().includes("RolloutStarted"));

    sc.notServing = null;
    sc.tick();
    assert.deepEqual(sc.eventTypes(), ["RolloutStarted", "WeightChanged", "DataPlaneServing"]);
    assert.equal(sc.s.canaryVersion, "v2");
    assert.equal(sc.weightOf("v2"), 10);
    assert.equal(sc.s.phase, "Progressing");
  });

  it("holds a rollout at its step: no weight change, promote refused, the pause's clock stopped", () => {
    const sc = dataPlaneScenario();
    sc.tick();
    sc.setVersion("v2");
    sc.tick();
    assert.equal(sc.s.stepIndex, 1, "in the 30s pause");
    assert.equal(sc.weightOf("v2"), 10);
    const underlying = { phase: sc.s.phase, message: sc.s.message };

    sc.clock.advance(10_000);
    sc.notServing = BIND;
    sc.tick();
    assert.equal(sc.s.phase, "Degraded");
    assert.equal(
      sc.s.message,
      `not serving: ${BIND}; the rollout to v2 holds at step 2/3 (v2 at 10%)`,
    );
    assert.deepEqual(sc.s.dataPlane?.underlying, underlying);
    assert.deepEqual(sc.eventData(0), { reason: BIND, canary: "v2", stepIndex: 1 });

    // Well past the pause's end: still held at the same step and weight.
    sc.clock.advance(60_000);
    sc.tick();
    assert.equal(sc.s.stepIndex, 1);
    assert.equal(sc.weightOf("v2"), 10);

    sc.command("promote");
    sc.command("promote", { full: true });
    sc.tick();
    assert.equal(sc.s.stepIndex, 1);
    assert.equal(sc.weightOf("v2"), 10);
    for (const r of sc.last.commandResults) {
      assert.equal(r.outcome, "rejected");
      assert.match(
        r.message,
        /^cannot promote svc while its data plane does not serve its route table \(cannot listen on 0\.0\.0\.0:8080: .*\); the rollout holds until it does$/,
      );
    }

    // Served again: the 20 s the pause had left are still left.
    sc.notServing = null;
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
    assert.ok(sc.eventTypes().includes("RolloutCompleted"));
    assert.equal(sc.s.phase, "Completed");
    assert.equal(sc.s.stableVersion, "v2");
  });

  it("still aborts while held (back to the stable version), and stays aborted once served", () => {
    const sc = dataPlaneScenario();
    sc.tick();
    sc.setVersion("v2");
    sc.tick();
    sc.notServing = BIND;
    sc.tick();
    sc.command("abort");
    sc.tick();
    assert.equal(sc.last.commandResults[0]?.outcome, "applied");
    assert.equal(sc.s.canaryVersion, null);
    assert.equal(sc.weightOf("v1"), 100);
    assert.equal(sc.s.phase, "Degraded");
    assert.match(sc.s.message, /^not serving: /);
    assert.equal(sc.s.dataPlane?.underlying.phase, "Degraded");
    assert.match(
      sc.s.dataPlane?.underlying.message ?? "",
      /rollout to v2 aborted: aborted by alice/,
    );

    sc.notServing = null;
    sc.tick();
    assert.equal(sc.s.phase, "Degraded");
    assert.match(sc.s.message, /rollout to v2 aborted: aborted by alice/);
    assert.equal(sc.s.abortedVersion, "v2");
    assert.equal(sc.s.dataPlane, null);
  });
});

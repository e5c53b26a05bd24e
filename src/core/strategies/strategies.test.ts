/**
 * Scenario tests of the blue-green and rolling strategies: the pure core ticked with a fake
 * clock against a simulated runtime in which an instance becomes ready one tick after it is
 * asked for (or never, for a broken version).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "../clock.js";
import type { Command, CommandType, ServiceSpec, ServiceStatus, StrategySpec } from "../model.js";
import { type ReconcileOutput, reconcile, type VersionReadiness } from "../rollout.js";
import { buildRouteTable, expandPreviews } from "../routes.js";

class Sim {
  clock = new FakeClock();
  status: ServiceStatus | null = null;
  generation = 1;
  spec: ServiceSpec;
  /** Instances that exist per version, and how many of them are ready. */
  running: Record<string, { started: number; ready: number }> = {};
  broken = new Set<string>();
  private queue: Command[] = [];
  private nextId = 1;
  last!: ReconcileOutput;
  history: { targets: Record<string, number>; ready: Record<string, number> }[] = [];

  constructor(strategy: StrategySpec, replicas = 4) {
    this.spec = {
      listen: { host: "127.0.0.1", port: 8080 },
      runtime: {
        process: {
          command: ["node", "server.mjs"],
          replicas,
          readiness: {
            path: "/healthz",
            periodSeconds: 1,
            timeoutSeconds: 1,
            initialDelaySeconds: 0,
          },
          startupTimeoutSeconds: 60,
          terminationGracePeriodSeconds: 5,
        },
      } as ServiceSpec["runtime"],
      version: "v1",
      strategy,
    };
    this.running.v1 = { started: replicas, ready: replicas };
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
  readiness(): Record<string, VersionReadiness> {
    const out: Record<string, VersionReadiness> = {};
    for (const [v, r] of Object.entries(this.running)) out[v] = { ready: r.ready, failed: 0 };
    return out;
  }
  /** One controller tick, then the runtime converges: started instances become ready next tick. */
  tick(): ReconcileOutput {
    this.last = reconcile({
      now: this.clock.now(),
      service: { name: "svc", generation: this.generation, spec: this.spec },
      status: this.status,
      commands: this.queue,
      readiness: this.readiness(),
    });
    this.queue = [];
    this.status = this.last.status;
    const targets: Record<string, number> = {};
    for (const t of this.last.targets) targets[t.version] = t.replicas;
    const ready: Record<string, number> = {};
    for (const [v, r] of Object.entries(this.running)) ready[v] = r.ready;
    this.history.push({ targets, ready });
    // The runtime: instances asked for in the last tick are ready now (unless broken);
    // scale-down removes instances at once.
    for (const v of Object.keys(this.running)) if (!(v in targets)) delete this.running[v];
    for (const [v, n] of Object.entries(targets)) {
      const r = this.running[v] ?? { started: 0, ready: 0 };
      r.ready = this.broken.has(v) ? 0 : Math.min(r.started, n);
      r.started = n;
      r.ready = Math.min(r.ready, n);
      this.running[v] = r;
    }
    return this.last;
  }
  get s(): ServiceStatus {
    return this.status as ServiceStatus;
  }
  /** The phase, unnarrowed (loops check it after asserting on it). */
  phase(): ServiceStatus["phase"] {
    return this.s.phase;
  }
  weight(v: string): number {
    return this.last.weights.find((w) => w.version === v)?.weight ?? 0;
  }
  table() {
    return buildRouteTable({
      service: "svc",
      spec: this.spec,
      status: this.s,
      weights: this.last.weights,
      endpoints: (v) => Array.from({ length: this.running[v]?.ready ?? 0 }, (_, i) => `${v}-${i}`),
      now: this.clock.now(),
    });
  }
}

describe("rolling strategy", () => {
  it("replaces 4 instances within maxSurge/maxUnavailable and traffic follows ready instances", () => {
    const sim = new Sim({ rolling: {} }); // 25%/25% of 4: surge 1, unavailable 1
    sim.tick();
    sim.setVersion("v2");
    for (let i = 0; i < 30 && sim.phase() !== "Completed"; i++) {
      sim.tick();
      sim.clock.advance(1000);
      const ready = (sim.running.v1?.ready ?? 0) + (sim.running.v2?.ready ?? 0);
      const started = (sim.running.v1?.started ?? 0) + (sim.running.v2?.started ?? 0);
      assert.ok(started <= 5, `at most replicas + surge instances, got ${started}`);
      if (sim.phase() !== "Completed") assert.ok(ready >= 3, `at least 3 ready, got ${ready}`);
      // The weight of v2 is its share of the ready instances the targets keep.
      const r2 = Math.min(sim.running.v2?.ready ?? 0, sim.s.replicas?.v2 ?? 0);
      if (sim.s.rolling && r2 === 0) assert.equal(sim.weight("v2"), 0);
    }
    assert.equal(sim.s.phase, "Completed", sim.s.message);
    assert.equal(sim.s.stableVersion, "v2");
    assert.deepEqual(sim.last.targets, [{ version: "v2", replicas: 4 }]);
    const scaled = sim.history.filter((h) => (h.targets.v2 ?? 0) > 0).length;
    assert.ok(scaled >= 3, "more than one batch");
  });

  it("maxSurge 0 scales the old version down first (maxUnavailable)", () => {
    const sim = new Sim({ rolling: { maxSurge: 0, maxUnavailable: 2 } });
    sim.tick();
    sim.setVersion("v2");
    sim.tick();
    assert.deepEqual(sim.s.replicas, { v2: 2, v1: 2 });
    for (let i = 0; i < 20 && sim.phase() !== "Completed"; i++) sim.tick();
    assert.equal(sim.s.phase, "Completed");
    for (const h of sim.history) {
      const total = (h.targets.v1 ?? 0) + (h.targets.v2 ?? 0);
      assert.ok(total <= 4, `never above replicas with maxSurge 0, got ${total}`);
    }
  });

  it("minReadySeconds holds each batch until its instances have been ready that long", () => {
    const sim = new Sim({ rolling: { maxSurge: 1, maxUnavailable: 0, minReadySeconds: 10 } });
    sim.tick();
    sim.setVersion("v2");
    sim.tick(); // v2: 1 asked for
    sim.tick(); // v2: 1 starting
    sim.tick(); // v2: 1 ready, not yet available
    assert.equal(sim.s.rolling?.available, 0);
    assert.equal(sim.s.replicas?.v1, 4, "no old instance removed before the new one is available");
    assert.ok(sim.last.wakeAt !== null && sim.last.wakeAt <= sim.clock.now() + 10_000);
    sim.clock.advance(10_000);
    sim.tick();
    assert.equal(sim.s.rolling?.available, 1);
    assert.equal(sim.s.replicas?.v1, 3);
  });

  it("a version that never becomes ready is aborted at the progress deadline, old intact", () => {
    const sim = new Sim({ rolling: { progressDeadlineSeconds: 60 } });
    sim.tick();
    sim.broken.add("v2");
    sim.setVersion("v2");
    for (let i = 0; i < 5; i++) {
      sim.tick();
      sim.clock.advance(10_000);
    }
    assert.equal(sim.s.phase, "Progressing");
    assert.ok((sim.running.v1?.ready ?? 0) >= 3, "the old version keeps serving");
    sim.clock.advance(60_000);
    sim.tick();
    assert.equal(sim.s.phase, "Degraded");
    assert.match(sim.s.message, /no progress for 1m/);
    assert.deepEqual(sim.last.targets, [{ version: "v1", replicas: 4 }]);
    assert.equal(sim.weight("v1"), 100);
  });

  it("abort midway restores the old version's instances and all traffic", () => {
    const sim = new Sim({ rolling: {} });
    sim.tick();
    sim.setVersion("v2");
    for (let i = 0; i < 3; i++) sim.tick();
    assert.ok((sim.s.replicas?.v2 ?? 0) > 0 && (sim.s.replicas?.v1 ?? 4) < 4);
    sim.command("abort");
    sim.tick();
    assert.equal(sim.s.phase, "Degraded");
    assert.equal(sim.weight("v1"), 100);
    assert.deepEqual(sim.last.targets, [{ version: "v1", replicas: 4 }]);
  });

  it("pause holds the batch where it is; resume goes on", () => {
    const sim = new Sim({ rolling: {} });
    sim.tick();
    sim.setVersion("v2");
    sim.tick();
    sim.tick();
    sim.command("pause");
    sim.tick();
    const held = structuredClone(sim.s.replicas);
    for (let i = 0; i < 5; i++) sim.tick();
    assert.equal(sim.s.phase, "Paused");
    assert.deepEqual(sim.s.replicas, held);
    sim.command("resume");
    for (let i = 0; i < 20 && sim.phase() !== "Completed"; i++) sim.tick();
    assert.equal(sim.s.phase, "Completed");
  });

  it("undo midway (desired version back to the old one) cancels and restores it", () => {
    const sim = new Sim({ rolling: {} });
    sim.tick();
    sim.setVersion("v2");
    sim.tick();
    sim.tick();
    sim.setVersion("v1");
    sim.tick();
    assert.equal(sim.s.phase, "Healthy");
    assert.deepEqual(sim.last.targets, [{ version: "v1", replicas: 4 }]);
  });

  it("analysis between batches: each batch waits for the verdict (missing template errors)", () => {
    const sim = new Sim({ rolling: { analysis: { templates: ["nope"] } } });
    sim.tick();
    sim.setVersion("v2");
    for (let i = 0; i < 4; i++) sim.tick();
    assert.equal(sim.s.phase, "Degraded");
    assert.match(sim.s.message, /no AnalysisTemplate named nope/);
  });
});

describe("blue-green strategy", () => {
  const bg = (extra: Record<string, unknown> = {}): StrategySpec => ({
    blueGreen: {
      preview: { port: 9090, match: { header: { name: "x-preview", equals: "1" } } },
      ...extra,
    },
  });

  it("green is previewed while blue serves everyone, then switches at once on promote", () => {
    const sim = new Sim(bg());
    sim.tick();
    sim.setVersion("v2");
    sim.tick();
    sim.tick();
    sim.tick();
    assert.equal(sim.s.phase, "Paused");
    assert.equal(sim.weight("v1"), 100);
    const t = sim.table();
    assert.deepEqual(t.preview, { listen: { host: "127.0.0.1", port: 9090 }, version: "v2" });
    assert.equal(t.matches?.[0]?.version, "v2");
    assert.equal(t.matches?.[0]?.header?.name, "x-preview");
    sim.command("promote");
    sim.tick();
    assert.equal(sim.s.phase, "Completed");
    assert.equal(sim.weight("v2"), 100);
    const after = sim.table();
    assert.equal(after.preview, undefined);
    assert.equal(after.matches, undefined);
    // Blue stays warm for 30 s (default scaleDownDelaySeconds).
    assert.deepEqual(sim.last.targets, [
      { version: "v2", replicas: 4 },
      { version: "v1", replicas: 4 },
    ]);
    assert.equal(sim.last.wakeAt, sim.clock.now() + 30_000);
  });

  it("the preview listener's table sends everything to green and carries nothing else", () => {
    const sim = new Sim(bg());
    sim.tick();
    sim.setVersion("v2");
    for (let i = 0; i < 3; i++) sim.tick();
    const table = { ...sim.table(), revision: 7, mirror: { fake: true } } as never;
    const [main, preview] = expandPreviews([table]);
    assert.equal(main, table);
    assert.equal(preview?.service, "svc:preview");
    assert.deepEqual(preview?.listen, { host: "127.0.0.1", port: 9090 });
    assert.deepEqual(preview?.backends, [
      { version: "v2", weight: 100, endpoints: ["v2-0", "v2-1", "v2-2", "v2-3"] },
    ]);
    assert.equal((preview as unknown as Record<string, unknown>).mirror, undefined);
    assert.equal(preview?.matches, undefined);
  });

  it("a rollback within scaleDownDelay is an instant switch back; later blue is gone", () => {
    const sim = new Sim(bg({ autoPromotionSeconds: 0 }));
    sim.tick();
    sim.setVersion("v2");
    for (let i = 0; i < 4; i++) sim.tick();
    assert.equal(sim.s.stableVersion, "v2");
    sim.clock.advance(5_000);
    sim.setVersion("v1"); // undo
    sim.tick();
    assert.equal(sim.s.phase, "Completed");
    assert.equal(sim.s.stableVersion, "v1");
    assert.equal(sim.weight("v1"), 100);
    sim.clock.advance(31_000);
    sim.tick();
    assert.deepEqual(sim.last.targets, [{ version: "v1", replicas: 4 }]);
  });

  it("previewReplicas: green starts smaller and grows to full size before the switch", () => {
    const sim = new Sim(bg({ previewReplicas: 1, autoPromotionSeconds: 0 }));
    sim.tick();
    sim.setVersion("v2");
    sim.tick();
    assert.deepEqual(
      sim.last.targets.find((t) => t.version === "v2"),
      { version: "v2", replicas: 1 },
    );
    sim.tick(); // starting
    sim.tick(); // 1 ready: the pause (0 s) passes, the switch asks for 4
    assert.deepEqual(
      sim.last.targets.find((t) => t.version === "v2"),
      { version: "v2", replicas: 4 },
    );
    assert.equal(sim.weight("v1"), 100, "no switch before green is full size");
    for (let i = 0; i < 5 && sim.phase() !== "Completed"; i++) {
      sim.tick();
      if (sim.phase() !== "Completed") assert.equal(sim.weight("v1"), 100);
      else assert.equal(sim.running.v2?.ready, 4, "switched only with 4/4 green ready");
    }
    assert.equal(sim.s.phase, "Completed");
    assert.equal(sim.weight("v2"), 100);
  });

  it("abort before the switch is instant and keeps blue serving", () => {
    const sim = new Sim(bg());
    sim.tick();
    sim.setVersion("v2");
    sim.tick();
    sim.tick();
    sim.command("abort");
    sim.tick();
    assert.equal(sim.s.phase, "Degraded");
    assert.equal(sim.weight("v1"), 100);
    assert.equal(sim.table().preview, undefined);
  });

  it("green that never becomes ready is aborted at its progress deadline", () => {
    const sim = new Sim(bg({ progressDeadlineSeconds: 30 }));
    sim.tick();
    sim.broken.add("v2");
    sim.setVersion("v2");
    sim.tick();
    sim.clock.advance(20_000);
    sim.tick();
    assert.equal(sim.s.phase, "Progressing");
    sim.clock.advance(11_000);
    sim.tick();
    assert.equal(sim.s.phase, "Degraded");
    assert.match(sim.s.message, /progress deadline/);
  });

  it("postPromotionAnalysis that fails switches back to blue at once", () => {
    const sim = new Sim(
      bg({ autoPromotionSeconds: 0, postPromotionAnalysis: { templates: ["nope"] } }),
    );
    sim.tick();
    sim.setVersion("v2");
    sim.tick();
    sim.tick();
    const seen: number[] = [];
    for (let i = 0; i < 3 && sim.s.phase !== "Degraded"; i++) {
      sim.tick();
      seen.push(sim.weight("v2"));
    }
    assert.equal(sim.s.phase, "Degraded");
    assert.equal(sim.weight("v1"), 100);
    assert.equal(sim.s.stableVersion, "v1");
  });
});

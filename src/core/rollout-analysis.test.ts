/**
 * The rollout core with analysis: inline analysis steps and background analysis, driven with a
 * fake clock and observations fed in as the controller would (no I/O).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dueMeasurements } from "./analysis/run.js";
import { FakeClock } from "./clock.js";
import type {
  AnalysisTemplateSpec,
  CanaryStep,
  ServiceSpec,
  ServiceStatus,
  StrategySpec,
} from "./model.js";
import { type AnalysisObservation, type ReconcileOutput, reconcile } from "./rollout.js";

const ERRORS: AnalysisTemplateSpec = {
  metrics: [
    {
      name: "errors",
      source: { builtin: "error_rate" },
      judge: { threshold: { max: 0.05 } },
      interval: "10s",
      count: 2,
    },
  ],
};

class Sim {
  clock = new FakeClock();
  status: ServiceStatus | null = null;
  generation = 1;
  spec: ServiceSpec;
  last!: ReconcileOutput;
  pending: AnalysisObservation[] = [];
  commands: { type: "promote" | "resume" | "abort" }[] = [];

  readiness: Record<string, { ready: number; failed: number }> = {
    v1: { ready: 1, failed: 0 },
    v2: { ready: 1, failed: 0 },
  };

  constructor(steps: CanaryStep[], background?: { startingStep: number }, strategy?: StrategySpec) {
    this.spec = {
      listen: { host: "127.0.0.1", port: 8080 },
      runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:1"] } } } },
      version: "v1",
      strategy: strategy ?? {
        canary: {
          steps,
          ...(background ? { analysis: { templates: ["errors"], ...background } } : {}),
        },
      },
    };
  }
  tick(): ReconcileOutput {
    this.last = reconcile({
      now: this.clock.now(),
      service: { name: "svc", generation: this.generation, spec: this.spec },
      status: this.status,
      commands: this.commands.map((c, i) => ({
        id: i + 1,
        service: "svc",
        type: c.type,
        args: {},
        actor: "ops",
        createdAt: this.clock.now(),
      })),
      readiness: this.readiness,
      templates: { errors: ERRORS },
      observations: this.pending,
    });
    this.pending = [];
    this.commands = [];
    this.status = this.last.status;
    return this.last;
  }
  start(): void {
    this.tick();
    this.spec = { ...this.spec, version: "v2" };
    this.generation++;
    this.tick();
  }
  /** Answers every due measurement with the given error rate, as the controller would. */
  measure(errorRate: number): number {
    const s = this.status!;
    let n = 0;
    const runs = [
      ["step", s.analysis?.step?.run] as const,
      ["background", s.analysis?.background] as const,
    ];
    for (const [kind, run] of runs) {
      if (!run) continue;
      for (const due of dueMeasurements(run, this.clock.now())) {
        n++;
        this.pending.push({
          run: kind,
          runStartedAt: run.startedAt,
          metric: due.metric,
          fromMs: due.fromMs,
          toMs: due.toMs,
          observation: {
            value: errorRate,
            sampleSize: 1000,
            candidate: {
              value: errorRate,
              sampleSize: 1000,
              proportion: { events: Math.round(errorRate * 1000), trials: 1000 },
            },
            baseline: { value: 0.01, sampleSize: 1000, proportion: { events: 10, trials: 1000 } },
          },
        });
      }
    }
    return n;
  }
  types(): string[] {
    return this.last.events.map((e) => e.type);
  }
}

describe("rollout core with analysis", () => {
  it("an inline analysis step that passes lets the rollout go on", () => {
    const sim = new Sim([
      { setWeight: 20 },
      { analysis: { templates: ["errors"] } },
      { setWeight: 60 },
      { pause: {} },
    ]);
    sim.start();
    assert.equal(sim.status?.phase, "Progressing");
    assert.match(sim.status!.message, /analysis at step 2\/4/);
    assert.equal(
      sim.last.wakeAt,
      sim.clock.now() + 10_000,
      "the controller wakes when a measurement is due",
    );
    for (let i = 0; i < 2; i++) {
      sim.clock.advance(10_000);
      assert.equal(sim.measure(0.01), 1);
      sim.tick();
    }
    assert.ok(sim.types().includes("AnalysisSucceeded"), sim.types().join());
    assert.equal(sim.status?.phase, "Paused");
    assert.equal(sim.status?.canaryWeight, 60);
  });

  it("a failing inline analysis rolls back at once, with the verdict's explanation", () => {
    const sim = new Sim([
      { setWeight: 20 },
      { analysis: { templates: ["errors"] } },
      { setWeight: 60 },
    ]);
    sim.start();
    sim.clock.advance(10_000);
    sim.measure(0.2);
    const out = sim.tick();
    assert.equal(sim.status?.phase, "Degraded");
    assert.deepEqual(out.weights, [{ version: "v1", weight: 100 }]);
    assert.match(sim.status!.message, /analysis at step 2\/3 failed/);
    const failed = out.events.find((e) => e.type === "AnalysisFailed");
    assert.ok(failed, sim.types().join());
    const metrics = failed.data.metrics as {
      name: string;
      last: { outcome: string; explanation: string };
    }[];
    assert.equal(metrics[0]?.last.outcome, "fail");
    assert.match(metrics[0]!.last.explanation, /0\.2|20/);
    assert.ok(sim.types().includes("AnalysisVerdict"));
  });

  it("background analysis from a chosen step fails the rollout while it pauses", () => {
    const sim = new Sim([{ setWeight: 10 }, { pause: {} }, { setWeight: 50 }, { pause: {} }], {
      startingStep: 1,
    });
    sim.start();
    assert.equal(sim.status?.phase, "Paused");
    assert.ok(sim.status?.analysis?.background, "started at step 1");
    sim.clock.advance(10_000);
    sim.measure(0.01);
    sim.tick();
    assert.equal(sim.status?.phase, "Paused");
    sim.clock.advance(10_000);
    sim.measure(0.3);
    sim.tick();
    assert.equal(sim.status?.phase, "Degraded");
    assert.match(sim.status!.message, /background analysis failed/);
    assert.equal(sim.status?.analysis?.background, null);
  });

  it("a missing template is an analysis error that rolls back, saying which", () => {
    const sim = new Sim([{ setWeight: 10 }, { analysis: { templates: ["nope"] } }]);
    sim.start();
    assert.equal(sim.status?.phase, "Degraded");
    assert.match(sim.status!.message, /no AnalysisTemplate named nope/);
  });

  it("no data is inconclusive, never a pass: the rollout waits for a person", () => {
    const sim = new Sim([
      { setWeight: 10 },
      { analysis: { templates: ["errors"] } },
      { setWeight: 50 },
      { pause: {} },
    ]);
    sim.start();
    for (let i = 0; i < 2; i++) {
      sim.clock.advance(10_000);
      const run = sim.status!.analysis!.step!.run;
      for (const due of dueMeasurements(run, sim.clock.now())) {
        sim.pending.push({
          run: "step",
          runStartedAt: run.startedAt,
          metric: due.metric,
          fromMs: due.fromMs,
          toMs: due.toMs,
          observation: { error: "no requests to v2 in the window", errorKind: "noData" },
        });
      }
      sim.tick();
    }
    assert.equal(
      sim.status?.phase,
      "Paused",
      JSON.stringify(sim.last.events.map((e) => e.message)),
    );
    assert.match(sim.status!.message, /inconclusive/);
    assert.equal(sim.status?.canaryWeight, 10);
    sim.commands.push({ type: "promote" });
    sim.tick();
    assert.equal(sim.status?.canaryWeight, 50, JSON.stringify([sim.status, sim.last.events]));
  });

  it("drops results for a run that has been replaced", () => {
    const sim = new Sim([{ setWeight: 20 }, { analysis: { templates: ["errors"] } }]);
    sim.start();
    sim.clock.advance(10_000);
    sim.measure(0.5);
    for (const o of sim.pending) o.runStartedAt -= 1;
    sim.tick();
    assert.equal(sim.status?.phase, "Progressing");
  });
});

describe("blue-green and rolling gates use the analysis engine", () => {
  const weight = (sim: Sim, v: string) =>
    sim.last.weights.find((w) => w.version === v)?.weight ?? 0;
  /** Ticks every 10 s, answering due measurements, until the phase is one of `until`. */
  const run = (sim: Sim, errorRate: number, until: string[]) => {
    for (let i = 0; i < 20 && !until.includes(sim.status?.phase ?? ""); i++) {
      sim.clock.advance(10_000);
      sim.measure(errorRate);
      sim.tick();
    }
  };

  it("prePromotionAnalysis passes, then the switch waits for promote", () => {
    const sim = new Sim([], undefined, {
      blueGreen: { prePromotionAnalysis: { templates: ["errors"] } },
    });
    sim.start();
    run(sim, 0.01, ["Paused", "Degraded"]);
    assert.equal(sim.status?.phase, "Paused");
    assert.equal(weight(sim, "v1"), 100);
    sim.commands.push({ type: "promote" });
    sim.tick();
    assert.equal(sim.status?.phase, "Completed");
    assert.equal(weight(sim, "v2"), 100);
  });

  it("prePromotionAnalysis fails: aborted before any user reached green", () => {
    const sim = new Sim([], undefined, {
      blueGreen: { prePromotionAnalysis: { templates: ["errors"] } },
    });
    sim.start();
    run(sim, 0.2, ["Paused", "Degraded"]);
    assert.equal(sim.status?.phase, "Degraded");
    assert.match(sim.status?.message ?? "", /analysis at step 1\/3 failed/);
    assert.equal(weight(sim, "v1"), 100);
  });

  it("postPromotionAnalysis fails after the switch: traffic switches back to blue", () => {
    const sim = new Sim([], undefined, {
      blueGreen: { autoPromotionSeconds: 0, postPromotionAnalysis: { templates: ["errors"] } },
    });
    sim.start();
    sim.tick();
    assert.equal(weight(sim, "v2"), 100, "switched");
    assert.equal(sim.status?.stableVersion, "v1", "blue still stable until the analysis passes");
    run(sim, 0.2, ["Completed", "Degraded"]);
    assert.equal(sim.status?.phase, "Degraded");
    assert.equal(weight(sim, "v1"), 100);
  });

  it("rolling: each batch waits for the analysis before the next one", () => {
    const sim = new Sim([], undefined, {
      rolling: { maxSurge: 1, maxUnavailable: 0, analysis: { templates: ["errors"] } },
    });
    sim.spec = {
      ...sim.spec,
      runtime: {
        process: {
          command: ["x"],
          replicas: 2,
          readiness: { path: "/", periodSeconds: 1, timeoutSeconds: 1, initialDelaySeconds: 0 },
          startupTimeoutSeconds: 10,
          terminationGracePeriodSeconds: 1,
        },
      } as ServiceSpec["runtime"],
    };
    sim.readiness = { v1: { ready: 2, failed: 0 }, v2: { ready: 0, failed: 0 } };
    sim.start();
    assert.deepEqual(sim.status?.replicas, { v2: 1, v1: 2 });
    sim.readiness.v2 = { ready: 1, failed: 0 };
    sim.tick();
    assert.ok(sim.status?.analysis?.step?.run, "batch 1 available: its analysis runs");
    assert.deepEqual(sim.status?.replicas, { v2: 1, v1: 2 }, "nothing more until it passes");
    // Passing measurements: the batch's analysis succeeds, and only then the next batch starts.
    let passedAt = -1;
    for (let t = 0; t < 10 && passedAt < 0; t++) {
      sim.clock.advance(10_000);
      sim.measure(0.01);
      sim.tick();
      if (sim.types().includes("AnalysisSucceeded")) passedAt = t;
      else assert.deepEqual(sim.status?.replicas, { v2: 1, v1: 2 });
    }
    assert.ok(passedAt >= 0, "the batch analysis passed");
    assert.deepEqual(sim.status?.replicas, { v2: 2, v1: 1 }, "the next batch started");
    sim.readiness = { v1: { ready: 1, failed: 0 }, v2: { ready: 2, failed: 0 } };
    sim.tick();
    assert.equal(sim.status?.phase, "Completed", sim.status?.message);
    assert.equal(weight(sim, "v2"), 100);
  });
});

describe("blue-green with feature flags", () => {
  const strategy: StrategySpec = {
    blueGreen: {
      autoPromotionSeconds: 0,
      flagSteps: [
        { setFlag: { flag: "f", percentage: 50 } },
        { analysis: { templates: ["errors"] } },
        { setFlag: { flag: "f", percentage: 100 } },
      ],
    },
  };

  it("a failed analysis after a flag step turns the flag off and keeps green", () => {
    const sim = new Sim([], undefined, strategy);
    sim.start();
    sim.tick();
    assert.equal(sim.status?.flags?.f?.percentage, 50);
    for (let i = 0; i < 10 && sim.status?.phase !== "Completed"; i++) {
      sim.clock.advance(10_000);
      sim.measure(0.2);
      sim.tick();
    }
    assert.equal(sim.status?.phase, "Completed", sim.status?.message);
    assert.equal(sim.status?.stableVersion, "v2", "no switch back: the version is fine");
    assert.match(sim.status?.message ?? "", /completed with the feature off: flag f turned off/);
    assert.equal(sim.status?.flags?.f?.state, "DISABLED");
    assert.match(sim.status?.flags?.f?.reason ?? "", /^turned off: analysis at step 5\/6 failed/);
    assert.ok(sim.types().includes("FlagKilled"));
  });

  it("an abort during the flag steps switches back to blue and turns the flag off", () => {
    const sim = new Sim([], undefined, strategy);
    sim.start();
    sim.tick();
    sim.commands.push({ type: "abort" });
    sim.tick();
    assert.equal(sim.status?.phase, "Degraded");
    assert.equal(sim.status?.stableVersion, "v1");
    assert.equal(sim.status?.flags?.f?.state, "DISABLED");
  });
});

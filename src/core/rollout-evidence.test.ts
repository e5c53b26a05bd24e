/**
 * A step never completes on "nothing seen", and a candidate that is sent requests and answers
 * none fails within a bound: canary pauses with background analysis, rolling batches, and
 * feature-flag steps, driven with a fake clock through the pure core. The measurements answer as
 * the builtin provider does over the built-in router (`Observation.traffic`: what the router
 * sent the candidate), from a model of the candidate's traffic in the window:
 *   - quiet: no request reaches the candidate (a low-traffic service);
 *   - hung: requests reach it, none is answered, none ends (clients wait longer than the step);
 *   - few: it answers, but fewer requests than the metric's minSamples;
 *   - healthy: it answers plenty, as well as the baseline.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NO_RESPONSE_MARGIN_MS } from "./analysis/no-response.js";
import type { Observation } from "./analysis/observation.js";
import { DEFAULT_SEQUENTIAL_BUILTIN_INTERVAL_MS, dueMeasurements } from "./analysis/run.js";
import { FakeClock } from "./clock.js";
import type {
  AnalysisTemplateSpec,
  CanaryStep,
  ServiceSpec,
  ServiceStatus,
  StrategySpec,
} from "./model.js";
import { type AnalysisObservation, type ReconcileOutput, reconcile } from "./rollout.js";

type Traffic = "quiet" | "hung" | "few" | "healthy";

/** Background: the always-valid sequential test at its defaults (a look every 2 s). */
const BACKGROUND: AnalysisTemplateSpec = {
  metrics: [
    {
      name: "errors",
      source: { builtin: "error_rate" },
      judge: { sequential: { maxIncrease: 0.01, alpha: 0.05 } },
    },
  ],
};
/** Between rolling batches and after flag steps: one look 10 s after the gate opens. */
const GATE: AnalysisTemplateSpec = {
  metrics: [
    {
      name: "errors",
      source: { builtin: "error_rate" },
      judge: { relative: { mode: "difference", maxIncrease: 0.02 } },
      interval: "10s",
      count: 1,
      minSamples: 10,
    },
  ],
};
/** The flag form: the feature on against off, within the candidate. */
const FEATURE: AnalysisTemplateSpec = {
  metrics: [
    {
      name: "feature",
      source: { builtin: { metric: "error_rate", flag: "f" } },
      judge: { relative: { mode: "difference", maxIncrease: 0.02 } },
      interval: "2s",
      minSamples: 10,
    },
  ],
};

/** The upstream timeout of the services below: the default no-response bound. */
const UPSTREAM_SECONDS = 20;

class World {
  clock = new FakeClock();
  status: ServiceStatus | null = null;
  generation = 1;
  last!: ReconcileOutput;
  events: ReconcileOutput["events"] = [];
  commands: { type: "promote" | "abort" }[] = [];
  readiness: Record<string, { ready: number; failed: number }> = {
    v1: { ready: 1, failed: 0 },
    v2: { ready: 1, failed: 0 },
  };
  /** How the candidate's traffic goes; when it began to get requests (clock ms). */
  traffic: Traffic = "quiet";
  /** Candidate requests in the window, for "few". */
  few = 8;

  constructor(public spec: ServiceSpec) {}

  static canary(steps: CanaryStep[]): World {
    return new World(
      service({ canary: { steps, analysis: { templates: ["bg"], startingStep: 0 } } }),
    );
  }

  tick(): ReconcileOutput {
    const observations = this.answer();
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
      templates: { bg: BACKGROUND, gate: GATE, feature: FEATURE },
      observations,
    });
    this.commands = [];
    this.status = this.last.status;
    this.events.push(...this.last.events);
    return this.last;
  }

  start(): void {
    this.tick();
    this.spec = { ...this.spec, version: "v2" };
    this.generation++;
    this.tick();
  }

  /** Ticks at every wake-up the core asks for (or every second) until `ms` have passed or `until`. */
  run(ms: number, until: (w: World) => boolean = () => false): void {
    const end = this.clock.now() + ms;
    while (this.clock.now() < end && !until(this)) {
      const wake = this.last.wakeAt;
      const next =
        wake !== null && wake > this.clock.now()
          ? Math.min(wake, this.clock.now() + 1000)
          : this.clock.now() + 1000;
      this.clock.advance(Math.min(next, end) - this.clock.now());
      this.tick();
    }
  }

  /** Answers every due measurement as the builtin provider would, from `traffic`. */
  answer(): AnalysisObservation[] {
    const s = this.status;
    if (!s) return [];
    const out: AnalysisObservation[] = [];
    const runs = [
      ["step", s.analysis?.step?.run] as const,
      ["background", s.analysis?.background] as const,
    ];
    for (const [kind, run] of runs) {
      if (!run) continue;
      for (const due of dueMeasurements(run, this.clock.now())) {
        out.push({
          run: kind,
          runStartedAt: run.startedAt,
          metric: due.metric,
          fromMs: due.fromMs,
          toMs: due.toMs,
          observation: this.observation(due.fromMs, due.toMs),
        });
      }
    }
    return out;
  }

  observation(fromMs: number, toMs: number): Observation {
    const seconds = Math.max(0, Math.floor((toMs - fromMs) / 1000));
    const noData = (started: number): Observation => ({
      error: "no data: candidate v2 of svc had no requests in the window",
      errorKind: "noData",
      traffic: {
        version: "v2",
        started,
        responded: 0,
        ended: 0,
        firstStartedAt: started > 0 ? Math.ceil(fromMs / 1000) * 1000 : null,
      },
    });
    if (this.traffic === "quiet" || seconds === 0) return noData(0);
    if (this.traffic === "hung") return noData(5 * seconds);
    const n = this.traffic === "few" ? this.few : 50 * seconds;
    return {
      value: 0,
      sampleSize: n,
      candidate: { version: "v2", value: 0, sampleSize: n, proportion: { events: 0, trials: n } },
      baseline: {
        version: "v1",
        value: 0,
        sampleSize: 100 * seconds,
        proportion: { events: 0, trials: 100 * seconds },
      },
      traffic: {
        version: "v2",
        started: n,
        responded: n,
        ended: n,
        firstStartedAt: Math.ceil(fromMs / 1000) * 1000,
      },
    };
  }

  types(): string[] {
    return this.events.map((e) => e.type);
  }

  weight(v: string): number {
    return this.last.weights.find((w) => w.version === v)?.weight ?? 0;
  }
}

function service(strategy: StrategySpec): ServiceSpec {
  return {
    listen: { host: "127.0.0.1", port: 8080 },
    runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:1"] } } } },
    version: "v1",
    strategy,
    trafficPolicy: {
      loadBalancing: "leastRequest",
      outlierDetection: { consecutiveFailures: 5, ejectionSeconds: 30, maxEjectionPercent: 50 },
      retries: { attempts: 1 },
      timeouts: { requestHeadersSeconds: 10, idleSeconds: 60, upstreamSeconds: UPSTREAM_SECONDS },
      maxRequestBodyBytes: 1024,
    },
  };
}

/** The latest a hung candidate may be rolled back: the bound, the store's margin, a look. */
const HUNG_BOUND_MS =
  1000 + UPSTREAM_SECONDS * 1000 + NO_RESPONSE_MARGIN_MS + DEFAULT_SEQUENTIAL_BUILTIN_INTERVAL_MS;

describe("a canary's timed pause with background analysis", () => {
  const steps: CanaryStep[] = [{ setWeight: 20 }, { pause: { duration: "10s" } }];

  it("no traffic: the pause is held, says why, and waits; a person's promote goes on", () => {
    const w = World.canary(steps);
    w.traffic = "quiet";
    w.start();
    w.run(10 * 60_000);
    assert.equal(w.status?.phase, "Progressing", w.status?.message);
    assert.equal(w.weight("v2"), 20, "held at its weight, not promoted, not rolled back");
    assert.equal(w.status?.stepIndex, 1);
    assert.match(
      w.status!.message,
      /^step 2\/2 \(pause 10s\) held with v2 at 20%: the background analysis has no evidence on v2 yet \(errors: no request was sent to v2 in the window/,
    );
    assert.match(w.status!.message, /`turnout promote` goes on without it$/);
    const held = w.events.filter((e) => e.type === "StepHeld");
    assert.equal(held.length, 1, "said once");
    assert.deepEqual(held[0]?.data, {
      step: 1,
      version: "v2",
      weight: 20,
      metrics: [
        {
          name: "errors",
          reason: "noTraffic",
          explanation:
            "errors: no request was sent to v2 in the window (10s): nothing to judge yet",
        },
      ],
    });
    assert.equal(held[0]?.time, w.status!.stepStartedAt! + 10_000, "held when its time was up");
    assert.deepEqual(w.status?.heldForData, { step: 1, rollout: 1, since: held[0]?.time });
    assert.ok(!w.types().includes("StepCompleted") && !w.types().includes("RolloutAborted"));

    w.commands.push({ type: "promote" });
    w.tick();
    assert.equal(w.status?.phase, "Completed", w.status?.message);
    assert.equal(w.weight("v2"), 100);
  });

  it("requests sent and none answered: held, then rolled back within the bound, saying why", () => {
    const w = World.canary(steps);
    w.traffic = "hung";
    w.start();
    const firstAt = w.clock.now();
    w.run(10 * 60_000, (x) => x.status?.phase === "Degraded");
    assert.equal(w.status?.phase, "Degraded", w.status?.message);
    assert.ok(
      w.clock.now() - firstAt <= HUNG_BOUND_MS,
      `rolled back ${w.clock.now() - firstAt} ms after the first request, bound ${HUNG_BOUND_MS}`,
    );
    assert.equal(w.weight("v1"), 100);
    assert.match(
      w.status!.message,
      /background analysis failed: errors failed: 1 failed > failureLimit 0: errors: v2: \d+ requests sent, none answered within 20s of the first \(noResponseTimeout 20s\)/,
    );
    const held = w.events.find((e) => e.type === "StepHeld");
    assert.match(held?.message ?? "", /requests sent, none answered yet/);
    assert.ok(!w.types().includes("StepCompleted"), "the pause never completed");
    assert.ok(!w.types().includes("RolloutCompleted"));
  });

  it("too few samples: held, not passed; it goes on once there are enough, and says how long it waited", () => {
    const w = World.canary(steps);
    w.traffic = "few";
    w.few = 8;
    w.start();
    w.run(60_000);
    assert.equal(w.status?.stepIndex, 1);
    assert.match(w.status!.message, /held .*requests 8 on the candidate < minSamples 100/);
    const held = w.events.find((e) => e.type === "StepHeld");
    assert.ok(held, w.types().join());
    assert.deepEqual(
      (held.data.metrics as { reason: string }[]).map((m) => m.reason),
      ["tooFewSamples"],
    );
    w.traffic = "healthy";
    w.run(60_000, (x) => x.status?.phase === "Completed");
    assert.equal(w.status?.phase, "Completed", w.status?.message);
    const done = w.events.find((e) => e.type === "StepCompleted" && e.data.step === 1);
    assert.ok(done && (done.data.heldMs as number) >= 50_000, JSON.stringify(done));
    assert.match(done.message, /pause 10s\) done, held \d+s for analysis data/);
  });

  it("a healthy candidate is not held: the pause ends on time", () => {
    const w = World.canary(steps);
    w.traffic = "healthy";
    w.start();
    const t0 = w.clock.now();
    w.run(60_000, (x) => x.status?.phase === "Completed");
    assert.equal(w.status?.phase, "Completed");
    assert.equal(w.clock.now() - t0, 10_000);
    assert.ok(!w.types().includes("StepHeld"));
  });

  it("a feature-flag step: too few samples with the feature on holds the pause, the flag stays", () => {
    const w = new World(
      service({
        canary: {
          steps: [
            { setWeight: 100 },
            { setFlag: { flag: "f", percentage: 10 } },
            { pause: { duration: "10s" } },
            { setFlag: { flag: "f", percentage: 100 } },
          ],
          analysis: { templates: ["feature"], startingStep: 1 },
        },
      }),
    );
    w.traffic = "few";
    w.few = 8;
    w.start();
    w.run(5 * 60_000);
    assert.equal(w.status?.stepIndex, 2, w.status?.message);
    assert.equal(w.status?.flags?.f?.percentage, 10);
    assert.match(w.status!.message, /held .*samples 8 on the candidate < minSamples 10/);
  });
});

describe("a rolling update's batches", () => {
  const rolling = (): World => {
    const w = new World(
      service({ rolling: { maxSurge: 1, maxUnavailable: 0, analysis: { templates: ["gate"] } } }),
    );
    w.spec = {
      ...w.spec,
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
    w.readiness = { v1: { ready: 2, failed: 0 }, v2: { ready: 0, failed: 0 } };
    w.start();
    w.readiness.v2 = { ready: 1, failed: 0 };
    w.tick();
    assert.ok(w.status?.analysis?.step?.run, "batch 1 is available: its analysis runs");
    return w;
  };

  it("no traffic: the next batch does not start; a person is asked, with the reason", () => {
    const w = rolling();
    w.traffic = "quiet";
    w.run(5 * 60_000);
    assert.equal(w.status?.phase, "Paused", w.status?.message);
    assert.deepEqual(w.status?.replicas, { v2: 1, v1: 2 });
    assert.match(w.status!.message, /inconclusive: .*no request was sent to v2/);
    assert.ok(w.types().includes("AnalysisInconclusive"));
  });

  it("requests sent and none answered: rolled back within the bound", () => {
    const w = rolling();
    w.traffic = "hung";
    const t0 = w.clock.now();
    w.run(10 * 60_000, (x) => x.status?.phase === "Degraded");
    assert.equal(w.status?.phase, "Degraded", w.status?.message);
    assert.ok(w.clock.now() - t0 <= 1000 + UPSTREAM_SECONDS * 1000 + NO_RESPONSE_MARGIN_MS);
    assert.match(w.status!.message, /none answered within 20s of the first/);
    assert.equal(w.weight("v1"), 100);
  });

  it("too few samples: the batch is not passed; it waits for a person", () => {
    const w = rolling();
    w.traffic = "few";
    w.few = 8;
    w.run(5 * 60_000);
    assert.equal(w.status?.phase, "Paused", w.status?.message);
    assert.deepEqual(w.status?.replicas, { v2: 1, v1: 2 });
    assert.match(w.status!.message, /samples 8 on the candidate < minSamples 10/);
    assert.ok(!w.types().includes("AnalysisSucceeded"));
  });
});

describe("blue-green's flag steps", () => {
  const flags = (): World => {
    const w = new World(
      service({
        blueGreen: {
          autoPromotionSeconds: 0,
          flagSteps: [
            { setFlag: { flag: "f", percentage: 10 } },
            { analysis: { templates: ["gate"] } },
            { setFlag: { flag: "f", percentage: 100 } },
          ],
        },
      }),
    );
    w.start();
    w.tick();
    assert.equal(w.status?.flags?.f?.percentage, 10);
    return w;
  };

  it("requests sent and none answered: the feature is turned off within the bound", () => {
    const w = flags();
    w.traffic = "hung";
    const t0 = w.clock.now();
    w.run(10 * 60_000, (x) => x.status?.phase === "Completed" || x.status?.phase === "Degraded");
    assert.ok(w.clock.now() - t0 <= 1000 + UPSTREAM_SECONDS * 1000 + NO_RESPONSE_MARGIN_MS);
    assert.equal(w.status?.flags?.f?.state, "DISABLED");
    assert.ok(w.types().includes("FlagKilled"), w.types().join());
    assert.match(w.status!.message, /none answered within 20s of the first/);
  });

  it("too few samples: the next flag step does not run; a person is asked", () => {
    const w = flags();
    w.traffic = "few";
    w.few = 8;
    w.run(5 * 60_000);
    assert.equal(w.status?.phase, "Paused", w.status?.message);
    assert.equal(w.status?.flags?.f?.percentage, 10);
    assert.match(w.status!.message, /samples 8 on the candidate < minSamples 10/);
  });

  it("no traffic: the next flag step does not run; a person is asked, with the reason", () => {
    const w = flags();
    w.traffic = "quiet";
    w.run(5 * 60_000);
    assert.equal(w.status?.phase, "Paused", w.status?.message);
    assert.equal(w.status?.flags?.f?.percentage, 10);
    assert.match(w.status!.message, /no request was sent to v2/);
  });
});

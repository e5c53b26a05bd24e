import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "../clock.js";
import type { CanaryStep, ServiceSpec, ServiceStatus } from "../model.js";
import { type ReconcileOutput, reconcile } from "../rollout.js";
import { buildRouteTable } from "../routes.js";
import { ShadowAggregate, type ShadowReport } from "../shadow/aggregate.js";
import { comparePair, compileCompare } from "../shadow/compare.js";
import type { ShadowStep } from "../shadow/types.js";

const enc = new TextEncoder();
const resp = (v: unknown, ms: number) => ({
  status: 200,
  headers: {},
  body: enc.encode(JSON.stringify(v)),
  truncated: false,
  latencyMs: ms,
});

/** A report of `n` pairs of which `disagree` have another label, shadow latency `ms`. */
function report(n: number, disagree: number, ms = 10): ShadowReport {
  const a = new ShadowAggregate();
  const c = compileCompare({ classification: { field: "label" } });
  const req = { requestId: "r", method: "POST", target: "/predict" };
  for (let i = 0; i < n; i++)
    a.addPair(
      comparePair(c, resp({ label: "a" }, 10), resp({ label: i < disagree ? "b" : "a" }, ms)),
      req,
    );
  return a.report();
}

const SHADOW: ShadowStep = {
  percent: 100,
  methods: ["POST"],
  sideEffectFree: true,
  compare: { classification: { field: "label" } },
  gate: { minSamples: 100, minAgreement: 0.95, maxLatencyIncrease: 0.5 },
};

class Scenario {
  clock = new FakeClock();
  status: ServiceStatus | null = null;
  generation = 1;
  spec: ServiceSpec;
  shadowReport: ShadowReport | null = null;
  last!: ReconcileOutput;
  constructor(strategy: ServiceSpec["strategy"]) {
    this.spec = {
      listen: { host: "127.0.0.1", port: 8080 },
      runtime: {
        static: {
          versions: {
            v1: { upstreams: ["http://127.0.0.1:1"] },
            v2: { upstreams: ["http://127.0.0.1:2"] },
          },
        },
      },
      version: "v1",
      ...(strategy ? { strategy } : {}),
    };
  }
  tick(): ReconcileOutput {
    const id = this.status?.shadow?.id;
    this.last = reconcile({
      now: this.clock.now(),
      service: { name: "svc", generation: this.generation, spec: this.spec },
      status: this.status,
      commands: [],
      readiness: { v1: { ready: 1, failed: 0 }, v2: { ready: 1, failed: 0 } },
      ...(id && this.shadowReport ? { shadowReport: { id, report: this.shadowReport } } : {}),
    });
    this.status = this.last.status;
    return this.last;
  }
  release(v: string) {
    this.spec = { ...this.spec, version: v };
    this.generation++;
  }
  get s(): ServiceStatus {
    return this.status!;
  }
  table() {
    return buildRouteTable({
      service: "svc",
      spec: this.spec,
      status: this.s,
      weights: this.last.weights,
      endpoints: (v) => [`http://${v}`],
      now: this.clock.now(),
    });
  }
}

describe("shadow step", () => {
  it("shadow -> canary -> 100%: mirrors at 0% weight, waits for samples, passes, goes on", () => {
    const steps: CanaryStep[] = [{ shadow: SHADOW }, { setWeight: 20 }, { pause: {} }];
    const sc = new Scenario({ canary: { steps } });
    sc.tick();
    sc.release("v2");
    sc.tick();
    assert.equal(sc.s.canaryWeight, 0);
    assert.equal(sc.s.shadow?.kind, "shadow");
    assert.ok(sc.last.events.some((e) => e.type === "ShadowStarted"));
    const t = sc.table();
    assert.deepEqual(t.mirror?.endpoints, ["http://v2"]);
    assert.equal(t.mirror?.version, "v2");
    assert.deepEqual(t.mirror?.methods, ["POST"]);
    assert.equal(t.mirror?.limits.maxQueue, 256);
    assert.deepEqual(
      t.backends.map((b) => [b.version, b.weight]),
      [
        ["v2", 0],
        ["v1", 100],
      ],
    );
    assert.ok(sc.last.wakeAt !== null);

    // Fewer samples than minSamples is never a pass, however good.
    sc.shadowReport = report(99, 0);
    sc.clock.advance(2000);
    sc.tick();
    assert.equal(sc.s.stepIndex, 0);
    assert.match(sc.s.message, /99\/100 samples/);

    sc.shadowReport = report(200, 4, 11);
    sc.clock.advance(2000);
    sc.tick();
    const passed = sc.last.events.find((e) => e.type === "ShadowPassed");
    assert.ok(passed);
    assert.equal((passed.data.report as { samples: number }).samples, 200);
    assert.equal(sc.s.shadow, null);
    assert.equal(sc.s.canaryWeight, 20);
    assert.equal(sc.table().mirror, undefined);
  });

  it("a failed gate rolls back with the report's numbers in the event", () => {
    const sc = new Scenario({ shadow: SHADOW });
    sc.tick();
    sc.release("v2");
    sc.tick();
    sc.shadowReport = report(200, 30);
    sc.clock.advance(2000);
    sc.tick();
    assert.equal(sc.s.phase, "Degraded");
    assert.match(sc.s.message, /agreement 85.0% < 95.0%/);
    const ev = sc.last.events.find((e) => e.type === "RolloutAborted")!;
    assert.ok(ev);
    assert.equal((ev.data as { report: { agreement: number } }).report.agreement, 0.85);
    assert.equal(sc.s.shadow, null);
  });

  it("the shadow strategy promotes on pass; duration holds the verdict back", () => {
    const sc = new Scenario({ shadow: { ...SHADOW, gate: { ...SHADOW.gate, duration: "1m" } } });
    sc.tick();
    sc.release("v2");
    sc.tick();
    sc.shadowReport = report(500, 0);
    sc.clock.advance(30_000);
    sc.tick();
    assert.equal(sc.s.phase, "Progressing");
    sc.clock.advance(31_000);
    sc.tick();
    assert.equal(sc.s.stableVersion, "v2");
    assert.equal(sc.s.phase, "Completed");
  });

  it("a report of another phase is ignored", () => {
    const sc = new Scenario({ shadow: SHADOW });
    sc.tick();
    sc.release("v2");
    sc.tick();
    const r = report(500, 0);
    sc.tick = function (this: Scenario) {
      this.last = reconcile({
        now: this.clock.now(),
        service: { name: "svc", generation: this.generation, spec: this.spec },
        status: this.status,
        commands: [],
        readiness: { v1: { ready: 1, failed: 0 }, v2: { ready: 1, failed: 0 } },
        shadowReport: { id: "some-other-phase", report: r },
      });
      this.status = this.last.status;
      return this.last;
    };
    sc.tick();
    assert.equal(sc.s.stepIndex, 0);
  });

  it("setMirrorRoute mirrors matching requests to the canary without a gate, and is removed", () => {
    const steps: CanaryStep[] = [
      { setMirrorRoute: { percent: 50, match: { header: { name: "x-beta", equals: "1" } } } },
      { setWeight: 10 },
      { pause: {} },
      { setMirrorRoute: {} },
    ];
    const sc = new Scenario({ canary: { steps } });
    sc.tick();
    sc.release("v2");
    sc.tick();
    assert.equal(sc.s.stepIndex, 2);
    const m = sc.table().mirror!;
    assert.equal(m.percent, 50);
    assert.deepEqual(m.match, { header: { name: "x-beta", equals: "1" } });
    assert.deepEqual(m.methods, ["GET", "HEAD"]);
    assert.ok(sc.last.events.some((e) => e.type === "MirrorRouteSet"));
  });
});

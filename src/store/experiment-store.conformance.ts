/**
 * The experiment store's part of the store conformance suite (registered by
 * `describeStoreConformance`, so every implementation runs it): idempotent outcome events,
 * first exposures, the aggregation the analysis reads, and experiment rows written by the
 * controller's commit.
 */
import assert from "node:assert/strict";
import type { ExperimentSpec } from "../core/experiment/types.js";
import { Sketch } from "../core/sketch.js";
import type { ExperimentStore } from "./experiment-store.js";
import type { ConformanceTest } from "./store.conformance.js";
import type { MeasurementRow } from "./store.js";

const spec: ExperimentSpec = {
  split: 50,
  assignment: { header: "x-user" },
  metrics: [
    { name: "conversion", kind: "binomial", role: "goal", source: { event: "purchase" } },
    { name: "revenue", kind: "mean", role: "goal", source: { event: "purchase" } },
    {
      name: "rps",
      kind: "ratio",
      role: "guardrail",
      source: { event: "purchase" },
      denominator: { event: "session" },
    },
    { name: "conf", kind: "mean", role: "guardrail", source: { responseHeader: "X-Conf" } },
  ],
  method: "sequential",
  alpha: 0.05,
  minSamples: 2,
  maxDuration: "1h",
  decision: "auto",
  correction: "holm",
  sequentialTuning: 5000,
  chanceToWin: 0.95,
};
const arms = [
  { name: "A", version: "v1", weight: 50 },
  { name: "B", version: "v2", weight: 50 },
];

/** Outcome events of units u1..u4 (purchases, sessions, a response header). */
const ev = (k: string, unit: string, metric: string, value: number, ts = 10_000) => ({
  idempotencyKey: k,
  unit,
  metric,
  value,
  timestamp: ts,
});
const EVENTS = [
  ev("k1", "u1", "purchase", 10),
  ev("k2", "u1", "purchase", 5),
  ev("k3", "u3", "purchase", 7),
  ev("k4", "u1", "session", 2),
  ev("k5", "u2", "session", 1),
  ev("k6", "u3", "session", 1),
  ev("k7", "u4", "session", 3),
  // Before the exposure by more than the allowed skew: not counted.
  ev("k8", "u2", "purchase", 100, 1_000),
  ev("k9", "u2", "header:x-conf", 0.9),
  ev("k10", "u4", "header:x-conf", 0.7),
];

/** The events, then the exposures of u1..u4 (u1 exposed again later, to another arm). */
async function seed(x: ExperimentStore): Promise<void> {
  await x.recordEvents(EVENTS, 20_000);
  await x.recordEvents([ev("k11", "u4", "purchase", 1)], 21_000);
  await x.recordExposures([
    { experiment: "e1", unit: "u1", arm: "A", at: 9_000 },
    { experiment: "e1", unit: "u2", arm: "A", at: 9_000 },
    { experiment: "e1", unit: "u3", arm: "B", at: 9_000 },
    { experiment: "e1", unit: "u4", arm: "B", at: 9_000 },
  ]);
  await x.recordExposures([{ experiment: "e1", unit: "u1", arm: "B", at: 9_500 }]);
}

export function describeExperimentStoreConformance(test: ConformanceTest): void {
  test("experiments: events are durable, idempotent by key", async ({ features }) => {
    const x = features.experiments;
    const first = await x.recordEvents(EVENTS, 20_000);
    assert.deepEqual(first, { accepted: 10, duplicates: 0 });
    const again = await x.recordEvents(
      [ev("k1", "u1", "purchase", 10), ev("k11", "u4", "purchase", 1)],
      21_000,
    );
    assert.deepEqual(again, { accepted: 1, duplicates: 1 });
  });

  test("experiments: a key stored with another payload is a conflict, and nothing of its batch is stored", async ({
    features,
  }) => {
    const x = features.experiments;
    await x.recordEvents(EVENTS, 20_000);
    // The same payload again is a duplicate, also when conflicts are rejected.
    assert.deepEqual(await x.recordEvents([EVENTS[0]!], 21_000, { rejectConflicts: true }), {
      accepted: 0,
      duplicates: 1,
    });
    const r = await x.recordEvents(
      [ev("k12", "u4", "purchase", 1), ev("k1", "u1", "purchase", 11, 10_001)],
      21_000,
      { rejectConflicts: true },
    );
    assert.deepEqual(r, {
      conflicts: [{ index: 1, idempotencyKey: "k1", fields: ["value", "timestamp"] }],
    });
    // k12 was not stored with the conflicting batch: now it is new.
    assert.deepEqual(await x.recordEvents([ev("k12", "u4", "purchase", 1)], 22_000), {
      accepted: 1,
      duplicates: 0,
    });
    // Without rejectConflicts (the router's own events), the conflicting one is a duplicate.
    assert.deepEqual(await x.recordEvents([ev("k1", "u1", "purchase", 11)], 22_000), {
      accepted: 0,
      duplicates: 1,
    });
  });

  test("experiments: exposures keep the first, and data aggregates per arm", async ({
    features,
  }) => {
    const x = features.experiments;
    await seed(x);
    const d = await x.data({ name: "e1", service: "svc", spec, arms, startedAt: 8_000 }, 30_000);
    assert.deepEqual(d.units, { A: 2, B: 2 });
    assert.deepEqual(d.metrics.conversion, {
      A: { kind: "sums", n: 2, sum: 15, sumSquares: 225, converted: 1 },
      B: { kind: "sums", n: 2, sum: 8, sumSquares: 50, converted: 2 },
    });
    assert.deepEqual(d.metrics.rps, {
      A: { kind: "ratio", n: 2, sumX: 15, sumX2: 225, sumY: 3, sumY2: 5, sumXY: 30 },
      B: { kind: "ratio", n: 2, sumX: 8, sumX2: 50, sumY: 4, sumY2: 10, sumXY: 10 },
    });
    assert.equal((d.metrics.conf!.A as { sum: number }).sum, 0.9);
  });

  test("experiments: a builtin error_rate counts 5xx answers and requests abandoned by clients", async ({
    store,
    features,
  }) => {
    const startedAt = 1_700_000_000_000;
    const row = (
      version: string,
      s2xx: number,
      abandoned: number,
      s5xx: number,
    ): MeasurementRow => ({
      service: "svc",
      version,
      labels: "",
      second: startedAt / 1000 + 1,
      routerId: "r1",
      requests: s2xx + abandoned + s5xx,
      s2xx,
      s3xx: 0,
      s4xx: abandoned,
      s5xx,
      upstreamErrors: 0,
      abandoned,
      latency: new Sketch().toJSON(),
    });
    await store.writeMeasurements([row("v1", 9, 0, 1), row("v2", 4, 4, 2)]);
    const errors: ExperimentSpec = {
      ...spec,
      metrics: [
        { name: "errors", kind: "binomial", role: "guardrail", source: { builtin: "error_rate" } },
      ],
    };
    const d = await features.experiments.data(
      { name: "e1", service: "svc", spec: errors, arms, startedAt },
      startedAt + 10_000,
    );
    const counts = (a: unknown) => {
      const { requests, errors } = a as { requests: number; errors: number };
      return { requests, errors };
    };
    assert.deepEqual(counts(d.metrics.errors!.A), { requests: 10, errors: 1 });
    assert.deepEqual(counts(d.metrics.errors!.B), { requests: 10, errors: 6 });
  });

  test("experiments: CUPED's covariate sums events from before each unit's first exposure", async ({
    features,
  }) => {
    const x = features.experiments;
    await seed(x);
    await x.recordEvents(
      [
        // Before exposure (9,000 - 5,000 skew): covariate. After: the metric.
        { idempotencyKey: "c1", unit: "u1", metric: "spend", value: 3, timestamp: 1_000 },
        { idempotencyKey: "c2", unit: "u1", metric: "spend", value: 4, timestamp: 2_000 },
        { idempotencyKey: "c3", unit: "u3", metric: "spend", value: 5, timestamp: 1_000 },
        { idempotencyKey: "c4", unit: "u1", metric: "spend", value: 10, timestamp: 12_000 },
        { idempotencyKey: "c5", unit: "u3", metric: "spend", value: 1, timestamp: 12_000 },
      ],
      20_000,
    );
    const cupedSpec: ExperimentSpec = {
      ...spec,
      metrics: [
        {
          name: "spend",
          kind: "mean",
          role: "goal",
          source: { event: "spend" },
          covariate: { event: "spend" },
        },
      ],
    };
    const d = await x.data(
      { name: "e1", service: "svc", spec: cupedSpec, arms, startedAt: 8_000 },
      30_000,
    );
    assert.deepEqual(d.metrics.spend, {
      A: {
        kind: "sums",
        n: 2,
        sum: 10,
        sumSquares: 100,
        converted: 1,
        covariate: { sumX: 7, sumX2: 49, sumXY: 70 },
      },
      B: {
        kind: "sums",
        n: 2,
        sum: 1,
        sumSquares: 1,
        converted: 1,
        covariate: { sumX: 5, sumX2: 25, sumXY: 5 },
      },
    });
  });

  test("experiments: rows are written by the controller's commit, and listed", async ({
    store,
    features,
  }) => {
    const x = features.experiments;
    await store.commit({
      service: "svc",
      experiments: [
        {
          name: "e1",
          service: "svc",
          spec,
          arms,
          state: { status: "running" },
          startedAt: 8_000,
          updatedAt: 8_000,
        },
      ],
      now: 8_000,
    });
    await store.commit({
      service: "svc",
      experiments: [
        {
          name: "e1",
          service: "svc",
          spec,
          arms,
          state: { status: "win", summary: "B wins" },
          startedAt: 8_000,
          updatedAt: 9_000,
        },
      ],
      now: 9_000,
    });
    const all = await x.listExperiments();
    assert.equal(all.length, 1);
    assert.equal(all[0]!.state.status, "win");
    assert.equal(await x.getExperiment("nope"), null);
    // Read back as written: the row is the experiment, field for field.
    assert.deepEqual(await x.getExperiment("e1"), {
      name: "e1",
      service: "svc",
      spec,
      arms,
      state: { status: "win", summary: "B wins" },
      startedAt: 8_000,
      updatedAt: 9_000,
    });
  });

  test("experiments: a commit refused by fencing writes no experiment row", async ({
    store,
    features,
  }) => {
    const row = {
      name: "e1",
      service: "svc",
      spec,
      arms,
      state: { status: "running" },
      startedAt: 8_000,
      updatedAt: 8_000,
    };
    const epoch = await store.acquireWriterEpoch("controller A", 8_000);
    await assert.rejects(
      store.commit({ service: "svc", epoch: epoch + 1, experiments: [row], now: 8_000 }),
      { code: "TURNOUT_ERR_STORE_FENCED" },
    );
    assert.equal(await features.experiments.getExperiment("e1"), null);
    await store.commit({ service: "svc", epoch, experiments: [row], now: 8_000 });
    assert.deepEqual(await features.experiments.getExperiment("e1"), row);
  });
}

/**
 * The shadow store's part of the store conformance suite (registered by
 * `describeStoreConformance`): routers' cumulative aggregates upserted per router and merged
 * into one report per phase.
 */
import assert from "node:assert/strict";
import { ShadowAggregate } from "../core/shadow/aggregate.js";
import { comparePair, compileCompare } from "../core/shadow/compare.js";
import type { ShadowStore } from "./shadow-store.js";
import type { ConformanceTest } from "./store.conformance.js";

const enc = new TextEncoder();
const resp = (v: unknown) => ({
  status: 200,
  headers: {},
  body: enc.encode(JSON.stringify(v)),
  truncated: false,
  latencyMs: 5,
});
const req = { requestId: "r", method: "GET", target: "/" };

function aggregate(pairs: number, mismatched: number): ShadowAggregate {
  const a = new ShadowAggregate();
  const c = compileCompare();
  for (let i = 0; i < pairs; i++)
    a.addPair(comparePair(c, resp({ y: 1 }), resp({ y: i < mismatched ? 2 : 1 })), req);
  return a;
}

const row = (router: string, a: ShadowAggregate, at: number) => ({
  service: "svc",
  id: "r1-s0-v2",
  version: "v2",
  routerId: router,
  state: a.toJSON(),
  updatedAt: at,
});

/** Phase r1-s0-v2 as routers a and b flushed it. */
async function seed(s: ShadowStore): Promise<void> {
  await s.saveShadowAggregates([row("a", aggregate(10, 1), 1000)]);
  // A later flush of router a replaces its row (cumulative), router b adds its own.
  await s.saveShadowAggregates([
    row("a", aggregate(20, 2), 2000),
    row("b", aggregate(30, 3), 2500),
  ]);
}

export function describeShadowStoreConformance(test: ConformanceTest): void {
  test("shadow: upserts each router's cumulative aggregate and merges routers into one report", async ({
    features,
  }) => {
    const s = features.shadow;
    await seed(s);
    const r = (await s.report("svc", "r1-s0-v2"))!;
    assert.equal(r.routers, 2);
    assert.equal(r.updatedAt, 2500);
    assert.equal(r.report.samples, 50);
    assert.equal(r.report.mismatches, 5);
    assert.equal(r.report.mismatchRate, 0.1);
  });

  test("shadow: the latest phase by default, and the list of phases", async ({ features }) => {
    const s = features.shadow;
    await seed(s);
    await s.saveShadowAggregates([
      {
        service: "svc",
        id: "r2-s0-v3",
        version: "v3",
        routerId: "a",
        state: aggregate(4, 0).toJSON(),
        updatedAt: 9000,
      },
    ]);
    const r = (await s.report("svc"))!;
    assert.equal(r.id, "r2-s0-v3");
    assert.equal(r.report.mismatchRate, 0);
    assert.deepEqual(
      (await s.phases("svc")).map((p) => p.id),
      ["r2-s0-v3", "r1-s0-v2"],
    );
    assert.equal(await s.report("other"), null);
  });
}

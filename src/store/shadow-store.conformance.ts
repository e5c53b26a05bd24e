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

  test("shadow: one history point per phase per flush, merged over routers, oldest first", async ({
    features,
  }) => {
    const s = features.shadow;
    assert.deepEqual(await s.history("svc", "r1-s0-v2"), []);
    await seed(s);
    // A flush holding the rows of two phases: one point for each.
    await s.saveShadowAggregates([
      row("b", aggregate(40, 0), 3000),
      { ...row("a", aggregate(8, 8), 3100), id: "r2-s0-v3", version: "v3" },
    ]);
    const h = await s.history("svc", "r1-s0-v2");
    assert.deepEqual(h, [
      // The first flush: router a alone.
      {
        at: 1000,
        version: "v2",
        routers: 1,
        samples: 10,
        mismatches: 1,
        mismatchRate: 0.1,
        agreement: 0.9,
      },
      // The second held rows of routers a and b: one point, both merged, at the later flush.
      {
        at: 2500,
        version: "v2",
        routers: 2,
        samples: 50,
        mismatches: 5,
        mismatchRate: 0.1,
        agreement: 0.9,
      },
      // b's later cumulative row replaced its earlier one: 20 pairs of a + 40 of b.
      {
        at: 3000,
        version: "v2",
        routers: 2,
        samples: 60,
        mismatches: 2,
        mismatchRate: 2 / 60,
        agreement: 58 / 60,
      },
    ]);
    const other = await s.history("svc", "r2-s0-v3");
    assert.equal(other.length, 1);
    assert.equal(other[0]!.agreement, 0);
    assert.deepEqual(await s.history("other", "r1-s0-v2"), []);
    // since is exclusive; limit keeps the newest points, still oldest first.
    assert.deepEqual(
      (await s.history("svc", "r1-s0-v2", { since: 1000 })).map((p) => p.at),
      [2500, 3000],
    );
    assert.deepEqual(
      (await s.history("svc", "r1-s0-v2", { limit: 2 })).map((p) => p.at),
      [2500, 3000],
    );
    assert.deepEqual(
      (await s.history("svc", "r1-s0-v2", { since: 2500, limit: 5 })).map((p) => p.at),
      [3000],
    );
  });

  test("shadow: the history is bounded per phase, thinned so that it spans the whole phase", async ({
    features,
  }) => {
    const s = features.shadow;
    const max = s.historyPoints;
    const flushes = max + Math.floor(max / 2) + 3;
    // Router a flushes once a second with one more pair each time; another phase alongside,
    // flushed once, keeps its point (the bound is per phase).
    await s.saveShadowAggregates([{ ...row("a", aggregate(1, 0), 500), id: "r0-s0-v1" }]);
    const a = new ShadowAggregate();
    const c = compileCompare();
    for (let i = 1; i <= flushes; i++) {
      a.addPair(comparePair(c, resp({ y: 1 }), resp({ y: 1 })), req);
      await s.saveShadowAggregates([row("a", a, 1000 * i)]);
    }
    const h = await s.history("svc", "r1-s0-v2");
    assert.ok(h.length <= max, `${h.length} points kept, at most ${max}`);
    assert.ok(h.length >= max / 2, `${h.length} points kept, at least ${max / 2}`);
    // The first and the newest flush stay; points are in order and all distinct.
    assert.equal(h[0]!.at, 1000);
    assert.equal(h.at(-1)!.at, 1000 * flushes);
    assert.equal(h.at(-1)!.samples, flushes);
    for (let i = 1; i < h.length; i++) assert.ok(h[i]!.at > h[i - 1]!.at);
    assert.equal((await s.history("svc", "r0-s0-v1")).length, 1);
  });
}

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mulberry32, normalSampler } from "../stats/random.js";
import { reportOf, ShadowAggregate } from "./aggregate.js";
import { comparePair, compileCompare, fnv1a, labelOf } from "./compare.js";
import { kolmogorovQ, ksTest, psi, psiCategorical } from "./drift.js";
import { evaluateGate } from "./gate.js";
import { diffJson, fieldOf, matchPath, parsePath } from "./json-diff.js";
import type { CapturedResponse } from "./types.js";

const enc = new TextEncoder();
function resp(body: unknown, over: Partial<CapturedResponse> = {}): CapturedResponse {
  return {
    status: 200,
    headers: { "content-type": "application/json" },
    body: enc.encode(typeof body === "string" ? body : JSON.stringify(body)),
    truncated: false,
    latencyMs: 10,
    ...over,
  };
}
const req = { requestId: "r1", method: "POST", target: "/predict" };

describe("json paths", () => {
  it("parses dotted, bracketed, wildcard and deep patterns", () => {
    assert.deepEqual(parsePath("$.a.b[2]"), [{ key: "a" }, { key: "b" }, { index: 2 }]);
    assert.deepEqual(parsePath("a[*].c"), [{ key: "a" }, { any: 1 }, { key: "c" }]);
    assert.deepEqual(parsePath("$..ts"), [{ deep: 1 }, { key: "ts" }]);
    assert.deepEqual(parsePath('$["odd key"]'), [{ key: "odd key" }]);
    assert.equal(typeof parsePath("$.a[x"), "string");
    assert.equal(typeof parsePath("$.a..[b]"), "string");
  });
  it("matches wildcards and any depth", () => {
    const p = parsePath("$..ts") as never;
    assert.ok(matchPath(p, ["ts"]));
    assert.ok(matchPath(p, ["a", 3, "ts"]));
    assert.ok(!matchPath(p, ["a", "tsx"]));
    assert.ok(matchPath(parsePath("$.items[*].id") as never, ["items", 7, "id"]));
    assert.ok(!matchPath(parsePath("$.items[*].id") as never, ["items", "x", "y"]));
  });
  it("generalizes indexes into fields", () => {
    assert.equal(fieldOf("$.items[12].score"), "$.items[*].score");
  });
});

describe("diffJson", () => {
  it("finds changed, missing and extra keys, type changes and array lengths", () => {
    const d = diffJson(
      { a: 1, b: { c: "x", d: [1, 2, 3] }, e: true },
      { a: 1, b: { c: "y", d: [1, 2] }, f: null, e: "true" },
    );
    assert.deepEqual(
      d.map((x) => [x.path, x.primary, x.shadow]),
      [
        ["$.b.c", '"x"', '"y"'],
        ["$.b.d", "length 3", "length 2"],
        ["$.e", "true", '"true"'],
        ["$.f", "<absent>", "null"],
      ],
    );
  });
  it("ignores paths and applies absolute and relative tolerance", () => {
    const ignore = [parsePath("$.meta") as never, parsePath("$..ts") as never];
    assert.deepEqual(
      diffJson({ meta: { id: 1 }, x: { ts: 1 } }, { meta: { id: 2 }, x: { ts: 2 } }, { ignore }),
      [],
    );
    assert.equal(diffJson({ s: 0.5 }, { s: 0.5005 }, { tolerance: { absolute: 0.001 } }).length, 0);
    assert.equal(diffJson({ s: 0.5 }, { s: 0.502 }, { tolerance: { absolute: 0.001 } }).length, 1);
    assert.equal(diffJson({ s: 1000 }, { s: 1009 }, { tolerance: { relative: 0.01 } }).length, 0);
    assert.equal(diffJson({ s: 1000 }, { s: 1011 }, { tolerance: { relative: 0.01 } }).length, 1);
  });
  it("stops at 50 differences", () => {
    const a = Array.from({ length: 100 }, (_, i) => i);
    const b = a.map((x) => x + 1);
    assert.equal(diffJson(a, b).length, 50);
  });
});

describe("comparePair", () => {
  it("compares status, chosen headers and bodies", () => {
    const c = compileCompare({ headers: ["content-type"] });
    const r = comparePair(
      c,
      resp({ y: 1 }),
      resp({ y: 2 }, { status: 500, headers: { "content-type": "text/plain" } }),
    );
    assert.deepEqual(
      r.diffs.map((d) => d.path),
      ["status", "header:content-type", "$.y"],
    );
  });
  it("falls back to text for non-JSON bodies, and hashes binary bodies", () => {
    const t = comparePair(compileCompare(), resp("hello world"), resp("hello there"));
    assert.equal(t.diffs[0]!.path, "body");
    assert.match(t.diffs[0]!.primary, /^@6: /);
    const h = comparePair(compileCompare({ body: "hash" }), resp("abc"), resp("abd"));
    assert.equal(h.diffs[0]!.primary, `3 bytes, fnv1a ${fnv1a(enc.encode("abc"))}`);
    assert.equal(
      comparePair(compileCompare({ body: "hash" }), resp("abc"), resp("abc")).diffs.length,
      0,
    );
  });
  it("does not compare truncated bodies", () => {
    const r = comparePair(compileCompare(), resp({ a: 1 }), resp({ a: 2 }, { truncated: true }));
    assert.deepEqual(r.diffs, []);
  });
  it("reads labels (as is and argmax), regression values and drift predictions", () => {
    const c = compileCompare({
      classification: { field: "$.probs", mode: "argmax" },
      regression: { field: "score" },
      drift: {},
    });
    const r = comparePair(
      c,
      resp({ probs: [0.1, 0.9], score: 0.9 }),
      resp({ probs: [0.7, 0.3], score: 0.3 }),
    );
    assert.deepEqual(r.labels, { primary: "1", shadow: "0" });
    assert.deepEqual(r.values, { primary: 0.9, shadow: 0.3 });
    assert.deepEqual(r.drift, { primary: 0.9, shadow: 0.3 });
    assert.equal(labelOf({ cat: 0.2, dog: 0.8 }, true), "dog");
    assert.equal(labelOf("fraud", false), "fraud");
    assert.equal(labelOf(undefined, false), null);
  });
});

describe("drift", () => {
  it("PSI is 0 for equal distributions and matches a hand computation", () => {
    assert.equal(psi([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], 5), 0);
    const v = psiCategorical({ a: 50, b: 50 }, { a: 25, b: 75 })!;
    assert.ok(Math.abs(v - (-0.25 * Math.log(0.5) + 0.25 * Math.log(1.5))) < 1e-12);
  });
  it("PSI grows with a shift", () => {
    const rng = mulberry32(7);
    const n = normalSampler(rng);
    const a = Array.from({ length: 2000 }, () => n());
    const same = Array.from({ length: 2000 }, () => n());
    const shifted = Array.from({ length: 2000 }, () => n(1));
    assert.ok(psi(a, same)! < 0.05);
    assert.ok(psi(a, shifted)! > 0.5);
  });
  it("KS: the Kolmogorov survival function and the two-sample statistic", () => {
    // 1.358 is the 5% critical value of the Kolmogorov distribution.
    assert.ok(Math.abs(kolmogorovQ(1.358) - 0.05) < 0.001);
    assert.deepEqual(ksTest([1, 2, 3], [1, 2, 3]), { statistic: 0, pValue: 1 });
    const r = ksTest([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])!;
    assert.equal(r.statistic, 1);
    assert.ok(r.pValue < 0.01);
    const rng = mulberry32(3);
    const n = normalSampler(rng);
    const x = Array.from({ length: 500 }, () => n());
    const y = Array.from({ length: 500 }, () => n(0.5));
    assert.ok(ksTest(x, y)!.pValue < 1e-6);
  });
});

describe("ShadowAggregate", () => {
  it("reports mismatch rate by field, samples, agreement and latency", () => {
    const agg = new ShadowAggregate();
    const c = compileCompare({ classification: { field: "label" } });
    for (let i = 0; i < 100; i++) {
      const flip = i % 10 === 0;
      agg.addPair(
        comparePair(
          c,
          resp({ label: "ok", n: i }, { latencyMs: 10 }),
          resp({ label: flip ? "fraud" : "ok", n: i }, { latencyMs: 12 }),
        ),
        { ...req, requestId: `r${i}` },
      );
    }
    const r = agg.report();
    assert.equal(r.samples, 100);
    assert.equal(r.mismatches, 10);
    assert.equal(r.mismatchRate, 0.1);
    assert.equal(r.agreement, 0.9);
    assert.deepEqual(r.classification!.disagreements, [{ from: "ok", to: "fraud", count: 10 }]);
    assert.deepEqual(
      r.byField.map((f) => [f.field, f.mismatches]),
      [["$.label", 10]],
    );
    assert.equal(r.sampleDiffs.length, 4);
    assert.ok(Math.abs(r.latency!.increase - 0.2) < 0.03);
    assert.ok(Math.abs(r.latency!.meanDiffMs - 2) < 1e-9);
  });
  it("learns noise from the second stable copy (Diffy) and excludes it from the mismatch rate", () => {
    const agg = new ShadowAggregate();
    const c = compileCompare();
    for (let i = 0; i < 200; i++) {
      const primary = resp({ y: 1, ts: i });
      const secondary = resp({ y: 1, ts: i + 1 });
      const shadow = resp({ y: i % 20 === 0 ? 2 : 1, ts: i + 2 });
      agg.addPair(comparePair(c, primary, shadow), req);
      agg.addNoise(comparePair(c, primary, secondary).diffs);
    }
    const r = agg.report();
    assert.deepEqual(r.noise, { pairs: 200, fields: ["$.ts"] });
    assert.equal(r.mismatches, 10);
    assert.equal(r.mismatchRate, 0.05);
    const ts = r.byField.find((f) => f.field === "$.ts")!;
    assert.equal(ts.noise, true);
    assert.equal(ts.noiseRate, 1);
    // Sample diffs that only show noise are left out.
    assert.ok(r.sampleDiffs.every((s) => s.diffs.some((d) => d.path === "$.y")));
  });
  it("a field the shadow changes much more often than the stable noise is not noise", () => {
    const agg = new ShadowAggregate();
    const c = compileCompare();
    for (let i = 0; i < 100; i++) {
      agg.addPair(comparePair(c, resp({ s: 1 }), resp({ s: i % 2 === 0 ? 2 : 1 })), req);
      agg.addNoise(comparePair(c, resp({ s: 1 }), resp({ s: i % 20 === 0 ? 2 : 1 })).diffs);
    }
    assert.equal(agg.report().mismatchRate, 0.5);
  });
  it("counts shadow errors as status mismatches, and drops by reason", () => {
    const agg = new ShadowAggregate();
    agg.addShadowError(200, "ECONNREFUSED", req);
    agg.drop("queue_full", 3);
    const r = agg.report();
    assert.equal(r.shadowErrors, 1);
    assert.equal(r.mismatchRate, 1);
    assert.deepEqual(r.drops, { queue_full: 3 });
  });
  it("merges states from several routers, and round-trips through JSON", () => {
    const c = compileCompare({ regression: { field: "v" }, drift: {} });
    const a = new ShadowAggregate();
    const b = new ShadowAggregate();
    for (let i = 0; i < 50; i++) {
      a.addPair(comparePair(c, resp({ v: i }), resp({ v: i + 1 })), req);
      b.addPair(comparePair(c, resp({ v: i }), resp({ v: i })), req);
    }
    const merged = new ShadowAggregate(JSON.parse(JSON.stringify(a.toJSON())));
    merged.merge(JSON.parse(JSON.stringify(b.toJSON())));
    const r = merged.report();
    assert.equal(r.samples, 100);
    assert.equal(r.mismatchRate, 0.5);
    assert.equal(r.regression!.mae, 0.5);
    assert.equal(r.regression!.maxAbsError, 1);
    assert.equal(r.drift!.samples, 100);
    assert.deepEqual(reportOf(merged.toJSON()), r);
  });
  it("stays bounded: fields, field sets and drift reservoirs", () => {
    const agg = new ShadowAggregate();
    const c = compileCompare({ regression: { field: "v" }, drift: {} });
    for (let i = 0; i < 5000; i++)
      agg.addPair(comparePair(c, resp({ v: i, [`k${i}`]: 1 }), resp({ v: i })), req);
    const s = agg.toJSON();
    assert.ok(Object.keys(s.fields).length <= 201);
    assert.ok(Object.keys(s.diffSets).length <= 512);
    assert.equal(s.drift.primary.length, 2000);
    assert.equal(agg.report().mismatches, 5000);
  });
});

describe("evaluateGate", () => {
  const agg = new ShadowAggregate();
  const c = compileCompare({ classification: { field: "label" } });
  for (let i = 0; i < 100; i++)
    agg.addPair(
      comparePair(
        c,
        resp({ label: "a" }, { latencyMs: 10 }),
        resp({ label: i < 3 ? "b" : "a" }, { latencyMs: 11 }),
      ),
      req,
    );
  const report = agg.report();

  it("waits below minSamples and before the duration, whatever the numbers", () => {
    assert.equal(evaluateGate({ minSamples: 101 }, report, 0, 0).verdict, "wait");
    assert.equal(evaluateGate({ minSamples: 10 }, null, 0, 0).verdict, "wait");
    assert.equal(
      evaluateGate({ minSamples: 10, maxMismatchRate: 0 }, report, 1000, 60_000).verdict,
      "wait",
    );
  });
  it("passes and fails on mismatch rate, agreement and latency, with the numbers", () => {
    const pass = evaluateGate(
      { minSamples: 100, maxMismatchRate: 0.05, minAgreement: 0.95, maxLatencyIncrease: 0.2 },
      report,
      0,
      0,
    );
    assert.equal(pass.verdict, "pass");
    const fail = evaluateGate(
      { minSamples: 100, minAgreement: 0.99, maxLatencyIncrease: 0.05 },
      report,
      0,
      0,
    );
    assert.equal(fail.verdict, "fail");
    assert.match(fail.reasons[0]!, /agreement 97.0% < 99.0%/);
    assert.match(fail.reasons[1]!, /latency p50 .* > \+5.0%/);
  });
});

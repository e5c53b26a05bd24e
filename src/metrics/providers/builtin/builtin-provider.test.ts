import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { judge } from "../../../core/analysis/judges.js";
import { TurnoutError } from "../../../errors.js";
import { MeasurementRecorder } from "../../../router/stats.js";
import { RouterMeasurementSource } from "../../measurements.js";
import {
  assertWellFormed,
  conformanceRequest,
  describeProviderConformance,
} from "../conformance.js";
import type { Measurement } from "../provider.js";
import {
  BuiltinProvider,
  type MeasurementsReader,
  type VersionWindow,
} from "./builtin-provider.js";

/** A version's window from its latencies (ms) and statuses; the sketch is the exact sample. */
function windowOf(latencies: number[], statuses: number[], upstreamErrors = 0): VersionWindow {
  const sorted = [...latencies].sort((a, b) => a - b);
  const status = { "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 };
  for (const s of statuses) status[`${Math.floor(s / 100)}xx` as keyof typeof status]++;
  const requests = statuses.length;
  return {
    requests,
    status,
    upstreamErrors,
    errorRate: requests === 0 ? 0 : (status["5xx"] + upstreamErrors) / requests,
    latency: {
      count: sorted.length,
      // Nearest rank, as a sketch would approximate.
      quantile: (q) =>
        sorted.length === 0
          ? Number.NaN
          : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!,
    },
  };
}

function reader(data: Record<string, VersionWindow>, calls: unknown[] = []): MeasurementsReader {
  return {
    async window(q) {
      calls.push(q);
      return new Map(Object.entries(data));
    },
  };
}

const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));
const v1 = windowOf(
  range(1000, (i) => 10 + (i % 100)),
  range(1000, (i) => (i % 100 === 0 ? 503 : 200)),
);
const v2 = windowOf(
  range(300, (i) => 20 + (i % 100)),
  range(300, (i) => (i % 20 === 0 ? 500 : i % 7 === 0 ? 404 : 200)),
  3,
);

describeProviderConformance("builtin", () => ({
  // The reader's behaviour is picked by the service name, the one thing a builtin request varies.
  provider: new BuiltinProvider({
    measurements: {
      window(q) {
        switch (q.service) {
          case "svc":
            return Promise.resolve(
              new Map([
                ["v1", v1],
                ["v2", v2],
              ]),
            );
          case "slow":
            return new Promise(() => {});
          case "broken":
            return Promise.reject(new Error("store unavailable"));
          default:
            return Promise.resolve(new Map());
        }
      },
    },
  }),
  good: { source: { builtin: "error_rate" } },
  hanging: () => ({ source: { builtin: "latency" }, service: "slow" }),
  failing: { source: { builtin: "latency" }, service: "broken" },
  noData: { source: { builtin: "request_rate" }, service: "idle" },
  skips: [
    { reason: "builtin sources have no strings to template", tests: ["templating"] },
    {
      reason:
        "the reader is in-process and a builtin source has no timeout of its own (the engine's signal bounds it)",
      tests: ["timeout"],
    },
    { reason: "raw holds two count summaries, bounded by construction", tests: ["hugeRaw"] },
  ],
  cleanup: async () => {},
}));

describe("BuiltinProvider", () => {
  const measure = async (
    builtin: "error_rate" | "latency" | "request_rate",
    r: MeasurementsReader,
    opts: { baseline?: string | undefined; signal?: AbortSignal; samplePoints?: number } = {},
  ): Promise<Measurement> => {
    const p = new BuiltinProvider({
      measurements: r,
      ...(opts.samplePoints ? { latencySamplePoints: opts.samplePoints } : {}),
    });
    const req = conformanceRequest({ source: { builtin } }, 1_700_000_060_000);
    if ("baseline" in opts && opts.baseline === undefined) delete req.baseline;
    const m = await p.measure(req, opts.signal ?? new AbortController().signal);
    assertWellFormed(m);
    return m;
  };

  it("error_rate: both sides over the same window, with counts for a test on proportions", async () => {
    const calls: unknown[] = [];
    const m = await measure("error_rate", reader({ v1, v2 }, calls));
    assert.deepEqual(calls, [
      { service: "svc", fromMs: 1_700_000_000_000, toMs: 1_700_000_060_000 },
    ]);
    assert.deepEqual(m.candidate, {
      version: "v2",
      value: 18 / 300,
      sampleSize: 300,
      proportion: { events: 18, trials: 300 },
    });
    assert.deepEqual(m.baseline, {
      version: "v1",
      value: 0.01,
      sampleSize: 1000,
      proportion: { events: 10, trials: 1000 },
    });
    assert.equal(m.value, 18 / 300);
    assert.equal(m.sampleSize, 300);
    assert.deepEqual((m.raw as { candidate: unknown }).candidate, {
      version: "v2",
      requests: 300,
      status: v2.status,
      upstreamErrors: 3,
      abandoned: 0,
      errorRate: 18 / 300,
    });
  });

  it("error_rate counts requests abandoned by their clients as errors, and the verdict says so", async () => {
    // A candidate that hangs: its clients give up (recorded by the router as abandoned), a few
    // of its requests were answered before it did.
    let t = 1_700_000_010_000;
    const recorder = new MeasurementRecorder({ now: () => t });
    const stable = recorder.series("svc", "v1");
    const hung = recorder.series("svc", "v2");
    for (let i = 0; i < 400; i++, t += 50) {
      stable.record(200, 8, false);
      if (i % 5 === 0) hung.record(200, 9, false);
      if (i % 2 === 0) hung.record(499, 2000, false, true);
    }
    const m = await measure("error_rate", new RouterMeasurementSource(recorder));
    assert.deepEqual(m.candidate, {
      version: "v2",
      value: 200 / 280,
      sampleSize: 280,
      proportion: { events: 200, trials: 280, abandoned: 200 },
    });
    assert.deepEqual(m.baseline?.proportion, { events: 0, trials: 400 });
    assert.equal((m.raw as { candidate: { abandoned: number } }).candidate.abandoned, 200);

    const v = judge({ sequential: { maxIncrease: 0.01, alpha: 0.01 } }, m, {
      metric: "errors",
      minSamples: 100,
    });
    assert.equal(v.outcome, "fail");
    assert.match(
      v.explanation,
      /^errors 71\.4% \(200\/280, 200 abandoned by clients\) vs baseline 0% \(0\/400\)/,
    );
    assert.equal(v.inputs.candidate?.abandoned, 200);
    assert.equal(v.inputs.baseline?.abandoned, undefined);
  });

  it("latency: p99 as the value, quantiles, and a quantile-grid sample for rank tests", async () => {
    const m = await measure("latency", reader({ v1, v2 }), { samplePoints: 50 });
    const c = m.candidate!;
    assert.equal(c.value, 118);
    assert.deepEqual(c.quantiles, { p50: 69, p90: 109, p95: 114, p99: 118 });
    assert.equal(c.sampleSize, 300);
    assert.equal(c.values!.length, 50);
    assert.deepEqual(
      c.values,
      [...c.values!].sort((a, b) => a - b),
      "a grid of quantiles is sorted",
    );
    assert.equal(m.baseline!.values!.length, 50);
    assert.equal(m.baseline!.value, 108);
    assert.deepEqual(m.values, c.values, "top level mirrors the candidate");
    // Fewer requests than grid points: one point per request.
    const few = windowOf([5, 1, 3], [200, 200, 200]);
    const m2 = await measure("latency", reader({ v1, v2: few }), { samplePoints: 50 });
    assert.deepEqual(m2.candidate!.values, [1, 3, 5]);
  });

  it("request_rate: requests per second over the window", async () => {
    const m = await measure("request_rate", reader({ v1, v2 }));
    assert.equal(m.candidate!.value, 5);
    assert.equal(m.baseline!.value, 1000 / 60);
    assert.equal(m.sampleSize, 300);
  });

  it("no candidate requests is no data; a baseline without requests is left out", async () => {
    const empty = windowOf([], []);
    const none = await measure("error_rate", reader({ v1, v2: empty }));
    assert.equal(none.errorKind, "noData");
    assert.match(none.error!, /no data: candidate v2 of svc had no requests/);
    const missing = await measure("error_rate", reader({ v1 }));
    assert.equal(missing.errorKind, "noData");
    const noBase = await measure("error_rate", reader({ v1: empty, v2 }));
    assert.equal(noBase.error, undefined);
    assert.equal(noBase.baseline, undefined);
    assert.ok(noBase.candidate);
  });

  it("what the router sent the candidate travels with the measurement: a hung candidate is no data with its requests sent", async () => {
    // The router counts requests as it sends them and heads as they come back.
    let t = 1_700_000_010_000;
    const recorder = new MeasurementRecorder({ now: () => t });
    const stable = recorder.series("svc", "v1");
    const hung = recorder.series("svc", "v2");
    for (let i = 0; i < 40; i++, t += 250) {
      stable.start(0);
      stable.respond();
      stable.record(200, 8, false);
      if (i % 4 === 0) hung.start(0); // sent, never answered, never ended
    }
    const source = new RouterMeasurementSource(recorder);
    const m = await measure("error_rate", source);
    assert.equal(m.errorKind, "noData");
    assert.match(
      m.error!,
      /had no requests in the window \(10 sent to it, 0 response heads back\)/,
    );
    assert.deepEqual(m.traffic, {
      version: "v2",
      started: 10,
      responded: 0,
      ended: 0,
      firstStartedAt: 1_700_000_010_000,
    });
    // The judge alone would only see "no data"; the run's no-response rule reads `traffic`.
    assert.equal(
      judge({ threshold: { max: 0.05 } }, m, { metric: "errors", minSamples: 1 }).reason,
      "noData",
    );
    // Every builtin metric of it says the same.
    const latency = await measure("latency", source);
    assert.equal(latency.errorKind, "noData");
    assert.deepEqual(latency.traffic, m.traffic);
    // Data with numbers carries it too.
    const both = await measure("error_rate", {
      window: async () =>
        new Map([
          [
            "v1",
            { ...v1, starts: { started: 1000, responded: 990, firstStartedSec: 1_700_000_000 } },
          ],
          [
            "v2",
            { ...v2, starts: { started: 310, responded: 297, firstStartedSec: 1_700_000_001 } },
          ],
        ]),
    });
    assert.deepEqual(both.traffic, {
      version: "v2",
      started: 310,
      responded: 297,
      ended: 300,
      firstStartedAt: 1_700_000_001_000,
    });
  });

  it("a candidate without a row, beside a baseline whose data plane counts starts, was sent nothing; a reader that does not count them says nothing", async () => {
    const counted = {
      ...v1,
      starts: { started: 1000, responded: 990, firstStartedSec: 1_700_000_000 },
    };
    const quiet = await measure("error_rate", reader({ v1: counted }));
    assert.equal(quiet.errorKind, "noData");
    assert.deepEqual(quiet.traffic, {
      version: "v2",
      started: 0,
      responded: 0,
      ended: 0,
      firstStartedAt: null,
    });
    const unknown = await measure("error_rate", reader({ v1 }));
    assert.equal(unknown.errorKind, "noData");
    assert.equal(unknown.traffic, undefined, "HAProxy's rows: not known, not none");
  });

  it("without a baseline in the request, only the candidate is measured", async () => {
    const m = await measure("latency", reader({ v1, v2 }), { baseline: undefined });
    assert.equal(m.baseline, undefined);
    assert.equal(m.candidate!.version, "v2");
  });

  it("a failing reader is an error, not a throw", async () => {
    const m = await measure("error_rate", {
      window: () => Promise.reject(new Error("store unavailable")),
    });
    assert.equal(m.errorKind, "failed");
    assert.match(m.error!, /reading the router's measurements: store unavailable/);
  });

  it("abort is prompt even when the reader is slow", async () => {
    const ctl = new AbortController();
    const p = measure(
      "error_rate",
      { window: () => new Promise(() => {}) },
      { signal: ctl.signal },
    );
    setTimeout(() => ctl.abort(), 20);
    assert.equal((await p).errorKind, "aborted");
  });

  it("throws for an unknown builtin metric or a builtin provider without a reader of its kind", async () => {
    const p = new BuiltinProvider({ measurements: reader({ v1, v2 }) });
    await assert.rejects(
      p.measure(
        conformanceRequest({ source: { builtin: "saturation" as never } }),
        new AbortController().signal,
      ),
      (err: unknown) =>
        err instanceof TurnoutError &&
        err.details.path === "source.builtin" &&
        /must be one of error_rate, latency, request_rate, got "saturation"/.test(err.message),
    );
  });
});

/**
 * The no-response rule alone, and in an analysis run with an injected clock: a quiet candidate
 * is inconclusive ("noTraffic"), a candidate sent requests that answers none is inconclusive
 * until its first request has waited out the bound and fails after it, and anything that came
 * back leaves the verdict to the judge.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "../clock.js";
import type { AnalysisTemplateSpec, JudgeSpec } from "../model.js";
import {
  NO_RESPONSE_MARGIN_MS,
  noResponseDeadline,
  noResponseVerdict,
  silentMs,
} from "./no-response.js";
import type { CandidateTraffic, Observation } from "./observation.js";
import {
  dueMeasurements,
  nextDueAt,
  observe,
  type RunState,
  shortOfData,
  startRun,
} from "./run.js";

const T = 1_700_000_000_000;
const SEQ: JudgeSpec = { sequential: { maxIncrease: 0.01, alpha: 0.05 } };
const CTX = { metric: "errors", minSamples: 100, noResponseMs: 30_000 };

function traffic(over: Partial<CandidateTraffic> = {}): CandidateTraffic {
  return { version: "v2", started: 37, responded: 0, ended: 0, firstStartedAt: T, ...over };
}

describe("noResponseVerdict", () => {
  it("has no opinion without the data plane's counts, or once anything came back", () => {
    const window = { fromMs: T, toMs: T + 600_000 };
    assert.equal(noResponseVerdict(SEQ, undefined, { ...CTX, window }), undefined);
    assert.equal(noResponseVerdict(SEQ, traffic({ responded: 1 }), { ...CTX, window }), undefined);
    assert.equal(noResponseVerdict(SEQ, traffic({ ended: 1 }), { ...CTX, window }), undefined);
  });

  it("nothing sent: inconclusive (noTraffic), provisional, never a fail however long", () => {
    const v = noResponseVerdict(SEQ, traffic({ started: 0, firstStartedAt: null }), {
      ...CTX,
      window: { fromMs: T, toMs: T + 3_600_000 },
    });
    assert.equal(v?.outcome, "inconclusive");
    assert.equal(v?.reason, "noTraffic");
    assert.equal(v?.provisional, true);
    assert.equal(
      v?.explanation,
      "errors: no request was sent to v2 in the window (1h): nothing to judge yet",
    );
    assert.deepEqual(v?.inputs.traffic, {
      version: "v2",
      started: 0,
      responded: 0,
      ended: 0,
      firstStartedAt: null,
      noResponseMs: 30_000,
    });
  });

  it("sent and none answered: inconclusive until the first has waited out the bound, then fail", () => {
    // The first request was sent within the second starting at T; answers of the last
    // NO_RESPONSE_MARGIN_MS may not be in the store yet.
    const failAt = T + 1000 + NO_RESPONSE_MARGIN_MS + 30_000;
    assert.equal(noResponseDeadline(T, 30_000), failAt);
    assert.equal(silentMs(T, failAt), 30_000);
    const before = noResponseVerdict(SEQ, traffic(), {
      ...CTX,
      window: { fromMs: T, toMs: failAt - 1 },
    });
    assert.equal(before?.outcome, "inconclusive");
    assert.equal(before?.reason, "noResponse");
    assert.equal(before?.provisional, true);
    assert.match(
      before!.explanation,
      /^errors: v2: 37 requests sent, none answered yet \(the first about 34s ago;/,
    );
    const at = noResponseVerdict(SEQ, traffic(), { ...CTX, window: { fromMs: T, toMs: failAt } });
    assert.equal(at?.outcome, "fail");
    assert.equal(at?.reason, "noResponse");
    assert.equal(at?.judge, "sequential");
    assert.equal(
      at?.explanation,
      "errors: v2: 37 requests sent, none answered within 30s of the first (noResponseTimeout 30s)",
    );
    assert.equal(at?.inputs.traffic?.started, 37);
    // Verdicts are stored as JSON.
    assert.deepEqual(JSON.parse(JSON.stringify(at)), at);
  });
});

describe("the rule in an analysis run (injected clock)", () => {
  const template = (metric: Record<string, unknown>): AnalysisTemplateSpec => ({
    metrics: [
      {
        name: "errors",
        source: { builtin: "error_rate" },
        judge: SEQ,
        ...metric,
      } as AnalysisTemplateSpec["metrics"][number],
    ],
  });
  /** Answers every due measurement of `run` with `obs(toMs)`. */
  const look = (run: RunState, now: number, obs: (toMs: number) => Observation): RunState => {
    let r = run;
    for (const due of dueMeasurements(r, now)) {
      r = observe(r, due.metric, obs(due.toMs), now, { fromMs: due.fromMs, toMs: due.toMs });
    }
    return r;
  };
  const noData = (t: CandidateTraffic): Observation => ({
    error: "no data: candidate v2 of svc had no requests in the window",
    errorKind: "noData",
    traffic: t,
  });

  it("an inline measurement of a hung candidate is taken again at the bound and fails there", () => {
    const clock = new FakeClock(T);
    // One measurement after 10 s, as an analysis step takes it; the service's upstream timeout
    // (here 20 s) is the bound.
    let run = startRun(
      [{ name: "t", spec: template({ interval: "10s", count: 1 }) }],
      {},
      clock.now(),
      { kind: "inline", noResponseMs: 20_000 },
    );
    const hung = () => noData(traffic({ firstStartedAt: T + 1000 }));
    clock.advance(10_000);
    run = look(run, clock.now(), hung);
    assert.equal(run.phase, "Running", run.message);
    const m = run.metrics[0]!;
    assert.equal(m.counters.measurements, 0, "not counted towards count: it ends by itself");
    assert.equal(m.counters.provisional, 1);
    assert.deepEqual(
      shortOfData(run, clock.now()).map((s) => s.reason),
      ["noResponse"],
    );
    // Looked at again on its grid, and when it would fail at the latest: it fails right then.
    const failAt = noResponseDeadline(T + 1000, 20_000);
    const looks: number[] = [];
    while (run.phase === "Running") {
      const next = nextDueAt(run)!;
      assert.ok(next <= failAt, `a look at ${next - T} ms, after the bound`);
      clock.advance(next - clock.now());
      looks.push(clock.now() - T);
      run = look(run, clock.now(), hung);
    }
    assert.deepEqual(looks, [20_000, failAt - T]);
    assert.equal(run.phase, "Failed");
    assert.match(
      run.message,
      /errors failed: 1 failed > failureLimit 0: errors: v2: 37 requests sent, none answered within 20s of the first \(noResponseTimeout 20s\)/,
    );
  });

  it("a metric's noResponseTimeout wins over the service's", () => {
    const run = startRun([{ name: "t", spec: template({ noResponseTimeout: "5s" }) }], {}, T, {
      kind: "background",
      noResponseMs: 30_000,
    });
    assert.equal(run.metrics[0]?.noResponseMs, 5000);
    const bad = startRun([{ name: "t", spec: template({ noResponseTimeout: "soon" }) }], {}, T, {
      kind: "background",
    });
    assert.equal(bad.phase, "Error");
    assert.match(bad.message, /noResponseTimeout must be a duration/);
  });

  it("a quiet candidate waits; at an inline run's last measurement it is inconclusive (a person decides)", () => {
    const clock = new FakeClock(T);
    let run = startRun(
      [{ name: "t", spec: template({ interval: "10s", count: 2 }) }],
      {},
      clock.now(),
      { kind: "inline" },
    );
    const quiet = () => noData(traffic({ started: 0, firstStartedAt: null }));
    clock.advance(10_000);
    run = look(run, clock.now(), quiet);
    assert.equal(run.phase, "Running");
    assert.equal(run.metrics[0]?.counters.provisional, 1);
    assert.deepEqual(
      shortOfData(run, clock.now()).map((s) => s.reason),
      ["noTraffic"],
    );
    clock.advance(10_000);
    run = look(run, clock.now(), quiet);
    assert.equal(run.phase, "Inconclusive");
    assert.match(run.message, /no request was sent to v2/);
  });

  it("an answer ends the wait: the judge decides on what ended", () => {
    const clock = new FakeClock(T);
    let run = startRun([{ name: "t", spec: template({}) }], {}, clock.now(), {
      kind: "background",
    });
    clock.advance(2000);
    run = look(run, clock.now(), () => noData(traffic({ started: 3, firstStartedAt: T })));
    assert.equal(run.metrics[0]?.verdicts.at(-1)?.verdict.reason, "noResponse");
    clock.advance(2000);
    run = look(run, clock.now(), () => ({
      value: 0,
      sampleSize: 12,
      candidate: { version: "v2", value: 0, sampleSize: 12, proportion: { events: 0, trials: 12 } },
      baseline: {
        version: "v1",
        value: 0,
        sampleSize: 500,
        proportion: { events: 0, trials: 500 },
      },
      traffic: traffic({ started: 14, responded: 12, ended: 12 }),
    }));
    const last = run.metrics[0]!.verdicts.at(-1)!.verdict;
    assert.equal(last.reason, "tooFewSamples", last.explanation);
    assert.equal(last.inputs.traffic, undefined, "the judge's verdict, not the rule's");
    assert.deepEqual(
      shortOfData(run, clock.now()).map((s) => s.reason),
      ["tooFewSamples"],
    );
  });

  it("shortOfData: a metric not yet measured is short; dry-run and failed runs are not", () => {
    const run = startRun(
      [
        {
          name: "t",
          spec: {
            metrics: [
              { name: "errors", source: { builtin: "error_rate" }, judge: SEQ },
              { name: "shadow", source: { builtin: "latency" }, judge: SEQ, dryRun: true },
            ],
          },
        },
      ],
      {},
      T,
      { kind: "background" },
    );
    assert.deepEqual(shortOfData(run, T + 500), [
      {
        metric: "errors",
        reason: "noMeasurement",
        explanation: "errors: no measurement yet (the first is due in 2s)",
      },
    ]);
    assert.deepEqual(shortOfData({ ...run, phase: "Failed" }, T), []);
    // A source that failed is not evidence either; the error limit decides what it does.
    const failing = observe(
      run,
      "errors",
      { error: "store unavailable", errorKind: "failed" },
      T + 2000,
    );
    assert.deepEqual(shortOfData(failing, T + 2000), [
      {
        metric: "errors",
        reason: "noMeasurement",
        explanation:
          "errors: no measurement with data yet; the latest failed: errors: measurement failed: store unavailable",
      },
    ]);
  });
});

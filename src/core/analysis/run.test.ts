import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { AnalysisMetricSpec, AnalysisTemplateSpec } from "../model.js";
import type { Outcome, Verdict, VerdictReason } from "./judges.js";
import type { ObservedSide } from "./observation.js";
import {
  dueMeasurements,
  judgeContext,
  nextDueAt,
  observe,
  type RunState,
  recordVerdict,
  startRun,
  summarize,
  terminateRun,
} from "./run.js";

const T0 = 1_700_000_000_000;
const S = 1000;

function metric(name: string, over: Partial<AnalysisMetricSpec> = {}): AnalysisMetricSpec {
  return { name, source: { builtin: "error_rate" }, judge: { threshold: { max: 0.01 } }, ...over };
}

function template(
  name: string,
  metrics: AnalysisMetricSpec[],
  args?: AnalysisTemplateSpec["args"],
) {
  return { name, spec: { metrics, ...(args ? { args } : {}) } };
}

/** A verdict as a judge would return it; the run only reads outcome, provisional and memory. */
function v(
  outcome: Outcome,
  explanation = `${outcome} verdict`,
  extra: { reason?: VerdictReason; provisional?: boolean } = {},
): Verdict {
  return {
    judge: "threshold",
    outcome,
    explanation,
    inputs: { judge: { threshold: { max: 1 } }, minSamples: 0 },
    ...extra,
  };
}

/** Records `outcomes` for `name` at its due times, checking each was due. */
function drive(state: RunState, name: string, outcomes: Outcome[]): RunState {
  let s = state;
  for (const o of outcomes) {
    const at = s.metrics.find((m) => m.name === name)!.nextDueAt!;
    assert.ok(
      dueMeasurements(s, at).some((d) => d.metric === name),
      `${name} due at ${at - T0}`,
    );
    s = recordVerdict(s, name, v(o), at);
  }
  return s;
}

describe("startRun", () => {
  test("inline defaults: one measurement, due one interval (30 s) after the start; Argo's limits", () => {
    const s = startRun([template("golden", [metric("errors")])], {}, T0);
    assert.equal(s.phase, "Running");
    assert.equal(s.kind, "inline");
    const m = s.metrics[0]!;
    assert.equal(m.count, 1);
    assert.equal(m.intervalMs, 30 * S);
    assert.deepEqual(
      [m.failureLimit, m.inconclusiveLimit, m.consecutiveErrorLimit, m.minSamples, m.dryRun],
      [0, 0, 4, 1, false],
    );
    assert.equal(m.phase, "Pending");
    assert.equal(nextDueAt(s), T0 + 30 * S);
    assert.deepEqual(dueMeasurements(s, T0 + 29 * S), []);
    assert.deepEqual(dueMeasurements(s, T0 + 30 * S), [
      {
        metric: "errors",
        template: "golden",
        source: { builtin: "error_rate" },
        fromMs: T0,
        toMs: T0 + 30 * S,
        final: true,
      },
    ]);
  });

  test("background defaults: every 30 s, no count; the window may open earlier (the step's start)", () => {
    const s = startRun([template("golden", [metric("errors")])], {}, T0, {
      kind: "background",
      windowStartMs: T0 - 5 * S,
    });
    const m = s.metrics[0]!;
    assert.equal(m.count, null);
    const due = dueMeasurements(s, T0 + 30 * S)[0]!;
    assert.deepEqual([due.fromMs, due.toMs, due.final], [T0 - 5 * S, T0 + 30 * S, false]);
  });

  test("minSamples defaults by judge", () => {
    const s = startRun(
      [
        template("t", [
          metric("a", { judge: { sequential: { maxIncrease: 0.01, alpha: 0.01 } } }),
          metric("b", { judge: { mannWhitney: { maxRelativeIncrease: 0.2, alpha: 0.05 } } }),
          metric("c", { minSamples: 7 }),
        ]),
      ],
      {},
      T0,
    );
    assert.deepEqual(
      s.metrics.map((m) => m.minSamples),
      [100, 50, 7],
    );
  });

  test("arguments: the service's value, else the default; in either form", () => {
    const t = template(
      "t",
      [metric("a")],
      [{ name: "service" }, { name: "quantile", value: "0.99" }],
    );
    const a = startRun([t], { service: "fraud" }, T0);
    assert.deepEqual(a.args, { service: "fraud", quantile: "0.99" });
    const b = startRun(
      [t],
      [
        { name: "service", value: "fraud" },
        { name: "quantile", value: "0.5" },
      ],
      T0,
    );
    assert.deepEqual(b.args, { service: "fraud", quantile: "0.5" });
  });

  test("a configuration that cannot run starts in Error, saying why", () => {
    const t = template("golden", [metric("a")], [{ name: "service" }]);
    const cases: [RunState, string][] = [
      [startRun([t], {}, T0), 'template "golden": argument "service" has no value'],
      [
        startRun([t], { service: "x", srevice: "y" }, T0),
        'argument "srevice" is not declared by any template (declared: service)',
      ],
      [
        startRun([t, template("other", [metric("a")])], { service: "x" }, T0),
        'metric "a" appears in templates "golden" and "other"',
      ],
      [
        startRun([template("t", [metric("a", { interval: "10s" })])], {}, T0),
        'template "t": metric "a": an inline analysis with interval 10s needs a count',
      ],
      [startRun([template("t", [metric("a", { count: 3 })])], {}, T0), "count 3 needs an interval"],
      [startRun([], {}, T0), "no analysis templates"],
    ];
    for (const [s, message] of cases) {
      assert.equal(s.phase, "Error");
      assert.ok(s.message.includes(message), `"${s.message}" should contain "${message}"`);
      assert.equal(s.finishedAt, T0);
      assert.deepEqual(dueMeasurements(s, T0 + 60 * S), []);
      assert.equal(nextDueAt(s), null);
    }
  });
});

describe("judgeContext", () => {
  test("the builtin latency's explanations are in ms", () => {
    const lat = metric("lat", {
      source: { builtin: "latency" },
      judge: { mannWhitney: { maxRelativeIncrease: 0.1, alpha: 0.05 } },
    });
    const s = startRun([template("t", [lat])], {}, T0);
    assert.equal(judgeContext(s, "lat").unit, "ms");
  });
});

describe("scheduling with a fake clock", () => {
  test("interval and count: due on the grid, missed points skipped, then finished", () => {
    let s = startRun([template("t", [metric("a", { interval: "10s", count: 3 })])], {}, T0);
    assert.equal(nextDueAt(s), T0 + 10 * S);
    // 1st at 12 s (a little late): the next grid point is 20 s.
    s = recordVerdict(s, "a", v("pass"), T0 + 12 * S);
    assert.equal(nextDueAt(s), T0 + 20 * S);
    assert.deepEqual(dueMeasurements(s, T0 + 19 * S), []);
    // 2nd at 47 s (the controller was away): 30 s and 40 s are skipped, the next is 50 s.
    assert.equal(dueMeasurements(s, T0 + 47 * S)[0]!.final, false);
    s = recordVerdict(s, "a", v("pass"), T0 + 47 * S);
    assert.equal(nextDueAt(s), T0 + 50 * S);
    assert.equal(dueMeasurements(s, T0 + 50 * S)[0]!.final, true);
    assert.equal(judgeContext(s, "a").final, true);
    assert.equal(judgeContext(s, "a").unit, undefined); // error_rate: a ratio, no unit
    s = recordVerdict(s, "a", v("pass", "a 0.001 within max 0.01"), T0 + 50 * S);
    assert.equal(s.phase, "Successful");
    assert.equal(s.finishedAt, T0 + 50 * S);
    assert.equal(nextDueAt(s), null);
    assert.equal(
      s.message,
      "all metrics passed (a passed 3 of 3); last: a: a 0.001 within max 0.01",
    );
    assert.deepEqual(
      s.metrics[0]!.verdicts.map((r) => [
        r.at - T0,
        r.fromMs - T0,
        r.toMs - T0,
        r.measurement,
        r.final,
      ]),
      [
        [12 * S, 0, 12 * S, 1, false],
        [47 * S, 0, 47 * S, 2, false],
        [50 * S, 0, 50 * S, 3, true],
      ],
    );
  });

  test("two metrics: the run waits for both; nextDueAt is the earliest", () => {
    let s = startRun(
      [
        template("t", [
          metric("fast", { interval: "10s", count: 2 }),
          metric("slow", { interval: "1m", count: 1 }),
        ]),
      ],
      {},
      T0,
    );
    assert.equal(nextDueAt(s), T0 + 10 * S);
    s = drive(s, "fast", ["pass", "pass"]);
    assert.equal(s.phase, "Running");
    assert.equal(nextDueAt(s), T0 + 60 * S);
    assert.ok(s.message.startsWith("measuring 1 of 2 metrics; latest: fast pass"));
    s = drive(s, "slow", ["pass"]);
    assert.equal(s.phase, "Successful");
  });

  test("errors do not count towards count and are retried after 10 s (or the interval)", () => {
    let s = startRun([template("t", [metric("a")])], {}, T0);
    s = recordVerdict(s, "a", v("error", "a: measurement timeout"), T0 + 30 * S);
    assert.equal(s.phase, "Running");
    assert.equal(nextDueAt(s), T0 + 40 * S);
    assert.equal(dueMeasurements(s, T0 + 40 * S)[0]!.final, true);
    s = recordVerdict(s, "a", v("pass"), T0 + 40 * S);
    assert.equal(s.phase, "Successful");
    assert.deepEqual(s.metrics[0]!.counters, {
      measurements: 1,
      successful: 1,
      failed: 0,
      inconclusive: 0,
      provisional: 0,
      error: 1,
      consecutiveErrors: 0,
    });
  });
});

describe("limits", () => {
  test("failureLimit: the run fails when failed > limit, naming the metric and its explanation", () => {
    let s = startRun(
      [template("t", [metric("errors", { interval: "10s", count: 5, failureLimit: 1 })])],
      {},
      T0,
    );
    s = drive(s, "errors", ["fail", "pass"]);
    assert.equal(s.phase, "Running");
    s = recordVerdict(s, "errors", v("fail", "errors 0.042 > max 0.01 (n=2500)"), T0 + 30 * S);
    assert.equal(s.phase, "Failed");
    assert.equal(
      s.message,
      "errors failed: 2 failed > failureLimit 1: errors 0.042 > max 0.01 (n=2500)",
    );
    assert.equal(summarize(s).metrics[0]!.phase, "Failed");
  });

  test("inconclusiveLimit (default 0): the first inconclusive ends the run Inconclusive", () => {
    let s = startRun([template("t", [metric("a", { interval: "10s", count: 3 })])], {}, T0);
    s = recordVerdict(
      s,
      "a",
      v("inconclusive", "a: no data: candidate had no requests"),
      T0 + 10 * S,
    );
    assert.equal(s.phase, "Inconclusive");
    assert.equal(
      s.message,
      "a inconclusive: 1 inconclusive > inconclusiveLimit 0: a: no data: candidate had no requests",
    );
  });

  test("a provisional inconclusive counts only at the last measurement", () => {
    const wait = v("inconclusive", "errors ... not enough evidence yet", {
      reason: "notEnoughEvidence",
      provisional: true,
    });
    let s = startRun([template("t", [metric("errors", { interval: "10s", count: 3 })])], {}, T0);
    s = recordVerdict(s, "errors", wait, T0 + 10 * S);
    s = recordVerdict(s, "errors", wait, T0 + 20 * S);
    assert.equal(s.phase, "Running");
    assert.deepEqual(
      [s.metrics[0]!.counters.provisional, s.metrics[0]!.counters.inconclusive],
      [2, 0],
    );
    assert.deepEqual(
      s.metrics[0]!.verdicts.map((r) => r.counted),
      [false, false],
    );
    s = recordVerdict(s, "errors", wait, T0 + 30 * S);
    assert.equal(s.phase, "Inconclusive");
    assert.equal(s.metrics[0]!.verdicts[2]!.counted, true);
    // A provisional verdict followed by a pass: Successful.
    let t = startRun([template("t", [metric("errors", { interval: "10s", count: 2 })])], {}, T0);
    t = recordVerdict(t, "errors", wait, T0 + 10 * S);
    t = recordVerdict(t, "errors", v("pass"), T0 + 20 * S);
    assert.equal(t.phase, "Successful");
  });

  test("reaching count without a single pass is Inconclusive, not Successful", () => {
    let s = startRun(
      [template("t", [metric("a", { interval: "10s", count: 2, inconclusiveLimit: 5 })])],
      {},
      T0,
    );
    s = drive(s, "a", ["inconclusive", "inconclusive"]);
    assert.equal(s.phase, "Inconclusive");
    assert.ok(s.message.startsWith("a inconclusive: no measurement passed in 2:"));
  });

  test("consecutive errors: Error when > consecutiveErrorLimit (default 4); any other verdict resets the streak", () => {
    let s = startRun([template("t", [metric("a", { interval: "10s", count: 10 })])], {}, T0);
    s = drive(s, "a", [
      "error",
      "error",
      "error",
      "error",
      "pass",
      "error",
      "error",
      "error",
      "error",
    ]);
    assert.equal(s.phase, "Running");
    assert.equal(s.metrics[0]!.counters.consecutiveErrors, 4);
    s = recordVerdict(
      s,
      "a",
      v("error", "a: measurement failed: connect ECONNREFUSED"),
      T0 + 200 * S,
    );
    assert.equal(s.phase, "Error");
    assert.equal(
      s.message,
      "a error: 5 errors in a row > consecutiveErrorLimit 4: a: measurement failed: connect ECONNREFUSED",
    );
    let t = startRun([template("t", [metric("a", { consecutiveErrorLimit: 0 })])], {}, T0);
    t = recordVerdict(t, "a", v("error"), T0 + 30 * S);
    assert.equal(t.phase, "Error");
  });

  test("a failing metric ends the run at once; the others stop (Successful only if they passed)", () => {
    let s = startRun(
      [
        template("t", [
          metric("errors", { interval: "10s", count: 10 }),
          metric("latency", { interval: "10s", count: 10 }),
          metric("rps", { interval: "1m", count: 2 }),
        ]),
      ],
      {},
      T0,
    );
    s = recordVerdict(s, "latency", v("pass"), T0 + 10 * S);
    s = recordVerdict(s, "errors", v("fail", "errors 4.1% vs 0.9%"), T0 + 10 * S);
    assert.equal(s.phase, "Failed");
    assert.deepEqual(
      s.metrics.map((m) => m.phase),
      ["Failed", "Successful", "Inconclusive"],
    );
    assert.ok(
      s.metrics[2]!.message.startsWith("run ended: errors Failed before any measurement passed"),
    );
    assert.deepEqual(dueMeasurements(s, T0 + 60 * S), []);
    // A verdict in flight when the run ended is ignored.
    assert.equal(recordVerdict(s, "latency", v("fail"), T0 + 11 * S), s);
  });

  test("an Error ends the run while other metrics still run", () => {
    let s = startRun(
      [
        template("t", [
          metric("a", { consecutiveErrorLimit: 0 }),
          metric("b", { interval: "30s", count: 2 }),
        ]),
      ],
      {},
      T0,
    );
    s = recordVerdict(s, "a", v("error"), T0 + 30 * S);
    assert.equal(s.phase, "Error");
    assert.equal(s.metrics[1]!.phase, "Inconclusive");
    assert.equal(nextDueAt(s), null);
  });
});

describe("dryRun", () => {
  test("a failing dryRun metric is recorded and explained but does not change the outcome", () => {
    let s = startRun(
      [
        template("t", [
          metric("errors"),
          metric("latency", { dryRun: true, judge: { threshold: { max: 100 } } }),
        ]),
      ],
      {},
      T0,
    );
    s = recordVerdict(s, "latency", v("fail", "latency 130 > max 100"), T0 + 30 * S);
    assert.equal(s.phase, "Running");
    assert.equal(s.metrics[1]!.phase, "Failed");
    s = recordVerdict(s, "errors", v("pass", "errors 0.002 within max 0.01"), T0 + 30 * S);
    assert.equal(s.phase, "Successful");
    assert.equal(
      s.message,
      "all metrics passed (errors passed 1 of 1); last: errors: errors 0.002 within max 0.01 (dry run, ignored: latency Failed: 1 failed > failureLimit 0: latency 130 > max 100)",
    );
    const sum = summarize(s);
    assert.deepEqual(
      sum.metrics.map((m) => [m.name, m.phase, m.dryRun]),
      [
        ["errors", "Successful", false],
        ["latency", "Failed", true],
      ],
    );
  });

  test("a failed run's message (the rollback's) names the deciding metric, no dry-run note", () => {
    let s = startRun(
      [
        template("t", [
          metric("errors"),
          metric("latency", { dryRun: true, judge: { threshold: { max: 100 } } }),
        ]),
      ],
      {},
      T0,
    );
    s = recordVerdict(s, "latency", v("fail", "latency 130 > max 100"), T0 + 30 * S);
    s = recordVerdict(s, "errors", v("fail", "errors 0.04 > max 0.01"), T0 + 30 * S);
    assert.equal(s.phase, "Failed");
    assert.equal(s.message, "errors failed: 1 failed > failureLimit 0: errors 0.04 > max 0.01");
    // The dry-run metric's failure stays in its own state.
    assert.equal(s.metrics[1]!.phase, "Failed");
  });

  test("a run of dryRun metrics only ends Successful", () => {
    let s = startRun([template("t", [metric("a", { dryRun: true })])], {}, T0);
    s = recordVerdict(s, "a", v("fail"), T0 + 30 * S);
    assert.equal(s.phase, "Successful");
    assert.ok(s.message.startsWith("all metrics are dry run"));
  });
});

describe("background runs and termination", () => {
  test("measure until terminated; Successful if every metric passed at least once", () => {
    let s = startRun([template("t", [metric("errors"), metric("latency")])], {}, T0, {
      kind: "background",
    });
    for (let i = 1; i <= 5; i++) {
      for (const d of dueMeasurements(s, T0 + i * 30 * S)) {
        s = recordVerdict(s, d.metric, v("pass"), T0 + i * 30 * S);
      }
    }
    assert.equal(s.phase, "Running");
    assert.equal(s.metrics[0]!.counters.successful, 5);
    s = terminateRun(s, T0 + 170 * S, "rollout completed");
    assert.equal(s.phase, "Successful");
    assert.deepEqual(s.terminated, { at: T0 + 170 * S, reason: "rollout completed" });
    assert.ok(
      s.message.startsWith(
        "terminated: rollout completed; all metrics passed (errors passed 5 of 5, latency passed 5 of 5)",
      ),
    );
    assert.equal(terminateRun(s, T0 + 200 * S, "again"), s);
  });

  test("terminated before any measurement passed: Inconclusive, never a pass on no data", () => {
    let s = startRun([template("t", [metric("errors")])], {}, T0, { kind: "background" });
    s = recordVerdict(s, "errors", v("inconclusive", "...yet", { provisional: true }), T0 + 30 * S);
    assert.equal(s.phase, "Running");
    s = terminateRun(s, T0 + 45 * S, "rollout aborted");
    assert.equal(s.phase, "Inconclusive");
    assert.ok(s.message.includes("stopped: rollout aborted before any measurement passed"));
  });
});

describe("observe: judge and record with the metric's memory", () => {
  const side = (events: number, trials: number, version: string): ObservedSide => ({
    version,
    value: events / trials,
    sampleSize: trials,
    proportion: { events, trials },
  });

  test("a sequential metric carries its memory, waits without counting, and fails on evidence", () => {
    const errors = metric("errors", {
      interval: "10s",
      count: 30,
      judge: { sequential: { maxIncrease: 0.01, alpha: 0.01 } },
    });
    let s = startRun([template("golden", [errors])], {}, T0);
    s = observe(
      s,
      "errors",
      { candidate: side(3, 100, "v2"), baseline: side(9, 900, "v1") },
      T0 + 10 * S,
    );
    assert.equal(s.phase, "Running");
    assert.equal(s.metrics[0]!.counters.provisional, 1);
    assert.equal(s.metrics[0]!.memory?.looks, 1);
    s = observe(
      s,
      "errors",
      { candidate: side(82, 2000, "v2"), baseline: side(162, 18000, "v1") },
      T0 + 20 * S,
    );
    assert.equal(s.phase, "Failed");
    assert.equal(s.metrics[0]!.memory?.looks, 2);
    assert.match(
      s.message,
      /^errors failed: 1 failed > failureLimit 0: errors 4\.1% \(82\/2000\) vs baseline 0\.9% \(162\/18000\): \+3\.2 points > \+1 allowed \(mSPRT p=[0-9.e-]+ < alpha 0\.01\)$/,
    );
  });

  test("failed measurements: noData is inconclusive, timeouts count as errors", () => {
    let s = startRun(
      [template("t", [metric("a", { interval: "10s", count: 3, inconclusiveLimit: 1 })])],
      {},
      T0,
    );
    s = observe(
      s,
      "a",
      { error: "timed out after 10s", errorKind: "timeout", raw: null },
      T0 + 10 * S,
    );
    assert.equal(s.metrics[0]!.counters.error, 1);
    s = observe(
      s,
      "a",
      { error: "no data: no requests", errorKind: "noData", raw: null },
      T0 + 20 * S,
    );
    // Not the last measurement: "no data yet" waits (provisional) instead of counting.
    assert.deepEqual(
      [s.phase, s.metrics[0]!.counters.inconclusive, s.metrics[0]!.counters.provisional],
      ["Running", 0, 1],
    );
    s = observe(
      s,
      "a",
      { error: "no data: no requests", errorKind: "noData", raw: null },
      T0 + 30 * S,
    );
    s = observe(
      s,
      "a",
      { error: "no data: no requests", errorKind: "noData", raw: null },
      T0 + 40 * S,
    );
    // The last one counts: 1 inconclusive is within the limit of 1, and with no pass at all the
    // metric ends Inconclusive (never a pass on no data).
    assert.equal(s.metrics[0]!.counters.inconclusive, 1);
    assert.equal(s.phase, "Inconclusive");
  });
});

test("the verdict history is bounded; counters keep the totals", () => {
  let s = startRun([template("t", [metric("a")])], {}, T0, { kind: "background", historyLimit: 5 });
  for (let i = 1; i <= 12; i++) s = recordVerdict(s, "a", v("pass", `pass ${i}`), T0 + i * 30 * S);
  const m = s.metrics[0]!;
  assert.equal(m.verdicts.length, 5);
  assert.equal(m.verdicts[0]!.verdict.explanation, "pass 8");
  assert.equal(m.counters.successful, 12);
  assert.equal(summarize(s).metrics[0]!.last?.verdict.explanation, "pass 12");
});

test("the state is plain JSON and recording never mutates its input", () => {
  const s0 = startRun([template("t", [metric("a", { interval: "10s", count: 3 })])], {}, T0);
  const frozen = JSON.stringify(s0);
  const s1 = recordVerdict(s0, "a", v("pass"), T0 + 10 * S);
  assert.equal(JSON.stringify(s0), frozen);
  assert.deepEqual(JSON.parse(JSON.stringify(s1)), s1);
  assert.throws(() => recordVerdict(s1, "nope", v("pass"), T0), /no metric "nope"/);
});

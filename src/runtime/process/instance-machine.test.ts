import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_RESTART_POLICY } from "../../core/model.js";
import {
  crashed,
  type InstanceFacts,
  livenessAnswered,
  READINESS_FAILURE_THRESHOLD,
  type RunFacts,
  readinessAnswered,
  restartDue,
  type SlotFacts,
  scalePlan,
  startupTimedOut,
  stopPlan,
} from "./instance-machine.js";

const instance = (over: Partial<InstanceFacts> = {}): InstanceFacts => ({
  state: "starting",
  message: "starting",
  restarts: 0,
  lastExit: undefined,
  crashesSinceReady: 0,
  backoffStep: 0,
  ...over,
});

const run = (over: Partial<RunFacts> = {}): RunFacts => ({
  startedAt: 0,
  wasReady: false,
  readinessFailures: 0,
  livenessFailures: 0,
  killReason: undefined,
  failNow: false,
  ...over,
});

const ok = { ok: true, detail: "HTTP 200" };
const refused = { ok: false, detail: "ECONNREFUSED" };
const policy = { ...DEFAULT_RESTART_POLICY, failureThreshold: 3 };

describe("readiness", () => {
  it("a first pass makes the instance ready and starts the liveness probe", () => {
    const f = instance({ crashesSinceReady: 2 });
    const r = run();
    assert.deepEqual(readinessAnswered(f, r, ok), {
      changed: true,
      becameReady: true,
      firstReady: true,
    });
    assert.equal(f.state, "ready");
    assert.equal(f.message, undefined);
    assert.equal(f.crashesSinceReady, 0);
    assert.equal(r.wasReady, true);
    // Passing again changes nothing.
    assert.deepEqual(readinessAnswered(f, r, ok), {
      changed: false,
      becameReady: false,
      firstReady: false,
    });
  });

  it("before the first pass, a failure only says why in the message (no change)", () => {
    const f = instance();
    assert.equal(readinessAnswered(f, run(), refused).changed, false);
    assert.equal(f.state, "starting");
    assert.equal(f.message, "readiness probe: ECONNREFUSED");
    // A failed instance keeps the message that says why it failed.
    const failed = instance({ state: "failed", message: "crashed" });
    readinessAnswered(failed, run(), refused);
    assert.equal(failed.message, "crashed");
  });

  it(`takes a ready instance out of traffic after ${READINESS_FAILURE_THRESHOLD} failures in a row, and back when it passes`, () => {
    const f = instance({ state: "ready", message: undefined });
    const r = run({ wasReady: true });
    for (let i = 1; i < READINESS_FAILURE_THRESHOLD; i++)
      assert.equal(readinessAnswered(f, r, refused).changed, false);
    assert.equal(f.state, "ready");
    const t = readinessAnswered(f, r, refused);
    assert.equal(t.changed, true);
    assert.equal(f.state, "starting");
    assert.match(f.message!, /readiness probe failed 3 times in a row \(ECONNREFUSED\)/);
    // Back: ready again, but not a first readiness (the liveness probe already runs).
    assert.deepEqual(readinessAnswered(f, r, ok), {
      changed: true,
      becameReady: true,
      firstReady: false,
    });
    assert.equal(r.readinessFailures, 0);
  });
});

describe("liveness", () => {
  it("restarts after failureThreshold failures in a row; a pass resets the count", () => {
    const f = instance({ state: "ready", message: undefined });
    const r = run({ wasReady: true });
    assert.equal(livenessAnswered(f, r, refused, 2).terminate, false);
    assert.equal(livenessAnswered(f, r, ok, 2).terminate, false);
    assert.equal(r.livenessFailures, 0);
    assert.equal(livenessAnswered(f, r, refused, 2).terminate, false);
    const t = livenessAnswered(f, r, refused, 2);
    assert.deepEqual(t, { changed: true, terminate: true });
    assert.equal(r.killReason, "liveness probe failed 2 times (ECONNREFUSED)");
    assert.equal(f.state, "starting");
    assert.equal(f.message, "liveness probe failed 2 times (ECONNREFUSED); restarting");
  });
});

describe("start-up deadline", () => {
  it("fails a run that was never ready at once, with the last probe's answer", () => {
    const f = instance({ message: "readiness probe: HTTP 503" });
    const r = run();
    assert.deepEqual(startupTimedOut(f, r, 5000), { changed: true });
    assert.equal(f.state, "failed");
    assert.equal(r.failNow, true);
    assert.equal(r.killReason, "not ready within 5s (readiness probe: HTTP 503)");
    assert.equal(f.message, "not ready within 5s (readiness probe: HTTP 503); restarting");
    assert.equal(
      (() => {
        const g = instance();
        startupTimedOut(g, run(), 1000);
        return g.message;
      })(),
      "not ready within 1s (no probe answered yet); restarting",
    );
  });

  it("leaves a run that was ready once alone", () => {
    const f = instance();
    assert.equal(startupTimedOut(f, run({ wasReady: true }), 5000), null);
    assert.equal(f.state, "starting");
  });
});

describe("crashes and restarts", () => {
  it("back off 1 s, 2 s, 4 s ... up to the maximum, failed after failureThreshold crashes", () => {
    const f = instance();
    const delays: number[] = [];
    const states: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = run({ startedAt: 0 });
      const c = crashed(f, {
        reason: "exited with code 1",
        failNow: false,
        run: r,
        now: 10,
        policy,
      });
      delays.push(c.delaySeconds);
      states.push(f.state);
      restartDue(f, "exited with code 1");
    }
    assert.deepEqual(
      delays,
      delays.map((_, i) =>
        Math.min(policy.maxBackoffSeconds, policy.initialBackoffSeconds * 2 ** i),
      ),
    );
    assert.equal(delays[1], 2 * delays[0]!);
    assert.equal(delays.at(-1), policy.maxBackoffSeconds);
    assert.deepEqual(states.slice(0, 3), ["starting", "starting", "failed"]);
    assert.equal(f.restarts, 10);
    assert.equal(f.lastExit, "exited with code 1");
    assert.equal(f.message, "restarted (10) after: exited with code 1");
  });

  it("a run of resetAfterSeconds resets the back-off to its first delay", () => {
    const f = instance({ backoffStep: 4 });
    const long = run({ startedAt: 0 });
    const c = crashed(f, {
      reason: "killed by SIGSEGV",
      failNow: false,
      run: long,
      now: policy.resetAfterSeconds * 1000,
      policy,
    });
    assert.equal(c.delaySeconds, policy.initialBackoffSeconds);
  });

  it("says what happened, how often, when it restarts and where the log is", () => {
    const f = instance({ crashesSinceReady: 1 });
    crashed(f, {
      reason: "exited with code 2",
      failNow: false,
      now: 0,
      policy,
      logFile: "/d/logs/shop/v1-0.log",
    });
    assert.equal(
      f.message,
      "exited with code 2 (crash loop: 2 in a row); restart in 1s; log: /d/logs/shop/v1-0.log",
    );
  });

  it("failNow fails the instance at its first crash", () => {
    const f = instance();
    assert.equal(
      crashed(f, { reason: "could not start: empty command", failNow: true, now: 0, policy })
        .failed,
      true,
    );
    assert.equal(f.state, "failed");
  });
});

describe("stopping", () => {
  it("an instance that served waits for the gate and drains; one that never served does not", () => {
    const served = instance({ state: "ready" });
    assert.deepEqual(
      stopPlan(served, run({ wasReady: true }), { drain: true, hasGate: true, drainMs: 5000 }),
      {
        gate: true,
        drainMs: 5000,
        message: "stopping: waiting until every router serves a table without it",
      },
    );
    assert.deepEqual(stopPlan(served, run(), { drain: true, hasGate: false, drainMs: 5000 }), {
      gate: false,
      drainMs: 5000,
      message: "draining for 5s",
    });
    // A readiness flap: "starting" now, but it served and may still be in a router's table.
    const flapped = instance({ state: "starting" });
    assert.equal(
      stopPlan(flapped, run({ wasReady: true }), { drain: true, hasGate: true, drainMs: 1 }).gate,
      true,
    );
    const never = instance({ state: "starting" });
    assert.deepEqual(stopPlan(never, run(), { drain: true, hasGate: true, drainMs: 5000 }), {
      gate: false,
      drainMs: 0,
      message: "stopping",
    });
    // Shutdown: no gate, no drain.
    assert.deepEqual(
      stopPlan(served, run({ wasReady: true }), { drain: false, hasGate: true, drainMs: 5000 }),
      {
        gate: false,
        drainMs: 0,
        message: "stopping",
      },
    );
  });
});

describe("scaling", () => {
  const slot = (version: string, index: number, state: SlotFacts["state"], removing = false) => ({
    id: `shop/${version}/${index}`,
    version,
    index,
    state,
    removing,
  });

  it("stops unwanted versions, then scales each wanted one: not serving first, then the highest index", () => {
    const plan = scalePlan(
      [
        slot("v0", 0, "ready"),
        slot("v1", 0, "ready"),
        slot("v1", 1, "failed"),
        slot("v1", 2, "ready"),
        slot("v1", 3, "starting"),
      ],
      new Map([["v1", 2]]),
    );
    assert.deepEqual(plan, [
      { op: "stop", id: "shop/v0/0" },
      { op: "stop", id: "shop/v1/1" },
      { op: "stop", id: "shop/v1/3" },
    ]);
  });

  it("starts missing instances at the lowest free index; stopping ones keep theirs", () => {
    const plan = scalePlan(
      [slot("v1", 0, "stopping", true), slot("v1", 2, "ready")],
      new Map([
        ["v1", 3],
        ["v2", 1],
      ]),
    );
    assert.deepEqual(plan, [
      { op: "start", version: "v1", index: 1 },
      { op: "start", version: "v1", index: 3 },
      { op: "start", version: "v2", index: 0 },
    ]);
  });

  it("does nothing when every version has its replicas", () => {
    assert.deepEqual(scalePlan([slot("v1", 0, "ready")], new Map([["v1", 1]])), []);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock, monotonicClock, systemClock } from "./clock.js";

describe("FakeClock", () => {
  it("moves only when told to", () => {
    const clock = new FakeClock(1000);
    assert.equal(clock.now(), 1000);
    clock.advance(250);
    assert.equal(clock.now(), 1250);
    clock.set(5);
    assert.equal(clock.now(), 5);
  });

  it("runs due timers on advance, earliest first, at their own time", () => {
    const clock = new FakeClock(0);
    const ran: string[] = [];
    clock.setTimeout(() => ran.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => ran.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => ran.push(`c@${clock.now()}`), 30);
    clock.advance(25);
    assert.deepEqual(ran, ["a@10", "b@20"]);
    assert.equal(clock.now(), 25);
    assert.equal(clock.pending, 1);
    clock.advance(5);
    assert.deepEqual(ran, ["a@10", "b@20", "c@30"]);
    assert.equal(clock.pending, 0);
  });

  it("runs timers set by a timer when they fall due within the same advance", () => {
    const clock = new FakeClock(0);
    const ran: number[] = [];
    clock.setTimeout(() => {
      ran.push(clock.now());
      clock.setTimeout(() => ran.push(clock.now()), 5);
    }, 10);
    clock.advance(20);
    assert.deepEqual(ran, [10, 15]);
  });

  it("forgets a cleared timer", () => {
    const clock = new FakeClock(0);
    let ran = false;
    const h = clock.setTimeout(() => {
      ran = true;
    }, 10);
    clock.clearTimeout(h);
    clock.advance(100);
    assert.equal(ran, false);
    assert.equal(clock.pending, 0);
  });
});

describe("real clocks", () => {
  it("systemClock reads epoch ms, monotonicClock a scale that does not go back", () => {
    const before = Date.now();
    const t = systemClock.now();
    assert.ok(t >= before && t <= Date.now());
    const a = monotonicClock.now();
    const b = monotonicClock.now();
    assert.ok(b >= a);
  });

  it("runs and clears real timers", async () => {
    // The clocks' timers are unref'd: a ref'd one keeps this process alive while they wait.
    const keepAlive = setInterval(() => {}, 1000);
    try {
      for (const clock of [systemClock, monotonicClock]) {
        const cleared = clock.setTimeout(() => assert.fail("cleared timer ran"), 0);
        clock.clearTimeout(cleared);
        await new Promise<void>((resolve) => clock.setTimeout(resolve, 1));
      }
    } finally {
      clearInterval(keepAlive);
    }
  });
});

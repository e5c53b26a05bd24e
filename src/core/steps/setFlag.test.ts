import assert from "node:assert/strict";
import { test } from "node:test";
import type { ServiceStatus } from "../model.js";
import { emptyStatus } from "../rollout.js";
import { setFlag } from "./setFlag.js";
import type { StepContext } from "./types.js";

function ctx(status: ServiceStatus, now: number, events: unknown[]): StepContext {
  return {
    now,
    name: "shop",
    status,
    stepStartedAt: now,
    emit: (type: string, message: string, data: unknown) => events.push({ type, message, data }),
    label: (i: number) => `step ${i + 1}/4`,
  } as unknown as StepContext;
}

test("setFlag records the change in the status with an event, and goes on", () => {
  const s = {
    ...emptyStatus(0),
    rolloutNumber: 3,
    canaryVersion: "v2",
    phase: "Progressing" as const,
  };
  const events: unknown[] = [];
  assert.equal(setFlag.run(ctx(s, 1000, events), 1, { flag: "f", percentage: 10 }), "next");
  assert.deepEqual(s.flags?.f, {
    at: 1000,
    rollout: 3,
    step: 1,
    reason: "rollout 3 step 2/4: setFlag f 10%",
    state: "ENABLED",
    percentage: 10,
  });
  assert.equal((events[0] as { type: string }).type, "FlagChanged");
  setFlag.run(ctx(s, 2000, events), 3, { flag: "f", enabled: false });
  assert.equal(s.flags?.f?.state, "DISABLED");
  assert.equal(s.flags?.f?.percentage, undefined);
  assert.equal(setFlag.describe({ flag: "f", variant: "b" }), "setFlag f variant b");
});

test("clear turns this rollout's flags off on a rollback only", () => {
  const s = {
    ...emptyStatus(0),
    rolloutNumber: 2,
    canaryVersion: "v2",
    phase: "Progressing" as const,
  };
  setFlag.run(ctx(s, 1000, []), 1, { flag: "f", percentage: 50 });
  s.flags = {
    ...s.flags,
    old: { at: 5, rollout: 1, step: 0, reason: "x", state: "ENABLED", percentage: 100 },
  };

  // Completed: flags stay where the last step put them.
  const done: ServiceStatus = structuredClone(s);
  done.phase = "Completed";
  done.canaryVersion = null;
  setFlag.clear!(done);
  assert.equal(done.flags?.f?.state, "ENABLED");

  // Rolled back (rollout.ts sets the phase before clearing): off at the rollback's time.
  const back: ServiceStatus = structuredClone(s);
  back.phase = "Degraded";
  back.message = "rollout to v2 aborted: analysis failed";
  back.lastTransitionAt = 7000;
  back.abortedVersion = "v2";
  back.canaryVersion = null;
  setFlag.clear!(back);
  assert.equal(back.flags?.f?.state, "DISABLED");
  assert.equal(back.flags?.f?.at, 7000);
  assert.match(back.flags?.f?.reason ?? "", /turned off: rollout to v2 aborted/);
  // Another rollout's flag is left alone; clearing again changes nothing.
  assert.equal(back.flags?.old?.state, "ENABLED");
  const again = structuredClone(back);
  setFlag.clear!(again);
  assert.deepEqual(again.flags, back.flags);
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { emptyStatus } from "../core/rollout.js";
import { formatStatus, type StatusView } from "./format.js";

function view(over: Partial<StatusView["status"]> & object, now: number): StatusView {
  return {
    service: "web",
    generation: 2,
    desiredVersion: "v2",
    steps: [{ setWeight: 10 }, { pause: { duration: "10s" } }],
    status: {
      ...emptyStatus(0),
      stableVersion: "v1",
      canaryVersion: "v2",
      canaryWeight: 10,
      stepIndex: 1,
      stepStartedAt: 0,
      observedGeneration: 2,
      ...over,
    },
    routeTable: null,
    now,
  };
}

describe("formatStatus: a timed pause", () => {
  it("counts down while it runs", () => {
    assert.match(formatStatus(view({}, 3_000)), /pause 10s {2}\(7s left\)/);
  });

  it("held by a person: what is left once resumed, frozen at the time of the pause", () => {
    const v = view({ phase: "Paused", pausedByUser: true, pausedAt: 5_000 }, 65_000);
    assert.match(formatStatus(v), /pause 10s {2}\(5s left once resumed\)/);
  });

  it("held, from a status without pausedAt: no figure rather than a wrong one", () => {
    const v = view({ phase: "Paused", pausedByUser: true }, 65_000);
    assert.doesNotMatch(formatStatus(v), /left/);
  });
});

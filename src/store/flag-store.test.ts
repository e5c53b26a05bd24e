import assert from "node:assert/strict";
import { test } from "node:test";
import type { FlagSpec } from "../core/flags/types.js";
import { layer } from "./flag-store.js";

// The store's part (overrides, history, snapshot) is in flag-store.conformance.ts, which every
// store implementation runs; this is the layering, pure.
const spec: FlagSpec = {
  type: "boolean",
  variants: { on: true, off: false },
  defaultVariant: "off",
  state: "ENABLED",
  rollout: { variant: "on", percentage: 0 },
};
test("layer: latest change of a field wins; a person's DISABLED always wins", () => {
  const step = (at: number, o: object) => ({ at, rollout: 1, step: 0, reason: "r", ...o });
  const manual = (at: number, o: object) => ({
    flag: "f",
    override: o,
    actor: "me",
    reason: null,
    updatedAt: at,
  });
  assert.equal(layer(spec, undefined, [step(1, { percentage: 10 })]).rollout?.percentage, 10);
  assert.equal(
    layer(spec, manual(2, { percentage: 5 }), [step(1, { percentage: 10 })]).rollout?.percentage,
    5,
  );
  assert.equal(
    layer(spec, manual(1, { percentage: 5 }), [step(2, { percentage: 10 })]).rollout?.percentage,
    10,
  );
  // A rollout's kill after a person's enable: off.
  assert.equal(
    layer(spec, manual(1, { state: "ENABLED" }), [step(2, { state: "DISABLED" })]).state,
    "DISABLED",
  );
  // A person's enable after the kill: on.
  assert.equal(
    layer(spec, manual(3, { state: "ENABLED" }), [step(2, { state: "DISABLED" })]).state,
    "ENABLED",
  );
  // A person's kill is never undone by a later rollout step.
  assert.equal(
    layer(spec, manual(1, { state: "DISABLED" }), [step(2, { state: "ENABLED", percentage: 50 })])
      .state,
    "DISABLED",
  );
});

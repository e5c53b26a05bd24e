/** The suite's own contract: stable case names, skips that name no case refused. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CONFORMANCE_CASES, trafficProviderConformance } from "./conformance.js";

test("the case names are stable: skips in other providers' tests refer to them", () => {
  assert.deepEqual(CONFORMANCE_CASES, [
    "split accuracy",
    "stickiness",
    "matches",
    "preview listener",
    "switch and switch back under load",
    "mirror",
    "experiment arms",
    "refused capability",
    "empty set stops the listeners",
    "inForce reports revisions",
  ]);
});

test("a skip that names no case is an error, not a silently running case", () => {
  assert.throws(
    () =>
      trafficProviderConformance("nothing", async () => {
        throw new Error("never made");
      }, [{ reason: "typo", cases: ["split acuracy" as never] }]),
    /conformance skip names no case: "split acuracy"/,
  );
});

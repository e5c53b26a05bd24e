/**
 * The flag store's part of the store conformance suite (registered by
 * `describeStoreConformance`): people's overrides, their history, and the snapshot (with its
 * ETag) that evaluators work from.
 */
import assert from "node:assert/strict";
import { evaluate } from "../core/flags/evaluate.js";
import type { FlagResource, FlagSpec } from "../core/flags/types.js";
import { FlagSnapshotCache } from "./flag-store.js";
import type { ConformanceTest } from "./store.conformance.js";

const spec: FlagSpec = {
  type: "boolean",
  variants: { on: true, off: false },
  defaultVariant: "off",
  state: "ENABLED",
  rollout: { variant: "on", percentage: 0 },
};
const flag: FlagResource = {
  apiVersion: "turnout.dev/v1",
  kind: "Flag",
  metadata: { name: "f" },
  spec,
};

export function describeFlagStoreConformance(test: ConformanceTest): void {
  test("flags: overrides, history and the snapshot's ETag", async ({ store, features }) => {
    await store.applyResources([flag], { actor: "test", now: 1 });
    const flags = features.flags;
    const cache = new FlagSnapshotCache(flags, { pollMs: 60_000 });
    await cache.start();
    try {
      const before = cache.current;
      assert.equal(evaluate(before.flags, "f", { targetingKey: "u" }).value, false);
      await flags.changeOverride(
        "f",
        { percentage: 100 },
        {
          actor: "cli:me",
          reason: "go",
          now: 2,
          action: "set",
          message: "set 100%",
        },
      );
      const after = await cache.refresh();
      assert.notEqual(after.etag, before.etag);
      assert.equal(evaluate(after.flags, "f", { targetingKey: "u" }).value, true);
      await flags.changeOverride(
        "f",
        { state: "DISABLED" },
        {
          actor: "cli:me",
          now: 3,
          action: "disable",
          message: "off",
        },
      );
      const off = await cache.refresh();
      assert.equal(evaluate(off.flags, "f", { targetingKey: "u" }).reason, "DISABLED");
      assert.deepEqual((await flags.getOverride("f"))?.override, {
        percentage: 100,
        state: "DISABLED",
      });
      await flags.changeOverride("f", null, {
        actor: "x",
        now: 4,
        action: "reset",
        message: "reset",
      });
      assert.equal(await flags.getOverride("f"), null);
      assert.equal((await cache.refresh()).etag, before.etag, "same definitions, same ETag");
      const h = await flags.history("f");
      assert.deepEqual(
        h.map((e) => e.action),
        ["applied", "set", "disable", "reset"],
      );
      assert.equal(h[1]?.actor, "cli:me");
    } finally {
      cache.stop();
    }
  });
}

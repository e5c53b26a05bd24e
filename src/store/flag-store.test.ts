import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { evaluate } from "../core/flags/evaluate.js";
import type { FlagResource, FlagSpec } from "../core/flags/types.js";
import { FlagSnapshotCache, FlagStore, layer } from "./flag-store.js";
import { openTestStore } from "./postgres/testing/test-store.js";
import type { SqlStore } from "./sql-store.js";

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

let dir: string;
let store: SqlStore;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "turnout-flags-"));
  store = await openTestStore(join(dir, "t.db"));
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

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

test("overrides, history and the snapshot's ETag", async () => {
  await store.applyResources([flag], { actor: "test", now: 1 });
  const flags = new FlagStore(store);
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

/**
 * The flag store's part of the store conformance suite (registered by
 * `describeStoreConformance`): people's overrides, their history, and the snapshot (with its
 * ETag) that evaluators work from.
 */
import assert from "node:assert/strict";
import { evaluate } from "../core/flags/evaluate.js";
import type { FlagResource, FlagSpec } from "../core/flags/types.js";
import { API_VERSION, type ServiceResource, type ServiceStatus } from "../core/model.js";
import { emptyStatus } from "../core/rollout.js";
import { TurnoutError } from "../errors.js";
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

  test("flags: a deleted flag leaves nothing behind; re-created, it starts clean", async ({
    store,
    features,
  }) => {
    const flags = features.flags;
    await store.applyResources([flag, service("shop")], { actor: "test", now: 1 });
    const clean = await flags.loadSnapshot();
    // Every piece of state keyed by the flag: a person's kill switch and percentage...
    await flags.changeOverride(
      "f",
      { state: "DISABLED", percentage: 40 },
      { actor: "cli:me", now: 2, action: "disable", message: "off" },
    );
    // ...and what a rollout put on it (kept in the service's status after the rollout ended),
    // beside a rollout's override of another flag, which must stay.
    const rolled: ServiceStatus = {
      ...status(),
      flags: {
        f: { at: 3, rollout: 1, step: 0, reason: "rollout 1 step 1", variant: "on" },
        g: { at: 3, rollout: 1, step: 1, reason: "rollout 1 step 2", percentage: 10 },
      },
    };
    await store.commit({ service: "shop", status: rolled, now: 3 });
    const read = await store.getStatus("shop");

    assert.equal(await store.deleteResource("Flag", "f", { actor: "cli:me", now: 4 }), true);
    assert.equal(await flags.getOverride("f"), null, "the person's override is gone");
    assert.deepEqual(
      (await flags.listOverrides()).map((o) => o.flag),
      [],
    );
    assert.deepEqual(
      (await store.getStatus("shop"))?.flags,
      { g: rolled.flags?.g },
      "the rollout's override of f is gone; g's is kept",
    );

    // A controller tick that read the status before the delete must not write f back.
    await assert.rejects(
      store.commit({ service: "shop", status: rolled, statusBefore: read, now: 5 }),
      (err: unknown) => err instanceof TurnoutError && err.code === "TURNOUT_ERR_STORE_CONFLICT",
    );
    assert.deepEqual(Object.keys((await store.getStatus("shop"))?.flags ?? {}), ["g"]);

    // Re-created with the same name: exactly the resource, as if it had never existed.
    await store.applyResources([flag], { actor: "test", now: 6 });
    const again = await flags.loadSnapshot();
    assert.deepEqual(
      again.definitions.find((d) => d.key === "f"),
      clean.definitions.find((d) => d.key === "f"),
    );
    assert.equal(again.etag, clean.etag, "same definitions as before any override, same ETag");
    const r = evaluate(again.flags, "f", { targetingKey: "u" });
    assert.equal(r.value, false);
    assert.notEqual(r.reason, "DISABLED");

    // The history keeps what happened (an audit trail), the deletion included, in order.
    const h = await flags.history("f");
    assert.deepEqual(
      h.map((e) => e.action),
      ["applied", "disable", "deleted", "applied"],
    );
    assert.deepEqual(h[2]?.data, {
      override: { state: "DISABLED", percentage: 40 },
      rollouts: { shop: rolled.flags?.f },
    });
  });
}

function service(name: string): ServiceResource {
  return {
    apiVersion: API_VERSION,
    kind: "Service",
    metadata: { name },
    spec: {
      listen: { port: 8080, host: "127.0.0.1" },
      runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9001"] } } } },
      version: "v1",
      strategy: { canary: { steps: [{ setWeight: 50 }] } },
    },
  };
}

function status(): ServiceStatus {
  return {
    ...emptyStatus(3),
    message: "v1 serves all traffic",
    observedGeneration: 1,
    stableVersion: "v1",
    rolloutNumber: 1,
  };
}

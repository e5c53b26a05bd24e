import assert from "node:assert/strict";
import { after, test } from "node:test";
import { requirePostgres, sharedCluster } from "../../test/support/postgres.js";
import { FlagStore } from "./flag-store.js";
import { notifier, outboxConformance } from "./outbox.conformance.js";
import { SqlOutboxStore } from "./outbox-store.js";
import { openPostgresStore } from "./postgres/postgres-store.js";
import { openSqliteStore } from "./sqlite/sqlite-store.js";

outboxConformance("SQLite", async () => {
  const store = await openSqliteStore({ path: ":memory:" });
  return { store, outbox: new SqlOutboxStore(store), close: () => store.close() };
});

// The same SQL over the PostgreSQL store (its write lock and change feed included).
const pgMissing = requirePostgres();
if (pgMissing === undefined) {
  outboxConformance("PostgreSQL", async () => {
    const cluster = await sharedCluster();
    const url = await cluster.createDatabase();
    const store = await openPostgresStore({ url, poolSize: 4 });
    return { store, outbox: new SqlOutboxStore(store), close: () => store.close() };
  });
  after(async () => (await sharedCluster()).stop());
} else {
  test("OutboxStore conformance: PostgreSQL", { skip: pgMissing }, () => undefined);
}

test("the kill switch is written to the outbox with the override, as a FlagKilled", async () => {
  const store = await openSqliteStore({ path: ":memory:" });
  try {
    const outbox = new SqlOutboxStore(store);
    const flags = new FlagStore(store);
    await store.applyResources(
      [
        notifier("ops", { events: ["flagKilled"] }),
        notifier("pay-team", { events: ["flagKilled"], services: ["pay"] }),
      ],
      { actor: "test", now: 1 },
    );
    const change = (state: "ENABLED" | "DISABLED", now: number) =>
      flags.changeOverride(
        "new-checkout",
        { state },
        {
          actor: "ann",
          reason: "checkout errors",
          now,
          action: state === "DISABLED" ? "disable" : "enable",
          message: `flag new-checkout ${state === "DISABLED" ? "disabled (kill switch)" : "enabled"} by ann`,
        },
      );
    await change("DISABLED", 10);
    await change("DISABLED", 11); // already off: no second notification
    await change("ENABLED", 12);
    const entries = await outbox.list();
    assert.equal(
      entries.length,
      1,
      "one kill, one notification; a selector never matches no service",
    );
    const [e] = entries;
    assert.equal(e?.notifier, "ops");
    assert.equal(e?.service, "");
    assert.equal(e?.eventId, null);
    assert.deepEqual(e?.notification.event.data, {
      flags: ["new-checkout"],
      version: null,
      reason: "checkout errors",
    });
    assert.equal(e?.notification.subscription, "flagKilled");
    assert.equal(e?.notification.event.actor, "ann");
  } finally {
    await store.close();
  }
});

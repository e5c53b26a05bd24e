/** What the conformance suite does not cover: a port taken, duplicates, apply before start. */
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import type { RouteTable } from "../../core/model.js";
import { ROUTE_FEATURES } from "../../core/traffic.js";
import { EdgeFlags } from "../../router/flags-edge.js";
import { startUpstream } from "../haproxy/testing.js";
import { BuiltinProvider } from "./provider.js";

const table = (service: string, port: number, url: string, revision = 1): RouteTable => ({
  service,
  revision,
  listen: { host: "127.0.0.1", port },
  hashVersion: 1,
  backends: [{ version: "v1", weight: 100, endpoints: [url] }],
  updatedAt: 0,
});

test("a port already taken: the outcome says so (TURNOUT_ERR_TRAFFIC_LISTEN), others serve", async () => {
  const up = await startUpstream("v1");
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
  const taken = (blocker.address() as net.AddressInfo).port;
  const p = new BuiltinProvider({ drainTimeoutMs: 500 });
  try {
    await assert.rejects(p.apply([]), /before start/);
    await p.start();
    const outcomes = await p.apply([
      table("blocked", taken, up.url),
      table("free", 0, up.url, 2),
      table("free", 0, up.url, 3),
    ]);
    assert.equal(outcomes.length, 3);
    const [blocked, free, twice] = outcomes;
    assert.ok(blocked && !blocked.ok);
    assert.equal((blocked.error as { code?: string }).code, "TURNOUT_ERR_TRAFFIC_LISTEN");
    assert.match(blocked.error.message, new RegExp(`blocked on port ${taken}: EADDRINUSE`));
    assert.deepEqual(free, { service: "free", revision: 2, ok: true });
    assert.ok(twice && !twice.ok && /two route tables for free/.test(twice.error.message));
    // The Router holds the blocked table and retries its bind; the free one serves.
    assert.deepEqual(Object.fromEntries(p.inForce()), { blocked: 1, free: 2 });
    const port = p.listeners().find((l) => l.service === "free")?.port;
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await res.text(), "v1\n");
  } finally {
    await p.stop();
    blocker.close();
    await up.close();
  }
});

test("features: edge flags only with a flag evaluator", () => {
  assert.deepEqual(
    [...new BuiltinProvider().features],
    ROUTE_FEATURES.filter((f) => f !== "edgeFlags"),
  );
  const withFlags = new BuiltinProvider({ edgeFlags: new EdgeFlags({} as never) });
  assert.deepEqual([...withFlags.features], [...ROUTE_FEATURES]);
});

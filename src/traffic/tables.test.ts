import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RouteTable } from "../core/model.js";
import { ROUTE_FEATURES } from "../core/traffic.js";
import { missingFeatures, partitionByProvider, unsupportedTableError } from "./tables.js";

const table = (service: string, more: Partial<RouteTable> = {}): RouteTable => ({
  service,
  revision: 1,
  listen: { host: "127.0.0.1", port: 0 },
  hashVersion: 1,
  backends: [{ version: "v1", weight: 100, endpoints: ["http://127.0.0.1:1"] }],
  updatedAt: 0,
  ...more,
});

describe("partitionByProvider", () => {
  it("sorts tables by the provider their traffic names, keeping order; every kind present", () => {
    const a = table("a");
    const b = table("b", { traffic: { haproxy: {} } });
    const c = table("c", { traffic: { builtin: {} } });
    const d = table("d", { traffic: { haproxy: { runtimeApi: "unix:/s", backend: "x" } } });
    const by = partitionByProvider([a, b, c, d]);
    assert.deepEqual(
      Object.fromEntries(Object.entries(by).map(([k, v]) => [k, v.map((t) => t.service)])),
      { builtin: ["a", "c"], haproxy: ["b", "d"] },
    );
    assert.equal(by.builtin[0], a, "the tables themselves, not copies");
  });

  it("no tables: every provider gets an empty set (and stops what it served)", () => {
    assert.deepEqual(partitionByProvider([]), { builtin: [], haproxy: [] });
  });
});

describe("unsupportedTableError", () => {
  const mirrored = table("m", {
    revision: 7,
    stickiness: { header: "x-u", salt: "m" },
    mirror: { version: "v2", endpoints: [], percent: 10 } as never,
  });

  it("null when the provider carries every feature the table uses", () => {
    assert.equal(unsupportedTableError(mirrored, "x", new Set(ROUTE_FEATURES)), null);
  });

  it("names the service, the revision, the features and the provider", () => {
    const features = new Set(ROUTE_FEATURES.filter((f) => f !== "mirror" && f !== "stickiness"));
    assert.deepEqual(missingFeatures(mirrored, features), ["stickiness", "mirror"]);
    const err = unsupportedTableError(mirrored, "the haproxy provider", features);
    assert.equal(err?.code, "TURNOUT_ERR_TRAFFIC_UNSUPPORTED");
    assert.equal(
      err?.message,
      "the route table of m (revision 7) needs sticky assignment and mirrored traffic, which the haproxy provider does not carry; it keeps serving the table it had",
    );
    assert.deepEqual(err?.details.features, ["stickiness", "mirror"]);
  });
});

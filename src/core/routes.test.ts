/**
 * Route tables give traffic only where routers have a ready endpoint (issue #6): a version
 * whose instances are all unready for a moment hands its share to the others, so no router is
 * told to send traffic where it has nowhere to send it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ServiceSpec, ServiceStatus } from "./model.js";
import { emptyStatus } from "./rollout.js";
import { buildRouteTable } from "./routes.js";

const spec = {
  listen: { host: "0.0.0.0", port: 8080 },
  runtime: { static: { versions: {} } },
  version: "v2",
} as unknown as ServiceSpec;

function status(canaryWeight: number): ServiceStatus {
  return { ...emptyStatus(0), stableVersion: "v1", canaryVersion: "v2", canaryWeight };
}

const build = (
  weights: { version: string; weight: number }[],
  endpoints: Record<string, string[]>,
  s = status(25),
) =>
  buildRouteTable({
    service: "web",
    spec,
    status: s,
    weights,
    endpoints: (v) => endpoints[v] ?? [],
    now: 0,
  }).backends.map((b) => [b.version, b.weight, b.endpoints.length]);

describe("buildRouteTable: weights follow ready endpoints", () => {
  it("keeps the decided weights when every weighted version has an endpoint", () => {
    const w = [
      { version: "v1", weight: 75 },
      { version: "v2", weight: 25 },
    ];
    assert.deepEqual(build(w, { v1: ["a"], v2: ["b"] }), [
      ["v2", 25, 1],
      ["v1", 75, 1],
    ]);
  });

  it("a version without a ready endpoint gets no weight; the others share it", () => {
    const w = [
      { version: "v1", weight: 75 },
      { version: "v2", weight: 25 },
    ];
    assert.deepEqual(build(w, { v1: [], v2: ["b"] }), [
      ["v2", 100, 1],
      ["v1", 0, 0],
    ]);
    assert.deepEqual(build(w, { v1: ["a"], v2: [] }), [
      ["v2", 0, 0],
      ["v1", 100, 1],
    ]);
  });

  it("shares in proportion among three, and leaves unweighted versions alone", () => {
    const s = { ...status(20), experiment: null };
    const w = [
      { version: "v1", weight: 50 },
      { version: "v2", weight: 30 },
      { version: "v3", weight: 20 },
      { version: "v4", weight: 0 },
    ];
    const got = build(w, { v1: ["a"], v2: ["b"], v3: [], v4: ["d"] }, s);
    assert.deepEqual(got, [
      ["v2", 37.5, 1],
      ["v1", 62.5, 1],
      ["v3", 0, 0],
      ["v4", 0, 1],
    ]);
  });

  it("with no endpoint for any weighted version the weights stay: no traffic to an unweighted one", () => {
    // Blue-green before the switch: blue (all unready for a moment) keeps its 100%, green (ready,
    // unpromoted) gets nothing; the router answers 503 rather than expose green.
    const w = [
      { version: "v1", weight: 100 },
      { version: "v2", weight: 0 },
    ];
    assert.deepEqual(build(w, { v1: [], v2: ["b"] }, status(0)), [
      ["v2", 0, 1],
      ["v1", 100, 0],
    ]);
  });
});

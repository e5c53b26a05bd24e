import assert from "node:assert/strict";
import { test } from "node:test";
import type { ServiceResource } from "../core/model.js";
import { parseResources } from "./load.js";

const service = (spec: string, runtime = "static") => `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: shop }
spec:
  listen: { port: 8080 }
${spec}
  runtime:
${
  runtime === "static"
    ? `    static:
      versions:
        v1: { upstreams: ["http://127.0.0.1:9001"] }
        v2: { upstreams: ["http://127.0.0.1:9002"] }`
    : "    process: { command: [node, server.mjs] }"
}
  version: v2
`;

test("stickiness with a salt and routing with every kind of rule validate as typed", () => {
  const { resources, errors } = parseResources(
    service(`  stickiness: { cookie: session, salt: shop-2024 }
  routing:
    versionOverride: true
    matches:
      - header: { name: X-Beta, equals: "1" }
        to: canary
      - cookie: { name: tester, regex: "^(alice|bob)$" }
        pathPrefix: /api
        to: stable
      - header: { name: x-debug, exists: false }
        pathPrefix: /v1/
        to: v1`),
  );
  assert.deepEqual(errors, []);
  const spec = (resources[0] as ServiceResource).spec;
  assert.deepEqual(spec.stickiness, { cookie: "session", salt: "shop-2024" });
  assert.deepEqual(spec.routing, {
    versionOverride: true,
    matches: [
      { header: { name: "X-Beta", equals: "1" }, to: "canary" },
      { cookie: { name: "tester", regex: "^(alice|bob)$" }, pathPrefix: "/api", to: "stable" },
      { header: { name: "x-debug", exists: false }, pathPrefix: "/v1/", to: "v1" },
    ],
  });
});

test("a process runtime may name any version in `to` (versions are not listed up front)", () => {
  const { errors } = parseResources(
    service("  routing: { matches: [{ pathPrefix: /next, to: v9 }] }", "process"),
  );
  assert.deepEqual(errors, []);
});

test("every problem of a routing block is reported at once, each at its path", () => {
  const { errors } = parseResources(
    service(`  stickiness: { header: x-user-id, query: user }
  routing:
    matches:
      - { header: { name: x, regex: "(?=a)b" }, to: canary }
      - { cookie: { name: c, exists: "yes" }, to: v7 }
      - { pathPrefix: "/a b", to: "no/slash" }`),
  );
  assert.deepEqual(
    errors.map((e) => e.path),
    [
      "spec.stickiness",
      "spec.routing.matches[0].header.regex",
      "spec.routing.matches[1].cookie.exists",
      "spec.routing.matches[1].to",
      "spec.routing.matches[2].pathPrefix",
      "spec.routing.matches[2].to",
    ],
  );
});

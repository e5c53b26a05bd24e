import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatPath, validateDocument } from "./index.js";

function service(strategy: unknown) {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: "fraud-model" },
    spec: {
      listen: { port: 8080 },
      runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9001"] } } } },
      version: "v1",
      strategy,
    },
  };
}

function issues(strategy: unknown): string[] {
  return validateDocument(service(strategy)).issues.map(
    (i) => `${formatPath(i.path)}: ${i.message}`,
  );
}

const gate = {
  minSamples: 100,
  maxMismatchRate: 0.05,
  minAgreement: 0.95,
  maxLatencyIncrease: 0.2,
};

describe("shadow schema", () => {
  it("accepts the shadow strategy and shadow/setMirrorRoute steps in a canary", () => {
    assert.deepEqual(
      issues({
        shadow: {
          percent: 50,
          methods: ["POST"],
          sideEffectFree: true,
          stripHeaders: ["authorization"],
          noise: true,
          compare: {
            ignore: ["$.meta", "$..ts"],
            tolerance: { absolute: 0.001 },
            classification: { field: "$.probs", mode: "argmax" },
            drift: { bins: 10 },
          },
          limits: { maxConcurrency: 8, maxQueue: 100, timeoutSeconds: 2 },
          gate: { ...gate, duration: "5m" },
        },
      }),
      [],
    );
    assert.deepEqual(
      issues({
        canary: {
          steps: [
            { shadow: { percent: 100, gate } },
            { setWeight: 10 },
            { setMirrorRoute: { percent: 5, match: { header: { name: "x-beta", equals: "1" } } } },
            { setMirrorRoute: {} },
          ],
        },
      }),
      [],
    );
  });

  it("names the exact path and reason", () => {
    const got = issues({
      canary: {
        steps: [
          { setWeight: 10 },
          {
            shadow: {
              percent: 0,
              methods: ["GET", "POST"],
              compare: { ignore: ["$.a[x"], classification: { field: "label", mode: "max" } },
              gate: { maxMismatchRate: 2 },
            },
          },
        ],
      },
    });
    const has = (re: RegExp) =>
      assert.ok(
        got.some((g) => re.test(g)),
        `${re} not in\n${got.join("\n")}`,
      );
    has(/^spec\.strategy\.canary\.steps\[1\]\.shadow\.percent: /);
    has(
      /^spec\.strategy\.canary\.steps\[1\]\.shadow\.methods\[1\]: POST is mirrored only with sideEffectFree: true/,
    );
    has(/^spec\.strategy\.canary\.steps\[1\]\.shadow\.compare\.ignore\[0\]: must be a JSON path/);
    has(/^spec\.strategy\.canary\.steps\[1\]\.shadow\.compare\.classification\.mode: /);
    has(/^spec\.strategy\.canary\.steps\[1\]\.shadow\.gate\.minSamples: /);
    has(/^spec\.strategy\.canary\.steps\[1\]\.shadow\.gate\.maxMismatchRate: /);
  });
});

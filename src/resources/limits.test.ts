import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  LARGEST,
  largestFlag,
  largestSegment,
  largestService,
} from "../../test/largest-resources.js";
import { LIMITS, LIMITS_BEGIN, LIMITS_END, type LimitName, renderLimitsTable } from "./limits.js";
import { formatPath, jsonBytes, type PathSegment, validateDocument } from "./schema/index.js";

const DOCS = fileURLToPath(new URL("../../docs/resources.md", import.meta.url));

const problems = (value: unknown) =>
  validateDocument(value).issues.map((i) => `${formatPath(i.path)}: ${i.message}`);

function at(doc: unknown, path: readonly PathSegment[]): unknown {
  let v = doc;
  for (const seg of path) v = (v as Record<string | number, unknown>)[seg];
  return v;
}

test("docs/resources.md holds the table of limits as limits.ts renders it", async () => {
  const docs = await readFile(DOCS, "utf8");
  const start = docs.indexOf(LIMITS_BEGIN);
  const end = docs.indexOf(LIMITS_END);
  assert.ok(start >= 0 && end > start, "docs/resources.md has no limits markers");
  assert.ok(
    docs.slice(start, end + LIMITS_END.length) === renderLimitsTable(),
    "the limits table in docs/resources.md is stale: run `npm run schema`",
  );
});

test("every limit is a sane range with a reason", () => {
  for (const [name, l] of Object.entries(LIMITS) as [LimitName, (typeof LIMITS)[LimitName]][]) {
    const min = "min" in l ? l.min : undefined;
    assert.ok(Number.isFinite(l.max), name);
    if (min !== undefined) assert.ok(min <= l.max, `${name}: min ${min} > max ${l.max}`);
    assert.ok(l.why.length > 10 && l.fields.length > 3, `${name} needs fields and a reason`);
  }
  assert.equal(LIMITS.STARTING_STEP.max, LIMITS.STEPS.max - 1, "startingStep indexes the steps");
});

describe("the largest documents the limits admit", () => {
  for (const [kind, build] of Object.entries(LARGEST)) {
    test(`${kind}: validates, within the document limit`, () => {
      const doc = build();
      assert.deepEqual(problems(doc), []);
      assert.ok(jsonBytes(doc) <= LIMITS.DOCUMENT_BYTES.max, `${jsonBytes(doc)} bytes`);
    });
  }

  test("the largest Service is near the document limit (its heavy steps fill it)", () => {
    assert.ok(jsonBytes(largestService()) > LIMITS.DOCUMENT_BYTES.max * 0.9);
  });

  // One item more than a limit, on the largest document, is refused at that list's path.
  const lists: [() => Record<string, unknown>, PathSegment[], LimitName, string][] = [
    [largestService, ["spec", "strategy", "canary", "steps"], "STEPS", "steps"],
    [largestService, ["spec", "routing", "matches"], "MATCHES", "rules"],
    [largestService, ["spec", "runtime", "process", "command"], "COMMAND_ARGS", "arguments"],
    [largestService, ["spec", "flags"], "SERVICE_FLAGS", "flags"],
    [
      largestService,
      ["spec", "strategy", "canary", "steps", 0, "analysis", "templates"],
      "TEMPLATES",
      "templates",
    ],
    [
      largestService,
      ["spec", "strategy", "canary", "steps", 0, "analysis", "args"],
      "ARGS",
      "arguments",
    ],
    [
      largestService,
      ["spec", "strategy", "canary", "steps", 1, "experiment", "arms"],
      "ARMS",
      "arms",
    ],
    [
      largestService,
      ["spec", "strategy", "canary", "steps", 1, "experiment", "metrics"],
      "EXPERIMENT_METRICS",
      "metrics",
    ],
    [
      largestService,
      ["spec", "strategy", "canary", "steps", 2, "shadow", "compare", "ignore"],
      "IGNORE_PATHS",
      "paths",
    ],
    [
      largestService,
      ["spec", "strategy", "canary", "steps", 2, "shadow", "stripHeaders"],
      "HEADER_LISTS",
      "headers",
    ],
    [largestFlag, ["spec", "rules"], "FLAG_RULES", "rules"],
    [largestFlag, ["spec", "rules", 1, "conditions"], "CONDITIONS", "conditions"],
    [largestFlag, ["spec", "rules", 0, "segments"], "RULE_SEGMENTS", "segments"],
    [largestFlag, ["spec", "rules", 0, "conditions", 0, "values"], "CONDITION_VALUES", "values"],
    [largestSegment, ["spec", "included"], "SEGMENT_KEYS", "keys"],
  ];
  for (const [build, path, limit, noun] of lists) {
    test(`${formatPath(path)}: at most ${LIMITS[limit].max} ${noun}`, () => {
      const doc = build();
      const list = at(doc, path) as unknown[];
      assert.equal(list.length, LIMITS[limit].max, "the largest document is at the limit");
      list.push(structuredClone(list[list.length - 1]));
      assert.ok(
        problems(doc).includes(
          `${formatPath(path)}: must have at most ${LIMITS[limit].max} ${noun}, got ${LIMITS[limit].max + 1}`,
        ),
        problems(doc).join("\n"),
      );
    });
  }

  const maps: [() => Record<string, unknown>, PathSegment[], LimitName, string][] = [
    [largestService, ["metadata", "labels"], "LABELS", "labels"],
    [largestService, ["metadata", "annotations"], "ANNOTATIONS", "annotations"],
    [largestService, ["spec", "runtime", "process", "env"], "ENV", "variables"],
    [largestService, ["spec", "runtime", "process", "versions"], "VERSIONS", "versions"],
    [largestFlag, ["spec", "variants"], "FLAG_VARIANTS", "variants"],
  ];
  for (const [build, path, limit, noun] of maps) {
    test(`${formatPath(path)}: at most ${LIMITS[limit].max} ${noun}`, () => {
      const doc = build();
      const map = at(doc, path) as Record<string, unknown>;
      assert.equal(Object.keys(map).length, LIMITS[limit].max);
      map["extra-key"] = Object.values(map)[0];
      assert.ok(
        problems(doc).includes(
          `${formatPath(path)}: must have at most ${LIMITS[limit].max} ${noun}, got ${LIMITS[limit].max + 1}`,
        ),
        problems(doc).join("\n"),
      );
    });
  }

  test("a list far over its limit is refused without parsing its items", () => {
    // 50,000 steps of which the 1001st on are invalid: only the count is reported.
    const steps: unknown[] = [];
    for (let i = 0; i < 50_000; i++) steps.push(i < 1000 ? { pause: {} } : { setWeight: 500 });
    const doc = service({ strategy: { canary: { steps } } });
    assert.ok(jsonBytes(doc) < LIMITS.DOCUMENT_BYTES.max);
    assert.deepEqual(
      problems(doc).filter((p) => p.includes("steps")),
      ["spec.strategy.canary.steps: must have at most 1000 steps, got 50000"],
    );
  });
});

describe("document size", () => {
  test("a document over 1 MiB is refused as a whole, before the schema", () => {
    const doc = largestService(0);
    const annotations = at(doc, ["metadata", "annotations"]) as Record<string, string>;
    annotations["note-0"] = "x".repeat(40_000);
    // An error inside would be reported if the schema ran; it does not.
    (at(doc, ["spec", "listen"]) as Record<string, unknown>).port = 0;
    const bytes = jsonBytes(doc);
    assert.ok(bytes > LIMITS.DOCUMENT_BYTES.max);
    assert.deepEqual(problems(doc), [
      `: must be at most 1048576 bytes as JSON (1 MiB), got ${bytes}`,
    ]);
  });

  test("bytes are UTF-8 bytes of compact JSON", () => {
    assert.equal(jsonBytes({ a: "é€😀" }), Buffer.byteLength(JSON.stringify({ a: "é€😀" })));
    assert.equal(jsonBytes("\u0001"), Buffer.byteLength(JSON.stringify("\u0001")));
  });

  test("a Flag object variant over 64 KiB is refused at its path", () => {
    const flag = {
      apiVersion: "turnout.dev/v1",
      kind: "Flag",
      metadata: { name: "f" },
      spec: {
        type: "object",
        variants: { small: { a: 1 }, big: { blob: "x".repeat(70_000) } },
        defaultVariant: "small",
      },
    };
    assert.deepEqual(problems(flag), [
      `spec.variants.big: must be at most 65536 bytes as JSON, got ${jsonBytes(flag.spec.variants.big)}`,
    ]);
  });
});

// ---------------------------------------------------------------------------------------
// Each bounded number takes its limit's min and max, and refuses just beyond them
// ---------------------------------------------------------------------------------------

const service = (spec: Record<string, unknown>) => ({
  apiVersion: "turnout.dev/v1",
  kind: "Service",
  metadata: { name: "svc" },
  spec: {
    listen: { port: 8080 },
    runtime: { process: { command: ["node", "server.mjs"] } },
    version: "v1",
    ...spec,
  },
});

/** Sets `value` at `path` under spec, creating objects on the way. */
function withValue(path: string, value: unknown) {
  const spec: Record<string, unknown> = {};
  const keys = path.split(".");
  let o = spec;
  for (const k of keys.slice(0, -1)) {
    o[k] = o[k] ?? {};
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]!] = value;
  // A process runtime given in the path keeps its command.
  const runtime = spec.runtime as { process?: Record<string, unknown> } | undefined;
  if (runtime?.process) runtime.process.command = ["node", "server.mjs"];
  const strategy = spec.strategy as { canary?: Record<string, unknown> } | undefined;
  if (strategy?.canary) strategy.canary.steps = [];
  return service(spec);
}

const NUMBERS: [string, LimitName][] = [
  ["trafficPolicy.healthCheck.intervalSeconds", "PROBE_PERIOD_SECONDS"],
  ["trafficPolicy.healthCheck.timeoutSeconds", "PROBE_TIMEOUT_SECONDS"],
  ["trafficPolicy.healthCheck.unhealthyThreshold", "PROBE_THRESHOLD"],
  ["trafficPolicy.outlierDetection.ejectionSeconds", "EJECTION_SECONDS"],
  ["trafficPolicy.outlierDetection.consecutiveFailures", "CONSECUTIVE_FAILURES"],
  ["trafficPolicy.timeouts.requestHeadersSeconds", "REQUEST_HEADERS_TIMEOUT_SECONDS"],
  ["trafficPolicy.timeouts.idleSeconds", "IDLE_TIMEOUT_SECONDS"],
  ["trafficPolicy.timeouts.upstreamSeconds", "UPSTREAM_TIMEOUT_SECONDS"],
  ["trafficPolicy.maxRequestBodyBytes", "REQUEST_BODY_BYTES"],
  ["runtime.process.readiness.periodSeconds", "PROBE_PERIOD_SECONDS"],
  ["runtime.process.readiness.initialDelaySeconds", "PROBE_DELAY_SECONDS"],
  ["runtime.process.liveness.periodSeconds", "PROBE_PERIOD_SECONDS"],
  ["runtime.process.startupTimeoutSeconds", "STARTUP_TIMEOUT_SECONDS"],
  ["runtime.process.terminationGracePeriodSeconds", "DELAY_SECONDS"],
  ["runtime.process.drainSeconds", "DELAY_SECONDS"],
  ["runtime.process.replicas", "REPLICAS"],
  ["runtime.process.restartPolicy.initialBackoffSeconds", "BACKOFF_SECONDS"],
  ["runtime.process.restartPolicy.maxBackoffSeconds", "BACKOFF_SECONDS"],
  ["runtime.process.logs.maxBytes", "LOG_FILE_BYTES"],
  ["strategy.canary.abortScaleDownDelaySeconds", "DELAY_SECONDS"],
  ["strategy.canary.progressDeadlineSeconds", "PROGRESS_DEADLINE_SECONDS"],
  ["strategy.blueGreen.autoPromotionSeconds", "AUTO_PROMOTION_SECONDS"],
  ["strategy.blueGreen.scaleDownDelaySeconds", "DELAY_SECONDS"],
  ["strategy.blueGreen.previewReplicas", "REPLICAS"],
  ["strategy.rolling.minReadySeconds", "DELAY_SECONDS"],
];

describe("bounded numbers", () => {
  for (const [path, name] of NUMBERS) {
    const l = LIMITS[name] as { min?: number; max: number; unit: string };
    test(`spec.${path}: ${l.min}..${l.max}`, () => {
      for (const ok of [l.min ?? 0, l.max])
        assert.deepEqual(problems(withValue(path, ok)), [], `${path} = ${ok}`);
      const int = l.unit === "integer" || l.unit === "bytes";
      const what = int ? "an integer" : "a number";
      const over = l.max * 2;
      assert.deepEqual(problems(withValue(path, over)), [
        `spec.${path}: must be ${what} ${l.min}..${l.max}, got ${over}`,
      ]);
      if (l.min !== undefined) {
        const under = int ? l.min - 1 : l.min > 0 ? l.min / 2 : -1;
        assert.deepEqual(problems(withValue(path, under)), [
          `spec.${path}: must be ${what} ${l.min}..${l.max}, got ${under}`,
        ]);
      }
    });
  }

  test("durations: strings and seconds share the range and the message", () => {
    const pause = (duration: unknown) =>
      problems(service({ strategy: { canary: { steps: [{ pause: { duration } }] } } }));
    for (const ok of ["30d", 2_592_000, "0s", 0, "720h"]) assert.deepEqual(pause(ok), [], `${ok}`);
    assert.deepEqual(pause("30d1ms"), [
      'spec.strategy.canary.steps[0].pause.duration: must be a duration 0..30d, got "30d1ms"',
    ]);
    assert.deepEqual(pause(2_592_001), [
      "spec.strategy.canary.steps[0].pause.duration: must be a duration 0..30d, got 2592001 seconds",
    ]);
    const template = (interval: unknown) =>
      problems({
        apiVersion: "turnout.dev/v1",
        kind: "AnalysisTemplate",
        metadata: { name: "t" },
        spec: {
          metrics: [
            {
              name: "m",
              interval,
              source: { builtin: "error_rate" },
              judge: { threshold: { max: 1 } },
            },
          ],
        },
      });
    assert.deepEqual(template("1s"), []);
    assert.deepEqual(template("1d"), []);
    assert.deepEqual(template("500ms"), [
      'spec.metrics[0].interval: must be a duration 1s..1d, got "500ms"',
    ]);
    assert.deepEqual(template(0), ["spec.metrics[0].interval: must be a number > 0, got 0"]);
  });

  test("defaults are within their limits (a stored resource validates again)", () => {
    const doc = service({
      trafficPolicy: { healthCheck: {} },
      runtime: {
        process: {
          command: ["node", "s.mjs"],
          liveness: {},
        },
      },
      strategy: {
        abTest: {
          assignment: { header: "x-user-id" },
          metrics: [{ name: "e", kind: "binomial", source: { builtin: "error_rate" } }],
        },
      },
    });
    const first = validateDocument(doc);
    assert.deepEqual(first.issues, []);
    assert.deepEqual(problems(first.resource), []);
  });
});

describe("strings", () => {
  test("label keys follow Kubernetes' syntax; control characters are refused", () => {
    const labels = (l: Record<string, string>) =>
      problems({ ...service({}), metadata: { name: "svc", labels: l } });
    assert.deepEqual(
      labels({ app: "web", "app.kubernetes.io/name": "web", "a.b/c_d-e.f": "x", empty: "" }),
      [],
    );
    for (const bad of ["a\u0000", "tab\there", "-a", "a/", "/a", "UPPER.com/a", "a/b/c", "é"]) {
      const got = labels({ [bad]: "x" });
      assert.equal(got.length, 1, `${JSON.stringify(bad)}: ${got.join("; ")}`);
      assert.match(got[0]!, /invalid key/);
    }
    assert.match(labels({ a: "x".repeat(64) })[0]!, /must be at most 63 characters, got 64/);
    assert.match(labels({ ["a".repeat(64)]: "x" })[0]!, /the name 1\.\.63 characters/);
  });

  test("a string past its limit says the limit and its length", () => {
    const doc = service({
      runtime: {
        process: {
          command: ["node", "x".repeat(LIMITS.TEXT_LENGTH.max + 1)],
          cwd: "/".repeat(3000),
        },
      },
    });
    assert.deepEqual(problems(doc), [
      `spec.runtime.process.command[1]: must be at most ${LIMITS.TEXT_LENGTH.max} characters, got ${LIMITS.TEXT_LENGTH.max + 1}`,
      `spec.runtime.process.cwd: must be at most ${LIMITS.PATH_LENGTH.max} characters, got 3000`,
    ]);
  });
});

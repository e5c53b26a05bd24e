import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { RESOURCE_KINDS } from "../../core/model.js";
import { renderJsonSchema } from "../jsonschema.js";
import { closest, formatPath, validateDocument } from "./index.js";
import { SCHEMAS } from "./kinds.js";

const SCHEMA_FILE = fileURLToPath(new URL("../../../schema/turnout.schema.json", import.meta.url));

test("schema/turnout.schema.json is up to date", async () => {
  const committed = await readFile(SCHEMA_FILE, "utf8").catch(() => "");
  assert.ok(
    committed === renderJsonSchema(),
    "schema/turnout.schema.json differs from the zod schemas: run `npm run schema`",
  );
});

test("the JSON Schema is one of the kinds, told apart by kind", () => {
  const schema = JSON.parse(renderJsonSchema()) as {
    oneOf: { properties: { kind: { const: string } }; additionalProperties: boolean }[];
  };
  assert.deepEqual(
    schema.oneOf.map((s) => s.properties.kind.const),
    Object.keys(SCHEMAS),
    "every kind of the registry, in its order",
  );
  for (const s of schema.oneOf) assert.equal(s.additionalProperties, false);
});

const service = (spec: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  apiVersion: "turnout.dev/v1",
  kind: "Service",
  metadata: { name: "svc" },
  spec: {
    listen: { port: 8080 },
    runtime: { process: { command: ["node", "server.mjs"] } },
    version: "v1",
    ...spec,
  },
  ...extra,
});

/** "path: message" lines, the way people read them. */
const problems = (value: unknown) =>
  validateDocument(value).issues.map((i) => `${formatPath(i.path)}: ${i.message}`);

const steps = (...s: unknown[]) => ({ strategy: { canary: { steps: s } } });

describe("validateDocument", () => {
  test("setWeight: 0..100 with at most 4 decimals", () => {
    for (const ok of [0, 0.0001, 5, 33.3333, 99.9999, 100]) {
      assert.deepEqual(problems(service(steps({ setWeight: ok }))), [], `setWeight ${ok}`);
    }
    assert.deepEqual(problems(service(steps({ setWeight: 100.5 }))), [
      "spec.strategy.canary.steps[0].setWeight: must be a number 0..100, got 100.5",
    ]);
    assert.deepEqual(problems(service(steps({ setWeight: 0.00001 }))), [
      "spec.strategy.canary.steps[0].setWeight: must have at most 4 decimal places (steps of 0.0001), got 0.00001",
    ]);
  });

  test("pause: {} or a valid duration", () => {
    for (const ok of [{}, { duration: "30s" }, { duration: "1h30m" }, { duration: 45 }]) {
      assert.deepEqual(problems(service(steps({ pause: ok }))), [], JSON.stringify(ok));
    }
    assert.deepEqual(problems(service(steps({ pause: { duration: -1 } }))), [
      "spec.strategy.canary.steps[0].pause.duration: must be a number >= 0, got -1",
    ]);
    assert.deepEqual(problems(service(steps({ pause: { duration: true } }))), [
      'spec.strategy.canary.steps[0].pause.duration: must be a duration like "30s", "5m" or "1h30m", or a number of seconds; got true',
    ]);
    assert.deepEqual(problems(service(steps({ pause: { until: "promoted" } }))), [
      'spec.strategy.canary.steps[0].pause.until: unknown field "until"; allowed: duration',
    ]);
  });

  test("a step that is not an object", () => {
    assert.deepEqual(problems(service(steps("setWeight: 5"))), [
      'spec.strategy.canary.steps[0]: must be an object, got "setWeight: 5"',
    ]);
  });

  test("every problem of a document at once, whatever the schema order", () => {
    const doc = service(
      { listen: { port: 0 }, version: "v9", ...steps({ setWeight: 200 }) },
      { status: {} },
    );
    doc.metadata.name = "Bad";
    const spec = doc.spec as Record<string, unknown>;
    spec.runtime = { static: { versions: { v1: { upstreams: ["http://a:1"] } } } };
    assert.deepEqual(problems(doc).sort(), [
      'metadata.name: must be a DNS label: 1..63 characters of lowercase a-z, 0-9 and "-", starting with a letter and not ending with "-"; got "Bad"',
      "spec.listen.port: must be an integer 1..65535, got 0",
      "spec.strategy.canary.steps[0].setWeight: must be a number 0..100, got 200",
      'spec.version: must be one of the versions of spec.runtime.static.versions ("v1"), got "v9"',
      'status: unknown field "status"; allowed: apiVersion, kind, metadata, spec',
    ]);
  });

  test("exactly one runtime, and none is an error too", () => {
    assert.deepEqual(problems(service({ runtime: {} })), [
      'spec.runtime: must have exactly one of "static" or "process", got an empty object',
    ]);
    // A typo'd key says so, instead of also saying "none".
    assert.deepEqual(problems(service({ runtime: { proces: { command: ["x"] } } })), [
      'spec.runtime.proces: unknown field "proces"; allowed: static, process (did you mean "process"?)',
    ]);
  });

  test("a version name is a string: YAML numbers are refused with a hint", () => {
    assert.deepEqual(problems(service({ version: 2 })), [
      'spec.version: must be a string, got 2 (write it in quotes: "2")',
    ]);
  });

  test("metadata.name is a DNS label", () => {
    for (const bad of ["", "-a", "a-", "1a", "A", "a_b", "a".repeat(64)]) {
      const doc = service({});
      doc.metadata.name = bad;
      assert.equal(problems(doc).length, 1, bad);
    }
    for (const ok of ["a", "fraud-model", "a1", "a".repeat(63)]) {
      const doc = service({});
      doc.metadata.name = ok;
      assert.deepEqual(problems(doc), [], ok);
    }
  });

  test("process runtime defaults", () => {
    const r = validateDocument(service({}));
    assert.deepEqual(r.resource?.kind === "Service" && r.resource.spec.runtime, {
      process: {
        command: ["node", "server.mjs"],
        replicas: 1,
        readiness: {
          path: "/healthz",
          periodSeconds: 1,
          timeoutSeconds: 1,
          initialDelaySeconds: 0,
        },
        startupTimeoutSeconds: 60,
        terminationGracePeriodSeconds: 10,
        drainSeconds: 2,
        restartPolicy: {
          initialBackoffSeconds: 1,
          maxBackoffSeconds: 300,
          resetAfterSeconds: 600,
          failureThreshold: 3,
        },
        logs: { maxBytes: 10485760, maxFiles: 5 },
      },
    });
    // liveness: absent means no liveness probe; given, its fields default as Kubernetes'.
    const live = validateDocument(
      service({ runtime: { process: { command: ["x"], liveness: { path: "/live" } } } }),
    );
    assert.deepEqual(
      live.resource?.kind === "Service" &&
        "process" in live.resource.spec.runtime &&
        live.resource.spec.runtime.process.liveness,
      { path: "/live", periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3 },
    );
    const bad = problems(
      service({
        runtime: {
          process: { command: ["x"], drainSeconds: -1, restartPolicy: { maxBackoff: 3 } },
        },
      }),
    );
    assert.equal(bad.length, 2, bad.join("\n"));
    assert.match(
      bad.join("\n"),
      /spec\.runtime\.process\.drainSeconds: must be a number 0..86400, got -1/,
    );
    assert.match(
      bad.join("\n"),
      /spec\.runtime\.process\.restartPolicy\.maxBackoff: unknown field "maxBackoff"/,
    );
    const partial = validateDocument(
      service({ runtime: { process: { command: ["x"], readiness: { path: "/ready" } } } }),
    );
    assert.deepEqual(
      partial.resource?.kind === "Service" &&
        "process" in partial.resource.spec.runtime &&
        partial.resource.spec.runtime.process.readiness,
      { path: "/ready", periodSeconds: 1, timeoutSeconds: 1, initialDelaySeconds: 0 },
    );
  });

  test("AnalysisTemplate: sources, judges and defaults", () => {
    const template = (metrics: unknown[]) => ({
      apiVersion: "turnout.dev/v1",
      kind: "AnalysisTemplate",
      metadata: { name: "t" },
      spec: { metrics },
    });
    const r = validateDocument(
      template([
        {
          name: "web",
          source: { web: { url: "https://m.example/q?x=1" } },
          judge: { threshold: { min: 0.9 } },
        },
        {
          name: "cmd",
          source: { command: { command: ["./check.sh"] } },
          judge: { relative: { mode: "ratio", maxIncrease: 1.2 } },
        },
        {
          name: "prom",
          source: { prometheus: { address: "http://prom:9090", query: "up" } },
          judge: { sequential: { maxIncrease: 0.01 } },
        },
      ]),
    );
    assert.deepEqual(r.issues, []);
    assert.ok(r.resource?.kind === "AnalysisTemplate");
    const [web, cmd, prom] = r.resource.spec.metrics;
    assert.deepEqual(web?.source, {
      web: { url: "https://m.example/q?x=1", method: "GET", timeoutSeconds: 10 },
    });
    assert.deepEqual(cmd?.source, { command: { command: ["./check.sh"], timeoutSeconds: 10 } });
    assert.deepEqual(prom?.judge, { sequential: { maxIncrease: 0.01, alpha: 0.05 } });

    assert.deepEqual(
      problems(
        template([
          { name: "a", source: { builtin: "latency" }, judge: { threshold: { min: 2, max: 1 } } },
          { name: "b", source: { builtin: "latency" }, judge: { relative: { mode: "ratio" } } },
          {
            name: "c",
            source: { builtin: "latency" },
            judge: { sequential: { maxIncrease: 0.1, alpha: 0 } },
          },
          {
            name: "d",
            source: { web: { url: "http://x", method: "PUT" } },
            judge: { threshold: { max: 1 } },
          },
        ]),
      ),
      [
        "spec.metrics[0].judge.threshold.max: must be >= min (2), got 1",
        'spec.metrics[1].judge.relative: needs "maxIncrease", "maxDecrease" or both, got neither',
        "spec.metrics[2].judge.sequential.alpha: must be a number between 0 and 1 (exclusive), got 0",
        'spec.metrics[3].source.web.method: must be "GET" or "POST", got "PUT"',
      ],
    );
  });

  test("unknown kind and wrong apiVersion are both reported", () => {
    assert.deepEqual(
      problems({ apiVersion: "turnout.dev/v2", kind: "Gadget", metadata: { name: "f" } }),
      [
        'apiVersion: must be "turnout.dev/v1", got "turnout.dev/v2"',
        `kind: unknown kind "Gadget"; known kinds: ${RESOURCE_KINDS.join(", ")}`,
      ],
    );
    assert.deepEqual(problems({ apiVersion: "turnout.dev/v1" }), [
      `kind: is required; known kinds: ${RESOURCE_KINDS.join(", ")}`,
    ]);
  });
});

test("formatPath", () => {
  assert.equal(formatPath([]), "");
  assert.equal(
    formatPath(["spec", "strategy", "canary", "steps", 2, "setWeight"]),
    "spec.strategy.canary.steps[2].setWeight",
  );
  assert.equal(
    formatPath(["spec", "runtime", "static", "versions", "1.0"]),
    'spec.runtime.static.versions["1.0"]',
  );
});

test("closest: typos, swapped letters and case", () => {
  assert.equal(closest("prot", ["port", "host"]), "port");
  assert.equal(closest("service", ["Service", "AnalysisTemplate"]), "Service");
  assert.equal(closest("zzz", ["port", "host"]), undefined);
});

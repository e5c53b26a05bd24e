import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { ProcessRuntimeSpec, Resource, ServiceResource } from "../core/model.js";
import { type FieldError, formatFieldError } from "../errors.js";
import {
  crossCheck,
  loadPath,
  loadPaths,
  parseResources,
  STDIN_NAME,
  serializeResources,
} from "./load.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const INVALID = join(ROOT, "test/fixtures/invalid");
const VALID = join(ROOT, "test/fixtures/valid");

const show = (errors: FieldError[]) => errors.map((e) => `  ${formatFieldError(e)}`).join("\n");

interface Expectation {
  path: string;
  line?: number;
  message: string;
}

/** `# expect: <path>[@line] <message substring>`; `""` is the empty path. */
function expectations(text: string): Expectation[] {
  const out: Expectation[] = [];
  for (const m of text.matchAll(/^# expect: (\S+?)(?:@(\d+))? (.+)$/gm)) {
    out.push({
      path: m[1] === '""' ? "" : m[1]!,
      ...(m[2] ? { line: Number(m[2]) } : {}),
      message: m[3]!,
    });
  }
  return out;
}

describe("invalid fixtures", async () => {
  const names = (await readdir(INVALID)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();

  test("the corpus is big enough", () => {
    assert.ok(names.length >= 25, `only ${names.length} invalid fixtures`);
  });

  for (const name of names) {
    test(name, async () => {
      const raw = await readFile(join(INVALID, name), "utf8");
      const expected = expectations(raw);
      assert.ok(expected.length > 0, `${name} has no "# expect:" line`);
      // JSON has no comments: blank the expect lines, keeping the line numbers.
      const text = name.endsWith(".json") ? raw.replace(/^#.*$/gm, "") : raw;
      const file = relative(ROOT, join(INVALID, name)).split("\\").join("/");
      const { errors } = parseResources(text, { file });

      assert.ok(errors.length > 0, `${name}: expected errors, got none`);
      for (const want of expected) {
        const hit = errors.find(
          (e) =>
            e.path === want.path &&
            e.message.includes(want.message) &&
            (want.line === undefined || e.line === want.line),
        );
        assert.ok(
          hit,
          `${name}: no error at "${want.path}"${want.line ? ` line ${want.line}` : ""} containing ${JSON.stringify(want.message)}; got:\n${show(errors)}`,
        );
      }
      for (const e of errors) {
        assert.equal(
          typeof e.path,
          "string",
          `${name}: error without a path: ${formatFieldError(e)}`,
        );
        assert.equal(e.file, file);
        assert.equal(
          typeof e.document,
          "number",
          `${name}: no document index: ${formatFieldError(e)}`,
        );
        assert.ok(e.line && e.column, `${name}: no position: ${formatFieldError(e)}`);
        assert.ok(e.message.length > 0);
      }
    });
  }
});

describe("parseResources", () => {
  test("reports the errors of every document at once, with document indexes and lines", () => {
    const text = `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: one }
spec:
  listen: { port: 0 }
  runtime: { process: { command: [node, a.mjs] } }
  version: v1
---
apiVersion: turnout.dev/v1
kind: Service
metadata: { name: fine }
spec:
  listen: { port: 8081 }
  runtime: { process: { command: [node, a.mjs] } }
  version: v1
---
apiVersion: turnout.dev/v1
kind: Service
metadata: { name: two }
spec:
  listen: { port: 8082 }
  runtime: { process: { command: [node, a.mjs], replicas: 500 } }
  version: v1
  strategy:
    canary:
      steps:
        - setWeight: 120
`;
    const { resources, errors } = parseResources(text, { file: "multi.yaml" });
    assert.deepEqual(
      errors.map((e) => ({ ...e })),
      [
        {
          file: "multi.yaml",
          document: 0,
          resource: "Service/one",
          path: "spec.listen.port",
          message: "must be an integer 1..65535, got 0",
          line: 5,
          column: 19,
        },
        {
          file: "multi.yaml",
          document: 2,
          resource: "Service/two",
          path: "spec.runtime.process.replicas",
          message: "must be an integer 1..100, got 500",
          line: 22,
          column: 59,
        },
        {
          file: "multi.yaml",
          document: 2,
          resource: "Service/two",
          path: "spec.strategy.canary.steps[0].setWeight",
          message: "must be a number 0..100, got 120",
          line: 27,
          column: 22,
        },
      ],
    );
    assert.deepEqual(
      resources.map((r) => r.metadata.name),
      ["fine"],
    );
    assert.equal(
      formatFieldError(errors[0]!),
      "multi.yaml:5:19 document 1 Service/one: spec.listen.port: must be an integer 1..65535, got 0",
    );
  });

  test("skips empty documents but keeps counting them", () => {
    const text = `---
# only a comment
---
apiVersion: turnout.dev/v1
kind: AnalysisTemplate
metadata: { name: t }
spec: { metrics: [] }
---
`;
    const { resources, errors } = parseResources(text);
    assert.equal(resources.length, 0);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.document, 1);
    assert.equal(errors[0]!.path, "spec.metrics");
    assert.equal(errors[0]!.line, 7);
  });

  test("more documents than DOCUMENTS_PER_FILE: one error for the file, nothing validated", () => {
    const flag = (i: number) =>
      `apiVersion: turnout.dev/v1\nkind: Flag\nmetadata:\n  name: f${i}\nspec:\n  type: boolean\n  variants: {on: true, off: false}\n  defaultVariant: off\n`;
    const max = 1000;
    const ok = parseResources(Array.from({ length: max }, (_, i) => flag(i)).join("---\n"));
    assert.equal(ok.errors.length, 0, JSON.stringify(ok.errors[0]));
    assert.equal(ok.resources.length, max);
    const yaml = parseResources(Array.from({ length: max + 1 }, (_, i) => flag(i)).join("---\n"));
    assert.equal(yaml.resources.length, 0);
    assert.equal(yaml.errors.length, 1);
    assert.equal(yaml.errors[0]?.code, "TURNOUT_ERR_INPUT_TOO_LARGE");
    assert.match(yaml.errors[0]?.message ?? "", /1001 documents in one file; at most 1000/);
    const items = Array.from({ length: max + 1 }, () => ({ kind: "Flag" }));
    const json = parseResources(JSON.stringify(items), { format: "json" });
    assert.equal(json.errors.length, 1);
    assert.match(json.errors[0]?.message ?? "", /DOCUMENTS_PER_FILE/);
  });

  test("an empty text holds no resources and no errors", () => {
    const bare = ({ resources, errors }: ReturnType<typeof parseResources>) => ({
      resources,
      errors,
    });
    assert.deepEqual(bare(parseResources("")), { resources: [], errors: [] });
    assert.deepEqual(bare(parseResources("# nothing\n")), { resources: [], errors: [] });
    assert.deepEqual(bare(parseResources("  ", { format: "json" })), { resources: [], errors: [] });
  });

  test("JSON: one object or an array, each element a document with positions", () => {
    const svc = (name: string, port: number) => ({
      apiVersion: "turnout.dev/v1",
      kind: "Service",
      metadata: { name },
      spec: {
        listen: { port },
        runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9001"] } } } },
        version: "v1",
      },
    });
    const one = parseResources(JSON.stringify(svc("a", 8080)), { format: "json" });
    assert.deepEqual(one.errors, []);
    assert.equal(one.resources.length, 1);

    const text = JSON.stringify([svc("a", 8080), svc("b", 0)], null, 2);
    const many = parseResources(text, { file: "x.json" });
    assert.equal(many.resources.length, 1);
    assert.equal(many.errors.length, 1);
    const e = many.errors[0]!;
    assert.equal(e.document, 1);
    assert.equal(e.path, "spec.listen.port");
    const lines = text.split("\n");
    assert.match(lines[e.line! - 1]!, /"port": 0/);
    assert.equal(lines[e.line! - 1]![e.column! - 1], "0");
  });

  test("JSON syntax errors carry line and column", () => {
    const { errors } = parseResources('{\n  "kind": "Service",\n  "metadata": {,\n}', {
      format: "json",
    });
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.path, "");
    assert.equal(errors[0]!.line, 3);
    assert.match(errors[0]!.message, /^JSON syntax error: /);
  });

  test("JSON: a key given twice is an error, not a silent overwrite", () => {
    const { resources, errors } = parseResources(
      '{\n  "kind": "Service",\n  "kind": "AnalysisTemplate"\n}',
      {
        format: "json",
      },
    );
    assert.equal(resources.length, 0);
    assert.deepEqual(
      errors.map((e) => [e.path, e.line, e.message]),
      [["", 3, "JSON error: a key appears twice in the same object"]],
    );
  });

  test("auto format: text that starts with { but is YAML flow style still parses", () => {
    const { resources, errors } = parseResources(
      "{apiVersion: turnout.dev/v1, kind: AnalysisTemplate, metadata: {name: t}, spec: {metrics: [{name: e, source: {builtin: error_rate}, judge: {threshold: {max: 0.1}}}]}}",
    );
    assert.deepEqual(errors, []);
    assert.equal(resources[0]?.kind, "AnalysisTemplate");
  });

  test("a missing field is located at its parent's key", () => {
    const text = `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: a }
spec:
  listen: { port: 8080 }
  runtime: { process: { command: [node] } }
`;
    const { errors } = parseResources(text);
    assert.deepEqual(
      errors.map((e) => [e.path, e.line, e.column]),
      [["spec.version", 4, 1]],
    );
  });

  test("unknown keys are located at the key, and YAML aliases are followed", () => {
    const text = `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: a }
spec:
  listen: &l
    port: 8080
    hots: 0.0.0.0
  runtime: { process: { command: [node] } }
  version: v1
`;
    const { errors } = parseResources(text);
    assert.deepEqual(
      errors.map((e) => [e.path, e.line, e.column]),
      [["spec.listen.hots", 7, 5]],
    );
  });

  test("a resource that is valid but clashes is not returned", () => {
    const text = (name: string) => `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: ${name} }
spec:
  listen: { port: 8080, host: 0.0.0.0 }
  runtime: { process: { command: [node] } }
  version: v1
`;
    const { resources, errors } = parseResources(`${text("a")}---\n${text("b")}`, {
      file: "f.yaml",
    });
    assert.deepEqual(
      resources.map((r) => r.metadata.name),
      ["a"],
    );
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.resource, "Service/b");
    assert.equal(errors[0]!.document, 1);
    assert.equal(errors[0]!.line, 13);
    assert.match(
      errors[0]!.message,
      /already taken by Service "a" \(listening on 0\.0\.0\.0:8080, f\.yaml document 1\)/,
    );
  });
});

describe("valid fixtures", () => {
  test("load with zero errors and defaults applied", async () => {
    const { resources, errors } = await loadPath(VALID);
    assert.deepEqual(errors, [], show(errors));
    const byName = new Map(resources.map((r) => [r.metadata.name, r]));
    assert.deepEqual([...byName.keys()].sort(), [
      "checkout",
      "fraud-model",
      "golden-signals",
      "regex-flag",
      "regex-rules",
    ]);

    const fraud = byName.get("fraud-model") as ServiceResource;
    assert.deepEqual(fraud.spec.listen, { port: 8080, host: "127.0.0.1" });
    const proc = (fraud.spec.runtime as { process: ProcessRuntimeSpec }).process;
    assert.deepEqual(proc, {
      command: ["node", "examples/model/server.mjs"],
      env: { MODEL: "models/${version}.json" },
      replicas: 2,
      readiness: { path: "/healthz", periodSeconds: 1, timeoutSeconds: 1, initialDelaySeconds: 0 },
      startupTimeoutSeconds: 60,
      terminationGracePeriodSeconds: 10,
      drainSeconds: 2,
      restartPolicy: {
        initialBackoffSeconds: 1,
        maxBackoffSeconds: 300,
        resetAfterSeconds: 600,
        failureThreshold: 3,
      },
      logs: { maxBytes: 10 * 1024 * 1024, maxFiles: 5 },
    });
    assert.deepEqual(fraud.spec.strategy?.canary?.steps, [
      { setWeight: 5 },
      { pause: { duration: "30s" } },
      { setWeight: 50 },
      { pause: { duration: "30s" } },
    ]);

    const checkout = byName.get("checkout") as ServiceResource;
    assert.equal(checkout.spec.listen.host, "127.0.0.1");
    assert.deepEqual(checkout.spec.stickiness, { cookie: "session" });
    assert.deepEqual(checkout.spec.strategy?.canary?.steps[2], { setWeight: 33.3333 });

    const golden = byName.get("golden-signals");
    assert.equal(golden?.kind, "AnalysisTemplate");
    if (golden?.kind !== "AnalysisTemplate") return;
    assert.deepEqual(golden.spec.metrics[1]?.judge, {
      mannWhitney: { maxRelativeIncrease: 0.2, alpha: 0.05 },
    });
    assert.equal(golden.spec.metrics[1]?.minSamples, 200);
  });

  test("each valid fixture also loads alone", async () => {
    for (const name of await readdir(VALID)) {
      const r = await loadPath(join(VALID, name));
      assert.deepEqual(r.errors, [], `${name}:\n${show(r.errors)}`);
      assert.equal(r.resources.length, 1);
    }
  });

  test("defaults come as fresh objects, not shared ones", async () => {
    const text = `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: a }
spec:
  listen: { port: 8080 }
  runtime: { process: { command: [node] } }
  version: v1
`;
    const a = parseResources(text).resources[0] as ServiceResource;
    const b = parseResources(text).resources[0] as ServiceResource;
    const pa = (a.spec.runtime as { process: ProcessRuntimeSpec }).process;
    const pb = (b.spec.runtime as { process: ProcessRuntimeSpec }).process;
    pa.readiness.path = "/changed";
    assert.equal(pb.readiness.path, "/healthz");
  });
});

describe("loadPath", () => {
  /** A small valid Service as YAML text. */
  const svc = (name: string, port = 8080) =>
    `apiVersion: turnout.dev/v1\nkind: Service\nmetadata: { name: ${name} }\nspec:\n  listen: { port: ${port} }\n  runtime: { process: { command: [node] } }\n  version: v1\n`;

  test("a directory: its own files only, unless recursive", async () => {
    const dir = await mkdtemp(join(tmpdir(), "turnout-load-"));
    try {
      await mkdir(join(dir, "sub"));
      await writeFile(join(dir, "a.yaml"), svc("a", 8080));
      // As `apply -f .` in a project: a package.json below must not be taken for a resource.
      await writeFile(join(dir, "sub", "package.json"), '{"name": "x"}');
      await writeFile(join(dir, "sub", "b.yml"), svc("b", 8081));
      const flat = await loadPath(dir);
      assert.deepEqual(flat.errors, []);
      assert.deepEqual(
        flat.resources.map((r) => r.metadata.name),
        ["a"],
      );
      const deep = await loadPath(dir, { recursive: true });
      assert.ok(deep.errors.length > 0);
      assert.ok(deep.errors.every((e) => e.file === join(dir, "sub", "package.json")));
      assert.deepEqual(
        deep.resources.map((r) => r.metadata.name),
        ["a", "b"],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a directory whose resource files are all in subdirectories names -R", async () => {
    const dir = await mkdtemp(join(tmpdir(), "turnout-load-"));
    try {
      await mkdir(join(dir, "sub"));
      await writeFile(join(dir, "sub", "c.json"), "[]");
      const { errors } = await loadPath(dir);
      assert.deepEqual(
        errors.map((e) => [e.file, e.message]),
        [
          [
            dir,
            "the directory holds no .yaml, .yml or .json files (its subdirectories are read only with -R, --recursive)",
          ],
        ],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("- reads the stdin given, named <stdin> in errors, once", async () => {
    const text = `${svc("s")}---\nkind: Nope\n`;
    const { resources, errors } = await loadPaths(["-", "-"], {
      stdin: Readable.from([Buffer.from(text.slice(0, 20)), Buffer.from(text.slice(20))]),
    });
    assert.deepEqual(
      resources.map((r) => r.metadata.name),
      ["s"],
    );
    assert.deepEqual(
      errors.map((e) => [e.file, e.document, e.line]),
      [
        [STDIN_NAME, undefined, undefined],
        [STDIN_NAME, 1, 9],
        [STDIN_NAME, 1, 9],
      ],
      show(errors),
    );
    assert.match(errors[0]!.message, /given twice: stdin is read only once/);
    // Without a stdin to read, "-" is a file name like any other.
    const plain = await loadPaths(["-"]);
    assert.deepEqual(
      plain.errors.map((e) => [e.file, e.message]),
      [["-", "no such file or directory"]],
    );
  });

  test("a directory, recursively, all files checked as one set", async () => {
    const dir = await mkdtemp(join(tmpdir(), "turnout-load-"));
    try {
      await mkdir(join(dir, "sub"));
      await mkdir(join(dir, ".hidden"));
      await writeFile(join(dir, "a.yaml"), svc("a", 8080));
      await writeFile(join(dir, "sub", "b.yml"), svc("b", 8080));
      await writeFile(join(dir, "c.json"), "[]");
      await writeFile(join(dir, "notes.txt"), "not a resource");
      await writeFile(join(dir, ".hidden", "x.yaml"), "broken: [");
      const { resources, errors } = await loadPath(dir, { recursive: true });
      assert.deepEqual(
        resources.map((r) => r.metadata.name),
        ["a"],
      );
      assert.equal(errors.length, 1, show(errors));
      assert.equal(errors[0]!.file, join(dir, "sub", "b.yml"));
      assert.equal(errors[0]!.path, "spec.listen.port");
      assert.ok(errors[0]!.message.includes(`${join(dir, "a.yaml")} document 1`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("several paths are one set; a bad path does not hide the others' errors", async () => {
    const dir = await mkdtemp(join(tmpdir(), "turnout-paths-"));
    try {
      await writeFile(join(dir, "a.yaml"), svc("a"));
      await writeFile(join(dir, "b.yaml"), svc("b"));
      const { resources, errors } = await loadPaths([
        join(dir, "a.yaml"),
        join(dir, "missing.yaml"),
        join(dir, "b.yaml"),
      ]);
      assert.deepEqual(
        resources.map((r) => r.metadata.name),
        ["a"],
      );
      assert.deepEqual(
        errors.map((e) => [e.file, e.path, e.line]),
        [
          [join(dir, "missing.yaml"), "", undefined],
          [join(dir, "b.yaml"), "spec.listen.port", 5],
        ],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a path that does not exist is a clear error", async () => {
    const { resources, errors } = await loadPath(join(tmpdir(), "no-such-turnout-file.yaml"));
    assert.equal(resources.length, 0);
    assert.deepEqual(
      errors.map((e) => [e.path, e.message]),
      [["", "no such file or directory"]],
    );
  });

  test("a directory without resource files is an error", async () => {
    const dir = await mkdtemp(join(tmpdir(), "turnout-empty-"));
    try {
      const { errors } = await loadPath(dir);
      assert.match(errors[0]?.message ?? "", /no \.yaml, \.yml or \.json files/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("crossCheck", () => {
  const svc = (name: string, port: number, host = "127.0.0.1"): ServiceResource => ({
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name },
    spec: {
      listen: { port, host },
      runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9001"] } } } },
      version: "v1",
    },
  });

  test("a new service may not take the port of another stored service", () => {
    const errors = crossCheck([svc("new", 8080)], [svc("old", 8080), svc("other", 9090)]);
    assert.deepEqual(
      errors.map((e) => [e.resource, e.path]),
      [["Service/new", "spec.listen.port"]],
    );
    assert.match(errors[0]!.message, /already taken by Service "old".*already applied/);
  });

  test("a service may keep its own port when it is applied again", () => {
    assert.deepEqual(crossCheck([svc("a", 8080)], [svc("a", 8080)]), []);
  });

  test("different hosts may share a port, unless one is a wildcard", () => {
    assert.deepEqual(crossCheck([svc("a", 8080, "127.0.0.1"), svc("b", 8080, "127.0.0.2")]), []);
    assert.equal(crossCheck([svc("a", 8080, "0.0.0.0"), svc("b", 8080, "127.0.0.2")]).length, 1);
  });

  test("duplicates within the set", () => {
    const errors = crossCheck([svc("a", 8080), svc("a", 8081)]);
    assert.deepEqual(
      errors.map((e) => [e.path, e.message]),
      [["metadata.name", 'duplicate Service "a": also defined earlier in the same set']],
    );
  });

  test("resources built in code are validated too", () => {
    const bad = svc("a", 8080);
    bad.spec.version = "v9";
    const errors = crossCheck([bad]);
    assert.deepEqual(
      errors.map((e) => e.path),
      ["spec.version"],
    );
  });
});

describe("serializeResources", () => {
  test("YAML and JSON round-trip through parseResources", async () => {
    const { resources } = await loadPath(VALID);
    for (const format of ["yaml", "json"] as const) {
      const text = serializeResources(resources, format);
      const again = parseResources(text, { format });
      assert.deepEqual(again.errors, []);
      assert.deepEqual(again.resources, resources);
    }
  });

  test("YAML keeps the resource fields in their usual order", () => {
    const r: Resource = {
      apiVersion: "turnout.dev/v1",
      kind: "AnalysisTemplate",
      metadata: { name: "t" },
      spec: { metrics: [] },
    };
    assert.equal(
      serializeResources([r, r], "yaml"),
      "apiVersion: turnout.dev/v1\nkind: AnalysisTemplate\nmetadata:\n  name: t\nspec:\n  metrics: []\n---\napiVersion: turnout.dev/v1\nkind: AnalysisTemplate\nmetadata:\n  name: t\nspec:\n  metrics: []\n",
    );
  });
});

describe("errors found after loading are placed in the files (#18 item 7)", () => {
  test("parsePath inverts formatPath", async () => {
    const { parsePath } = await import("./load.js");
    assert.deepEqual(parsePath('spec.runtime.static.versions["1.0"].upstreams[2]'), [
      "spec",
      "runtime",
      "static",
      "versions",
      "1.0",
      "upstreams",
      2,
    ]);
    assert.deepEqual(parsePath(""), []);
  });

  test("place adds file, document, line and column by resource and path", () => {
    const text = `apiVersion: turnout.dev/v1
kind: AnalysisTemplate
metadata: { name: t }
spec:
  metrics:
    - name: e
      source: { builtin: error_rate }
      judge: { threshold: { max: 0.1 } }
---
apiVersion: turnout.dev/v1
kind: Service
metadata: { name: shop }
spec:
  listen: { port: 8080 }
  runtime:
    static:
      versions:
        v1: { upstreams: ["http://127.0.0.1:9001"] }
  version: v1
  strategy:
    canary:
      steps:
        - setWeight: 10
        - analysis: { templates: [golden] }
`;
    const r = parseResources(text, { file: "shop.yaml" });
    assert.deepEqual(r.errors, []);
    const placed = r.place([
      {
        resource: "Service/shop",
        path: "spec.strategy.canary.steps[1].analysis.templates[0]",
        message: "no AnalysisTemplate named golden",
      },
      { resource: "Service/other", path: "spec", message: "not from these files" },
    ]);
    assert.deepEqual(placed[0], {
      file: "shop.yaml",
      document: 1,
      resource: "Service/shop",
      path: "spec.strategy.canary.steps[1].analysis.templates[0]",
      message: "no AnalysisTemplate named golden",
      line: 24,
      column: 35,
    });
    assert.deepEqual(placed[1], {
      resource: "Service/other",
      path: "spec",
      message: "not from these files",
    });
  });
});

import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { hostileCorpus } from "../../test/fixtures/hostile/corpus.js";
import { tempDir } from "../../test/helpers.js";
import { checkJson, checkYaml, INPUT_LIMITS, InputLimitError } from "./input-limits.js";
import { loadPath, parseResources } from "./load.js";

const ROOT = new URL("../../", import.meta.url).pathname;

function thrown(f: () => void): InputLimitError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof InputLimitError, `expected an InputLimitError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the check to throw");
}

/** Every YAML and JSON file a user of the repo would apply: none may trip a limit. */
function legitimateFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      if (d.name === "node_modules" || d.name.startsWith(".") || d.name === "hostile") continue;
      const p = join(dir, d.name);
      if (d.isDirectory()) walk(p);
      else if (/\.(ya?ml|json)$/.test(d.name)) out.push(p);
    }
  };
  for (const d of ["examples", "test/fixtures", "schema"]) walk(join(ROOT, d));
  return out;
}

describe("input limits", () => {
  it("reject every hostile document of the corpus, before parsing, with its code", () => {
    for (const h of hostileCorpus()) {
      if (h.name.startsWith("YAML billion laughs")) continue; // 81 aliases: the expansion is caught
      const check = h.format === "json" ? checkJson : checkYaml;
      const err = thrown(() => check(h.text));
      const code =
        h.code === "TURNOUT_ERR_API_PAYLOAD_TOO_LARGE" ? "TURNOUT_ERR_INPUT_TOO_LARGE" : h.code;
      assert.equal(err.code, code, `${h.name}: ${err.message}`);
      assert.equal(err.status, 400);
    }
  });

  it("pass every example, fixture and schema in the repository", () => {
    const files = legitimateFiles();
    assert.ok(files.length > 40, `found only ${files.length} files`);
    for (const f of files) {
      const text = readFileSync(f, "utf8");
      if (f.endsWith(".json")) checkJson(text);
      else checkYaml(text);
    }
  });

  it("bound depth exactly in JSON, and name the line, column and path", () => {
    const deep = (n: number) => `{"spec":${"[".repeat(n - 1)}${"]".repeat(n - 1)}}`;
    checkJson(deep(64));
    const err = thrown(() => checkJson(`\n  ${deep(65)}`));
    assert.equal(err.code, "TURNOUT_ERR_INPUT_TOO_DEEP");
    assert.equal(err.line, 2);
    assert.equal(err.column, 3 + 8 + 63);
    assert.equal(err.details.path, `spec${"[0]".repeat(63)}`);
    assert.match(err.message, /nests deeper than 64 levels \(at line 2, column 74, spec\[0\]/);
    // Brackets inside strings are text, escaped quotes do not end a string.
    checkJson(`{"a": "${"[".repeat(500)}\\"${"{".repeat(500)}\\\\", "b": ["\\\\"]}`);
  });

  it("bound depth in YAML: flow, block and compact nesting, but not scalars and comments", () => {
    checkYaml(`a: ${"[".repeat(63)}${"]".repeat(63)}\n`);
    assert.equal(
      thrown(() => checkYaml(`a: ${"[".repeat(64)}${"]".repeat(64)}\n`)).code,
      "TURNOUT_ERR_INPUT_TOO_DEEP",
    );
    const block = (n: number) =>
      `${Array.from({ length: n }, (_, i) => `${"  ".repeat(i)}k${i}:`).join("\n")} leaf\n`;
    checkYaml(block(64));
    const err = thrown(() => checkYaml(block(65)));
    assert.equal(err.code, "TURNOUT_ERR_INPUT_TOO_DEEP");
    assert.equal(err.line, 65);
    // A block scalar or a multi-line quoted scalar before the nesting hides none of it.
    assert.equal(
      thrown(() => checkYaml(`s: |\n  x\n  y\nq: "a\n  b"\n${block(65)}`)).code,
      "TURNOUT_ERR_INPUT_TOO_DEEP",
    );
    checkYaml(`${"- ".repeat(64)}x\n`);
    assert.equal(
      thrown(() => checkYaml(`${"- ".repeat(65)}x\n`)).code,
      "TURNOUT_ERR_INPUT_TOO_DEEP",
    );
    // Siblings do not nest; brackets in quoted and block scalars and in comments are text.
    checkYaml(Array.from({ length: 500 }, (_, i) => `k${i}:\n  - a\n  - b: c\n`).join(""));
    const brackets = "[".repeat(200);
    checkYaml(
      `a: "${brackets}"\nb: '${brackets}'\nc: |\n  ${brackets}\n  ${brackets}\nd: x # ${brackets}\ne: >-\n  ${brackets}\n`,
    );
  });

  it("bound the keys of one mapping, the values of a text, strings and aliases", () => {
    const keys = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":1`).join(",")}}`;
    checkJson(keys(1_000));
    const k = thrown(() => checkJson(keys(1_001)));
    assert.equal(k.code, "TURNOUT_ERR_INPUT_TOO_LARGE");
    assert.equal(k.details.limit, "keys");
    // Many entries across mappings are fine until the value limit.
    checkYaml(Array.from({ length: 900 }, (_, i) => `k${i}: {a: 1, b: 2}`).join("\n"));
    const long = "x".repeat(INPUT_LIMITS.maxScalarChars);
    checkJson(`{"a":"${long}"}`);
    checkYaml(`a: "${long}"\nb: ${long}\n`);
    assert.equal(thrown(() => checkJson(`{"a":"${long}x"}`)).details.limit, "scalar");
    assert.equal(thrown(() => checkYaml(`a: '${long}x'`)).details.limit, "scalar");
    const aliases = (n: number) => `x: &x 1\nl: [${Array(n).fill("*x").join(", ")}]\n`;
    checkYaml(aliases(100));
    assert.equal(thrown(() => checkYaml(aliases(101))).code, "TURNOUT_ERR_INPUT_TOO_MANY_ALIASES");
    const nodes = thrown(() => checkJson(`[${Array(100_001).fill(0).join(",")}]`));
    assert.equal(nodes.details.limit, "nodes");
    const bytes = thrown(() => checkJson(" ".repeat(INPUT_LIMITS.maxBytes + 1)));
    assert.equal(bytes.details.limit, "bytes");
    assert.match(bytes.message, /larger than 4 MiB/);
  });

  it("parseResources answers the corpus with its code, twice, without recursing into it", () => {
    // Before the limits, the second parse of the 2,000-deep document aborted the process
    // (FATAL ERROR: RegExpCompiler Allocation failed), so this test could not finish.
    for (const h of hostileCorpus()) {
      if (h.text.length > INPUT_LIMITS.maxBytes) continue;
      for (let round = 0; round < 2; round++) {
        const r = parseResources(h.text, { format: h.format });
        assert.equal(r.resources.length, 0, h.name);
        assert.equal(r.errors.length, 1, `${h.name}: ${JSON.stringify(r.errors).slice(0, 300)}`);
        assert.equal(r.errors[0]!.code, h.code, `${h.name}: ${r.errors[0]!.message}`);
      }
    }
  });

  it("loadPath refuses a file over the byte limit without reading all of it", async () => {
    const dir = tempDir();
    const big = join(dir, "big.yaml");
    writeFileSync(big, `a: "${"z".repeat(INPUT_LIMITS.maxBytes)}"\n`);
    const r = await loadPath(big);
    assert.equal(r.errors.length, 1);
    assert.equal(r.errors[0]!.code, "TURNOUT_ERR_INPUT_TOO_LARGE");
    assert.equal(r.errors[0]!.file, big);
    assert.match(r.errors[0]!.message, /larger than 4 MiB/);
    // A device has no size to check up front: reading stops at the limit.
    const zero = await loadPath("/dev/zero");
    assert.equal(zero.errors[0]!.code, "TURNOUT_ERR_INPUT_TOO_LARGE");
    const deep = await loadPath(join(ROOT, "test/fixtures/hostile/deep-flow.yaml"));
    assert.equal(deep.errors[0]!.code, "TURNOUT_ERR_INPUT_TOO_DEEP");
    assert.equal(deep.errors[0]!.line, 6);
  });
});

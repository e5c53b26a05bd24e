import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ERRORS, formatFieldError, TurnoutError } from "./errors.js";

test("docs/reference/errors.md documents every error code with its status, and nothing else", () => {
  const doc = readFileSync(new URL("../docs/reference/errors.md", import.meta.url), "utf8");
  const rows = new Map<string, number>();
  for (const m of doc.matchAll(/^\|\s*`(TURNOUT_ERR_[A-Z_]+)`\s*\|\s*(\d{3})\s*\|/gm))
    rows.set(m[1]!, Number(m[2]));
  for (const [code, { status }] of Object.entries(ERRORS)) {
    assert.equal(
      rows.get(code),
      status,
      `${code} must be documented with HTTP ${status} in docs/reference/errors.md (npm run docs:reference)`,
    );
  }
  for (const code of rows.keys())
    assert.ok(code in ERRORS, `${code} is documented but not in src/errors.ts`);
});

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (/\.(ts|tsx|lua)$/.test(name)) out.push(p);
  }
  return out;
}

test("every TURNOUT_ERR_ code named anywhere in src/ or web/src/ is in the error table", () => {
  // TurnoutError takes only codes of the table, but codes also appear as strings the compiler
  // does not check: in HAProxy's generated configuration and Lua, in the dashboard, in tests.
  const root = fileURLToPath(new URL("..", import.meta.url));
  const unknown: string[] = [];
  let seen = 0;
  for (const file of [...sourceFiles(join(root, "src")), ...sourceFiles(join(root, "web/src"))]) {
    for (const m of readFileSync(file, "utf8").matchAll(/\bTURNOUT_ERR_[A-Z_]*[A-Z]\b/g)) {
      seen++;
      if (!(m[0] in ERRORS)) unknown.push(`${relative(root, file)}: ${m[0]}`);
    }
  }
  assert.ok(seen > 100, `the scan found only ${seen} codes`);
  assert.deepEqual(unknown, []);
});

test("every error says what to do about it", () => {
  for (const [code, e] of Object.entries(ERRORS)) {
    assert.match(e.summary, /^[A-Z`].*\.$/, `${code}: summary is a sentence`);
    assert.match(e.fix, /^[A-Z`].*\.$/, `${code}: fix is a sentence`);
  }
});

test("error codes follow TURNOUT_ERR_<AREA>_<WHAT>", () => {
  for (const code of Object.keys(ERRORS)) assert.match(code, /^TURNOUT_ERR_[A-Z]+_[A-Z_]+$/);
});

test("TurnoutError serializes to the API error body", () => {
  const e = new TurnoutError("TURNOUT_ERR_RESOURCE_INVALID", "bad", {
    path: "spec.listen.port",
    errors: [{ path: "spec.listen.port", message: "must be 1..65535, got 0" }],
  });
  assert.equal(e.status, 400);
  assert.deepEqual(e.toJSON(), {
    error: {
      code: "TURNOUT_ERR_RESOURCE_INVALID",
      message: "bad",
      path: "spec.listen.port",
      details: { errors: [{ path: "spec.listen.port", message: "must be 1..65535, got 0" }] },
    },
  });
  assert.equal(
    formatFieldError({
      file: "a.yaml",
      line: 3,
      column: 5,
      document: 1,
      resource: "Service/web",
      path: "spec.version",
      message: "x",
    }),
    "a.yaml:3:5 document 2 Service/web: spec.version: x",
  );
});

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { ERRORS, formatFieldError, TurnoutError } from "./errors.js";

test("docs/errors.md documents every error code with its status, and nothing else", () => {
  const doc = readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8");
  const rows = new Map<string, number>();
  for (const m of doc.matchAll(/^\|\s*`(TURNOUT_ERR_[A-Z_]+)`\s*\|\s*(\d{3})\s*\|/gm))
    rows.set(m[1]!, Number(m[2]));
  for (const [code, { status }] of Object.entries(ERRORS)) {
    assert.equal(
      rows.get(code),
      status,
      `${code} must be documented with HTTP ${status} in docs/errors.md`,
    );
  }
  for (const code of rows.keys())
    assert.ok(code in ERRORS, `${code} is documented but not in src/errors.ts`);
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

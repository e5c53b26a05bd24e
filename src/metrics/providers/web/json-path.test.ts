import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatJsonPath, parseJsonPath, selectJsonPath } from "./json-path.js";

describe("parseJsonPath", () => {
  const cases: [string, (string | number)[]][] = [
    ["$", []],
    ["$.a", ["a"]],
    ["$.data.result[0].value", ["data", "result", 0, "value"]],
    ["$.a_b-c.D9", ["a_b-c", "D9"]],
    ['$["p99 latency"]', ["p99 latency"]],
    ['$["quote \\" and \\\\"]', ['quote " and \\']],
    ["$['single \\' quoted']", ["single ' quoted"]],
    ["$.items[-1]", ["items", -1]],
    ["$[0][1]", [0, 1]],
  ];
  for (const [path, segs] of cases) {
    it(`parses ${path}`, () => {
      assert.deepEqual(parseJsonPath(path), segs);
    });
  }

  const bad: [string, RegExp][] = [
    ["data.v", /must start with "\$"/],
    ["$.", /expected a key name after "\." .* at position 1/],
    ["$..a", /expected a key name/],
    ["$.items[*]", /expected \[index\]/],
    ["$.items[?(@.x)]", /expected \[index\]/],
    ["$.1a", /expected a key name/],
    ["$a", /expected "\." or "\[" at position 1/],
    ['$["unterminated]', /expected \[index\]/],
    ["$[1.5]", /expected \[index\]/],
  ];
  for (const [path, message] of bad) {
    it(`rejects ${path}`, () => {
      assert.throws(() => parseJsonPath(path), message);
    });
  }

  it("formats paths back", () => {
    assert.equal(formatJsonPath(["a", 0, "p99 ms", -1]), '$.a[0]["p99 ms"][-1]');
  });
});

describe("selectJsonPath", () => {
  const doc = { a: { b: [{ c: 1 }, { c: null }] }, x: 0 };
  it("walks objects and lists", () => {
    assert.deepEqual(selectJsonPath(doc, ["a", "b", 0, "c"]), { found: 1 });
    assert.deepEqual(selectJsonPath(doc, ["a", "b", -1, "c"]), { found: null });
    assert.deepEqual(selectJsonPath(doc, []), { found: doc });
  });
  it("says where it stopped", () => {
    assert.deepEqual(selectJsonPath(doc, ["a", "z"]), { missing: '$.a has no key "z" (keys: b)' });
    assert.deepEqual(selectJsonPath(doc, ["x", 0]), { missing: "$.x is a number, not a list" });
    assert.deepEqual(selectJsonPath(doc, ["a", "b", "c"]), {
      missing: "$.a.b is a list, not an object",
    });
    assert.deepEqual(selectJsonPath(doc, ["a", "b", 2]), {
      missing: "$.a.b has 2 element(s); no [2]",
    });
  });
  it("does not follow inherited keys", () => {
    assert.ok("missing" in selectJsonPath({}, ["constructor"]));
    assert.ok("missing" in selectJsonPath({}, ["__proto__"]));
  });
});

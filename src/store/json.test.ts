import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canonicalJson } from "./json.js";

describe("canonicalJson", () => {
  it("sorts keys at every level and keeps array order", () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }),
      '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  it("gives equal text for equal content written in another order", () => {
    assert.equal(
      canonicalJson({ x: 1, y: { p: 1, q: 2 } }),
      canonicalJson({ y: { q: 2, p: 1 }, x: 1 }),
    );
  });

  it("drops undefined members as JSON does", () => {
    assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
  });

  it("refuses values JSON cannot hold instead of changing them", () => {
    assert.throws(() => canonicalJson({ n: 1n }), TypeError);
    assert.throws(() => canonicalJson({ n: Number.NaN }), TypeError);
    assert.throws(() => canonicalJson([Number.POSITIVE_INFINITY]), TypeError);
    assert.throws(() => canonicalJson(undefined), TypeError);
  });

  it("keeps a __proto__ key as data", () => {
    const value = JSON.parse('{"__proto__":{"polluted":true},"a":1}');
    assert.equal(canonicalJson(value), '{"__proto__":{"polluted":true},"a":1}');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { plural } from "./plural.js";

test("plural: singular for exactly one, plural for 0, many and fractions", () => {
  assert.equal(plural(1, "step"), "1 step");
  assert.equal(plural(0, "step"), "0 steps");
  assert.equal(plural(2, "step"), "2 steps");
  assert.equal(plural(1.5, "point"), "1.5 points");
  assert.equal(plural(1, "reply", "replies"), "1 reply");
  assert.equal(plural(3, "reply", "replies"), "3 replies");
  assert.equal(
    plural(12345, "user", undefined, (n) => n.toLocaleString("en-US")),
    "12,345 users",
  );
});

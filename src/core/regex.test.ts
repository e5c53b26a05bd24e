import assert from "node:assert/strict";
import { test } from "node:test";
import { compileUserRegex, MAX_MATCH_VALUE_LENGTH, regexProblem } from "./regex.js";

test("ordinary match-rule patterns are accepted", () => {
  for (const src of [
    "beta",
    "^beta$",
    "^(alice|bob)@example\\.com$",
    "@example\\.com$",
    "\\d+",
    "^v\\d+(\\.\\d+)?$",
    "^Mozilla/\\d{1,4}\\.\\d{1,4}.*Chrome/(\\d{1,4})",
    "[a-z]{1,20}",
    "(ab)+",
    "^.*-canary$",
    "(?:ab|cd)?x",
    "\\p{L}+",
    "a{",
    "[(]+",
  ]) {
    assert.equal(regexProblem(src), null, src);
    assert.ok(compileUserRegex(src) instanceof RegExp, src);
  }
});

test("regexes that can stall the router are refused, with the reason", () => {
  const cases: [string, RegExp][] = [
    ["(", /must be a valid JavaScript regular expression: Unterminated group/],
    ["(a+)+b", /must not repeat a group that contains a quantifier/],
    ["(a?){30}a{30}", /must not repeat a group that contains a quantifier/],
    ["^(a|ab)*$", /must not repeat a group with alternatives/],
    ["((a|b)c)+", /must not repeat a group with alternatives/],
    ["(a)\\1", /must not use backreferences \(\\1\)/],
    ["(?<n>a)\\k<n>", /must not use backreferences \(\\k<name>\)/],
    [".*canary.*", /may backtrack about 1\.1e\+9 steps/],
    [".*.*x", /may backtrack/],
    ["^\\w+\\d+\\s+x", /may backtrack/],
    ["x".repeat(501), /must be at most 500 characters/],
  ];
  for (const [src, why] of cases) {
    const problem = regexProblem(src);
    assert.match(problem ?? "accepted", why, src);
    assert.equal(typeof compileUserRegex(src), "string");
  }
});

test("the accepted worst cases stay fast on the longest value tested", () => {
  // The shapes the estimate lets through at its limit, on adversarial 1 KiB values.
  const value = "a".repeat(MAX_MATCH_VALUE_LENGTH);
  for (const src of ["^.*a.*b", "^a*a*b", "a*b", "^(a|b)(a|b)?.*a*c", "\\w+x"]) {
    const re = compileUserRegex(src);
    assert.ok(re instanceof RegExp, `${src}: ${re}`);
    const started = performance.now();
    re.test(value);
    const ms = performance.now() - started;
    // About 10^6 steps: a few ms here; generous for a loaded CI machine.
    assert.ok(ms < 500, `${src} took ${ms.toFixed(1)} ms`);
  }
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { bucketOf } from "../hashing.js";
import { compileFlags, effectiveSpec, evaluate } from "./evaluate.js";
import { compareSemver, parseSemver } from "./semver.js";
import type { FlagSpec } from "./types.js";

const bool = (over: Partial<FlagSpec> = {}): FlagSpec => ({
  type: "boolean",
  variants: { on: true, off: false },
  defaultVariant: "off",
  state: "ENABLED",
  ...over,
});

const set = (spec: FlagSpec, segments = {}) =>
  compileFlags([{ key: "f", spec, generation: 3 }], segments);

test("static, disabled, not found and type mismatch", () => {
  const s = set(bool());
  assert.deepEqual(evaluate(s, "f", {}), {
    value: false,
    variant: "off",
    reason: "STATIC",
    flagMetadata: { generation: 3 },
  });
  const d = evaluate(
    set(bool({ state: "DISABLED", rollout: { variant: "on", percentage: 100 } })),
    "f",
    {
      targetingKey: "u",
    },
  );
  assert.equal(d.reason, "DISABLED");
  assert.equal(d.value, false);
  assert.equal(evaluate(s, "nope", {}).errorCode, "FLAG_NOT_FOUND");
  const m = evaluate(s, "f", {}, "string");
  assert.equal(m.errorCode, "TYPE_MISMATCH");
  assert.equal(m.reason, "ERROR");
  assert.equal(evaluate(s, "f", { targetingKey: 5 }).errorCode, "INVALID_CONTEXT");
});

test("every operator", () => {
  const cases: [FlagSpec["rules"], Record<string, unknown>, boolean][] = [
    [
      [{ conditions: [{ attribute: "email", op: "endsWith", value: "@acme.com" }], variant: "on" }],
      { email: "a@acme.com" },
      true,
    ],
    [
      [{ conditions: [{ attribute: "email", op: "endsWith", value: "@acme.com" }], variant: "on" }],
      { email: "a@other.com" },
      false,
    ],
    [
      [{ conditions: [{ attribute: "email", op: "startsWith", value: "a@" }], variant: "on" }],
      { email: "a@x" },
      true,
    ],
    [
      [{ conditions: [{ attribute: "email", op: "contains", value: "acme" }], variant: "on" }],
      { email: "a@acme.com" },
      true,
    ],
    [
      [{ conditions: [{ attribute: "plan", op: "equals", value: "pro" }], variant: "on" }],
      { plan: "pro" },
      true,
    ],
    [
      [{ conditions: [{ attribute: "plan", op: "notEquals", value: "pro" }], variant: "on" }],
      { plan: "free" },
      true,
    ],
    [
      [{ conditions: [{ attribute: "plan", op: "in", values: ["pro", "team"] }], variant: "on" }],
      { plan: "team" },
      true,
    ],
    [
      [
        {
          conditions: [{ attribute: "plan", op: "notIn", values: ["pro", "team"] }],
          variant: "on",
        },
      ],
      { plan: "team" },
      false,
    ],
    [
      [{ conditions: [{ attribute: "plan", op: "notIn", values: ["pro"] }], variant: "on" }],
      {},
      true,
    ],
    [
      [{ conditions: [{ attribute: "age", op: "gte", value: 18 }], variant: "on" }],
      { age: 18 },
      true,
    ],
    [
      [{ conditions: [{ attribute: "age", op: "gt", value: 18 }], variant: "on" }],
      { age: "18" },
      false,
    ],
    [
      [{ conditions: [{ attribute: "age", op: "lt", value: 18 }], variant: "on" }],
      { age: "x" },
      false,
    ],
    [
      [{ conditions: [{ attribute: "app", op: "semverGte", value: "2.0.0" }], variant: "on" }],
      { app: "v2.1.0" },
      true,
    ],
    [
      [{ conditions: [{ attribute: "app", op: "semverLt", value: "2.0.0" }], variant: "on" }],
      { app: "2.0.0-rc.1" },
      true,
    ],
    [
      [{ conditions: [{ attribute: "app", op: "semverEq", value: "2.0.0" }], variant: "on" }],
      { app: "2.0.0+b7" },
      true,
    ],
    [
      [{ conditions: [{ attribute: "id", op: "matches", value: "^u-\\d+$" }], variant: "on" }],
      { id: "u-12" },
      true,
    ],
    [
      [{ conditions: [{ attribute: "id", op: "matches", value: "^u-\\d+$" }], variant: "on" }],
      { id: "x-12" },
      false,
    ],
    [[{ conditions: [{ attribute: "id", op: "exists" }], variant: "on" }], { id: "x" }, true],
    [
      [{ conditions: [{ attribute: "beta", op: "equals", value: true }], variant: "on" }],
      { beta: true },
      true,
    ],
  ];
  for (const [rules, ctx, matched] of cases) {
    const r = evaluate(set(bool({ rules })), "f", ctx);
    assert.equal(r.reason, matched ? "TARGETING_MATCH" : "DEFAULT", JSON.stringify([rules, ctx]));
    assert.equal(r.value, matched, JSON.stringify([rules, ctx]));
  }
});

test("a catastrophic regex never matches and does not hang", () => {
  const r = evaluate(
    set(
      bool({
        rules: [
          { conditions: [{ attribute: "x", op: "matches", value: "(a+)+b" }], variant: "on" },
        ],
      }),
    ),
    "f",
    { x: `${"a".repeat(40)}c` },
  );
  assert.equal(r.reason, "DEFAULT");
});

test("segments: included, excluded, conditions", () => {
  const segments = {
    staff: {
      included: ["boss"],
      excluded: ["intern@acme.com"],
      conditions: [{ attribute: "targetingKey", op: "endsWith" as const, value: "@acme.com" }],
    },
  };
  const s = set(bool({ rules: [{ name: "staff", segments: ["staff"], variant: "on" }] }), segments);
  assert.equal(evaluate(s, "f", { targetingKey: "boss" }).value, true);
  assert.equal(evaluate(s, "f", { targetingKey: "a@acme.com" }).value, true);
  assert.equal(evaluate(s, "f", { targetingKey: "a@acme.com" }).flagMetadata.rule, "staff");
  assert.equal(evaluate(s, "f", { targetingKey: "intern@acme.com" }).value, false);
  assert.equal(evaluate(s, "f", { targetingKey: "x@y" }).value, false);
  // An unknown segment matches nobody.
  const u = set(bool({ rules: [{ segments: ["ghost"], variant: "on" }] }));
  assert.equal(evaluate(u, "f", { targetingKey: "boss" }).reason, "DEFAULT");
});

test("percentage rollout uses the router's hash v1 at 0.0001% resolution and is monotonic", () => {
  const at = (p: number) => set(bool({ rollout: { variant: "on", percentage: p } }));
  let on = 0;
  const n = 20_000;
  const f10 = at(10);
  const f50 = at(50);
  for (let i = 0; i < n; i++) {
    const ctx = { targetingKey: `user-${i}` };
    const a = evaluate(f10, "f", ctx);
    assert.equal(a.reason, "SPLIT");
    if (a.value === true) {
      on++;
      assert.equal(evaluate(f50, "f", ctx).value, true, "raising the percentage keeps users on");
    }
    // Same bucket as the router's sticky hash with the flag key as salt.
    assert.equal(a.value, bucketOf("f", `user-${i}`) < 100_000);
  }
  assert.ok(Math.abs(on / n - 0.1) < 0.01, `${on}/${n}`);
  // 0.0001% is one bucket in a million.
  const tiny = at(0.0001);
  let hits = 0;
  for (let i = 0; i < 50_000; i++) if (evaluate(tiny, "f", { targetingKey: `k${i}` }).value) hits++;
  assert.ok(hits <= 3);
  assert.equal(evaluate(at(10), "f", {}).errorCode, "TARGETING_KEY_MISSING");
});

test("bucketBy another attribute; split rules", () => {
  const s = set(
    bool({
      bucketBy: "org",
      rules: [
        {
          conditions: [{ attribute: "plan", op: "equals", value: "pro" }],
          split: { on: 50, off: 50 },
        },
      ],
    }),
  );
  const a = evaluate(s, "f", { org: "o1", plan: "pro", targetingKey: "x" });
  const b = evaluate(s, "f", { org: "o1", plan: "pro", targetingKey: "y" });
  assert.equal(a.reason, "SPLIT");
  assert.equal(a.value, b.value, "same org, same bucket");
  assert.equal(evaluate(s, "f", { plan: "pro" }).errorCode, "INVALID_CONTEXT");
  // A rule's split names the rule (#18 item 6); the rollout's split names none.
  assert.equal(a.flagMetadata.rule, "rule 1");
  const r = set(bool({ rollout: { variant: "on", percentage: 50 } }));
  const viaRollout = evaluate(r, "f", { targetingKey: "x" });
  assert.equal(viaRollout.reason, "SPLIT");
  assert.equal(viaRollout.flagMetadata.rule, undefined);
});

test("effectiveSpec applies rollout and manual overrides", () => {
  const base = bool({ rollout: { variant: "on", percentage: 0 } });
  assert.equal(effectiveSpec(base, { percentage: 25 }).rollout?.percentage, 25);
  assert.equal(effectiveSpec(bool(), { percentage: 5 }).rollout?.variant, "on");
  assert.equal(effectiveSpec(base, { state: "DISABLED" }).state, "DISABLED");
  const v = effectiveSpec(base, { variant: "on" });
  assert.equal(v.rollout, undefined);
  const served = evaluate(compileFlags([{ key: "f", spec: v }]), "f", {});
  assert.equal(served.value, true);
  assert.equal(served.reason, "TARGETING_MATCH");
  // The kill switch still serves the default variant, not the overriding one.
  const killed = effectiveSpec(v, { state: "DISABLED" });
  assert.equal(evaluate(compileFlags([{ key: "f", spec: killed }]), "f", {}).value, false);
  assert.equal(base.rollout?.percentage, 0, "the input is not changed");
});

test("semver precedence", () => {
  const order = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "2.0.0",
  ];
  for (let i = 0; i + 1 < order.length; i++) {
    assert.equal(compareSemver(parseSemver(order[i]!)!, parseSemver(order[i + 1]!)!), -1, order[i]);
  }
  assert.equal(parseSemver("1.2"), null);
});

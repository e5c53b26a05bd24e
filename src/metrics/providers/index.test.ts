import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TurnoutError } from "../../errors.js";
import {
  BuiltinProvider,
  CommandProvider,
  createProvider,
  PrometheusProvider,
  providerKind,
  WebProvider,
} from "./index.js";
import { boundRaw, parseNumberText } from "./support.js";

describe("createProvider", () => {
  const measurements = { window: async () => new Map() };

  it("makes the provider each kind names", () => {
    assert.ok(createProvider({ builtin: "latency" }, { measurements }) instanceof BuiltinProvider);
    assert.ok(
      createProvider({ prometheus: { address: "http://p", query: "up" } }) instanceof
        PrometheusProvider,
    );
    assert.ok(
      createProvider({ web: { url: "http://h", method: "GET", timeoutSeconds: 1 } }) instanceof
        WebProvider,
    );
    assert.ok(
      createProvider({ command: { command: ["true"], timeoutSeconds: 1 } }) instanceof
        CommandProvider,
    );
  });

  it("fails on an unknown kind, naming it; never falls back to a default", () => {
    const bad = (source: unknown, message: RegExp) =>
      assert.throws(
        () => createProvider(source as never),
        (err: unknown) =>
          err instanceof TurnoutError &&
          err.code === "TURNOUT_ERR_RESOURCE_INVALID" &&
          err.details.path === "source" &&
          message.test(err.message),
      );
    bad(
      { promethus: { query: "up" } },
      /unknown metric source "promethus"; expected one of builtin, prometheus, web, command/,
    );
    bad({}, /must have exactly one of builtin, prometheus, web, command; got none/);
    bad({ web: {}, command: {} }, /got web, command/);
    bad(null, /must be an object/);
    bad(["web"], /must be an object/);
  });

  it("a builtin source without the router's measurements is a wiring bug", () => {
    assert.throws(
      () => createProvider({ builtin: "error_rate" }),
      (err: unknown) => err instanceof TurnoutError && err.code === "TURNOUT_ERR_INTERNAL_BUG",
    );
  });

  it("providerKind names the kind", () => {
    assert.equal(providerKind({ command: { command: ["x"] } }), "command");
  });
});

describe("boundRaw", () => {
  it("keeps small values as they are", () => {
    const v = { a: [1, 2, 3], b: "x" };
    assert.equal(boundRaw(v, 100), v);
    assert.equal(boundRaw(null), null);
  });

  it("cuts large values to an envelope whose JSON fits", () => {
    for (const v of [
      { s: "x".repeat(10_000) },
      { s: '"'.repeat(10_000) }, // escapes double the head's length inside the envelope
      Array.from({ length: 5000 }, (_, i) => ({ i })),
    ]) {
      const out = boundRaw(v, 500) as { truncated: boolean; chars: number; head: string };
      assert.equal(out.truncated, true);
      assert.equal(out.chars, JSON.stringify(v).length);
      assert.ok(JSON.stringify(out).length <= 500);
      assert.ok(JSON.stringify(v).startsWith(out.head));
    }
  });

  it("turns what JSON cannot hold into text", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.equal(boundRaw(cyclic), "[object Object]");
    assert.equal(boundRaw(undefined), "undefined");
    assert.equal(boundRaw(10n), "10");
  });
});

describe("parseNumberText", () => {
  it("accepts decimal and exponent notation only", () => {
    for (const [s, v] of [
      ["1", 1],
      [" -2.5 \n", -2.5],
      ["+.5", 0.5],
      ["1e3", 1000],
      ["7.", 7],
    ] as const) {
      assert.deepEqual(parseNumberText(s), { value: v }, s);
    }
    for (const s of ["", "0x10", "1_000", "12ms", "1,5", "--1", "e5", "Infinityx"]) {
      assert.equal(parseNumberText(s), null, s);
    }
  });

  it("recognises NaN and infinities so they can be reported", () => {
    for (const s of ["NaN", "+Inf", "-Inf", "inf", "Infinity", "1e999"]) {
      assert.ok("nonFinite" in (parseNumberText(s) ?? {}), s);
    }
  });
});

import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { test } from "node:test";
import { compileFlags } from "../core/flags/evaluate.js";
import type { RouteTable } from "../core/model.js";
import { EdgeFlags, mergeLabels } from "./flags-edge.js";
import { MeasurementRecorder } from "./stats.js";
import type { CompiledBackend } from "./table.js";
import type { ExchangeView } from "./types.js";

const flags = compileFlags([
  {
    key: "beta",
    spec: {
      type: "boolean",
      variants: { on: true, off: false },
      defaultVariant: "off",
      state: "ENABLED",
      rules: [
        {
          conditions: [{ attribute: "targetingKey", op: "startsWith", value: "staff-" }],
          variant: "on",
        },
      ],
      rollout: { variant: "on", percentage: 0 },
    },
  },
]);

function setup() {
  const edge = new EdgeFlags({ current: { flags } });
  const recorder = new MeasurementRecorder();
  edge.bindRecorder(recorder);
  const compiled = edge.compile({
    service: "shop",
    stickiness: { header: "X-User", salt: "shop" },
    flags: ["beta"],
  } as unknown as RouteTable)!;
  const backend = {
    version: "v2",
    counters: recorder.series("shop", "v2"),
  } as unknown as CompiledBackend;
  const req = (headers: string[]) =>
    ({ rawHeaders: headers, url: "/" }) as unknown as IncomingMessage;
  // The flags' `request` hook on an exchange that picked `backend`; returns the version and
  // series the request is then recorded into.
  const apply = (r: IncomingMessage, headers: string[], facts: { setCookie: string | null }) => {
    const ex = {
      ...facts,
      experimentUnit: null,
      req: r,
      headers,
      backend,
      counters: backend.counters,
    } as unknown as ExchangeView;
    compiled.request(ex);
    return { version: ex.backend.version, counters: ex.counters };
  };
  return { edge, recorder, backend, apply, req };
}

test("evaluates with the sticky key, replaces a client's header, labels the series", () => {
  const { edge, apply, req } = setup();
  const headers = ["x-turnout-flags", "beta=on", "host", "a"];
  const b = apply(req(["X-User", "staff-1", "x-turnout-flags", "beta=on"]), headers, {
    setCookie: null,
  });
  assert.deepEqual(headers, ["host", "a", "x-turnout-flags", "beta=on"]);
  assert.equal(b.counters.labels, "flag.beta=on");
  assert.equal(b.version, "v2");
  const h2: string[] = [];
  const c = apply(req(["X-User", "user-1"]), h2, { setCookie: null });
  assert.deepEqual(h2, ["x-turnout-flags", "beta=off"]);
  assert.equal(c.counters.labels, "flag.beta=off");
  // No sticky key: the rollout cannot bucket, so the upstream gets the default variant (and
  // the series its label), not an empty header.
  const h3: string[] = [];
  const d = apply(req([]), h3, { setCookie: null });
  assert.deepEqual(h3, ["x-turnout-flags", "beta=off"]);
  assert.equal(d.counters.labels, "flag.beta=off");
  // A table without flags compiles to none (the proxy then runs no flag hook).
  assert.equal(edge.compile({ service: "other" } as unknown as RouteTable), null);
});

test("labels from another feature are kept, in canonical order", () => {
  assert.equal(mergeLabels("arm=b", "flag.beta=on"), "arm=b&flag.beta=on");
  assert.equal(mergeLabels("zeta=1", "flag.a=on&flag.a-b=off"), "flag.a=on&flag.a-b=off&zeta=1");
});

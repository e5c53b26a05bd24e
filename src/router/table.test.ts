import assert from "node:assert/strict";
import { test } from "node:test";
import { compileFlags } from "../core/flags/evaluate.js";
import type { RouteTable } from "../core/model.js";
import { EdgeFlags } from "./flags-edge.js";
import { UpstreamPools } from "./pools.js";
import { MeasurementRecorder } from "./stats.js";
import { type CompiledTable, compileTable, pickBackend, pickEndpoint } from "./table.js";

const pools = new UpstreamPools({
  headersTimeoutMs: 1000,
  bodyTimeoutMs: 1000,
  connectTimeoutMs: 1000,
});
test.after(() => pools.closeAll());
const recorder = new MeasurementRecorder();

function compile(backends: RouteTable["backends"], previous?: CompiledTable) {
  return compileTable(
    {
      service: "svc",
      revision: 1,
      listen: { host: "127.0.0.1", port: 0 },
      hashVersion: 1,
      updatedAt: 0,
      backends,
    },
    { pools, counters: (v) => recorder.series("svc", v), previous },
  );
}

function picks(table: CompiledTable, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(pickBackend(table)?.version ?? "-");
  return out;
}

test("SWRR gives nginx's smooth sequence for 5/1/1", () => {
  const { table } = compile([
    { version: "a", weight: 5 * (100 / 7), endpoints: ["http://127.0.0.1:1"] },
    { version: "b", weight: 100 / 7, endpoints: ["http://127.0.0.1:2"] },
    { version: "c", weight: 100 / 7, endpoints: ["http://127.0.0.1:3"] },
  ]);
  // nginx's documented sequence for weights {5, 1, 1}: a a b a c a a.
  assert.deepEqual(picks(table, 7).join(""), "aabacaa");
});

test("SWRR is exact over every period, down to 0.0001%", () => {
  for (const [w1, w2] of [
    [90, 10],
    [99.99, 0.01],
    [99.9999, 0.0001],
    [33.3333, 66.6667],
  ] as const) {
    const { table } = compile([
      { version: "a", weight: w1, endpoints: ["http://127.0.0.1:1"] },
      { version: "b", weight: w2, endpoints: ["http://127.0.0.1:2"] },
    ]);
    const n = 1_000_000;
    let b = 0;
    for (let i = 0; i < n; i++) if (pickBackend(table)?.version === "b") b++;
    assert.equal(b, Math.round(w2 * 10_000), `weights ${w1}/${w2}`);
  }
});

test("backends without weight or endpoints are not picked; none left gives null", () => {
  const { table } = compile([
    { version: "a", weight: 50, endpoints: [] },
    { version: "b", weight: 0, endpoints: ["http://127.0.0.1:2"] },
    { version: "c", weight: 50, endpoints: ["http://127.0.0.1:3"] },
  ]);
  assert.deepEqual(new Set(picks(table, 10)), new Set(["c"]));
  const empty = compile([{ version: "a", weight: 100, endpoints: [] }]).table;
  assert.equal(pickBackend(empty), null);
});

test("bad endpoints are skipped and reported; path prefixes are kept", () => {
  const { table, problems } = compile([
    {
      version: "a",
      weight: 100,
      endpoints: ["not a url", "ftp://x", "http://127.0.0.1:9/base/", "http://127.0.0.1:9?q=1"],
    },
  ]);
  assert.equal(problems.length, 3);
  assert.equal(table.backends[0]?.endpoints.length, 1);
  assert.equal(table.backends[0]?.endpoints[0]?.pathPrefix, "/base");
  assert.equal(table.backends[0]?.endpoints[0]?.origin, "http://127.0.0.1:9");
});

test("state carries over a swap that keeps the split, and restarts when it changes", () => {
  const split = [
    { version: "a", weight: 99.99, endpoints: ["http://127.0.0.1:1", "http://127.0.0.1:4"] },
    { version: "b", weight: 0.01, endpoints: ["http://127.0.0.1:2"] },
  ];
  // Swapping the table every 5,000 requests (e.g. instances becoming ready) must not starve
  // the 0.01% version, which is due once per 10,000.
  let table = compile(split).table;
  let b = 0;
  for (let swap = 0; swap < 4; swap++) {
    for (let i = 0; i < 5000; i++) if (pickBackend(table)?.version === "b") b++;
    table = compile(split, table).table;
  }
  assert.equal(b, 2);
  // The endpoint cursor carries too.
  const a = table.backends[0]!;
  const first = pickEndpoint(a)?.url;
  const next = compile(split, table).table.backends[0]!;
  assert.notEqual(pickEndpoint(next)?.url, first);

  const changed = compile(
    [
      { ...split[0]!, weight: 50 },
      { ...split[1]!, weight: 50 },
    ],
    table,
  ).table;
  assert.deepEqual(
    changed.backends.map((x) => x.current),
    [0, 0],
  );
});

// ---------------------------------------------------------------------------------------
// Selection: sticky ranges, match rules and override, compiled once per table.
// ---------------------------------------------------------------------------------------

function compileFull(extra: Partial<RouteTable> & Pick<RouteTable, "backends">) {
  return compileTable(
    {
      service: "svc",
      revision: 1,
      listen: { host: "127.0.0.1", port: 0 },
      hashVersion: 1,
      updatedAt: 0,
      ...extra,
    },
    { pools, counters: (v) => recorder.series("svc", v) },
  );
}

const canaryStable = (canary: number) => [
  { version: "v2", weight: canary, endpoints: ["http://127.0.0.1:2"] },
  { version: "v1", weight: 100 - canary, endpoints: ["http://127.0.0.1:1"] },
];

test("without stickiness, rules or override there is no selection step", () => {
  const { table } = compile(canaryStable(10));
  assert.equal(table.selection, null);
  assert.deepEqual([...table.byVersion.keys()], ["v2", "v1"]);
});

test("sticky ranges are exact integers in table order, summing to 1,000,000", () => {
  for (const [canary, ends] of [
    [0.01, [100, 1_000_000]],
    [50, [500_000, 1_000_000]],
    [99.99, [999_900, 1_000_000]],
    [33.3333, [333_333, 1_000_000]],
  ] as const) {
    const { table, problems } = compileFull({
      backends: canaryStable(canary),
      stickiness: { header: "X-User-Id", salt: "s" },
    });
    assert.deepEqual(problems, []);
    const sticky = table.selection?.sticky;
    assert.ok(sticky);
    assert.deepEqual(sticky.ends, ends);
    assert.deepEqual(
      sticky.owners.map((o) => o?.version),
      ["v2", "v1"],
    );
    assert.equal(sticky.name, "x-user-id", "header names are compared lower-cased");
    assert.equal(sticky.salt, "s");
  }
});

test("a version without endpoints keeps its range, with no owner; a 0% version has none", () => {
  const { table } = compileFull({
    backends: [
      { version: "v3", weight: 0, endpoints: ["http://127.0.0.1:3"] },
      { version: "v2", weight: 20, endpoints: [] },
      { version: "v1", weight: 80, endpoints: ["http://127.0.0.1:1"] },
    ],
    stickiness: { cookie: "Session", salt: "svc" },
  });
  const sticky = table.selection!.sticky!;
  assert.deepEqual(sticky.ends, [200_000, 1_000_000]);
  assert.deepEqual(
    sticky.owners.map((o) => o?.version ?? null),
    [null, "v1"],
  );
  assert.equal(sticky.name, "Session", "cookie names are case-sensitive");
  assert.equal(sticky.cookiePrefix, "Session=");
});

test("ranges that do not cover 100% and unknown hash versions are reported", () => {
  const short = compileFull({
    backends: [{ version: "v1", weight: 60, endpoints: ["http://127.0.0.1:1"] }],
    stickiness: { query: "user", salt: "svc" },
  });
  assert.match(short.problems.join("\n"), /sticky ranges cover 60% of the buckets/);
  const unknown = compileFull({
    backends: canaryStable(10),
    hashVersion: 9,
    stickiness: { header: "x-user-id", salt: "svc" },
  });
  assert.equal(unknown.table.selection, null);
  assert.match(unknown.problems.join("\n"), /stickiness off: unknown sticky hash version 9/);
});

test("match rules compile once: names lower-cased, regexes built, unusable rules dropped", () => {
  const { table, problems } = compileFull({
    backends: [
      { version: "v2", weight: 0, endpoints: ["http://127.0.0.1:2"] },
      { version: "v1", weight: 100, endpoints: ["http://127.0.0.1:1"] },
      { version: "v0", weight: 0, endpoints: [] },
    ],
    matches: [
      { header: { name: "X-Beta", equals: "1" }, version: "v2" },
      { cookie: { name: "Tester", regex: "^(alice|bob)$" }, pathPrefix: "/api", version: "v2" },
      { header: { name: "x-bad", regex: "(a)\\1" }, version: "v2" },
      { header: { name: "x-down", exists: true }, version: "v0" },
      { header: { name: "x-gone", exists: false }, version: "v9" },
    ],
  });
  const sel = table.selection!;
  assert.equal(sel.matches.length, 2);
  assert.equal(sel.matches[0]!.header!.name, "x-beta");
  assert.equal(sel.matches[1]!.cookie!.name, "Tester");
  assert.equal(sel.matches[1]!.cookie!.regex!.test("bob"), true);
  assert.equal(sel.matches[1]!.cookie!.regex!.test("bobby"), false);
  assert.equal(sel.matches[1]!.pathPrefix, "/api");
  assert.equal(sel.matches[0]!.backend.version, "v2");
  assert.equal(problems.length, 1);
  assert.match(
    problems[0]!,
    /match rule 3 \(to v2\): header x-bad: regex "\(a\)\\\\1" must not use backreferences/,
  );
  // The 0% version is a target of rules but takes no share of the split.
  assert.deepEqual(
    table.backends.map((b) => b.version),
    ["v1"],
  );
  assert.deepEqual([...table.byVersion.keys()], ["v2", "v1"]);
});

test("the override alone makes 0% versions with endpoints reachable", () => {
  const { table } = compileFull({
    backends: [
      { version: "v2", weight: 0, endpoints: ["http://127.0.0.1:2"] },
      { version: "v1", weight: 100, endpoints: ["http://127.0.0.1:1"] },
    ],
    versionOverride: true,
  });
  assert.equal(table.selection?.versionOverride, true);
  assert.equal(table.byVersion.get("v2")?.weight, 0);
  assert.equal(table.totalWeight, 1_000_000);
});

test("features compile to readonly fields, null when unused; only used features add hooks", () => {
  const edge = new EdgeFlags({ current: { flags: compileFlags([]) } });
  const raw: RouteTable = {
    service: "svc",
    revision: 1,
    listen: { host: "127.0.0.1", port: 0 },
    hashVersion: 1,
    updatedAt: 0,
    backends: [
      { version: "v1", weight: 50, endpoints: ["http://127.0.0.1:1"] },
      { version: "v2", weight: 50, endpoints: ["http://127.0.0.1:2"] },
    ],
  };
  const ctx = { pools, counters: (v: string) => recorder.series("svc", v) };
  const plain = compileTable(raw, { ...ctx, features: { flags: edge } }).table;
  assert.equal(plain.experiment, null);
  assert.equal(plain.flags, null);
  assert.equal(plain.mirror, null);
  assert.equal(plain.selectors.length, 0);
  assert.equal(plain.interceptors.length, 0);

  const featured = compileTable(
    {
      ...raw,
      flags: ["beta", "alpha", "beta"],
      experiment: {
        name: "exp",
        arms: [
          { name: "A", version: "v1", weight: 50 },
          { name: "B", version: "v2", weight: 50 },
        ],
        key: { header: "x-user" },
        salt: "s",
      },
    },
    { ...ctx, features: { flags: edge } },
  ).table;
  assert.equal(featured.experiment?.name, "exp");
  assert.deepEqual(featured.flags?.keys, ["alpha", "beta"]);
  // No `Mirrors` to compile with: the table mirrors nothing.
  assert.equal(featured.mirror, null);
  // Registry order: the experiment selects, then the flags intercept (its own request hook is
  // there too, for response-header events).
  assert.deepEqual(featured.selectors, [featured.experiment]);
  assert.deepEqual(featured.interceptors, [featured.experiment, featured.flags]);
  // Without the router's edge flags, the flags compile to nothing.
  assert.equal(compileTable({ ...raw, flags: ["beta"] }, ctx).table.flags, null);
});

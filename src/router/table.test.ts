import assert from "node:assert/strict";
import { test } from "node:test";
import type { RouteTable } from "../core/model.js";
import { UpstreamPools } from "./pools.js";
import { VersionCounters } from "./stats.js";
import { type CompiledTable, compileTable, pickBackend, pickEndpoint } from "./table.js";

const pools = new UpstreamPools({
  headersTimeoutMs: 1000,
  bodyTimeoutMs: 1000,
  connectTimeoutMs: 1000,
});
test.after(() => pools.closeAll());

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
    { pools, counters: (v) => new VersionCounters(v), previous },
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

/**
 * The traffic-provider conformance suite: the same cases for every data plane (Hono runs every
 * router through one `common.case.test.ts`). Real upstream HTTP servers on port 0, real client
 * requests over real sockets, one fresh provider per case.
 *
 * A provider's test file calls `trafficProviderConformance` once:
 *
 *   trafficProviderConformance("builtin", async () => {
 *     const provider = new BuiltinProvider();
 *     await provider.start();
 *     return { provider };
 *   }, [{ reason: "...", cases: ["mirror"] }]);
 *
 * Skips are data: a case listed in `skips` is registered as skipped with its reason. A case
 * that needs a route-table feature the provider does not declare (`provider.features`) is
 * skipped with a generated reason; "refused capability" is the opposite (it needs a feature
 * the provider lacks) and is skipped for a provider that carries everything.
 *
 * Tolerances are stated where a case measures: the split's share is within 3 percentage
 * points of the weight over 1,000 requests (a random split's standard deviation at 10% is
 * 0.95 points, so 3 is over three of them; a deterministic one such as the built-in router's
 * smooth weighted round-robin is exact).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http from "node:http";
import { describe, test } from "node:test";
import { bucketOf } from "../core/hashing.js";
import type { RouteTable } from "../core/model.js";
import { DEFAULT_MIRROR_LIMITS } from "../core/shadow/types.js";
import { ROUTE_FEATURES, type RouteFeature } from "../core/traffic.js";
import { freePort, startUpstream, type Upstream, waitFor } from "./haproxy/testing.js";
import type { TableOutcome, TrafficProvider } from "./provider.js";

/** What a provider's test gives the suite: a started provider, fresh for each case. */
export interface ProviderHarness {
  provider: TrafficProvider;
  /**
   * The port where clients reach a service whose table asks for `port` (its preview listener
   * when `preview`). Default: that port. A provider that does not own the listener (HAProxy in
   * attach mode, whose frontend someone else configured) says where it is.
   */
  reach?(where: { service: string; port: number; preview: boolean }): number;
  /** Releases whatever the harness made besides the provider (the suite stops the provider). */
  close?(): Promise<void>;
  /**
   * The provider's sticky hash when it is not the router's (core/hashing.ts `bucketOf` and
   * test/fixtures/hashing-vectors.json): its bucket function and its published vectors (the
   * same JSON shape). The stickiness and experiment cases check every assignment against it.
   */
  stickyHash?: {
    bucket(salt: string, key: string, hashVersion: number): number;
    vectors: URL;
  };
}

/** The cases, by their stable names (what `skips` refer to). */
export const CONFORMANCE_CASES = [
  "split accuracy",
  "stickiness",
  "matches",
  "preview listener",
  "switch and switch back under load",
  "mirror",
  "experiment arms",
  "refused capability",
  "empty set stops the listeners",
  "inForce reports revisions",
] as const;
export type ConformanceCase = (typeof CONFORMANCE_CASES)[number];

export interface ConformanceSkip {
  reason: string;
  cases: ConformanceCase[];
}

/** What one case has to work with: the provider, three upstreams and free ports. */
interface CaseContext {
  provider: TrafficProvider;
  /** Upstreams answering `<name>\n` with `x-served-by: <name>`: "v1", "v2", "shadow". */
  up: Record<"v1" | "v2" | "shadow", Upstream>;
  /** A port nothing listens on now, for a table's listener. */
  port(): Promise<number>;
  /** Where clients reach the listener of `service` whose table asks for `port` (see the harness). */
  reach(service: string, port: number, preview?: boolean): number;
  /** Reports a measured figure in the test output (a TAP diagnostic). */
  note(message: string): void;
  /** The provider's sticky bucket of a key (the harness's `stickyHash`, else the router's). */
  bucket(salt: string, key: string, hashVersion: number): number;
  /** The published vectors of that hash. */
  hashVectors(): HashVectors;
}

interface CaseDef {
  name: ConformanceCase;
  /** Features the provider must carry for the case to apply. */
  needs: RouteFeature[];
  run(c: CaseContext): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// Tables and clients
// ---------------------------------------------------------------------------------------

let revisionSeq = 0;

/** A table of service `service` on `port`, with `weights` over the v1/v2 upstreams. */
function tableOf(
  c: CaseContext,
  service: string,
  port: number,
  weights: { v1: number; v2: number },
  more: Partial<RouteTable> = {},
): RouteTable {
  return {
    service,
    revision: ++revisionSeq,
    listen: { host: "127.0.0.1", port },
    hashVersion: 1,
    // Canary (v2) first, as the controller orders them: sticky ranges depend on the order.
    backends: [
      { version: "v2", weight: weights.v2, endpoints: [c.up.v2.url] },
      { version: "v1", weight: weights.v1, endpoints: [c.up.v1.url] },
    ],
    updatedAt: 0,
    ...more,
  };
}

/** Applies and asserts that every table is in force. */
async function applyOk(p: TrafficProvider, tables: RouteTable[]): Promise<TableOutcome[]> {
  const outcomes = await p.apply(tables);
  for (const o of outcomes) assert.ok(o.ok, `${o.service}: ${o.ok ? "" : o.error.message}`);
  assert.deepEqual(
    outcomes.map((o) => [o.service, o.revision]),
    tables.map((t) => [t.service, t.revision]),
  );
  return outcomes;
}

interface Answer {
  status: number;
  body: string;
}

/** One GET; `agent` false for a fresh connection. Rejects on a connection error. */
function get(
  port: number,
  headers: Record<string, string> = {},
  agent: http.Agent | false = false,
  path = "/",
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, headers, agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

/** The version that served an answer ("v1\n" -> "v1"); fails on anything but a 200. */
async function served(port: number, headers: Record<string, string> = {}): Promise<string> {
  const a = await get(port, headers);
  assert.equal(a.status, 200, `status ${a.status}: ${a.body}`);
  return a.body.trim();
}

/** Counts of the versions that served `n` requests, `concurrency` at a time, keep-alive. */
async function tally(port: number, n: number, concurrency = 8): Promise<Record<string, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const counts: Record<string, number> = {};
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next++;
          const a = await get(port, {}, agent);
          assert.equal(a.status, 200, a.body);
          const v = a.body.trim();
          counts[v] = (counts[v] ?? 0) + 1;
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return counts;
}

/** The version a sticky key lands on: backends own consecutive ranges of weight × 10,000 buckets. */
function stickyOwner(t: RouteTable, bucket: number): string {
  let end = 0;
  for (const b of t.backends) {
    end += Math.round(b.weight * 10_000);
    if (bucket < end) return b.version;
  }
  throw new Error(`bucket ${bucket} beyond the table's ranges`);
}

interface HashVectors {
  hashVersion: number;
  vectors: { salt: string; key: string; bucket: number }[];
}

function hashVectors(url = new URL("../../test/fixtures/hashing-vectors.json", import.meta.url)) {
  return JSON.parse(readFileSync(url, "utf8")) as HashVectors;
}

/** A connection to `port` is refused (nothing listens). */
async function refused(port: number): Promise<boolean> {
  try {
    await get(port);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ECONNREFUSED";
  }
}

/** A table using `feature` (besides the split), for the refused-capability case. */
async function withFeature(
  c: CaseContext,
  feature: RouteFeature,
  t: RouteTable,
): Promise<RouteTable> {
  switch (feature) {
    case "split":
      return t;
    case "stickiness":
      return { ...t, stickiness: { header: "x-user", salt: t.service } };
    case "matches":
      return { ...t, matches: [{ header: { name: "x-beta", equals: "1" }, version: "v2" }] };
    case "versionOverride":
      return { ...t, versionOverride: true };
    case "preview":
      return {
        ...t,
        preview: { listen: { host: "127.0.0.1", port: await c.port() }, version: "v2" },
      };
    case "mirror":
      return { ...t, mirror: mirrorTo(c) };
    case "experiment":
      return { ...t, experiment: experimentOf() };
    case "experimentResponseHeaders":
      return { ...t, experiment: { ...experimentOf(), responseHeaders: ["x-score"] } };
    case "edgeFlags":
      return { ...t, flags: ["dark-mode"] };
  }
}

function mirrorTo(c: CaseContext): NonNullable<RouteTable["mirror"]> {
  return {
    id: "conformance-mirror",
    version: "shadow",
    endpoints: [c.up.shadow.url],
    percent: 100,
    methods: ["GET"],
    stripHeaders: [],
    limits: DEFAULT_MIRROR_LIMITS,
    compare: {},
  };
}

function experimentOf(): NonNullable<RouteTable["experiment"]> {
  return {
    name: "conformance-exp",
    arms: [
      { name: "control", version: "v1", weight: 50 },
      { name: "treatment", version: "v2", weight: 50 },
    ],
    key: { header: "x-unit" },
    salt: "conformance-exp",
  };
}

/** The arm version of a unit: arms own consecutive ranges of the buckets in proportion to weight. */
function armOf(
  c: CaseContext,
  x: NonNullable<RouteTable["experiment"]>,
  unit: string,
  hashVersion: number,
): string {
  const total = x.arms.reduce((s, a) => s + a.weight, 0);
  const bucket = c.bucket(x.salt, unit, hashVersion);
  let acc = 0;
  for (const [i, a] of x.arms.entries()) {
    acc += a.weight;
    const end = i === x.arms.length - 1 ? 1_000_000 : Math.round((acc / total) * 1_000_000);
    if (bucket < end) return a.version;
  }
  throw new Error("no arm");
}

// ---------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------

const CASES: CaseDef[] = [
  {
    name: "split accuracy",
    needs: ["split"],
    async run(c) {
      const port = await c.port();
      await applyOk(c.provider, [tableOf(c, "split", port, { v1: 90, v2: 10 })]);
      const n = 1000;
      const counts = await tally(c.reach("split", port), n);
      assert.equal((counts.v1 ?? 0) + (counts.v2 ?? 0), n, JSON.stringify(counts));
      const share = ((counts.v2 ?? 0) / n) * 100;
      c.note(`split 90/10 over ${n} requests: v1 ${counts.v1 ?? 0}, v2 ${counts.v2 ?? 0}`);
      assert.ok(share >= 7 && share <= 13, `v2 got ${share}% of ${n}, want 10 ± 3`);
    },
  },
  {
    name: "stickiness",
    needs: ["split", "stickiness"],
    async run(c) {
      const port = await c.port();
      // The published vectors' salt, so their buckets are checked end to end.
      const { hashVersion, vectors } = c.hashVectors();
      const salt = "fraud-model";
      const t = tableOf(
        c,
        "sticky",
        port,
        { v1: 70, v2: 30 },
        { hashVersion, stickiness: { header: "x-user", salt } },
      );
      await applyOk(c.provider, [t]);
      const to = c.reach("sticky", port);
      // Keys a header carries as they are (visible ASCII); an empty key counts as no key.
      const keys = [
        ...vectors.filter((v) => v.salt === salt && /^[\x21-\x7e]+$/.test(v.key)).map((v) => v.key),
        ...Array.from({ length: 100 }, (_, i) => `user-${i}`),
      ];
      const seen = new Set<string>();
      for (const key of keys) {
        const bucket = c.bucket(salt, key, hashVersion);
        const vector = vectors.find((v) => v.salt === salt && v.key === key);
        if (vector !== undefined) assert.equal(bucket, vector.bucket, `vector ${key}`);
        const want = stickyOwner(t, bucket);
        // Twice: the same key gets the same version, and it is the one the hash says.
        for (let i = 0; i < 2; i++) {
          assert.equal(await served(to, { "x-user": key }), want, `key ${key} (bucket ${bucket})`);
        }
        seen.add(want);
      }
      assert.deepEqual([...seen].sort(), ["v1", "v2"], "the keys reach both versions");
    },
  },
  {
    name: "matches",
    needs: ["split", "matches"],
    async run(c) {
      const port = await c.port();
      const t = tableOf(
        c,
        "matches",
        port,
        { v1: 100, v2: 0 },
        { matches: [{ header: { name: "x-beta", equals: "1" }, version: "v2" }] },
      );
      await applyOk(c.provider, [t]);
      const to = c.reach("matches", port);
      for (let i = 0; i < 20; i++) {
        assert.equal(await served(to, { "x-beta": "1" }), "v2");
        assert.equal(await served(to), "v1");
        assert.equal(await served(to, { "x-beta": "2" }), "v1");
      }
    },
  },
  {
    name: "preview listener",
    needs: ["split", "preview"],
    async run(c) {
      const port = await c.port();
      const previewPort = await c.port();
      const t = tableOf(
        c,
        "preview",
        port,
        { v1: 100, v2: 0 },
        { preview: { listen: { host: "127.0.0.1", port: previewPort }, version: "v2" } },
      );
      await applyOk(c.provider, [t]);
      const to = c.reach("preview", port);
      const toPreview = c.reach("preview", previewPort, true);
      for (let i = 0; i < 20; i++) {
        assert.equal(await served(to), "v1");
        assert.equal(await served(toPreview), "v2");
      }
      // The switch ends the preview: its listener goes, the service stays.
      await applyOk(c.provider, [tableOf(c, "preview", port, { v1: 0, v2: 100 })]);
      assert.equal(await served(to), "v2");
      assert.ok(await refused(toPreview), "the preview listener is closed after the switch");
    },
  },
  {
    name: "switch and switch back under load",
    needs: ["split"],
    async run(c) {
      const port = await c.port();
      await applyOk(c.provider, [tableOf(c, "switch", port, { v1: 100, v2: 0 })]);
      const to = c.reach("switch", port);
      // Load: clients on keep-alive connections and clients on a fresh connection per request.
      const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const failures: string[] = [];
      let done = 0;
      let stop = false;
      const client = async (agent: http.Agent | false) => {
        while (!stop) {
          try {
            const a = await get(to, {}, agent);
            if (a.status !== 200) failures.push(`status ${a.status}: ${a.body}`);
          } catch (err) {
            failures.push(String(err));
          }
          done++;
        }
      };
      const clients = [
        ...Array.from({ length: 4 }, () => client(keepAlive)),
        ...Array.from({ length: 4 }, () => client(false)),
      ];
      const atLeast = (n: number) => waitFor(`${n} requests under load`, () => done >= n, 30_000);
      try {
        await atLeast(200);
        for (const [target, weights] of [
          ["v2", { v1: 0, v2: 100 }],
          ["v1", { v1: 100, v2: 0 }],
        ] as const) {
          await applyOk(c.provider, [tableOf(c, "switch", port, weights)]);
          // In force when apply resolves: every request sent from now on is served by `target`.
          for (let i = 0; i < 10; i++) assert.equal(await served(to), target);
          await atLeast(done + 200);
        }
      } finally {
        stop = true;
        await Promise.all(clients);
        keepAlive.destroy();
      }
      c.note(`switch and back: ${done} requests under load, ${failures.length} failed`);
      assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${done} requests failed`);
      assert.ok(done >= 600, `${done} requests under load`);
    },
  },
  {
    name: "mirror",
    needs: ["split", "mirror"],
    async run(c) {
      const port = await c.port();
      await applyOk(c.provider, [
        tableOf(c, "mirror", port, { v1: 100, v2: 0 }, { mirror: mirrorTo(c) }),
      ]);
      const before = c.up.shadow.count;
      const n = 20;
      // The answers are the primary's: the shadow's are compared, never returned.
      const to = c.reach("mirror", port);
      for (let i = 0; i < n; i++) assert.equal(await served(to), "v1");
      await waitFor(`${n} copies at the shadow`, () => c.up.shadow.count - before >= n);
      assert.equal(c.up.shadow.count - before, n, "one copy per request");
    },
  },
  {
    name: "experiment arms",
    needs: ["split", "experiment"],
    async run(c) {
      const port = await c.port();
      const x = experimentOf();
      const t = tableOf(c, "experiment", port, { v1: 50, v2: 50 }, { experiment: x });
      await applyOk(c.provider, [t]);
      const to = c.reach("experiment", port);
      const seen = new Set<string>();
      for (let i = 0; i < 100; i++) {
        const unit = `unit-${i}`;
        const want = armOf(c, x, unit, t.hashVersion);
        for (let j = 0; j < 2; j++) assert.equal(await served(to, { "x-unit": unit }), want, unit);
        seen.add(want);
      }
      assert.deepEqual([...seen].sort(), ["v1", "v2"], "the units reach both arms");
    },
  },
  {
    name: "refused capability",
    needs: [],
    async run(c) {
      const lacking = ROUTE_FEATURES.find((f) => !c.provider.features.has(f));
      assert.ok(lacking !== undefined);
      const port = await c.port();
      const first = tableOf(c, "refuse", port, { v1: 100, v2: 0 });
      await applyOk(c.provider, [first]);
      const bad = await withFeature(c, lacking, tableOf(c, "refuse", port, { v1: 0, v2: 100 }));
      const [outcome] = await c.provider.apply([bad]);
      assert.ok(outcome !== undefined && !outcome.ok, `a table with ${lacking} was taken`);
      assert.equal((outcome.error as { code?: string }).code, "TURNOUT_ERR_TRAFFIC_UNSUPPORTED");
      assert.match(outcome.error.message, /does not carry/);
      // It keeps serving the table it had.
      assert.equal(c.provider.inForce().get("refuse"), first.revision);
      const to = c.reach("refuse", port);
      for (let i = 0; i < 10; i++) assert.equal(await served(to), "v1");
    },
  },
  {
    name: "empty set stops the listeners",
    needs: ["split"],
    async run(c) {
      const a = await c.port();
      const b = await c.port();
      await applyOk(c.provider, [
        tableOf(c, "one", a, { v1: 100, v2: 0 }),
        tableOf(c, "two", b, { v1: 0, v2: 100 }),
      ]);
      assert.equal(await served(c.reach("one", a)), "v1");
      assert.equal(await served(c.reach("two", b)), "v2");
      assert.deepEqual(await c.provider.apply([]), []);
      assert.ok(await refused(c.reach("one", a)), "the first listener is closed");
      assert.ok(await refused(c.reach("two", b)), "the second listener is closed");
      assert.deepEqual([...c.provider.inForce()], []);
    },
  },
  {
    name: "inForce reports revisions",
    needs: ["split"],
    async run(c) {
      const a = tableOf(c, "alpha", await c.port(), { v1: 100, v2: 0 }, { revision: 3 });
      const b = tableOf(c, "beta", await c.port(), { v1: 100, v2: 0 }, { revision: 5 });
      await applyOk(c.provider, [a, b]);
      assert.deepEqual(
        new Map(c.provider.inForce()),
        new Map([
          ["alpha", 3],
          ["beta", 5],
        ]),
      );
      await applyOk(c.provider, [{ ...a, revision: 4, backends: [...a.backends].reverse() }]);
      assert.deepEqual(new Map(c.provider.inForce()), new Map([["alpha", 4]]));
    },
  },
];

// ---------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------

/**
 * Registers the conformance cases for one provider under `describe(name)`. `make` returns a
 * started provider, fresh for each case; the suite stops it (and calls `close`) after.
 */
export function trafficProviderConformance(
  name: string,
  make: () => Promise<ProviderHarness>,
  skips: readonly ConformanceSkip[] = [],
): void {
  const skipped = new Map<string, string>();
  for (const s of skips) {
    for (const c of s.cases) {
      if (!(CONFORMANCE_CASES as readonly string[]).includes(c))
        throw new Error(`conformance skip names no case: ${JSON.stringify(c)}`);
      skipped.set(c, s.reason);
    }
  }
  describe(`traffic provider conformance: ${name}`, () => {
    for (const def of CASES) {
      const reason = skipped.get(def.name);
      if (reason !== undefined) {
        test(def.name, { skip: reason }, () => {});
        continue;
      }
      test(def.name, async (t) => {
        const harness = await make();
        const upstreams = await Promise.all(["v1", "v2", "shadow"].map((n) => startUpstream(n)));
        const [v1, v2, shadow] = upstreams as [Upstream, Upstream, Upstream];
        try {
          const features = harness.provider.features;
          const missing = def.needs.filter((f) => !features.has(f));
          if (missing.length > 0) {
            t.skip(`${name} does not carry ${missing.join(", ")} (its declared features)`);
            return;
          }
          if (def.name === "refused capability" && ROUTE_FEATURES.every((f) => features.has(f))) {
            t.skip(`${name} carries every route-table feature: there is nothing to refuse`);
            return;
          }
          const reach = (service: string, port: number, preview = false): number =>
            harness.reach?.({ service, port, preview }) ?? port;
          const hash = harness.stickyHash;
          await def.run({
            note: (m) => t.diagnostic(m),
            bucket: hash?.bucket ?? bucketOf,
            hashVectors: () => hashVectors(hash?.vectors),
            provider: harness.provider,
            up: { v1, v2, shadow },
            port: freePort,
            reach,
          });
        } finally {
          await harness.provider.stop();
          await harness.close?.();
          await Promise.all(upstreams.map((u) => u.close()));
        }
      });
    }
  });
}

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { DEFAULT_TRAFFIC_POLICY, type RouteTable } from "../../core/model.js";
import {
  assignSlots,
  BUCKETS,
  encodeRules,
  mapText,
  planService,
  type RenderOptions,
  renderConfig,
  renderMaps,
  serverOf,
  structuralConfig,
} from "./config.js";
import { haproxyHashScheme, xxh32 } from "./hash.js";
import { needsHaproxy, tempDir, testHaproxy } from "./testing.js";

function table(over: Partial<RouteTable> = {}): RouteTable {
  return {
    service: "fraud",
    revision: 7,
    listen: { host: "127.0.0.1", port: 8080 },
    hashVersion: 1,
    backends: [
      { version: "v2", weight: 10, endpoints: ["http://127.0.0.1:9003"] },
      { version: "v1", weight: 90, endpoints: ["http://127.0.0.1:9001", "http://127.0.0.1:9002"] },
    ],
    policy: DEFAULT_TRAFFIC_POLICY,
    updatedAt: 0,
    ...over,
  };
}

const OPTS: RenderOptions = {
  dir: "/tmp/turnout-hx/fraud",
  socketDir: "/tmp/turnout-hx/fraud",
  intake: { host: "127.0.0.1", port: 5140 },
  protocol: "http",
};

test("servers: one per endpoint, named after the address; bad endpoints are skipped with a reason", () => {
  assert.deepEqual(serverOf("http://127.0.0.1:9001"), {
    name: "e_127.0.0.1_9001",
    address: "127.0.0.1:9001",
    url: "http://127.0.0.1:9001",
  });
  assert.equal((serverOf("http://[::1]:9001/") as { address: string }).address, "[::1]:9001");
  assert.match(serverOf("https://127.0.0.1:9001") as string, /http:\/\/ upstreams only/);
  assert.match(serverOf("http://127.0.0.1:9001/prefix") as string, /no path prefix/);
  assert.match(serverOf("http://model.local:9001") as string, /not resolved/);
  assert.equal(
    (serverOf("http://model.local:9001", { resolve: () => "10.0.0.5" }) as { address: string })
      .address,
    "10.0.0.5:9001",
  );
  const plan = planService(
    table({
      backends: [
        {
          version: "v1",
          weight: 100,
          endpoints: ["http://127.0.0.1:9001", "ftp://x", "http://127.0.0.1:9001"],
        },
      ],
    }),
  );
  assert.equal(plan.versions[0]!.servers.length, 1);
  assert.match(plan.problems[0]!, /version v1: endpoint "ftp:\/\/x" skipped/);
});

test("bucket ranges: canary first, weight x 10^4 buckets each, as the router's sticky ranges", () => {
  const plan = planService(table({ stickiness: { header: "x-user-id", salt: "fraud" } }));
  assert.deepEqual(plan.stickyRanges, [
    { from: 0, to: 99_999, version: "v2" },
    { from: 100_000, to: 999_999, version: "v1" },
  ]);
  assert.deepEqual(plan.splitRanges, plan.stickyRanges);
  // HAProxy's own hash (hash.ts), the salt as the seed: XXH32("fraud") = 3931467047.
  assert.deepEqual(plan.sticky, {
    source: "header",
    name: "x-user-id",
    scheme: "haproxy-xxh32-v1",
    hash: `xxh32(${xxh32("fraud")}),mul(1000000),div(4294967296)`,
    keyHash: `xxh32(${xxh32("fraud")})`,
    hashRanges: [
      { from: 0, to: 429_496_729, version: "v2" },
      { from: 429_496_730, to: 2 ** 32 - 1, version: "v1" },
    ],
  });
  // 0.0001% steps are exact.
  const fine = planService(
    table({
      backends: [
        { version: "v2", weight: 0.0001, endpoints: ["http://127.0.0.1:9003"] },
        { version: "v1", weight: 99.9999, endpoints: ["http://127.0.0.1:9001"] },
      ],
    }),
  );
  assert.deepEqual(fine.splitRanges[0], { from: 0, to: 0, version: "v2" });
});

test("a version without instances: its sticky range is divided among the others by the split's shares", () => {
  const plan = planService(
    table({
      stickiness: { header: "x-user-id", salt: "fraud" },
      backends: [
        { version: "v2", weight: 50, endpoints: [] },
        { version: "v1", weight: 30, endpoints: ["http://127.0.0.1:9001"] },
        { version: "v0", weight: 20, endpoints: ["http://127.0.0.1:9000"] },
      ],
    }),
  );
  // v2's buckets [0, 500000) have no owner: those keys follow the split.
  assert.deepEqual(plan.stickyRanges, [
    { from: 500_000, to: 799_999, version: "v1" },
    { from: 800_000, to: 999_999, version: "v0" },
  ]);
  assert.deepEqual(plan.splitRanges, [
    { from: 0, to: 599_999, version: "v1" },
    { from: 600_000, to: 999_999, version: "v0" },
  ]);
  const covered = plan.splitRanges.reduce((n, r) => n + r.to - r.from + 1, 0);
  assert.equal(covered, BUCKETS);
  // In hash space (what sticky.map holds) v2's hole is filled 60/40 by v1 and v0, so every key
  // names a backend: the whole 32-bit space is covered, without overlap, in order.
  const h = plan.sticky!.hashRanges;
  let next = 0;
  for (const r of h) {
    assert.equal(r.from, next, JSON.stringify(h));
    assert.ok(r.to >= r.from);
    next = r.to + 1;
  }
  assert.equal(next, 2 ** 32);
  const share = (v: string) =>
    h.filter((r) => r.version === v).reduce((n, r) => n + r.to - r.from + 1, 0) / 2 ** 32;
  // v1: its own 30 % plus 60 % of v2's 50 %; v0: 20 % plus 40 % of 50 %.
  assert.ok(Math.abs(share("v1") - 0.6) < 1e-6, String(share("v1")));
  assert.ok(Math.abs(share("v0") - 0.4) < 1e-6, String(share("v0")));
  assert.equal(share("v2"), 0);
  // No version with a server: no range at all (the request gets turnout_none's 503).
  const none = planService(
    table({
      stickiness: { header: "x-user-id", salt: "fraud" },
      backends: [{ version: "v2", weight: 100, endpoints: [] }],
    }),
  );
  assert.deepEqual(none.sticky!.hashRanges, []);
});

test("sticky ranges in hash space give exactly the buckets' keys", () => {
  const plan = planService(table({ stickiness: { header: "x-user-id", salt: "fraud" } }));
  const scheme = haproxyHashScheme(1)!;
  // Around each boundary: the hash range holds a hash exactly when its bucket is in the range.
  for (const r of plan.sticky!.hashRanges) {
    for (const hv of [r.from - 1, r.from, r.to, r.to + 1]) {
      if (hv < 0 || hv >= 2 ** 32) continue;
      const bucket = Math.floor((hv * BUCKETS) / 2 ** 32);
      const inBuckets = plan.stickyRanges.some(
        (b) => b.version === r.version && bucket >= b.from && bucket <= b.to,
      );
      assert.equal(hv >= r.from && hv <= r.to, inBuckets, `hash ${hv}, bucket ${bucket}`);
    }
  }
  assert.deepEqual(scheme.hashRange(0, 99_999), [0, 429_496_729]);
  assert.deepEqual(scheme.hashRange(100_000, 999_999), [429_496_730, 2 ** 32 - 1]);
});

test("what HAProxy cannot carry is refused, naming the feature", () => {
  const plan = planService(
    table({
      flags: ["new-checkout"],
      mirror: { version: "v2", percent: 10, endpoints: [] } as unknown as RouteTable["mirror"],
    }),
  );
  assert.equal(plan.refusals.length, 2);
  assert.match(plan.refusals.join("\n"), /mirror/);
  assert.match(plan.refusals.join("\n"), /edge flags/);
  const odd = planService(table({ stickiness: { header: "x'user", salt: "s" } }));
  assert.match(odd.refusals[0]!, /stickiness header "x'user"/);
  const unknownHash = planService(
    table({ stickiness: { header: "x-u", salt: "s" }, hashVersion: 9 }),
  );
  assert.equal(unknownHash.sticky, null);
  assert.match(unknownHash.problems[0]!, /no sticky hash for hash version 9/);
});

test("match rules encode to one map value; rules to versions without instances fall out", () => {
  const problems: string[] = [];
  const rules = encodeRules(
    {
      matches: [
        { header: { name: "x-beta", equals: "a b;c,d%" }, version: "v2" },
        { cookie: { name: "t", regex: "^q[0-9]+$" }, pathPrefix: "/x", version: "v1" },
        { header: { name: "x-gone", exists: false }, version: "v9" },
        { pathPrefix: "nope", version: "v1" },
      ],
    },
    new Set(["v1", "v2"]),
    problems,
  );
  assert.equal(rules, "v2,,e,x-beta,a%20b%3Bc%2Cd%25,,,;v1,%2Fx,,,,r,t,%5Eq%5B0-9%5D%2B%24");
  assert.doesNotMatch(rules, / /);
  assert.match(problems[0]!, /match rule 4 .* does not start with "\/"/);
});

test("slots: versions keep their slot, free slots are reused, the layout grows when full", () => {
  let slots = assignSlots([], ["v1"]);
  assert.deepEqual(slots, ["v1", null, null, null]);
  slots = assignSlots(slots, ["v2", "v1"]);
  assert.deepEqual(slots, ["v1", "v2", null, null]);
  slots = assignSlots(slots, ["v2", "v3"]);
  // The provider keeps a draining version in `needed` until its servers are gone, so a freed
  // slot holds no old server when a new version takes it.
  assert.deepEqual(slots, ["v3", "v2", null, null]);
  slots = assignSlots(slots, ["v2", "v3", "v4", "v5", "v6"]);
  assert.deepEqual(slots, ["v3", "v2", "v4", "v5", "v6", null]);
});

test("maps: backends by slot, ranges by slot, the override, rules, preview and the revision", () => {
  const t = table({
    stickiness: { cookie: "sid", salt: "fraud" },
    versionOverride: true,
    matches: [{ header: { name: "x-beta", equals: "1" }, version: "v2" }],
    preview: { listen: { host: "127.0.0.1", port: 8081 }, version: "v2" },
  });
  const plan = planService(t);
  const maps = renderMaps(plan, ["v1", "v2", null, null]);
  assert.deepEqual(maps["backends.map"], ["v1 slot0", "v2 slot1"]);
  assert.deepEqual(maps["override.map"], ["v2 v2", "v1 v1"]);
  // The hot path's maps name the slot: one lookup from the bucket to the backend.
  assert.deepEqual(maps["split.map"], ["0:99999 slot1", "100000:999999 slot0"]);
  // The same ranges in hash space: bucket b holds the hashes h with floor(h × 10^6 / 2^32) = b.
  assert.deepEqual(maps["sticky.map"], ["0:429496729 slot1", "429496730:4294967295 slot0"]);
  assert.deepEqual(maps["rules.map"], ["r v2,,e,x-beta,1,,,"]);
  assert.deepEqual(maps["preview.map"], ["v v2"]);
  assert.deepEqual(maps["meta.map"], ["revision 7", "service fraud"]);
  assert.equal(mapText([]), "");
  const noOverride = renderMaps(planService(table()), ["v1", "v2", null, null]);
  assert.deepEqual(noOverride["override.map"], []);
  assert.deepEqual(noOverride["rules.map"], []);
});

test("structural config: weights, instances, rules and the preview's version change live; listeners and policy reload", () => {
  // The service may route by rules (`mayMatch`: a setHeaderRoute step in its strategy), though
  // it has none yet: the Lua hook is there from the start, and rules then come live.
  const base = planService(
    table({ stickiness: { header: "x-user-id", salt: "fraud" }, mayMatch: true }),
  );
  const slots = ["v2", "v1", null, null];
  const s0 = structuralConfig({ plan: base, slots }, OPTS);
  const live = planService(
    table({
      revision: 8,
      stickiness: { header: "x-user-id", salt: "fraud" },
      mayMatch: true,
      matches: [{ header: { name: "x-beta", equals: "1" }, version: "v2" }],
      backends: [
        { version: "v2", weight: 50, endpoints: ["http://127.0.0.1:9004"] },
        { version: "v1", weight: 50, endpoints: ["http://127.0.0.1:9001"] },
      ],
    }),
  );
  assert.equal(structuralConfig({ plan: live, slots }, OPTS), s0);
  assert.notEqual(
    renderConfig({ plan: live, slots }, OPTS),
    renderConfig({ plan: base, slots }, OPTS),
  );
  for (const over of [
    { listen: { host: "127.0.0.1", port: 8090 } },
    { stickiness: { header: "x-other", salt: "fraud" } },
    { stickiness: { header: "x-user-id", salt: "other" } },
    { policy: { ...DEFAULT_TRAFFIC_POLICY, retries: { attempts: 3 } } },
    { preview: { listen: { host: "127.0.0.1", port: 8081 }, version: "v2" } },
    // The spec's, fixed for a rollout: only a config that allows it looks for the header.
    { versionOverride: true },
    // A service that never routes by rules has no hook (nor its cost per request).
    { mayMatch: undefined },
  ] satisfies Partial<RouteTable>[]) {
    const p = planService(
      table({ stickiness: { header: "x-user-id", salt: "fraud" }, mayMatch: true, ...over }),
    );
    assert.notEqual(structuralConfig({ plan: p, slots }, OPTS), s0, JSON.stringify(over));
  }
  // A new version takes a free slot live; only more slots are a reload.
  assert.equal(structuralConfig({ plan: base, slots: ["v2", "v1", "v3", null] }, OPTS), s0);
  assert.notEqual(structuralConfig({ plan: base, slots: [...slots, null] }, OPTS), s0);
});

test("the config reads as HAProxy configuration: listeners, selection in the router's order, slots", () => {
  const plan = planService(
    table({
      stickiness: { header: "x-user-id", salt: "fraud" },
      mayMatch: true,
      policy: {
        ...DEFAULT_TRAFFIC_POLICY,
        loadBalancing: "roundRobin",
        healthCheck: {
          path: "/healthz",
          intervalSeconds: 2,
          timeoutSeconds: 0.5,
          healthyThreshold: 2,
          unhealthyThreshold: 3,
        },
      },
    }),
  );
  const cfg = renderConfig({ plan, slots: ["v2", "v1", null, null] }, OPTS);
  assert.match(cfg, /bind 127\.0\.0\.1:8080\n/);
  assert.match(
    cfg,
    /stats socket \/tmp\/turnout-hx\/fraud\/admin\.sock mode 600 level admin expose-fd listeners/,
  );
  assert.match(cfg, /server intake 127\.0\.0\.1:5140/);
  const order = [
    "http-request set-var(txn.tk) req.fhdr(x-user-id,1)",
    "lua.turnout_match",
    "use_backend %[var(txn.tv),map(/tmp/turnout-hx/fraud/backends.map)] if { var(txn.tv) -m found }",
    `use_backend %[var(txn.tk),xxh32(${xxh32("fraud")}),map_int(/tmp/turnout-hx/fraud/sticky.map)] if { var(txn.tk) -m len gt 0 }`,
    "use_backend %[var(proc.n0),add(1),set-var(proc.n0),mul(618033),mod(1000000),map_int(/tmp/turnout-hx/fraud/split.map)]",
    "default_backend turnout_none",
  ];
  let at = 0;
  for (const s of order) {
    const i = cfg.indexOf(s, at);
    assert.ok(i > at, `${s} after the previous step`);
    at = i;
  }
  assert.match(
    cfg,
    /backend slot1\n {2}balance roundrobin\n {2}http-response set-header x-turnout-version %\[srv_name,field\(1,:\)\]\n {2}option httpchk GET \/healthz\n/,
  );
  // The log numbers each line as it is written (one thread), names the backend, and the body
  // limit is HAProxy's own count of the body.
  assert.match(
    cfg,
    /log-format "T2 %\[date\(0,ms\)\] %pid 0 %\[var\(proc\.s0\),add\(1\),set-var\(proc\.s0\)\] %f %b %ST /,
  );
  assert.match(cfg, /http-request deny deny_status 413 if \{ req\.body_size gt 10485760 \}/);
  assert.doesNotMatch(cfg, /txn\.sq/);
  // A service that never routes by rules evaluates none: no hook, no rule reading txn.tv.
  const plain = renderConfig(
    {
      plan: planService(table({ stickiness: { header: "x-user-id", salt: "fraud" } })),
      slots: ["v2", "v1", null, null],
    },
    OPTS,
  );
  assert.doesNotMatch(plain, /lua\.turnout_match|txn\.tv|rules\.map/);
  // No Lua on the sticky path, and the config says which hash it uses.
  assert.doesNotMatch(cfg, /lua\.turnout_bucket/);
  assert.match(cfg, /^# Sticky and A\/B buckets: haproxy-xxh32-v1 /m);
  assert.match(cfg, /timeout check 500ms/);
  assert.match(
    cfg,
    /server v1:e_127\.0\.0\.1_9001 127\.0\.0\.1:9001 check inter 2s rise 2 fall 3 observe layer7 error-limit 5 on-error mark-down\n/,
  );
  assert.match(cfg, /frontend fraud\n/);
  assert.doesNotMatch(cfg, /frontend fraud:preview/);
  // Without versionOverride no request looks for the override header; without an experiment
  // the log line's arm and unit are literal dashes, not lookups.
  assert.doesNotMatch(cfg, /override\.map/);
  assert.match(cfg, /%\[var\(txn\.tk\),hex\] - - -"/);
  const withOverride = renderConfig(
    {
      plan: planService(table({ versionOverride: true, mayMatch: true })),
      slots: ["v2", "v1", null, null],
    },
    OPTS,
  );
  assert.match(
    withOverride,
    /set-var\(txn\.tv\) req\.fhdr\(x-turnout-version,1\),map\(\/tmp\/turnout-hx\/fraud\/override\.map\)[^\n]*\n {2}http-request lua\.turnout_match if !\{ var\(txn\.tv\) -m found \}/,
  );
  assert.throws(
    () => renderConfig({ plan, slots: [] }, { ...OPTS, dir: "/tmp/with space" }),
    /cannot put/,
  );
});

test("an experiment's arms own the router's bucket ranges, hashed with HAProxy's scheme", () => {
  const plan = planService(
    table({
      experiment: {
        name: "x",
        arms: [
          { name: "a", version: "v1", weight: 1 },
          { name: "b", version: "v2", weight: 2 },
          { name: "c", version: "v9", weight: 1 },
        ],
        key: { header: "X-Unit" },
        salt: "salt",
        force: { header: "X-Arm" },
      },
    }),
  );
  assert.deepEqual(plan.refusals, []);
  assert.deepEqual(plan.experiment!.ranges, [
    { from: 0, to: 249_999, arm: "a" },
    { from: 250_000, to: 749_999, arm: "b" },
    { from: 750_000, to: 999_999, arm: "c" },
  ]);
  // Arm c's version has no server: it keeps its range but serves nobody (falls through).
  assert.deepEqual(plan.experiment!.arms, [
    { arm: "a", version: "v1" },
    { arm: "b", version: "v2" },
  ]);
  assert.equal(plan.experiment!.keyName, "x-unit");
  assert.equal(plan.experiment!.forceHeader, "x-arm");
  assert.equal(plan.experiment!.scheme, "haproxy-xxh32-v1");
  const cfg = renderConfig({ plan, slots: ["v2", "v1", null, null] }, OPTS);
  assert.match(
    cfg,
    new RegExp(
      `set-var\\(txn\\.ea\\) var\\(txn\\.eu\\),xxh32\\(${xxh32("salt")}\\),mul\\(1000000\\),div\\(4294967296\\),map_int\\(`,
    ),
  );
  assert.match(cfg, /%\[var\(txn\.xa\)\] %\[var\(txn\.eu\),hex\]"/);
});

test("haproxy -c accepts every config shape", needsHaproxy(), () => {
  const dir = tempDir();
  try {
    copyFileSync(
      fileURLToPath(new URL("./turnout.lua", import.meta.url)),
      join(dir.path, "turnout.lua"),
    );
    const shapes: Partial<RouteTable>[] = [
      {},
      { stickiness: { header: "x-user-id", salt: "s" } },
      { stickiness: { cookie: "sid", salt: "s" }, versionOverride: true },
      { stickiness: { query: "user", salt: "s" } },
      {
        experiment: {
          name: "ranker",
          arms: [
            { name: "control", version: "v1", weight: 50 },
            { name: "treatment", version: "v2", weight: 50 },
          ],
          key: { cookie: "uid" },
          salt: "x",
          force: { header: "x-arm", query: "arm" },
        },
        stickiness: { cookie: "sid", salt: "s" },
      },
      {
        experiment: {
          name: "ranker",
          arms: [
            { name: "a", version: "v1", weight: 1 },
            { name: "b", version: "v2", weight: 3 },
          ],
          key: { query: "u" },
          salt: "x",
        },
      },
      {
        preview: { listen: { host: "127.0.0.1", port: 8081 }, version: "v2" },
        matches: [{ header: { name: "x-beta", regex: "^a" }, version: "v2" }],
        policy: {
          ...DEFAULT_TRAFFIC_POLICY,
          healthCheck: {
            path: "/healthz",
            intervalSeconds: 1,
            timeoutSeconds: 1,
            healthyThreshold: 1,
            unhealthyThreshold: 2,
          },
        },
      },
    ];
    for (const [i, shape] of shapes.entries()) {
      for (const protocol of ["http", "grpc"] as const) {
        const plan = planService(table(shape));
        const opts = {
          ...OPTS,
          dir: dir.path,
          socketDir: dir.path,
          protocol,
          threads: i === 1 ? 2 : 1,
        };
        const slots = ["v2", "v1", null, null];
        writeFileSync(join(dir.path, "haproxy.cfg"), renderConfig({ plan, slots }, opts));
        for (const [name, lines] of Object.entries(renderMaps(plan, slots)))
          writeFileSync(join(dir.path, name), mapText(lines));
        const r = spawnSync(testHaproxy()!, ["-c", "-f", join(dir.path, "haproxy.cfg")], {
          encoding: "utf8",
        });
        assert.equal(r.status, 0, `shape ${i} ${protocol}: ${r.stderr}`);
        assert.doesNotMatch(
          r.stderr,
          /WARNING/,
          `shape ${i} ${protocol} has no warnings: ${r.stderr}`,
        );
      }
    }
  } finally {
    dir.remove();
  }
});

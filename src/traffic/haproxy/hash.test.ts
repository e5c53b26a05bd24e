/**
 * HAProxy's sticky hash, `haproxy-xxh32-v1`: the TypeScript port agrees with the reference
 * xxHash library, with the published vectors, and with what a real HAProxy computes from the
 * very converters the generated config uses; and the generated config puts each vector's key
 * on the version its bucket says.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import { BUCKET_SCALE, bucketOf } from "../../core/hashing.js";
import { DEFAULT_TRAFFIC_POLICY, type RouteTable } from "../../core/model.js";
import { HAPROXY_HASH_SCHEMES, haproxyBucketOf, haproxyHashScheme, xxh32 } from "./hash.js";
import { HaproxyProvider } from "./provider.js";
import {
  accepts,
  freePort,
  needsHaproxy,
  type RunningHaproxy,
  rawRequest,
  runHaproxy,
  startUpstream,
  tempDir,
  type Upstream,
} from "./testing.js";

interface Fixture {
  scheme: string;
  hashVersion: number;
  algorithm: string;
  bucketScale: number;
  haproxy: string;
  vectors: {
    salt: string;
    key: string;
    seed: number;
    xxh32: number;
    bucket: number;
    routerBucket: number;
  }[];
}

const fixture = JSON.parse(
  readFileSync(
    new URL("../../../test/fixtures/haproxy-hash-vectors.json", import.meta.url),
    "utf8",
  ),
) as Fixture;

test("xxh32 equals the reference library's values (libxxhash 0.8.1), every length path and seed", () => {
  // [input, seed, XXH32] from libxxhash's XXH32 (ctypes), covering < 4, < 16 and >= 16 bytes,
  // a 4-byte-lane tail, UTF-8, and seeds 0, a large one and 2^32 - 1.
  const reference: [string, number, number][] = [
    ["", 0, 0x02cc5d05],
    ["a", 0, 1426945110],
    ["abc", 0, 852579327],
    ["héllo", 0, 1644681334],
    ["0123456789abcdef", 0, 3267648361],
    ["0123456789abcdefXYZ", 0, 2237583922],
    ["x".repeat(1000), 0, 1941755927],
    ["", 4294967295, 2422332061],
    ["abc", 4294967295, 2989167648],
    ["0123456789abcdefXYZ", 4294967295, 3262799],
    ["", 123456, 2249533708],
    ["héllo", 123456, 1922570020],
    ["x".repeat(1000), 123456, 1144655142],
  ];
  for (const [input, seed, want] of reference) {
    assert.equal(xxh32(input, seed), want, `XXH32(${JSON.stringify(input.slice(0, 20))}, ${seed})`);
    assert.equal(xxh32(Buffer.from(input, "utf8"), seed), want, "bytes hash like their string");
  }
});

test("every vector of test/fixtures/haproxy-hash-vectors.json holds", () => {
  const scheme = HAPROXY_HASH_SCHEMES[fixture.hashVersion]!;
  assert.equal(fixture.scheme, scheme.name);
  assert.equal(fixture.scheme, "haproxy-xxh32-v1");
  assert.equal(fixture.algorithm, scheme.algorithm);
  assert.equal(fixture.bucketScale, BUCKET_SCALE);
  assert.ok(fixture.vectors.length >= 20);
  for (const v of fixture.vectors) {
    const what = JSON.stringify([v.salt, v.key.slice(0, 30)]);
    assert.equal(xxh32(v.salt), v.seed, `seed ${what}`);
    assert.equal(xxh32(v.key, v.seed), v.xxh32, `xxh32 ${what}`);
    assert.equal(haproxyBucketOf(v.salt, v.key, fixture.hashVersion), v.bucket, `bucket ${what}`);
    assert.equal(bucketOf(v.salt, v.key, 1), v.routerBucket, `router bucket ${what}`);
    assert.ok(v.bucket >= 0 && v.bucket < BUCKET_SCALE);
  }
  // The two schemes differ for most keys: the reason the docs warn about moving providers.
  const same = fixture.vectors.filter((v) => v.bucket === v.routerBucket).length;
  assert.ok(same < 3, `${same} vectors share a bucket under both schemes`);
});

test("an unknown table hash version has no HAProxy scheme", () => {
  assert.equal(haproxyHashScheme(2), undefined);
  assert.throws(
    () => haproxyBucketOf("s", "k", 2),
    /no haproxy sticky hash for table hash version 2/,
  );
  assert.ok(Object.isFrozen(HAPROXY_HASH_SCHEMES));
});

describe("haproxy-xxh32-v1 in a real HAProxy", needsHaproxy(), () => {
  const dir = tempDir();
  let port = 0;
  let hx: RunningHaproxy;
  // One route per salt (the seed is in the config, as in the config Turnout generates).
  const salts = [...new Set(fixture.vectors.map((v) => v.salt))];

  before(async () => {
    port = await freePort();
    const scheme = HAPROXY_HASH_SCHEMES[fixture.hashVersion]!;
    const lines = [
      "global",
      "  nbthread 1",
      "defaults",
      "  mode http",
      "  timeout connect 2s",
      "  timeout client 5s",
      "  timeout server 5s",
      "frontend fe",
      `  bind 127.0.0.1:${port}`,
      ...salts.map(
        (salt, i) =>
          `  http-request return status 200 content-type text/plain lf-string "%[req.fhdr(x-key,1),${scheme.converters(salt)}]" if { path /bucket/${i} }`,
      ),
      "  http-request return status 404",
    ];
    hx = await runHaproxy(dir.path, `${lines.join("\n")}\n`, () => accepts(port));
  });

  after(async () => {
    await hx?.stop();
    dir.remove();
  });

  test("HAProxy's converters give every vector's bucket", async () => {
    let checked = 0;
    for (const v of fixture.vectors) {
      // HTTP drops a header value's leading and trailing blanks, and an empty one is no key.
      if (v.key === "" || v.key.trim() !== v.key) continue;
      const r = await rawRequest(port, `/bucket/${salts.indexOf(v.salt)}`, { "x-key": v.key });
      assert.equal(r.status, 200);
      assert.equal(r.body, String(v.bucket), `bucket(${JSON.stringify([v.salt, v.key])})`);
      checked++;
    }
    assert.ok(checked >= fixture.vectors.length - 3, `${checked} vectors checked`);
  });
});

describe(
  "the generated config assigns each vector's key to its bucket's version",
  needsHaproxy(),
  () => {
    const dir = tempDir("thx-hash-");
    let hx: HaproxyProvider;
    let v1: Upstream;
    let v2: Upstream;

    before(async () => {
      [v1, v2] = await Promise.all([startUpstream("v1"), startUpstream("v2")]);
      hx = new HaproxyProvider({ dataDir: dir.path });
      await hx.start();
    });

    after(async () => {
      await hx?.stop();
      await Promise.all([v1?.close(), v2?.close()]);
      dir.remove();
    });

    test("sticky on a header, 37.5 % on the canary: each key on the version its bucket owns", async () => {
      const port = await freePort();
      const salt = "fraud-model";
      const t: RouteTable = {
        service: "vectors",
        revision: 1,
        listen: { host: "127.0.0.1", port },
        hashVersion: fixture.hashVersion,
        stickiness: { header: "x-user", salt },
        // Canary first: buckets [0, 375000) go to v2, the rest to v1.
        backends: [
          { version: "v2", weight: 37.5, endpoints: [v2.url] },
          { version: "v1", weight: 62.5, endpoints: [v1.url] },
        ],
        policy: DEFAULT_TRAFFIC_POLICY,
        updatedAt: 0,
        traffic: { haproxy: {} },
      };
      const [out] = await hx.apply([t]);
      assert.ok(out!.ok, out!.ok ? "" : out!.error.message);
      const keys = fixture.vectors.filter(
        (v) => v.salt === salt && v.key !== "" && /^[\x21-\x7e]+$/.test(v.key),
      );
      assert.ok(keys.length >= 3);
      const seen = new Set<string>();
      for (const v of keys) {
        const want = v.bucket < 375_000 ? "v2" : "v1";
        for (let i = 0; i < 2; i++) {
          const got = await new Promise<string>((resolve, reject) => {
            http
              .get(
                { host: "127.0.0.1", port, headers: { "x-user": v.key }, agent: false },
                (res) => {
                  res.resume();
                  resolve(String(res.headers["x-turnout-version"]));
                },
              )
              .on("error", reject);
          });
          assert.equal(got, want, `key ${v.key} (bucket ${v.bucket})`);
        }
        seen.add(want);
      }
      // 100 more keys, checked against the TypeScript port: both versions are reached.
      for (let i = 0; i < 100; i++) {
        const key = `user-${i}`;
        const want = haproxyBucketOf(salt, key) < 375_000 ? "v2" : "v1";
        const r = await rawRequest(port, "/", { "x-user": key });
        assert.match(r.headers, new RegExp(`\\r\\nx-served-by: ${want}\\r\\n`, "i"), key);
        seen.add(want);
      }
      assert.deepEqual([...seen].sort(), ["v1", "v2"]);
      // An empty key is no key, as with the router: those requests follow the weighted split.
      const split = new Map<string, number>();
      for (let i = 0; i < 40; i++) {
        const r = await rawRequest(port, "/", { "x-user": "" });
        const v = /\r\nx-served-by: (\S+)\r\n/i.exec(r.headers)?.[1] ?? "none";
        split.set(v, (split.get(v) ?? 0) + 1);
      }
      const onV2 = split.get("v2") ?? 0;
      assert.equal((split.get("v1") ?? 0) + onV2, 40, JSON.stringify([...split]));
      // 37.5 % of 40 is 15; the split's sequence is even to within a few requests.
      assert.ok(onV2 >= 12 && onV2 <= 18, JSON.stringify([...split]));
    });
  },
);

// Writes test/fixtures/haproxy-hash-vectors.json: test vectors of HAProxy's sticky hash,
// `haproxy-xxh32-v1` (src/traffic/haproxy/hash.ts), for other languages and tools
// (`npx tsx scripts/gen-haproxy-hash-vectors.ts`). The salt and key pairs are the router's
// (test/fixtures/hashing-vectors.json), so the two files show the same keys under both
// schemes. Checked three ways: `python3 scripts/check-haproxy-hash-vectors.py` against the
// reference C library (libxxhash, Debian's libxxhash0; all vectors agreed when it was written),
// src/traffic/haproxy/hash.test.ts through a real HAProxy's converters, and against xxHash's own
// published values there. Never regenerate v1 with different values: that would move users.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { BUCKET_SCALE } from "../src/core/hashing.js";
import { HAPROXY_HASH_SCHEMES, xxh32 } from "../src/traffic/haproxy/hash.js";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "..", "test", "fixtures");
const router = JSON.parse(readFileSync(join(fixtures, "hashing-vectors.json"), "utf8")) as {
  vectors: { salt: string; key: string; bucket: number }[];
};

const hashVersion = 1;
const scheme = HAPROXY_HASH_SCHEMES[hashVersion]!;
const vectors = router.vectors.map(({ salt, key, bucket: routerBucket }) => {
  const seed = xxh32(salt);
  const h = xxh32(key, seed);
  const bucket = scheme.bucket(salt, key);
  if (bucket !== Math.floor((h * BUCKET_SCALE) / 2 ** 32)) {
    throw new Error(`bucket disagreement for ${JSON.stringify([salt, key])}`);
  }
  return { salt, key, seed, xxh32: h, bucket, routerBucket };
});

const fixture = {
  scheme: scheme.name,
  hashVersion,
  algorithm: scheme.algorithm,
  bucketScale: BUCKET_SCALE,
  haproxy: scheme.converters("<salt>").replace(/xxh32\(\d+\)/, "xxh32(<seed>)"),
  note: "XXH32 is the unsigned 32-bit xxHash of the bytes (UTF-8 for text), with the seed given. seed = XXH32(utf8(salt), 0); xxh32 = XXH32(utf8(key), seed); bucket = floor(xxh32 * bucketScale / 2^32). A weight of w percent owns w * 10000 consecutive buckets, backends in route table order (canary first), as with the built-in router. routerBucket is the same key's bucket under the built-in router's hash version 1 (hashing-vectors.json), for comparison: a key may land on another version when a service moves between providers. HAProxy treats an empty key as no key (the request follows the split).",
  vectors,
};

const out = join(fixtures, "haproxy-hash-vectors.json");
writeFileSync(out, `${JSON.stringify(fixture, null, 2)}\n`);
console.log(`wrote ${vectors.length} vectors to ${out}`);

// Writes test/fixtures/hashing-vectors.json: sticky hashing v1 test vectors for other languages
// (`npx tsx scripts/gen-hash-vectors.ts`). Every value is computed twice, by the router's
// streaming hash (src/core/hashing.ts) and by a plain byte-at-a-time MurmurHash3 over
// `Buffer.from(input, "utf8")` below; the script refuses to write if they disagree. The
// implementation itself is pinned to the published MurmurHash3_x86_32 vectors in
// src/core/hashing.test.ts, and `perl scripts/check-hash-vectors.pl` checks this file with an
// independent implementation (Debian's Digest::MurmurHash3::PurePerl; all vectors agreed when
// it was written). Never regenerate v1 with different values: that would move users.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { BUCKET_SCALE, bucketOf, HASH_VERSIONS, murmur3 } from "../src/core/hashing.js";

/** The reference: aappleby's MurmurHash3_x86_32 transcribed directly, over bytes. */
function referenceMurmur3(bytes: Uint8Array, seed = 0): number {
  let h = seed >>> 0;
  const blocks = bytes.length - (bytes.length % 4);
  const rotl = (x: number, r: number) => ((x << r) | (x >>> (32 - r))) >>> 0;
  for (let i = 0; i < blocks; i += 4) {
    let k =
      (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)) >>> 0;
    k = Math.imul(k, 0xcc9e2d51) >>> 0;
    k = rotl(k, 15);
    k = Math.imul(k, 0x1b873593) >>> 0;
    h = (h ^ k) >>> 0;
    h = rotl(h, 13);
    h = (Math.imul(h, 5) + 0xe6546b64) >>> 0;
  }
  let k = 0;
  const tail = bytes.length & 3;
  if (tail >= 3) k ^= bytes[blocks + 2]! << 16;
  if (tail >= 2) k ^= bytes[blocks + 1]! << 8;
  if (tail >= 1) {
    k ^= bytes[blocks]!;
    k = Math.imul(k, 0xcc9e2d51) >>> 0;
    k = rotl(k, 15);
    k = Math.imul(k, 0x1b873593) >>> 0;
    h = (h ^ k) >>> 0;
  }
  h = (h ^ bytes.length) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

// A deterministic long key with every UTF-8 length (1, 2, 3 and 4 bytes) in it.
const mixedLong = Array.from({ length: 40 }, (_, i) => `k${i}é漢😀`).join("/");

const cases: [salt: string, key: string][] = [
  // ASCII, including inputs whose UTF-8 length leaves a tail of 0, 1, 2 and 3 bytes.
  ["fraud-model", "user-42"],
  ["fraud-model", "user-43"],
  ["fraud-model", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"],
  ["checkout", "alice@example.com"],
  ["checkout", "a"],
  ["checkout", "ab"],
  ["checkout", "abc"],
  ["checkout", "abcd"],
  ["svc", "12345"],
  ["svc", "key with spaces and ; , = % signs"],
  ["svc", "a:b"],
  ["a:b", "c"],
  // Empty parts: the input is still salt + ":" + key.
  ["fraud-model", ""],
  ["", "user-42"],
  ["", ""],
  // Unicode: 2-, 3- and 4-byte UTF-8 sequences, in the key and in the salt.
  ["fraud-model", "josé"],
  ["fraud-model", "naïve café"],
  ["fraud-model", "日本語のユーザー"],
  ["fraud-model", "😀"],
  ["fraud-model", "ππππππππ"],
  ["modèle-fraude", "user-42"],
  ["グループ", "😀👍🏽"],
  // Long keys.
  ["fraud-model", "x".repeat(1000)],
  ["fraud-model", "user-".repeat(100)],
  ["fraud-model", mixedLong],
];

const scheme = HASH_VERSIONS[1]!;
const vectors = cases.map(([salt, key]) => {
  const input = `${salt}:${key}`;
  const h = murmur3(input);
  const ref = referenceMurmur3(Buffer.from(input, "utf8"));
  const bucket = bucketOf(salt, key, 1);
  const refBucket = Math.floor((ref * BUCKET_SCALE) / 2 ** 32);
  if (h !== ref || bucket !== refBucket) {
    throw new Error(
      `hash disagreement for ${JSON.stringify(input)}: ${h}/${ref} ${bucket}/${refBucket}`,
    );
  }
  return { salt, key, input, murmur3: h, bucket };
});

const fixture = {
  hashVersion: scheme.version,
  algorithm: scheme.algorithm,
  bucketScale: BUCKET_SCALE,
  note: "murmur3 is the unsigned 32-bit MurmurHash3_x86_32 (seed 0) of the UTF-8 bytes of input; bucket = floor(murmur3 * bucketScale / 2^32). A weight of w percent owns w * 10000 consecutive buckets, backends in route table order (canary first).",
  vectors,
};

const out = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "test",
  "fixtures",
  "hashing-vectors.json",
);
writeFileSync(out, `${JSON.stringify(fixture, null, 2)}\n`);
console.log(`wrote ${vectors.length} vectors to ${out}`);

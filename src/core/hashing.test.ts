import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { BUCKET_SCALE, bucketOf, HASH_VERSIONS, hashScheme, murmur3 } from "./hashing.js";
import { HASH_VERSION } from "./routes.js";

const SEED = 0x9747b28c;

test("murmur3 matches the published MurmurHash3_x86_32 vectors", () => {
  // From the widely used test list for MurmurHash3_x86_32 (Ian Boyd's, also in many ports'
  // suites), plus the canonical "hello" and "quick brown fox" at seed 0 and the vectors of
  // murmurHash3.js's README. Non-ASCII: "ππππππππ" is 16 UTF-8 bytes.
  const cases: [string | Uint8Array, number, number][] = [
    ["", 0, 0],
    ["", 1, 0x514e28b7],
    ["", 0xffffffff, 0x81f16f39],
    ["\0\0\0\0", 0, 0x2362f9de],
    ["aaaa", SEED, 0x5a97808a],
    ["aaa", SEED, 0x283e0130],
    ["aa", SEED, 0x5d211726],
    ["a", SEED, 0x7fa09ea6],
    ["abcd", SEED, 0xf0478627],
    ["abc", SEED, 0xc84a62dd],
    ["ab", SEED, 0x74875592],
    ["Hello, world!", SEED, 0x24884cba],
    ["ππππππππ", SEED, 0xd58063c1],
    ["a".repeat(256), SEED, 0x37405bdc],
    ["abc", 0, 0xb3dd93fa],
    ["abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 0, 0xee925b90],
    ["The quick brown fox jumps over the lazy dog", SEED, 0x2fa826cd],
    ["The quick brown fox jumps over the lazy dog", 0, 0x2e4ff723],
    ["hello", 0, 0x248bfa47],
    ["I will not buy this record, it is scratched.", 0, 2832214938],
    ["My hovercraft is full of eels.", 25, 2520298415],
    [new Uint8Array(Array.from({ length: 256 }, (_, i) => i)), 0, 3825864278],
    [new Uint8Array(Array.from({ length: 16 }, (_, i) => i)), 0, 420836317],
  ];
  for (const [input, seed, want] of cases) {
    const label = typeof input === "string" ? JSON.stringify(input.slice(0, 30)) : "bytes";
    assert.equal(murmur3(input, seed), want, `${label} seed ${seed}`);
  }
});

test("a string hashes as its UTF-8 bytes, lone surrogates as U+FFFD", () => {
  const strings = [
    "é",
    "日本語",
    "😀",
    "a😀b",
    "\ud800",
    "x\udc00yz",
    "\ud83d",
    "😀\ud83d",
    "abc\u07ff\u0800\uffff",
  ];
  for (const s of strings) {
    assert.equal(murmur3(s), murmur3(Buffer.from(s, "utf8")), JSON.stringify(s));
    assert.equal(murmur3(s, SEED), murmur3(Buffer.from(s, "utf8"), SEED), JSON.stringify(s));
  }
});

test("the streaming hash equals the hash of the bytes for seeded random strings", () => {
  // Mixed alphabets shift the block alignment at every length, including across salt and key.
  let seed = 12345;
  const rand = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const alphabet = ["a", "Z", "0", ":", "é", "ß", "漢", "😀", "\u0000", "~"];
  const pick = (n: number) =>
    Array.from({ length: n }, () => alphabet[Math.floor(rand() * alphabet.length)]).join("");
  for (let i = 0; i < 2000; i++) {
    const salt = pick(Math.floor(rand() * 12));
    const key = pick(Math.floor(rand() * 40));
    const h = murmur3(Buffer.from(`${salt}:${key}`, "utf8"));
    assert.equal(murmur3(`${salt}:${key}`), h);
    assert.equal(bucketOf(salt, key), Math.floor((h * BUCKET_SCALE) / 2 ** 32));
  }
});

test("every vector of test/fixtures/hashing-vectors.json holds", () => {
  const fixture = JSON.parse(
    readFileSync(new URL("../../test/fixtures/hashing-vectors.json", import.meta.url), "utf8"),
  ) as {
    hashVersion: number;
    algorithm: string;
    bucketScale: number;
    vectors: { salt: string; key: string; input: string; murmur3: number; bucket: number }[];
  };
  assert.equal(fixture.hashVersion, 1);
  assert.equal(fixture.bucketScale, BUCKET_SCALE);
  assert.equal(fixture.algorithm, HASH_VERSIONS[1]?.algorithm);
  assert.ok(fixture.vectors.length >= 20);
  const kinds = { empty: false, unicode: false, long: false };
  for (const v of fixture.vectors) {
    const label = JSON.stringify(v.input.slice(0, 40));
    assert.equal(v.input, `${v.salt}:${v.key}`, label);
    assert.equal(murmur3(v.input), v.murmur3, label);
    assert.equal(murmur3(Buffer.from(v.input, "utf8")), v.murmur3, label);
    assert.equal(bucketOf(v.salt, v.key, fixture.hashVersion), v.bucket, label);
    assert.equal(Math.floor((v.murmur3 * fixture.bucketScale) / 2 ** 32), v.bucket, label);
    if (v.key === "") kinds.empty = true;
    if (Buffer.byteLength(v.input) !== v.input.length) kinds.unicode = true;
    if (v.key.length >= 500) kinds.long = true;
  }
  assert.deepEqual(kinds, { empty: true, unicode: true, long: true });
});

test("buckets lie in [0, 1,000,000) and reach both ends of the range", () => {
  let min = Number.POSITIVE_INFINITY;
  let max = -1;
  for (let i = 0; i < 50_000; i++) {
    const b = bucketOf("svc", `user-${i}`);
    assert.ok(Number.isInteger(b) && b >= 0 && b < BUCKET_SCALE);
    if (b < min) min = b;
    if (b > max) max = b;
  }
  assert.ok(min < 100 && max > BUCKET_SCALE - 100, `${min}..${max}`);
});

test("hash versions: v1 is the default, unknown versions throw, the controller's is known", () => {
  assert.equal(bucketOf("s", "k"), bucketOf("s", "k", 1));
  assert.equal(hashScheme(1), HASH_VERSIONS[1]);
  assert.throws(() => bucketOf("s", "k", 2), /unknown sticky hash version 2; this build knows 1/);
  assert.throws(() => hashScheme(0), RangeError);
  assert.throws(() => hashScheme(Number.NaN), RangeError);
  assert.ok(hashScheme(HASH_VERSION));
  assert.ok(Object.isFrozen(HASH_VERSIONS) && Object.isFrozen(HASH_VERSIONS[1]));
});

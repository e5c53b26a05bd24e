/**
 * The sticky hash HAProxy computes, versioned on its own: `haproxy-xxh32-v1`.
 *
 * The built-in router buckets a key with MurmurHash3 (src/core/hashing.ts, hash version 1).
 * HAProxy has no MurmurHash3 converter, and computing it in Lua per request cost about 15 % of
 * HAProxy's requests/s in bench/haproxy.ts (0.73× of HAProxy alone against 0.88× for the same
 * split without it), too much for the speed goal of issue 15. HAProxy's native `xxh32`
 * converter costs next to nothing, so a service carried by HAProxy buckets its keys with it:
 *
 *   seed   = XXH32(utf8(salt), 0)
 *   bucket = floor(XXH32(key bytes, seed) × 1,000,000 / 2^32)
 *
 * in HAProxy `<key>,xxh32(<seed>),mul(1000000),div(4294967296)`: a 64-bit product below 2^52,
 * then an integer division, so the bucket is exact and HAProxy and this module agree on every
 * key. The buckets, their ranges (weight × 10,000 each, canary first) and so the proportions
 * are the router's; only the function that puts a key in a bucket differs. The salt goes in as
 * the seed rather than as a "salt:" prefix of the key: different salts still give independent
 * assignments, and the request path hashes the key once without building a string.
 *
 * What it means: the same key lands in another bucket, so possibly on another version or A/B
 * arm, when a service moves between the built-in router and HAProxy (docs/resources.md,
 * `spec.traffic`). Within one provider an assignment is stable for as long as the scheme is.
 *
 * Versioned like the router's: a route table names its `hashVersion`, and each provider has
 * one scheme per table hash version (`HAPROXY_HASH_SCHEMES`). An entry never changes; a new
 * HAProxy scheme comes with a new table hash version beside it. Test vectors:
 * test/fixtures/haproxy-hash-vectors.json (scripts/gen-haproxy-hash-vectors.ts writes them,
 * scripts/check-haproxy-hash-vectors.py checks them against the reference C library, and
 * hash.test.ts runs them through a real HAProxy).
 *
 * XXH32 is written out below rather than taken from npm. `js-xxhash` (pure JS, Node ≥ 20) would
 * do, and `xxhash-wasm` needs an asynchronous WebAssembly start that a synchronous bucket
 * function cannot wait for; but this code is not on any request path of Turnout (HAProxy hashes
 * the requests), it is thirty lines of a published specification, and the vectors pin it to
 * the reference implementation (libxxhash) and to HAProxy itself, which is what matters. One
 * less dependency of the package for a function only tests and tools call.
 */
import { BUCKET_SCALE } from "../../core/hashing.js";

const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;

const rotl = (x: number, r: number): number => (x << r) | (x >>> (32 - r));
const read32 = (b: Uint8Array, i: number): number =>
  b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
const round = (acc: number, input: number): number =>
  Math.imul(rotl((acc + Math.imul(input, P2)) | 0, 13), P1);

/**
 * XXH32 of a byte string, or of a string's UTF-8 bytes; an unsigned 32-bit integer. The seed is
 * taken modulo 2^32, as HAProxy's `xxh32(<seed>)` does.
 *
 * @example xxh32("abc") === 0x32d153ff
 */
export function xxh32(input: string | Uint8Array, seed = 0): number {
  const b = typeof input === "string" ? Buffer.from(input, "utf8") : input;
  const len = b.length;
  const s = seed | 0;
  let i = 0;
  let h: number;
  if (len >= 16) {
    let v1 = (s + P1 + P2) | 0;
    let v2 = (s + P2) | 0;
    let v3 = s;
    let v4 = (s - P1) | 0;
    for (; i + 16 <= len; i += 16) {
      v1 = round(v1, read32(b, i));
      v2 = round(v2, read32(b, i + 4));
      v3 = round(v3, read32(b, i + 8));
      v4 = round(v4, read32(b, i + 12));
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = (s + P5) | 0;
  }
  h = (h + len) | 0;
  for (; i + 4 <= len; i += 4) {
    h = Math.imul(rotl((h + Math.imul(read32(b, i), P3)) | 0, 17), P4);
  }
  for (; i < len; i++) {
    h = Math.imul(rotl((h + Math.imul(b[i]!, P5)) | 0, 11), P1);
  }
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

/** One HAProxy sticky hashing scheme: what the config computes, and the same in TypeScript. */
export interface HaproxyHashScheme {
  /** Its name, as the docs, the vectors and the generated config call it. */
  readonly name: string;
  /** What it computes, in words other implementations can follow. */
  readonly algorithm: string;
  /** The converters HAProxy applies to the key (a sample of its bytes) to get its bucket. */
  converters(salt: string): string;
  /**
   * The converter HAProxy applies to the key to get its 32-bit hash, before any scaling: the
   * generated config looks the hash up in maps written in hash space (`hashRange`), which saves
   * the two scaling converters per request and gives the same buckets.
   */
  hashConverter(salt: string): string;
  /** Buckets [from, to] as the inclusive range of 32-bit hashes whose bucket is in it. */
  hashRange(from: number, to: number): [number, number];
  /** The bucket of `key` with `salt`, in [0, 1,000,000): what HAProxy computes. */
  bucket(salt: string, key: string | Uint8Array): number;
}

const TWO_POW_32 = 4_294_967_296;

/** ceil(b × 2^32 / 10^6), exactly. */
function ceilDiv(b: number): number {
  const n = BigInt(b) * BigInt(TWO_POW_32);
  const d = BigInt(BUCKET_SCALE);
  return Number((n + d - 1n) / d);
}

const XXH32_V1: HaproxyHashScheme = Object.freeze({
  name: "haproxy-xxh32-v1",
  algorithm: "seed = XXH32(utf8(salt), 0); bucket = floor(XXH32(key bytes, seed) * 1000000 / 2^32)",
  converters: (salt: string) => `xxh32(${xxh32(salt)}),mul(${BUCKET_SCALE}),div(${TWO_POW_32})`,
  hashConverter: (salt: string) => `xxh32(${xxh32(salt)})`,
  // bucket(h) = floor(h × 10^6 / 2^32) = b  <=>  ceil(b × 2^32 / 10^6) <= h < ceil((b + 1) × 2^32 / 10^6).
  // BigInt: b × 2^32 reaches 4.3e15, and the ceiling must be exact.
  hashRange: (from: number, to: number): [number, number] => [ceilDiv(from), ceilDiv(to + 1) - 1],
  // h × 10^6 < 2^53 and dividing by 2^32 is exact in binary: no rounding anywhere.
  bucket: (salt: string, key: string | Uint8Array) =>
    Math.floor((xxh32(key, xxh32(salt)) * BUCKET_SCALE) / TWO_POW_32),
});

/**
 * HAProxy's scheme for each route-table hash version (core/hashing.ts `HASH_VERSIONS` is the
 * router's). Never change an entry: add the next one beside it, so that tables written with an
 * older version keep their users where they are.
 */
export const HAPROXY_HASH_SCHEMES: Readonly<Record<number, HaproxyHashScheme>> = Object.freeze({
  1: XXH32_V1,
});

/** HAProxy's scheme for a table hash version, or undefined when this build has none. */
export function haproxyHashScheme(hashVersion: number): HaproxyHashScheme | undefined {
  return Object.hasOwn(HAPROXY_HASH_SCHEMES, hashVersion)
    ? HAPROXY_HASH_SCHEMES[hashVersion]
    : undefined;
}

/**
 * The bucket HAProxy gives `key` for a table of `hashVersion`; throws a RangeError for a
 * version this build has no HAProxy scheme for.
 *
 * @example haproxyBucketOf("fraud-model", "user-42") // what HAProxy computes for that key
 */
export function haproxyBucketOf(salt: string, key: string, hashVersion = 1): number {
  const scheme = haproxyHashScheme(hashVersion);
  if (scheme === undefined) {
    throw new RangeError(
      `no haproxy sticky hash for table hash version ${hashVersion}; this build knows ${Object.keys(HAPROXY_HASH_SCHEMES).join(", ")}`,
    );
  }
  return scheme.bucket(salt, key);
}

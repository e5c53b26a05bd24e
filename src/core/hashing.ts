/**
 * Sticky assignment hashing: which of 1,000,000 buckets a request's key falls in. Pure and
 * versioned: a table names the `hashVersion` it was built with, and every scheme that has ever
 * shipped stays in `HASH_VERSIONS` under its number, so changing the scheme later means adding
 * v2 beside v1 (as GrowthBook keeps its v1 beside v2), never editing v1 and moving every user.
 * `test/fixtures/hashing-vectors.json` pins v1 byte for byte so other languages can agree.
 *
 * MurmurHash3 is written here rather than taken from npm: it is thirty lines, it runs on the
 * router's hot path (once per sticky request), and it must be byte-exact with the published
 * vectors over UTF-8. The npm ports looked at either read `charCodeAt(i) & 0xff` of a string
 * (`murmurhash`, `murmurhash-js`, `murmurhash3js`: right for ASCII only) or take bytes that the
 * caller must encode first (`murmurhash3js-revisited`: a buffer per request). Neither is worth a
 * dependency.
 */

/** Number of sticky buckets: a weight of w percent owns w × 10,000 of them. */
export const BUCKET_SCALE = 1_000_000;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const TWO_POW_32 = 4_294_967_296;

// The streaming state of one hash. Module-level rather than an object per call: a hash runs
// synchronously from start to end, so no two can interleave, and the hot path allocates
// nothing (not even the UTF-8 bytes, which are produced on the fly from the UTF-16 string).
// `mixString` copies it into locals for its loop, which V8 keeps in registers.
let stateH = 0;
/** Bytes of an unfinished block, lowest first. */
let stateK = 0;
/** Number of bytes in `stateK` (0..3). */
let statePending = 0;
/** Total bytes hashed, for the finalisation. */
let stateLength = 0;

function start(seed: number): void {
  stateH = seed | 0;
  stateK = 0;
  statePending = 0;
  stateLength = 0;
}

function mixBlock(h: number, k: number): number {
  let x = Math.imul(k, C1);
  x = (x << 15) | (x >>> 17);
  x = Math.imul(x, C2);
  const y = h ^ x;
  return (Math.imul((y << 13) | (y >>> 19), 5) + 0xe6546b64) | 0;
}

function mixByte(b: number): void {
  stateK |= b << (statePending << 3);
  stateLength++;
  if (++statePending < 4) return;
  stateH = mixBlock(stateH, stateK);
  stateK = 0;
  statePending = 0;
}

/**
 * Feeds the UTF-8 encoding of `s`, as `Buffer.from(s, "utf8")` and `TextEncoder` produce it
 * (a lone surrogate becomes U+FFFD, EF BF BD), so that JavaScript strings hash like the same
 * text in any language that hashes its UTF-8 bytes.
 */
function mixString(s: string): void {
  let h = stateH;
  let k = stateK;
  let p = statePending;
  let len = stateLength;
  const n = s.length;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (p === 0 && i + 3 < n) {
      // Common case: four ASCII characters make one whole block.
      const c1 = s.charCodeAt(i + 1);
      const c2 = s.charCodeAt(i + 2);
      const c3 = s.charCodeAt(i + 3);
      if ((c | c1 | c2 | c3) < 0x80) {
        h = mixBlock(h, c | (c1 << 8) | (c2 << 16) | (c3 << 24));
        i += 4;
        len += 4;
        continue;
      }
    }
    if (c < 0x80) {
      k |= c << (p << 3);
      len++;
      if (++p === 4) {
        h = mixBlock(h, k);
        k = 0;
        p = 0;
      }
      i++;
      continue;
    }
    // Rare: a non-ASCII character; through the state, one byte at a time.
    stateH = h;
    stateK = k;
    statePending = p;
    stateLength = len;
    if (c < 0x800) {
      mixByte(0xc0 | (c >> 6));
      mixByte(0x80 | (c & 0x3f));
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        mixByte(0xf0 | (cp >> 18));
        mixByte(0x80 | ((cp >> 12) & 0x3f));
        mixByte(0x80 | ((cp >> 6) & 0x3f));
        mixByte(0x80 | (cp & 0x3f));
      } else {
        mixByte(0xef);
        mixByte(0xbf);
        mixByte(0xbd);
      }
    } else {
      mixByte(0xe0 | (c >> 12));
      mixByte(0x80 | ((c >> 6) & 0x3f));
      mixByte(0x80 | (c & 0x3f));
    }
    h = stateH;
    k = stateK;
    p = statePending;
    len = stateLength;
    i++;
  }
  stateH = h;
  stateK = k;
  statePending = p;
  stateLength = len;
}

function finish(): number {
  let h = stateH;
  if (statePending > 0) {
    let k = Math.imul(stateK, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= stateLength;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * MurmurHash3_x86_32 of a byte string, or of a string's UTF-8 bytes; an unsigned 32-bit integer.
 *
 * @example murmur3("hello") === 0x248bfa47
 */
export function murmur3(input: string | Uint8Array, seed = 0): number {
  start(seed);
  if (typeof input === "string") mixString(input);
  else for (let i = 0; i < input.length; i++) mixByte(input[i]!);
  return finish();
}

/** One sticky hashing scheme: maps a salt and a key to a bucket in [0, BUCKET_SCALE). */
export interface HashScheme {
  readonly version: number;
  /** What the scheme computes, in words other implementations can follow. */
  readonly algorithm: string;
  bucket(salt: string, key: string): number;
}

/** v1: floor(murmur3_x86_32(utf8(salt + ":" + key), seed 0) × 1,000,000 / 2^32). */
function bucketV1(salt: string, key: string): number {
  // Hashing the three parts in sequence is the hash of their concatenation, without building it.
  start(0);
  mixString(salt);
  mixByte(0x3a /* ":" */);
  mixString(key);
  // h × 10^6 < 2^53 and dividing by 2^32 is exact in binary: no rounding anywhere.
  return Math.floor((finish() * BUCKET_SCALE) / TWO_POW_32);
}

/**
 * Every sticky hashing scheme that has shipped, by version. Never change an entry: add the next
 * version beside it, so tables written with an older version keep their users where they are.
 */
export const HASH_VERSIONS: Readonly<Record<number, HashScheme>> = Object.freeze({
  1: Object.freeze({
    version: 1,
    algorithm:
      'MurmurHash3_x86_32, seed 0, over the UTF-8 bytes of salt + ":" + key; bucket = floor(hash * 1000000 / 2^32)',
    bucket: bucketV1,
  }),
});

/** The scheme of a hash version; throws a RangeError for a version this build does not know. */
export function hashScheme(hashVersion: number): HashScheme {
  const scheme = Object.hasOwn(HASH_VERSIONS, hashVersion) ? HASH_VERSIONS[hashVersion] : undefined;
  if (scheme === undefined) {
    throw new RangeError(
      `unknown sticky hash version ${hashVersion}; this build knows ${Object.keys(HASH_VERSIONS).join(", ")}`,
    );
  }
  return scheme;
}

/**
 * The sticky bucket of `key`, in [0, 1,000,000).
 *
 * @example bucketOf("fraud-model", "user-42") // same number in every process, every language
 */
export function bucketOf(salt: string, key: string, hashVersion = 1): number {
  return hashScheme(hashVersion).bucket(salt, key);
}

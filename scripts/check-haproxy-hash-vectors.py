#!/usr/bin/env python3
"""Checks test/fixtures/haproxy-hash-vectors.json against the reference xxHash C library.

    python3 scripts/check-haproxy-hash-vectors.py [test/fixtures/haproxy-hash-vectors.json]

Loads libxxhash (Debian: apt-get install libxxhash0) through ctypes and recomputes every
vector's seed, XXH32 and bucket. Exits 1 on any disagreement. Not part of `npm test` (it needs
the library); hash.test.ts checks the same file through a real HAProxy.
"""
import ctypes
import ctypes.util
import json
import sys

name = ctypes.util.find_library("xxhash") or "libxxhash.so.0"
lib = ctypes.CDLL(name)
lib.XXH32.restype = ctypes.c_uint32
lib.XXH32.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32]
lib.XXH_versionNumber.restype = ctypes.c_uint


def xxh32(data: bytes, seed: int) -> int:
    return lib.XXH32(data, len(data), seed)


path = sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/haproxy-hash-vectors.json"
with open(path, encoding="utf-8") as f:
    fixture = json.load(f)
scale = fixture["bucketScale"]
ok = bad = 0
for v in fixture["vectors"]:
    seed = xxh32(v["salt"].encode("utf-8"), 0)
    h = xxh32(v["key"].encode("utf-8"), seed)
    bucket = h * scale // 2**32
    if (seed, h, bucket) == (v["seed"], v["xxh32"], v["bucket"]):
        ok += 1
    else:
        bad += 1
        print(f"MISMATCH {v['salt']!r} {v['key'][:40]!r}: {seed}/{v['seed']} {h}/{v['xxh32']} {bucket}/{v['bucket']}")
version = lib.XXH_versionNumber()
print(f"libxxhash {version // 10000}.{version // 100 % 100}.{version % 100} agrees on {ok} vectors, disagrees on {bad}")
sys.exit(0 if bad == 0 else 1)

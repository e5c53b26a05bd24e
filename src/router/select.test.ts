import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bucketOf } from "../core/hashing.js";
import type { RouteTable } from "../core/model.js";
import { UpstreamPools } from "./pools.js";
import {
  cookieValue,
  pathHasPrefix,
  queryValue,
  type SelectableRequest,
  type SelectOutput,
  selectBackend,
} from "./select.js";
import { MeasurementRecorder } from "./stats.js";
import { type CompiledTable, compileTable } from "./table.js";

const pools = new UpstreamPools({
  headersTimeoutMs: 1000,
  bodyTimeoutMs: 1000,
  connectTimeoutMs: 1000,
});
test.after(() => pools.closeAll());
const recorder = new MeasurementRecorder();

function compile(extra: Partial<RouteTable> & Pick<RouteTable, "backends">): CompiledTable {
  const { table, problems } = compileTable(
    {
      service: "svc",
      revision: 1,
      listen: { host: "127.0.0.1", port: 0 },
      hashVersion: 1,
      updatedAt: 0,
      ...extra,
    },
    { pools, counters: (v) => recorder.series("svc", v) },
  );
  assert.deepEqual(problems, []);
  return table;
}

/** Canary first, as the controller orders them. */
const split = (canary: number, canaryEndpoints = ["http://127.0.0.1:2"]) => [
  { version: "v2", weight: canary, endpoints: canaryEndpoints },
  { version: "v1", weight: 100 - canary, endpoints: ["http://127.0.0.1:1"] },
];

function req(headers: Record<string, string | string[]> = {}, url = "/"): SelectableRequest {
  const rawHeaders: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) rawHeaders.push(name, v);
  }
  return { rawHeaders, url };
}

const out: SelectOutput = { setCookie: null };
function pick(table: CompiledTable, r: SelectableRequest): string | null {
  return selectBackend(table, r, out)?.version ?? null;
}

/** Seeded, distinct keys shaped like the ids services use. */
function seededKeys(n: number, seed: number): string[] {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s.toString(16).padStart(8, "0");
  };
  const keys = new Set<string>();
  while (keys.size < n) keys.add(`${next()}-${next()}`);
  return [...keys];
}

describe("the weighted split (no selection features)", () => {
  test("is SWRR, exact over 10,000 requests", () => {
    const table = compile({ backends: split(10) });
    let v2 = 0;
    for (let i = 0; i < 10_000; i++) if (pick(table, req()) === "v2") v2++;
    assert.equal(v2, 1000);
    assert.equal(out.setCookie, null);
  });
});

describe("override", () => {
  const backends = [
    { version: "preview", weight: 0, endpoints: ["http://127.0.0.1:3"] },
    { version: "v2", weight: 0, endpoints: [] },
    { version: "v1", weight: 100, endpoints: ["http://127.0.0.1:1"] },
  ];

  test("on: x-turnout-version picks a version with endpoints, weight 0 included", () => {
    const table = compile({ backends, versionOverride: true });
    assert.equal(pick(table, req({ "x-turnout-version": "preview" })), "preview");
    assert.equal(pick(table, req({ "X-Turnout-Version": "preview" })), "preview");
    // A version without endpoints, or unknown: ignored, the split decides.
    assert.equal(pick(table, req({ "x-turnout-version": "v2" })), "v1");
    assert.equal(pick(table, req({ "x-turnout-version": "nope" })), "v1");
    assert.equal(pick(table, req({ "x-turnout-version": "Preview" })), "v1");
  });

  test("off: the header is ignored", () => {
    const table = compile({
      backends,
      matches: [{ pathPrefix: "/never", version: "preview" }],
    });
    assert.equal(pick(table, req({ "x-turnout-version": "preview" })), "v1");
  });
});

describe("match rules", () => {
  const backends = [{ version: "beta", weight: 0, endpoints: ["http://127.0.0.1:3"] }, ...split(0)];
  const only = (rule: Omit<NonNullable<RouteTable["matches"]>[number], "version">) =>
    compile({ backends, matches: [{ ...rule, version: "beta" }] });

  test("header equals, regex and exists; names case-insensitive, first occurrence", () => {
    const eq = only({ header: { name: "X-Group", equals: "testers" } });
    assert.equal(pick(eq, req({ "x-group": "testers" })), "beta");
    assert.equal(pick(eq, req({ "X-GROUP": "testers" })), "beta");
    assert.equal(pick(eq, req({ "x-group": "Testers" })), "v1", "values are case-sensitive");
    assert.equal(pick(eq, req({ "x-group": ["users", "testers"] })), "v1");
    assert.equal(pick(eq, req()), "v1");

    const re = only({ header: { name: "user-agent", regex: "^Mozilla/\\d{1,3}\\.\\d" } });
    assert.equal(pick(re, req({ "User-Agent": "Mozilla/5.0 (X11)" })), "beta");
    assert.equal(pick(re, req({ "User-Agent": "curl/8.0" })), "v1");
    // Values over MAX_MATCH_VALUE_LENGTH (16 KiB) never match a regex: the cap bounds the work of a user's pattern.
    assert.equal(pick(re, req({ "User-Agent": `Mozilla/5.0 ${"x".repeat(16 * 1024)}` })), "v1");

    const has = only({ header: { name: "x-debug", exists: true } });
    assert.equal(pick(has, req({ "x-debug": "" })), "beta");
    assert.equal(pick(has, req()), "v1");
    const hasNot = only({ header: { name: "x-debug", exists: false } });
    assert.equal(pick(hasNot, req()), "beta");
    assert.equal(pick(hasNot, req({ "X-Debug": "1" })), "v1");
  });

  test("cookie equals, regex and exists; names case-sensitive", () => {
    const eq = only({ cookie: { name: "group", equals: "beta" } });
    assert.equal(pick(eq, req({ cookie: "a=1; group=beta; b=2" })), "beta");
    assert.equal(pick(eq, req({ cookie: 'group="beta"' })), "beta");
    assert.equal(pick(eq, req({ cookie: ["a=1", "group=beta"] })), "beta");
    assert.equal(pick(eq, req({ cookie: "Group=beta" })), "v1");
    assert.equal(pick(eq, req({ cookie: "xgroup=beta; group=alpha" })), "v1");
    assert.equal(pick(eq, req({ "x-group": "beta" })), "v1");

    const re = only({ cookie: { name: "uid", regex: "^qa-" } });
    assert.equal(pick(re, req({ Cookie: "uid=qa-17" })), "beta");
    assert.equal(pick(re, req({ Cookie: "uid=u-17" })), "v1");

    const has = only({ cookie: { name: "preview", exists: true } });
    assert.equal(pick(has, req({ cookie: "preview=" })), "beta");
    assert.equal(pick(has, req({ cookie: "previews=1" })), "v1");
    const hasNot = only({ cookie: { name: "preview", exists: false } });
    assert.equal(pick(hasNot, req({ cookie: "other=1" })), "beta");
  });

  test("pathPrefix matches whole segments of the path, not the query", () => {
    const p = only({ pathPrefix: "/beta" });
    for (const url of ["/beta", "/beta/", "/beta/x/y", "/beta?x=1", "http://h:1/beta/x"]) {
      assert.equal(pick(p, req({}, url)), "beta", url);
    }
    for (const url of ["/betamax", "/", "/x/beta", "/?p=/beta", "/Beta"]) {
      assert.equal(pick(p, req({}, url)), "v1", url);
    }
    const slash = only({ pathPrefix: "/api/" });
    assert.equal(pick(slash, req({}, "/api/v1")), "beta");
    assert.equal(pick(slash, req({}, "/api")), "v1");
    const root = only({ pathPrefix: "/" });
    assert.equal(pick(root, req({}, "/anything")), "beta");
  });

  test("all the conditions of a rule must hold; the first rule that holds wins", () => {
    const table = compile({
      backends: [
        { version: "a", weight: 0, endpoints: ["http://127.0.0.1:4"] },
        { version: "b", weight: 0, endpoints: ["http://127.0.0.1:5"] },
        ...split(0),
      ],
      matches: [
        {
          header: { name: "x-team", equals: "ml" },
          cookie: { name: "tester", exists: true },
          pathPrefix: "/predict",
          version: "a",
        },
        { header: { name: "x-team", exists: true }, version: "b" },
      ],
    });
    const all = { "x-team": "ml", cookie: "tester=1" };
    assert.equal(pick(table, req(all, "/predict")), "a");
    assert.equal(pick(table, req(all, "/other")), "b");
    assert.equal(pick(table, req({ "x-team": "ml" }, "/predict")), "b");
    assert.equal(pick(table, req({ cookie: "tester=1" }, "/predict")), "v1");
  });

  test("a rule whose version has no endpoints falls through", () => {
    const table = compile({
      backends: [{ version: "beta", weight: 0, endpoints: [] }, ...split(0)],
      matches: [
        { header: { name: "x-beta", exists: true }, version: "beta" },
        { header: { name: "x-beta", exists: true }, version: "v2" },
      ],
    });
    assert.equal(pick(table, req({ "x-beta": "1" })), "v2");
  });
});

describe("precedence", () => {
  test("override, then match rules, then the sticky key, then the split", () => {
    const table = compile({
      backends: [
        { version: "preview", weight: 0, endpoints: ["http://127.0.0.1:3"] },
        { version: "pinned", weight: 0, endpoints: ["http://127.0.0.1:4"] },
        ...split(50),
      ],
      versionOverride: true,
      matches: [{ header: { name: "x-pin", exists: true }, version: "pinned" }],
      stickiness: { header: "x-user-id", salt: "svc" },
    });
    const key = seededKeys(50, 1).find((k) => bucketOf("svc", k) >= 500_000)!;
    const everything = { "x-turnout-version": "preview", "x-pin": "1", "x-user-id": key };
    assert.equal(pick(table, req(everything)), "preview");
    const { "x-turnout-version": _o, ...noOverride } = everything;
    assert.equal(pick(table, req(noOverride)), "pinned");
    const { "x-pin": _p, ...keyOnly } = noOverride;
    for (let i = 0; i < 10; i++) assert.equal(pick(table, req(keyOnly)), "v1");
    const seen = new Set<string | null>();
    for (let i = 0; i < 4; i++) seen.add(pick(table, req()));
    assert.deepEqual([...seen].sort(), ["v1", "v2"], "no key: the 50/50 split alternates");
  });
});

describe("sticky assignment", () => {
  const keys = seededKeys(10_000, 42);

  test("the key's bucket picks the owner of its range, at 0.01%, 50% and 99.99%", () => {
    for (const canary of [0.01, 50, 99.99]) {
      const table = compile({
        backends: split(canary),
        stickiness: { header: "x-user-id", salt: "fraud-model" },
      });
      const end = Math.round(canary * 10_000);
      for (const key of keys.slice(0, 2000)) {
        const want = bucketOf("fraud-model", key) < end ? "v2" : "v1";
        assert.equal(pick(table, req({ "x-user-id": key })), want, `${canary}% ${key}`);
      }
    }
  });

  test("range boundaries are exact: a key moves when the weight passes its bucket", () => {
    for (const key of keys.slice(0, 50)) {
      const b = bucketOf("svc", key);
      if (b === 0 || b >= 999_999) continue;
      // The canary owns [0, weight × 10,000): bucket b is outside at b / 10,000 %, inside one
      // bucket later.
      const at = (w: number) =>
        pick(
          compile({ backends: split(w), stickiness: { header: "x-user-id", salt: "svc" } }),
          req({ "x-user-id": key }),
        );
      assert.equal(at(b / 10_000), "v1", `${key} bucket ${b}`);
      assert.equal(at((b + 1) / 10_000), "v2", `${key} bucket ${b}`);
    }
  });

  test("users on the canary stay there as its weight grows 1 -> 5 -> 50 -> 100", () => {
    let previous = new Set<string>();
    for (const canary of [1, 5, 50, 100]) {
      const table = compile({
        backends: split(canary),
        stickiness: { header: "x-user-id", salt: "svc" },
      });
      const onCanary = new Set(keys.filter((k) => pick(table, req({ "x-user-id": k })) === "v2"));
      for (const k of previous) assert.ok(onCanary.has(k), `${k} left the canary at ${canary}%`);
      previous = onCanary;
    }
    assert.equal(previous.size, keys.length);
  });

  test("split accuracy over 10,000 distinct seeded keys", () => {
    // The ranges are exact (w × 10,000 of 1,000,000 buckets); what a sample of keys sees
    // varies as a binomial around them: sd = sqrt(w(1 - w) / n), 0.5 points at 50% for 10,000
    // keys. So 0.5 points is asserted where it is a meaningful bound (sd <= 0.1 points: weights
    // up to 1% and from 99%), and 4 sd everywhere, on two key sets.
    for (const seed of [42, 7]) {
      const sample = seed === 42 ? keys : seededKeys(10_000, seed);
      const buckets = sample.map((k) => bucketOf("svc", k));
      for (const canary of [0.01, 0.1, 1, 5, 10, 25, 50, 75, 90, 99, 99.99]) {
        const table = compile({
          backends: split(canary),
          stickiness: { header: "x-user-id", salt: "svc" },
        });
        let n = 0;
        for (const k of sample) if (pick(table, req({ "x-user-id": k })) === "v2") n++;
        const share = (100 * n) / sample.length;
        const p = canary / 100;
        const sd = 100 * Math.sqrt((p * (1 - p)) / sample.length);
        const dev = Math.abs(share - canary);
        if (sd <= 0.1) assert.ok(dev <= 0.5, `seed ${seed}, ${canary}%: got ${share}%`);
        assert.ok(dev <= Math.max(4 * sd, 0.01), `seed ${seed}, ${canary}%: got ${share}%`);
        assert.equal(n, buckets.filter((b) => b < canary * 10_000).length);
      }
    }
  });

  test("without a key (or with an empty one) the split decides, exactly", () => {
    const table = compile({ backends: split(10), stickiness: { header: "x-user-id", salt: "s" } });
    let v2 = 0;
    for (let i = 0; i < 10_000; i++) {
      const r = i % 2 === 0 ? req() : req({ "x-user-id": "" });
      if (pick(table, r) === "v2") v2++;
    }
    assert.equal(v2, 1000);
  });

  test("sticky requests leave the split's sequence alone", () => {
    const table = compile({ backends: split(10), stickiness: { header: "x-user-id", salt: "s" } });
    let v2 = 0;
    for (let i = 0; i < 10_000; i++) {
      pick(table, req({ "x-user-id": keys[i]! }));
      if (pick(table, req()) === "v2") v2++;
    }
    assert.equal(v2, 1000);
  });

  test("a canary without endpoints sends its users to the split until it is back", () => {
    const key = keys.find((k) => bucketOf("svc", k) < 100_000)!;
    const stickiness = { header: "x-user-id", salt: "svc" };
    const down = compile({ backends: split(10, []), stickiness });
    assert.equal(pick(down, req({ "x-user-id": key })), "v1");
    const up = compile({ backends: split(10), stickiness });
    assert.equal(pick(up, req({ "x-user-id": key })), "v2");
  });

  test("query parameter keys are form-decoded; they hash like the same header key", () => {
    const byQuery = compile({ backends: split(50), stickiness: { query: "user", salt: "svc" } });
    const byHeader = compile({ backends: split(50), stickiness: { header: "x-u", salt: "svc" } });
    for (const k of keys.slice(0, 200)) {
      assert.equal(pick(byQuery, req({}, `/p?a=1&user=${k}`)), pick(byHeader, req({ "x-u": k })));
    }
    const spaced = pick(byHeader, req({ "x-u": "a b/c" }));
    assert.equal(pick(byQuery, req({}, "/?user=a+b%2Fc")), spaced);
    assert.equal(pick(byQuery, req({}, "/?user=a%20b/c#frag")), spaced);
  });

  test("cookie stickiness issues a cookie once, and the client then sticks", () => {
    const table = compile({ backends: split(50), stickiness: { cookie: "tid", salt: "svc" } });
    const ids = new Set<string>();
    for (let client = 0; client < 200; client++) {
      const first = selectBackend(table, req(), out)?.version;
      const setCookie = out.setCookie;
      assert.ok(setCookie !== null);
      const m = /^tid=([0-9a-f-]{36}); Path=\/; Max-Age=31536000; HttpOnly; SameSite=Lax$/.exec(
        setCookie,
      );
      assert.ok(m, setCookie);
      ids.add(m[1]!);
      for (let i = 0; i < 5; i++) {
        assert.equal(pick(table, req({ cookie: `other=1; tid=${m[1]}` })), first);
        assert.equal(out.setCookie, null, "a client with the cookie gets no new one");
      }
    }
    assert.equal(ids.size, 200);
    // The first requests spread like any keys do: both versions get clients.
    const firsts = new Set<string | null>();
    for (let i = 0; i < 50; i++) firsts.add(pick(table, req()));
    assert.equal(firsts.size, 2);
    // An empty cookie is no key: a new one is issued.
    pick(table, req({ cookie: "tid=" }));
    assert.ok(out.setCookie?.startsWith("tid="));
  });

  test("a cookie is issued whichever step picks the version", () => {
    const table = compile({
      backends: [{ version: "beta", weight: 0, endpoints: ["http://127.0.0.1:3"] }, ...split(50)],
      matches: [{ pathPrefix: "/beta", version: "beta" }],
      stickiness: { cookie: "tid", salt: "svc" },
    });
    assert.equal(pick(table, req({}, "/beta")), "beta");
    assert.ok(out.setCookie?.startsWith("tid="));
  });
});

describe("request parsing helpers", () => {
  test("cookieValue", () => {
    assert.equal(cookieValue(["Cookie", "a=1;b=2"], "b"), "2");
    assert.equal(cookieValue(["cookie", " a = 1 ; b=  2  "], "b"), "2");
    assert.equal(cookieValue(["cookie", "a=1", "COOKIE", "b=x=y"], "b"), "x=y");
    assert.equal(cookieValue(["cookie", "a"], "a"), undefined);
    assert.equal(cookieValue(["x-cookie", "a=1"], "a"), undefined);
    assert.equal(cookieValue(["cookie", 'a=""'], "a"), "");
  });

  test("queryValue", () => {
    assert.equal(queryValue("/x?user=1&b=2", "user"), "1");
    assert.equal(queryValue("/x?b=2&user", "user"), "");
    assert.equal(queryValue("/x?username=1", "user"), undefined);
    assert.equal(queryValue("/x?user=%E2%82%AC", "user"), "€");
    assert.equal(queryValue("/x?user=%E2%ZZ", "user"), "%E2%ZZ");
    assert.equal(queryValue("/x", "user"), undefined);
    assert.equal(queryValue(undefined, "user"), undefined);
  });

  test("pathHasPrefix", () => {
    assert.equal(pathHasPrefix("/a/b", "/a"), true);
    assert.equal(pathHasPrefix("/ab", "/a"), false);
    assert.equal(pathHasPrefix("/a#x", "/a"), true);
    assert.equal(pathHasPrefix("https://h/a", "/a"), true);
    assert.equal(pathHasPrefix("https://h", "/"), true);
    assert.equal(pathHasPrefix(undefined, "/"), true);
  });
});

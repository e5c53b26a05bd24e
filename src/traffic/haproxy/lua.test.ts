/**
 * turnout.lua inside a real HAProxy: the sticky bucket agrees with the published vectors (so a
 * key gets the same version through HAProxy as through the built-in router), and the match
 * action follows the router's rules.
 */
import assert from "node:assert/strict";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { encodeRules } from "./config.js";
import {
  accepts,
  freePort,
  needsHaproxy,
  type RunningHaproxy,
  rawRequest,
  runHaproxy,
  tempDir,
} from "./testing.js";

const LUA = fileURLToPath(new URL("./turnout.lua", import.meta.url));
const vectors = JSON.parse(
  readFileSync(new URL("../../../test/fixtures/hashing-vectors.json", import.meta.url), "utf8"),
) as {
  hashVersion: number;
  vectors: { salt: string; key: string; input: string; murmur3: number; bucket: number }[];
};

describe("turnout.lua in HAProxy", needsHaproxy(), () => {
  const dir = tempDir();
  let port = 0;
  let hx: RunningHaproxy;

  before(async () => {
    port = await freePort();
    copyFileSync(LUA, join(dir.path, "turnout.lua"));
    const rules = encodeRules(
      {
        matches: [
          { header: { name: "X-Beta", equals: "yes" }, version: "v2" },
          { cookie: { name: "tester", regex: "^qa-[0-9]+$" }, version: "v3" },
          { pathPrefix: "/beta", header: { name: "x-never", exists: false }, version: "v4" },
          { header: { name: "x-any", exists: true }, version: "v5" },
        ],
      },
      new Set(["v2", "v3", "v4", "v5"]),
    );
    writeFileSync(join(dir.path, "rules.map"), `r ${rules}\n`);
    const lines = [
      "global",
      `  setenv TURNOUT_HAPROXY_DIR ${dir.path}`,
      `  lua-load ${dir.path}/turnout.lua`,
      "defaults",
      "  mode http",
      "  timeout connect 2s",
      "  timeout client 5s",
      "  timeout server 5s",
      "frontend fe",
      `  bind 127.0.0.1:${port}`,
      `  http-request lua.turnout_match if { path_beg /match } || { path_beg /beta } { str(r),map(${dir.path}/rules.map) -m found }`,
      '  http-request return status 200 content-type text/plain lf-string "%[var(txn.tv)]" if { path_beg /match } || { path_beg /beta }',
      '  http-request return status 200 content-type text/plain lf-string "%[req.fhdr(x-in,1),lua.turnout_murmur3]" if { path /murmur3 }',
    ];
    vectors.vectors.forEach((v, i) => {
      const hex = Buffer.from(v.salt, "utf8").toString("hex");
      lines.push(
        `  http-request return status 200 content-type text/plain lf-string "%[req.fhdr(x-key,1),lua.turnout_bucket_v1(${hex})]" if { path /bucket/${i} }`,
      );
    });
    lines.push("  http-request return status 404");
    hx = await runHaproxy(dir.path, `${lines.join("\n")}\n`, () => accepts(port));
  });

  after(async () => {
    await hx?.stop();
    dir.remove();
  });

  test("murmur3 of every vector's input equals the published value", async () => {
    for (const v of vectors.vectors) {
      // HTTP drops leading and trailing blanks of a header value; no vector input has them.
      if (v.input.length === 0) continue;
      const r = await rawRequest(port, "/murmur3", { "x-in": v.input });
      assert.equal(r.body, String(v.murmur3), `murmur3(${JSON.stringify(v.input)})`);
    }
  });

  test("the bucket of every vector equals the published one (an empty key has none)", async () => {
    assert.equal(vectors.hashVersion, 1);
    for (const [i, v] of vectors.vectors.entries()) {
      const r = await rawRequest(port, `/bucket/${i}`, v.key === "" ? {} : { "x-key": v.key });
      if (v.key === "") assert.equal(r.body, "", "no key, no bucket");
      else
        assert.equal(
          r.body,
          String(v.bucket),
          `bucket(${JSON.stringify(v.salt)}, ${JSON.stringify(v.key)})`,
        );
    }
  });

  test("match rules: first rule that holds wins, as in the router", async () => {
    const cases: [string, Record<string, string>, string][] = [
      ["/match", { "x-beta": "yes" }, "v2"],
      ["/match", { "x-beta": "no" }, ""],
      ["/match", { cookie: "a=1; tester=qa-17" }, "v3"],
      ["/match", { cookie: 'tester="qa-18"' }, "v3"],
      ["/match", { cookie: "tester=qa-x" }, ""],
      ["/beta", {}, "v4"],
      ["/beta/x?y", {}, "v4"],
      ["/betamax", {}, ""],
      ["/beta", { "x-never": "" }, ""],
      ["/match", { "x-any": "" }, "v5"],
      ["/match", { "x-beta": "yes", "x-any": "1" }, "v2"],
    ];
    for (const [path, headers, want] of cases) {
      const r = await rawRequest(port, path, headers);
      assert.equal(r.body, want, `${path} ${JSON.stringify(headers)}`);
    }
  });
});

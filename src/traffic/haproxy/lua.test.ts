/**
 * turnout.lua inside a real HAProxy: the match action follows the router's rules. (The sticky
 * bucket is HAProxy's native converters now, hash.ts; hash.test.ts runs its vectors.)
 */
import assert from "node:assert/strict";
import { copyFileSync, writeFileSync } from "node:fs";
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
    ];
    lines.push("  http-request return status 404");
    hx = await runHaproxy(dir.path, `${lines.join("\n")}\n`, () => accepts(port));
  });

  after(async () => {
    await hx?.stop();
    dir.remove();
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

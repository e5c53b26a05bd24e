/** Usage errors that need no server: exit 2 with the fix, before any API call (#18 item 12). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const turnout = (...args: string[]) =>
  spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      join(ROOT, "src/cli/main.ts"),
      "--data-dir",
      join(ROOT, ".no-such-dir"),
      ...args,
    ],
    { cwd: ROOT, encoding: "utf8" },
  );

describe("CLI usage errors", () => {
  it("flags set without --percentage or --variant", () => {
    const r = turnout("flags", "set", "new-checkout");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /flags set needs --percentage P and\/or --variant V/);
  });

  it("delete of an unknown kind is a usage error naming the kinds", () => {
    const r = turnout("delete", "widget", "w1");
    assert.equal(r.status, 2);
    assert.match(
      r.stderr,
      /cannot delete "widget": the kinds are service, flag, segment, analysistemplate and notifier/,
    );
  });

  it("get --help names experiments and segments", () => {
    const r = turnout("get", "--help");
    assert.equal(r.status, 0);
    assert.match(r.stdout, /services \| analysistemplates \| flags \| segments \| experiments/);
  });

  it("a --limit or --timeout that is not a positive number is a usage error naming the option", () => {
    for (const [args, option] of [
      [["history", "web", "--limit", "abc"], "--limit"],
      [["history", "web", "--limit", "-1"], "--limit"],
      [["history", "web", "--limit", "0"], "--limit"],
      [["flags", "history", "new-checkout", "--limit", "2.5"], "--limit"],
      [["status", "web", "--watch", "--timeout", "abc"], "--timeout"],
      [["status", "web", "--watch", "--timeout", "-5"], "--timeout"],
    ] as const) {
      const r = turnout(...args);
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`option '${option} <`), args.join(" "));
    }
  });

  it("a --server that is not an http(s) URL is a usage error naming --server", () => {
    const r = turnout("--server", "notaurl", "--token", "t", "get", "services");
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr,
      /--server must be an http:\/\/ or https:\/\/ URL such as http:\/\/127\.0\.0\.1:4040, got "notaurl" \[TURNOUT_ERR_CLI_USAGE\]/,
    );
    assert.doesNotMatch(r.stderr, /cannot reach|turnout up/);
  });

  it("events post -f with a file that cannot be read names the option and exits 2", () => {
    const r = turnout("events", "post", "-f", join(ROOT, ".no-such-file.json"));
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr,
      /cannot read --file .*\.no-such-file\.json: ENOENT.*\[TURNOUT_ERR_CLI_USAGE\]/,
    );
  });
});

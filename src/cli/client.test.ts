import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { userInfo } from "node:os";
import { describe, it } from "node:test";
import { cliActor, resolveTarget } from "./client.js";

describe("resolveTarget: --server", () => {
  it("a malformed URL or another scheme is a usage error naming where it came from", () => {
    const env = { TURNOUT_DATA_DIR: "/nonexistent-turnout-data-dir" };
    for (const [opts, e, from] of [
      [{ server: "notaurl" }, env, "--server"],
      [{ server: "127.0.0.1:4040" }, env, "--server"],
      [{ server: "ftp://127.0.0.1:4040" }, env, "--server"],
      [{}, { ...env, TURNOUT_SERVER: "localhost" }, "TURNOUT_SERVER"],
    ] as const) {
      assert.throws(
        () => resolveTarget(opts, e),
        (err: { code?: string; message?: string }) =>
          err.code === "TURNOUT_ERR_CLI_USAGE" &&
          (err.message ?? "").startsWith(`${from} must be an http:// or https:// URL`),
        JSON.stringify([opts, e]),
      );
    }
    assert.equal(
      resolveTarget({ server: "https://turnout.example:4040/" }, env).server,
      "https://turnout.example:4040",
    );
  });
});

describe("cliActor: who the history names for a CLI call", () => {
  it("prefers $USER, then $USERNAME, then $LOGNAME", () => {
    assert.equal(cliActor({ USER: "ada", USERNAME: "x", LOGNAME: "y" }), "cli:ada");
    assert.equal(cliActor({ USERNAME: "grace", LOGNAME: "y" }), "cli:grace");
    assert.equal(cliActor({ LOGNAME: "linus" }), "cli:linus");
  });

  it("falls back to the OS account when the environment names nobody (containers, CI)", () => {
    assert.equal(
      cliActor({ USER: "" }, () => "builder"),
      "cli:builder",
    );
    assert.equal(cliActor({}), `cli:${userInfo().username}`);
  });

  it("a uid without a passwd entry gives the uid, never cli:unknown", () => {
    const actor = cliActor({}, () => {
      throw new Error("ENOENT: no such user");
    });
    if (typeof process.getuid === "function") assert.equal(actor, `cli:uid-${process.getuid()}`);
    else assert.equal(actor, "cli:unknown");
  });

  it("a real process with $USER unset names the OS user", () => {
    const env = { ...process.env };
    delete env.USER;
    delete env.USERNAME;
    delete env.LOGNAME;
    const r = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "-e",
        `import("${new URL("./client.ts", import.meta.url).pathname}").then((m) => process.stdout.write(m.cliActor()))`,
      ],
      { env, encoding: "utf8" },
    );
    assert.equal(r.stdout, `cli:${userInfo().username}`, r.stderr);
  });
});

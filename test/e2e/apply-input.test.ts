/**
 * Where `turnout apply` and `turnout validate` read resources from, against a real Turnout:
 * `-f -` is stdin (as for `events post -f -`, and as kubectl reads it); `-f DIR` is the
 * directory's own files, its subdirectories only with `-R`, as kubectl does, so that
 * `apply -f .` in a project does not take every package.json below it for a resource.
 */
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { type RunningTurnout, startTurnout } from "../../src/server.js";
import { api, CLI, cli, tempDir } from "../helpers.js";

const flag = (name: string) => `apiVersion: turnout.dev/v1
kind: Flag
metadata: { name: ${name} }
spec:
  type: boolean
  variants: { "on": true, "off": false }
  defaultVariant: "off"
`;

/** The CLI with `input` on its stdin. */
const cliWithInput = (args: string[], input: string) => cli(args, {}, CLI, input);

describe("apply and validate: -f - and -f DIR", () => {
  let dir: string;
  let t: RunningTurnout;
  const target = () => ["--server", t.url, "--token", t.token];

  before(async () => {
    dir = tempDir();
    t = await startTurnout({
      dataDir: join(dir, "data"),
      port: 0,
      logger: pino({ level: "silent" }),
    });
  });
  after(async () => {
    await t.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("apply -f - applies what stdin holds", async () => {
    const r = await cliWithInput([...target(), "apply", "-f", "-"], flag("from-stdin"));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^flag\/from-stdin created/);
    assert.equal((await api(t, "GET", "/api/v1/flags/from-stdin")).status, 200);
  });

  it("validate -f - names <stdin> in its errors, with line and column", async () => {
    const r = await cliWithInput(["validate", "-f", "-"], flag("ok").replace("boolean", "bool"));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /<stdin>:5:9 document 1 Flag\/ok: spec\.type: /);
  });

  it("apply -f DIR takes the directory's own files; -R its subdirectories too", async () => {
    const project = join(dir, "project");
    mkdirSync(join(project, "deploy"), { recursive: true });
    writeFileSync(join(project, "top.yaml"), flag("top"));
    writeFileSync(join(project, "package.json"), '{"name": "not-a-resource"}');
    writeFileSync(join(project, "deploy", "nested.yaml"), flag("nested"));
    writeFileSync(join(project, "deploy", "tsconfig.json"), "{}");

    // The package.json beside it is read (as kubectl would), the subdirectory is not.
    const flat = await cli([...target(), "apply", "-f", project]);
    assert.equal(flat.code, 1);
    assert.match(flat.stderr, /package\.json/);
    assert.doesNotMatch(flat.stderr, /deploy/);

    const deploy = join(project, "deploy");
    rmSync(join(project, "package.json"));
    rmSync(join(deploy, "tsconfig.json"));
    const ok = await cli([...target(), "apply", "-f", project]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim().split("\n").length, 1, ok.stdout);
    assert.match(ok.stdout, /^flag\/top (created|unchanged)/);
    assert.equal((await api(t, "GET", "/api/v1/flags/nested")).status, 404);

    const deep = await cli([...target(), "apply", "-R", "-f", project]);
    assert.equal(deep.code, 0, deep.stderr);
    assert.match(deep.stdout, /flag\/nested created/);
  });

  it("apply --help says a directory is read without its subdirectories unless -R", async () => {
    const r = await cli(["apply", "--help"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /-R, --recursive +with -f DIR: read its subdirectories too/);
    assert.match(r.stdout, /or - for\s+stdin/);
  });
});

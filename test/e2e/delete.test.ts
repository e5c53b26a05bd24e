/**
 * `turnout delete KIND NAME` for the kinds besides services, against a real Turnout: a
 * resource another one refers to is refused (409, exit 1, the references named, nothing
 * deleted); once the references are gone it is deleted, and a second delete says it is not
 * there. A flag deleted and applied again under its name starts clean: no kill switch, no
 * override is inherited from the one deleted.
 */
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { type RunningTurnout, startTurnout } from "../../src/server.js";
import { api, cli, freePort, tempDir } from "../helpers.js";

const segment = `apiVersion: turnout.dev/v1
kind: Segment
metadata: { name: beta-testers }
spec:
  included: [user-1, user-2]
`;

const flag = (withSegment: boolean) => `apiVersion: turnout.dev/v1
kind: Flag
metadata: { name: new-checkout }
spec:
  type: boolean
  variants: { "on": true, "off": false }
  defaultVariant: "off"
${withSegment ? '  rules:\n    - segments: [beta-testers]\n      variant: "on"\n' : ""}`;

const template = `apiVersion: turnout.dev/v1
kind: AnalysisTemplate
metadata: { name: error-budget }
spec:
  metrics:
    - name: errors
      source: { builtin: error_rate }
      judge: { threshold: { max: 0.05 } }
      interval: 2s
      count: 2
`;

const service = (port: number, uses: boolean) => `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: shop }
spec:
  listen: { port: ${port} }
  runtime: { static: { versions: { v1: { upstreams: ["http://127.0.0.1:9"] } } } }
  version: v1
${uses ? "  flags: [new-checkout]\n" : ""}  strategy:
    canary:
      steps:
        - setWeight: 50
${uses ? "        - analysis: { templates: [error-budget] }\n" : ""}`;

describe("turnout delete, besides services", () => {
  let dir: string;
  let t: RunningTurnout;
  let port: number;
  const run = (...args: string[]) => cli(["--server", t.url, "--token", t.token, ...args]);
  const apply = async (...docs: string[]) => {
    const file = join(dir, "r.yaml");
    writeFileSync(file, docs.join("---\n"));
    const r = await run("apply", "-f", file);
    assert.equal(r.code, 0, r.stderr);
  };

  before(async () => {
    dir = tempDir();
    port = await freePort();
    t = await startTurnout({ dataDir: dir, port: 0, logger: pino({ level: "silent" }) });
    await apply(segment, flag(true), template, service(port, true));
  });
  after(async () => {
    await t.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses while others refer to it, naming them; nothing is deleted", async () => {
    for (const [kind, name, by] of [
      ["flag", "new-checkout", /Service\/shop \(spec\.flags\)/],
      ["segment", "beta-testers", /Flag\/new-checkout \(spec\.rules\)/],
      ["analysistemplate", "error-budget", /Service\/shop \(spec\.strategy\.canary\.steps\[1\]/],
    ] as const) {
      const r = await run("delete", kind, name);
      assert.equal(r.code, 1, `${kind}: ${r.stderr}`);
      assert.match(r.stderr, by);
      assert.match(r.stderr, /nothing was deleted/);
      assert.match(r.stderr, /TURNOUT_ERR_RESOURCE_IN_USE/);
    }
    const res = await api(t, "DELETE", "/api/v1/flags/new-checkout");
    assert.equal(res.status, 409);
    assert.equal(res.json.error.code, "TURNOUT_ERR_RESOURCE_IN_USE");
    assert.deepEqual(res.json.error.details?.usedBy ?? res.json.error.usedBy, [
      "Service/shop (spec.flags)",
    ]);
    assert.equal((await api(t, "GET", "/api/v1/flags/new-checkout")).status, 200);
  });

  it("deletes once the references are gone; a second delete says it is not there", async () => {
    await apply(segment, flag(false), template, service(port, false));
    for (const [kind, path] of [
      ["flag", "flags/new-checkout"],
      ["segment", "segments/beta-testers"],
      ["analysistemplate", "analysistemplates/error-budget"],
    ] as const) {
      const name = path.split("/")[1]!;
      const r = await run("delete", kind, name);
      assert.equal(r.code, 0, `${kind}: ${r.stderr}`);
      assert.equal(r.stdout, `${kind}/${name} deleted\n`);
      const again = await run("delete", kind, name);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /TURNOUT_ERR_RESOURCE_NOT_FOUND/);
    }
    assert.equal((await api(t, "GET", "/api/v1/flags/new-checkout")).status, 404);
    const flags = await run("get", "flags", "-o", "json");
    assert.equal(flags.code, 0, flags.stderr);
    assert.doesNotMatch(flags.stdout, /new-checkout/);
  });

  it("a flag applied again after its deletion inherits no override and no kill switch", async () => {
    const evaluate = async () => {
      const r = await fetch(`${t.url}/ofrep/v1/evaluate/flags/new-checkout`, {
        method: "POST",
        headers: { "x-api-key": t.flags.clientKey, "content-type": "application/json" },
        body: JSON.stringify({ context: { targetingKey: "user-1" } }),
      });
      assert.equal(r.status, 200);
      return (await r.json()) as { value: boolean; reason: string };
    };
    await apply(flag(false));
    const fresh = await evaluate();
    assert.equal(fresh.value, false);
    for (const args of [
      ["set", "new-checkout", "--percentage", "100"],
      ["disable", "new-checkout", "--reason", "incident 42"],
    ]) {
      const r = await run("flags", ...args);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await evaluate()).reason, "DISABLED");

    const del = await run("delete", "flag", "new-checkout");
    assert.equal(del.code, 0, del.stderr);
    await apply(flag(false));
    assert.deepEqual(await evaluate(), fresh, "evaluated as the resource alone");
    const got = await api(t, "GET", "/api/v1/flags/new-checkout");
    assert.equal(got.status, 200);
    assert.equal(got.json.override, null);
    assert.equal(got.json.effective.state, "ENABLED");
    // The history keeps what happened, the deletion included.
    const h = await api(t, "GET", "/api/v1/flags/new-checkout/history");
    const deleted = h.json.history.findLast((e: { action: string }) => e.action === "deleted");
    assert.match(deleted?.message ?? "", /deleted, with its override/);
  });
});

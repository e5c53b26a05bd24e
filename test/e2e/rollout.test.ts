/**
 * End to end: `turnout up` in a child process on free ports with a temporary data dir, two
 * static versions served by real HTTP servers, weights moved through the CLI and the API,
 * the observed split of real requests checked against each weight, abort, retry and undo.
 */
import assert from "node:assert/strict";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  api,
  cli,
  freePort,
  sendMany,
  startBackend,
  startUp,
  tempDir,
  type Up,
  waitFor,
} from "../helpers.js";

function serviceYaml(port: number, upstreams: Record<string, string[]>, version: string): string {
  const versions = Object.entries(upstreams)
    .map(
      ([v, urls]) =>
        `        ${v}: { upstreams: [${urls.map((u) => JSON.stringify(u)).join(", ")}] }`,
    )
    .join("\n");
  return `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: shop }
spec:
  listen: { port: ${port} }
  runtime:
    static:
      versions:
${versions}
  version: ${version}
  strategy:
    canary:
      steps:
        - setWeight: 20
        - pause: {}
        - setWeight: 70.5
        - pause: {}
`;
}

function share(counts: Map<string, number>, prefix: string): number {
  let n = 0;
  let total = 0;
  for (const [k, c] of counts) {
    total += c;
    if (k.startsWith(prefix)) n += c;
  }
  return (100 * n) / total;
}

describe("turnout up, end to end with static versions", () => {
  let dir: string;
  let up: Up;
  let port: number;
  const backends: Awaited<ReturnType<typeof startBackend>>[] = [];
  let upstreams: Record<string, string[]>;
  let file: string;
  const env = () => ({ TURNOUT_DATA_DIR: dir });
  const status = async () => (await api(up, "GET", "/api/v1/services/shop/status")).json;

  before(async () => {
    dir = tempDir();
    for (const name of ["v1-a", "v1-b", "v2-a"]) backends.push(await startBackend(name));
    upstreams = { v1: [backends[0]!.url, backends[1]!.url], v2: [backends[2]!.url] };
    port = await freePort();
    up = await startUp(dir);
    file = join(dir, "shop.yaml");
  });

  after(async () => {
    await up?.stop();
    for (const b of backends) await b.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("validates offline and applies the first version, which is stable at once", async () => {
    writeFileSync(file, serviceYaml(port, upstreams, "v1"));
    const v = await cli(["validate", "-f", file]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /valid: Service\/shop/);
    const a = await cli(["apply", "-f", file], env());
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /service\/shop created \(generation 1\)/);
    await waitFor("v1 serving", async () => (await status()).status?.phase === "Healthy");
    const counts = await sendMany(port, 400);
    assert.equal(share(counts, "v1"), 100);
    // Spread over both v1 instances.
    assert.ok(
      (counts.get("v1-a") ?? 0) > 100 && (counts.get("v1-b") ?? 0) > 100,
      JSON.stringify([...counts]),
    );
  });

  it("starts a canary when the version changes (applied through the API as YAML)", async () => {
    const res = await api(up, "POST", "/api/v1/apply", serviceYaml(port, upstreams, "v2"), {
      contentType: "application/yaml",
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(res.json.results[0].action, "configured");
    const s = await waitFor("paused at 20%", async () => {
      const v = await status();
      return v.status?.phase === "Paused" && v.status.canaryWeight === 20 ? v : undefined;
    });
    assert.equal(s.status.canaryVersion, "v2");
    const counts = await sendMany(port, 2000);
    const v2 = share(counts, "v2");
    assert.ok(Math.abs(v2 - 20) <= 2, `v2 share ${v2}% should be within 2 points of 20%`);
  });

  it("promote through the CLI moves to the next weight at once", async () => {
    const r = await cli(["promote", "shop", "--reason", "looks good"], env());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /promote/);
    const st = await cli(["status", "shop", "-o", "json"], env());
    assert.equal(st.code, 0, st.stderr);
    const v = JSON.parse(st.stdout);
    assert.equal(v.status.phase, "Paused");
    assert.equal(v.status.canaryWeight, 70.5);
    const counts = await sendMany(port, 2000);
    const v2 = share(counts, "v2");
    assert.ok(Math.abs(v2 - 70.5) <= 2, `v2 share ${v2}% should be within 2 points of 70.5%`);
    const human = await cli(["status", "shop"], env());
    assert.match(human.stdout, /Phase:\s+Paused/);
    assert.match(human.stdout, /Canary:\s+v2\s+70.5%/);
  });

  it("abort returns 100% to stable at once and records who and why", async () => {
    const r = await cli(["abort", "shop", "--reason", "latency spike"], env());
    assert.equal(r.code, 0, r.stderr);
    // No waiting: when abort returns, the route table in force sends everything to v1.
    const counts = await sendMany(port, 500);
    assert.equal(share(counts, "v1"), 100, JSON.stringify([...counts]));
    const v = await status();
    assert.equal(v.status.phase, "Degraded");
    assert.match(v.status.message, /latency spike/);
    const h = await cli(["history", "shop", "-o", "json"], env());
    assert.equal(h.code, 0, h.stderr);
    const aborted = JSON.parse(h.stdout).events.find(
      (e: { type: string }) => e.type === "RolloutAborted",
    );
    assert.ok(aborted, "history has the abort");
    assert.match(aborted.actor, /^cli:/);
    assert.equal(aborted.data.reason, "latency spike");
    assert.equal(aborted.data.fromWeight, 70.5);
    const text = await cli(["history", "shop"], env());
    assert.match(text.stdout, /RolloutAborted/);
    // --watch ends at once on a settled rollout, and says Degraded with exit 1.
    const watch = await cli(["status", "shop", "--watch", "--timeout", "10"], env());
    assert.equal(watch.code, 1);
    assert.match(watch.stdout, /Degraded/);
  });

  it("rejects commands that do not apply with exit 1 and a clear message", async () => {
    const r = await cli(["promote", "shop"], env());
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no rollout in progress/);
    assert.match(r.stderr, /TURNOUT_ERR_ROLLOUT_CONFLICT/);
    const missing = await cli(["status", "nope"], env());
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no service named "nope"/);
    const usage = await cli(["promote"], env());
    assert.equal(usage.code, 2);
  });

  it("retry, promote --full, then undo back to the previous stable version", async () => {
    const r = await cli(["retry", "shop"], env());
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await status()).status.canaryWeight, 20);
    const full = await cli(["promote", "shop", "--full"], env());
    assert.equal(full.code, 0, full.stderr);
    let v = await status();
    assert.equal(v.status.phase, "Completed");
    const watch = await cli(["status", "shop", "--watch", "--timeout", "10"], env());
    assert.equal(watch.code, 0, watch.stderr);
    assert.equal(v.status.stableVersion, "v2");
    assert.equal(share(await sendMany(port, 300), "v2"), 100);

    const u = await cli(["undo", "shop", "--reason", "revert"], env());
    assert.equal(u.code, 0, u.stderr);
    assert.match(u.stdout, /undo: desired version v2 -> v1/);
    v = await status();
    assert.equal(v.desiredVersion, "v1");
    assert.equal(v.status.canaryVersion, "v1");
    await cli(["promote", "shop", "--full"], env());
    v = await status();
    assert.equal(v.status.stableVersion, "v1");
    assert.deepEqual(v.status.previousStableVersions, ["v2"]);
    const g = await cli(["get", "services", "-o", "yaml"], env());
    assert.equal(g.code, 0, g.stderr);
    assert.match(g.stdout, /name: shop/);
    assert.match(g.stdout, /version: v1/);
  });

  it("re-applying the file an undo reverted says so, and what the apply will do", async () => {
    writeFileSync(file, serviceYaml(port, upstreams, "v2"));
    const a = await cli(["apply", "-f", file], env());
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /service\/shop configured/);
    assert.match(
      a.stdout,
      /spec\.version v1 was set by `turnout undo` \(cli:[^,]+, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\); this apply changes it to v2, undoing the undo: a new rollout v1 -> v2 of 4 steps/,
    );
    // Settle where the next tests expect a quiet service: paused at the first pause.
    await waitFor("paused at 20%", async () => {
      const v = await status();
      return v.status?.phase === "Paused" && v.status.canaryWeight === 20;
    });
    // Applying the same file again changes nothing and says nothing.
    const again = await cli(["apply", "-f", file, "-o", "json"], env());
    assert.equal(JSON.parse(again.stdout).results[0].note, undefined);
  });

  it("refuses a wrong or missing token with 401 and changes nothing", async () => {
    const before = (await api(up, "GET", "/api/v1/services/shop")).json;
    const yaml = serviceYaml(port, upstreams, "v2");
    for (const token of [null, "wrong-token"]) {
      const r = await api(up, "POST", "/api/v1/apply", yaml, {
        token,
        contentType: "application/yaml",
      });
      assert.equal(r.status, 401);
      assert.equal(r.json.error.code, "TURNOUT_ERR_AUTH_UNAUTHORIZED");
      const c = await api(up, "POST", "/api/v1/services/shop/abort", {}, { token });
      assert.equal(c.status, 401);
      const g = await api(up, "GET", "/api/v1/services", undefined, { token });
      assert.equal(g.status, 401);
    }
    const bad = await cli(["apply", "-f", file], { TURNOUT_DATA_DIR: dir, TURNOUT_TOKEN: "nope" });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /TURNOUT_ERR_AUTH_UNAUTHORIZED/);
    const afterwards = (await api(up, "GET", "/api/v1/services/shop")).json;
    assert.equal(afterwards.generation, before.generation);
    assert.deepEqual(afterwards.status, before.status);
    const health = await api(up, "GET", "/healthz", undefined, { token: null });
    assert.equal(health.status, 200);
  });

  it("answers malformed or invalid bodies with 400 and a JSON error, changing nothing", async () => {
    const before = (await api(up, "GET", "/api/v1/services/shop")).json;
    const badJson = await api(up, "POST", "/api/v1/apply", '{"kind": "Service",', {});
    assert.equal(badJson.status, 400);
    assert.equal(badJson.json.error.code, "TURNOUT_ERR_API_BAD_REQUEST");
    const badYaml = await api(up, "POST", "/api/v1/apply", "kind: Service\n  metadata: [unclosed", {
      contentType: "application/yaml",
    });
    assert.equal(badYaml.status, 400);
    assert.equal(badYaml.json.error.code, "TURNOUT_ERR_RESOURCE_PARSE");
    const invalid = await api(
      up,
      "POST",
      "/api/v1/apply",
      serviceYaml(port, upstreams, "v2").replace("setWeight: 20", "setWeight: 120"),
      { contentType: "application/yaml" },
    );
    assert.equal(invalid.status, 400);
    assert.equal(invalid.json.error.code, "TURNOUT_ERR_RESOURCE_INVALID");
    assert.equal(invalid.json.error.path, "spec.strategy.canary.steps[0].setWeight");
    const badCmd = await api(up, "POST", "/api/v1/services/shop/promote", { full: "yes" });
    assert.equal(badCmd.status, 400);
    assert.equal(badCmd.json.error.path, "full");
    const unknown = await api(up, "GET", "/api/v1/nothing-here");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error.code, "TURNOUT_ERR_API_NOT_FOUND");
    const media = await api(up, "POST", "/api/v1/apply", "<xml/>", {
      contentType: "application/xml",
    });
    assert.equal(media.status, 415);
    const afterwards = (await api(up, "GET", "/api/v1/services/shop")).json;
    assert.equal(afterwards.generation, before.generation);
  });

  it("stops cleanly on SIGINT", async () => {
    const code = await up.stop("SIGINT");
    assert.equal(code, 0, up.stderr());
    assert.equal(existsSync(join(dir, "server.json")), false);
    const r = await cli(["--server", up.url, "get", "services"], env());
    assert.equal(r.code, 1);
    assert.match(r.stderr, /TURNOUT_ERR_CLI_NO_SERVER/);
  });
});

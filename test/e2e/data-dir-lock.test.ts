/**
 * One `turnout up` per data dir, with real processes: a second `up` on a data dir in use exits
 * 1 at once, naming the running server's pid and URL, and leaves the first one and its
 * process-runtime instances alone; after the first is killed with SIGKILL its lock is stale,
 * and the next `up` takes it over and adopts the instances.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { api, cli, freePort, pidsWith, ROOT, startUp, tempDir, waitFor } from "../helpers.js";

describe("two servers on one data dir", () => {
  const dir = tempDir();
  const marker = `turnout-lock-marker-${process.pid}-${Date.now()}`;
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("the second `up` is refused and touches nothing; a SIGKILLed owner's lock is taken over", async () => {
    const first = await startUp(dir);
    let third: Awaited<ReturnType<typeof startUp>> | undefined;
    try {
      const port = await freePort();
      const r = await api(first, "POST", "/api/v1/apply", {
        apiVersion: "turnout.dev/v1",
        kind: "Service",
        metadata: { name: "model" },
        spec: {
          listen: { port },
          runtime: {
            process: {
              command: [process.execPath, join(ROOT, "examples/model/server.mjs"), marker],
              env: { MODEL_VERSION: "${version}" },
              replicas: 2,
              readiness: { path: "/healthz" },
              terminationGracePeriodSeconds: 2,
            },
          },
          version: "v1",
        },
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      await waitFor("v1 ready", async () => {
        const v = (await api(first, "GET", "/api/v1/services/model/status")).json;
        return v.routeTable?.backends?.[0]?.endpoints?.length === 2;
      });
      const pids = pidsWith(marker).sort();
      assert.equal(pids.length, 2);
      const record = readFileSync(join(dir, "server.json"), "utf8");
      const events = (await api(first, "GET", "/api/v1/services/model/history")).json.events;

      // The second `up`, on another port, as the old "use --port" hint suggested.
      const second = await cli(["up", "--port", "0", "--data-dir", dir], {
        TURNOUT_LOG_LEVEL: "warn",
      });
      assert.equal(second.code, 1, second.stderr);
      assert.match(second.stderr, /TURNOUT_ERR_DATA_DIR_LOCKED/);
      assert.match(
        second.stderr,
        new RegExp(
          `another Turnout is running on data dir .* \\(pid ${first.proc.pid}, API at ${first.url}`,
        ),
      );
      assert.doesNotMatch(second.stdout, /listening/);

      // The first one goes on as if nothing happened.
      assert.equal(readFileSync(join(dir, "server.json"), "utf8"), record);
      assert.deepEqual(pidsWith(marker).sort(), pids, "its instances are untouched");
      const res = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(res.status, 200);
      assert.equal(first.proc.exitCode, null);
      const after = (await api(first, "GET", "/api/v1/services/model/history")).json.events;
      assert.deepEqual(after, events, "no second controller wrote anything");

      // Killed without a chance to clean up: its lock stays, naming a dead process.
      first.proc.kill("SIGKILL");
      await waitFor(
        "first exited",
        async () => first.proc.exitCode !== null || first.proc.signalCode !== null,
      );
      third = await startUp(dir);
      assert.match(third.stderr(), new RegExp(`lock of pid ${first.proc.pid} is stale`));
      assert.notEqual(third.url, first.url);
      // It adopted the instances (same pids) instead of starting new ones.
      await waitFor("adopted instances serve", async () => {
        const v = (await api(third!, "GET", "/api/v1/services/model/status")).json;
        return v.routeTable?.backends?.[0]?.endpoints?.length === 2;
      });
      assert.deepEqual(pidsWith(marker).sort(), pids);
      // The CLI follows the data dir to the new server.
      const got = await cli(["get", "services", "-o", "json"], { TURNOUT_DATA_DIR: dir });
      assert.equal(got.code, 0, got.stderr);
      assert.equal(JSON.parse(got.stdout).items[0].name, "model");
    } finally {
      await first.stop("SIGTERM");
      if (third) assert.equal(await third.stop("SIGTERM"), 0, third.stderr());
    }
    assert.deepEqual(pidsWith(marker), [], "no instance outlives turnout");
  });
});

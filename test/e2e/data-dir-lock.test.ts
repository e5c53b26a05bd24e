/**
 * One `turnout up` per data dir, with real processes: a second `up` on a data dir in use exits
 * 1 at once, naming the running server's pid and URL, and leaves the first one and its
 * process-runtime instances alone; after the first is killed with SIGKILL its lock is stale,
 * and the next `up` takes it over and adopts the instances. A start that fails (the API's port
 * taken) leaves the data dir as it found it.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
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

describe("a start that fails leaves the data dir as it found it", () => {
  const dir = tempDir();
  let taken: Server;
  let port = 0;
  const up = (...args: string[]) => cli(["up", ...args], { TURNOUT_LOG_LEVEL: "warn" });

  before(async () => {
    taken = createServer();
    taken.listen(0, "127.0.0.1");
    await once(taken, "listening");
    port = (taken.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((r) => taken.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it("--port taken: refused before the data dir is created", async () => {
    const dataDir = join(dir, "fresh", "nested");
    const r = await up("--port", String(port), "--data-dir", dataDir);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`EADDRINUSE.*127\\.0\\.0\\.1:${port}.*--port`));
    assert.equal(existsSync(join(dir, "fresh")), false, "the data dir was created");
  });

  it("--port taken: an existing data dir keeps what it had, and nothing more", async () => {
    const dataDir = join(dir, "existing");
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, "token"), "the-old-token\n", { mode: 0o600 });
    const r = await up("--port", String(port), "--data-dir", dataDir);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(readdirSync(dataDir), ["token"]);
    assert.equal(readFileSync(join(dataDir, "token"), "utf8"), "the-old-token\n");
  });

  it("a failure after the token and database were written removes them (and the dir it made)", async () => {
    // Port 0 skips the port check; an address not on this machine fails at listen, after the
    // store opened and the token was written.
    const dataDir = join(dir, "late");
    const r = await up("--port", "0", "--host", "192.0.2.1", "--data-dir", dataDir);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /EADDRNOTAVAIL/);
    assert.equal(
      existsSync(dataDir),
      false,
      `left: ${existsSync(dataDir) && readdirSync(dataDir)}`,
    );
  });
});

/**
 * End to end: `turnout up --store postgres://...` (issue #14 item 3) with real processes on a
 * private PostgreSQL cluster (test/support/postgres.ts): one process with every role; the bad
 * `--store` and `--roles` cases with their exit codes and messages, leaving nothing written;
 * and a fleet of two router processes (`--roles router --router-address 127.0.0.2` and
 * `127.0.0.3`) and one `--roles api,controller` process on one database, sharing one token.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  api,
  cli,
  freePort,
  pidsWith,
  ROOT,
  sendMany,
  startBackend,
  startUp,
  staticService,
  tempDir,
  type Up,
  waitFor,
} from "../helpers.js";
import { PASSWORD_ROLE, requirePostgres, sharedCluster } from "../support/postgres.js";

const skip = requirePostgres();

function share(counts: Map<string, number>, version: string): number {
  let n = 0;
  let total = 0;
  for (const [k, c] of counts) {
    total += c;
    if (k.startsWith(version)) n += c;
  }
  return (100 * n) / total;
}

interface Instance {
  id: string;
  version: string;
  url: string;
  state: string;
  message?: string;
}

interface RouterView {
  id: string;
  address: string;
  pid: number;
  live: boolean;
  heartbeatAgeMs: number;
  revisions: Record<string, number>;
}

describe("turnout up --store postgres://", { skip }, () => {
  const dirs: string[] = [];
  const ups: Up[] = [];
  const backends: Awaited<ReturnType<typeof startBackend>>[] = [];
  const dir = () => {
    const d = tempDir("turnout-fleet-");
    dirs.push(d);
    return d;
  };
  const marker = `turnout-fleet-${process.pid}-${Date.now()}`;

  before(async () => {
    for (const name of ["v1-a", "v1-b", "v2-a"]) backends.push(await startBackend(name));
  });

  after(async () => {
    for (const u of ups) {
      if (u.proc.signalCode === "SIGSTOP" || u.proc.exitCode === null) u.proc.kill("SIGCONT");
      await u.stop();
    }
    for (const pid of pidsWith(marker)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    for (const b of backends) await b.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("one process with every role: apply, requests through the router, a canary promoted, status", async () => {
    const pg = await sharedCluster();
    const url = await pg.createDatabase();
    const data = dir();
    const up = await startUp(data, {}, ["--store", url]);
    ups.push(up);
    const env = { TURNOUT_DATA_DIR: data };
    const port = await freePort();
    const upstreams = { v1: [backends[0]!.url, backends[1]!.url], v2: [backends[2]!.url] };
    const status = async () => (await api(up, "GET", "/api/v1/services/shop/status")).json;

    let r = await api(up, "POST", "/api/v1/apply", staticService(port, upstreams, "v1"));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const v1 = await waitFor("v1 healthy", async () => {
      const s = await status();
      return s.status?.phase === "Healthy" ? s : undefined;
    });
    await routerServes(up, "shop", v1.routeTable.revision);
    // The table is in force; its upstreams are in once the router's first health checks pass.
    await waitFor("the router answers from v1", async () => {
      const c = await sendMany(port, 4, 1).catch(() => null);
      return c !== null && share(c, "v1") === 100;
    });
    let counts = await sendMany(port, 200);
    assert.equal(share(counts, "v1"), 100, JSON.stringify([...counts]));

    r = await api(up, "POST", "/api/v1/apply", staticService(port, upstreams, "v2"));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const paused = await waitFor("paused at 50%", async () => {
      const s = await status();
      return s.status?.phase === "Paused" && s.status.canaryWeight === 50 ? s : undefined;
    });
    await routerServes(up, "shop", paused.routeTable.revision);
    counts = await sendMany(port, 1000);
    const v2 = share(counts, "v2");
    assert.ok(Math.abs(v2 - 50) <= 5, `v2 share ${v2}% should be within 5 points of 50%`);

    const p = await cli(["promote", "shop"], env);
    assert.equal(p.code, 0, p.stderr);
    const done = await waitFor("v2 stable", async () => {
      const s = await status();
      return s.status?.phase === "Completed" && s.status.stableVersion === "v2" ? s : undefined;
    });
    // The controller's last table (v2 only) is in force once the router reports its revision.
    await routerServes(up, "shop", done.routeTable.revision);
    counts = await sendMany(port, 200);
    assert.equal(share(counts, "v2"), 100, JSON.stringify([...counts]));

    const st = await cli(["status", "shop", "-o", "json"], env);
    assert.equal(st.code, 0, st.stderr);
    assert.equal(JSON.parse(st.stdout).status.stableVersion, "v2");

    // The data is in PostgreSQL, not in the data dir.
    assert.equal(existsSync(join(data, "turnout.db")), false);
    assert.equal(
      pg.psql("select count(*) from resources where kind = 'Service'", dbName(url)).trim(),
      "1",
    );

    const g = await cli(["get", "routers", "-o", "json"], env);
    assert.equal(g.code, 0, g.stderr);
    const items = JSON.parse(g.stdout).items as RouterView[];
    // The built-in router only: the HAProxy agent is listed only while it carries a service.
    assert.equal(items.length, 1, JSON.stringify(items));
    const builtin = items.find((x) => x.revisions.shop !== undefined);
    assert.ok(builtin, JSON.stringify(items));
    assert.equal(builtin.live, true);
    assert.equal(builtin.pid, up.proc.pid);
    const table = (await status()).routeTable;
    assert.equal(builtin.revisions.shop, table.revision);
    const text = await cli(["get", "routers"], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /ID\s+STATE\s+PID/);
    assert.match(text.stdout, new RegExp(`live\\s+${up.proc.pid}`));
  });

  it("the admin token from TURNOUT_TOKEN and the flag keys from --flag-keys-file", async () => {
    const pg = await sharedCluster();
    const url = await pg.createDatabase();
    const data = dir();
    const keysFile = join(dir(), "flag-keys");
    writeFileSync(keysFile, "# the fleet's keys\ntfk_fleet-key-one\n", { mode: 0o600 });
    const token = "from-the-environment-0123456789";
    const up = await startUp(data, { TURNOUT_TOKEN: token }, [
      "--store",
      url,
      "--flag-keys-file",
      keysFile,
    ]);
    ups.push(up);
    assert.equal(up.token, token, "written to the data dir's token for this machine's CLI");
    assert.equal((await api(up, "GET", "/api/v1/services")).status, 200);
    assert.equal((await api(up, "GET", "/api/v1/services", undefined, { token: "x" })).status, 401);
    const ofrep = (key: string) =>
      fetch(`${up.url}/ofrep/v1/configuration`, { headers: { "x-api-key": key } });
    assert.equal((await ofrep("tfk_fleet-key-one")).status, 200);
    assert.equal((await ofrep("tfk_not-a-key")).status, 401);
    assert.equal(existsSync(join(data, "flag-keys")), false, "no key of its own");
    assert.equal(await up.stop(), 0);
    // A file without a key is refused before anything starts.
    writeFileSync(keysFile, "# none\n");
    const r = await cli([
      "up",
      "--port",
      "0",
      "--data-dir",
      dir(),
      "--store",
      url,
      "--flag-keys-file",
      keysFile,
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--flag-keys-file .* has no key/);
  });

  describe("bad --store and --roles: a message that says what to do, nothing written", () => {
    const upFails = async (args: string[], env: Record<string, string> = {}) => {
      const data = dir();
      const r = await cli(["up", "--port", "0", "--data-dir", data, ...args], env);
      // Nothing half-written: the data dir is as it was (empty).
      assert.deepEqual(readdirSync(data), [], `${args.join(" ")} left files behind`);
      return r;
    };

    it("a malformed URL is a usage error (exit 2)", async () => {
      const r = await upFails(["--store", "http://db.example/turnout"]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /invalid store URL .*scheme must be postgres:\/\//);
      assert.match(r.stderr, /expected postgres:\/\/USER@HOST:PORT\/DB/);
      assert.match(r.stderr, /TURNOUT_ERR_STORE_URL_INVALID/);
      const noDb = await upFails(["--store", "postgres://u@127.0.0.1:5432"]);
      assert.equal(noDb.code, 2, noDb.stderr);
      assert.match(noDb.stderr, /names no database/);
    });

    it("an unreachable server (exit 1)", async () => {
      const port = await freePort();
      const r = await upFails(["--store", `postgres://turnout@127.0.0.1:${port}/turnout`]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /cannot reach PostgreSQL at 127\.0\.0\.1:\d+ \(database turnout\)/);
      assert.match(r.stderr, /is the server running/);
      assert.match(r.stderr, /TURNOUT_ERR_STORE_UNAVAILABLE/);
    });

    it("wrong credentials (exit 1), the password never printed", async () => {
      const pg = await sharedCluster();
      const url = await pg.createDatabase();
      const bad = url.replace("postgres@", `${PASSWORD_ROLE}:not-the-password@`);
      const r = await upFails(["--store", bad]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /refused the credentials of turnout_secret/);
      assert.match(r.stderr, /check the user and password/);
      assert.match(r.stderr, /TURNOUT_ERR_STORE_AUTH_FAILED/);
      assert.doesNotMatch(r.stderr, /not-the-password/);
    });

    it("a database with a newer schema (exit 1), left untouched", async () => {
      const pg = await sharedCluster();
      const url = await pg.createDatabase();
      // A first start migrates it; then a newer binary's migration appears.
      const first = await startUp(dir(), {}, ["--store", url]);
      assert.equal(await first.stop(), 0);
      const name = dbName(url);
      pg.psql("insert into kysely_migration (name, timestamp) values ('9999_future', 'x')", name);
      const before = pg.psql("select count(*) from kysely_migration", name);
      const r = await upFails(["--store", url]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /TURNOUT_ERR_STORE_SCHEMA_NEWER/);
      assert.match(r.stderr, /9999_future/);
      assert.equal(pg.psql("select count(*) from kysely_migration", name), before);
    });

    it("an unknown role, and split roles on SQLite, are usage errors (exit 2)", async () => {
      const pg = await sharedCluster();
      const url = await pg.createDatabase();
      const r = await upFails(["--store", url, "--roles", "api,routr"]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /unknown role "routr"/);
      assert.match(r.stderr, /the roles are api, controller and router/);
      const sqlite = await upFails(["--roles", "router"]);
      assert.equal(sqlite.code, 2, sqlite.stderr);
      assert.match(sqlite.stderr, /needs a shared store/);
      assert.match(sqlite.stderr, /--store postgres:\/\/USER@HOST:PORT\/DB/);
    });
  });

  it("processes without the api role write no token or flag keys; a standby says who leads", async () => {
    const pg = await sharedCluster();
    const url = await pg.createDatabase();
    const tokenFile = join(dir(), "fleet-token");
    writeFileSync(tokenFile, "fleet-token-0123456789abcdef\n", { mode: 0o600 });
    const env = { TURNOUT_LOG_LEVEL: "info" };
    const start = async (...args: string[]) => {
      const u = await startUp(dir(), env, ["--store", url, ...args]);
      ups.push(u);
      return u;
    };
    const leader = await start("--roles", "controller");
    await waitFor("the first controller leads", async () =>
      /leading with epoch/.test(leader.stderr()),
    );
    const standby = await start("--roles", "controller");
    const said = await waitFor("the standby says who leads", async () =>
      /standing by; controller \w+ \(pid (\d+) on [^)]+\) leads \(epoch (\d+)\)/.exec(
        standby.stderr(),
      ),
    );
    assert.equal(Number(said[1]), leader.proc.pid);
    // A router given the token file, as a shared script may: it says the file is not used.
    const router = await start("--roles", "router", "--token-file", tokenFile);
    assert.match(router.stderr(), /--token-file is not used: only the api role checks/);
    for (const u of [leader, standby, router]) {
      await waitFor("the start line", async () => u.stdout().includes("Ctrl-C to stop"));
      assert.match(u.stdout(), /\(no API\)/);
      assert.doesNotMatch(u.stdout(), /token in/);
      for (const f of ["token", "flag-keys"])
        assert.equal(existsSync(join(u.dataDir, f)), false, `${u.dataDir}/${f} was written`);
    }
    // Once, not at every look at the lease (several looks have passed by now).
    assert.equal(standby.stderr().match(/standing by/g)?.length, 1, standby.stderr());
  });

  it("a fleet: two routers and an api,controller process on one database", async () => {
    const pg = await sharedCluster();
    const url = await pg.createDatabase();
    const tokenFile = join(dir(), "fleet-token");
    const token = "fleet-token-0123456789abcdef";
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const shared = ["--store", url, "--token-file", tokenFile];
    const routerA = await startUp(dir(), {}, [
      ...shared,
      "--roles",
      "router",
      "--router-address",
      "127.0.0.2",
    ]);
    ups.push(routerA);
    const routerB = await startUp(dir(), {}, [
      ...shared,
      "--roles",
      "router",
      "--router-address",
      "127.0.0.3",
    ]);
    ups.push(routerB);
    const main = await startUp(dir(), {}, [...shared, "--roles", "api,controller"]);
    ups.push(main);
    assert.equal(routerA.url, "", "a router-only process has no API");
    assert.equal(main.token, token, "the data dir's token is the fleet's");

    const port = await freePort();
    const service = (version: string) => ({
      apiVersion: "turnout.dev/v1",
      kind: "Service",
      metadata: { name: "web" },
      spec: {
        listen: { port },
        runtime: {
          process: {
            command: [process.execPath, join(ROOT, "examples/model/server.mjs"), marker],
            env: { MODEL_VERSION: "${version}" },
            replicas: 1,
            readiness: { path: "/healthz", periodSeconds: 0.2 },
            drainSeconds: 0.2,
            terminationGracePeriodSeconds: 3,
          },
        },
        version,
        strategy: { canary: { steps: [{ setWeight: 50 }, { pause: {} }] } },
      },
    });
    const status = async () => (await api(main, "GET", "/api/v1/services/web/status")).json;
    const routers = async () =>
      (await api(main, "GET", "/api/v1/routers")).json.items as RouterView[];
    const on = (list: RouterView[], address: string) =>
      list.find((r) => r.address.includes(`${address}:${port}`));
    /** Both routers serve revision `rev` (or later) of web's table. */
    let lastList: RouterView[] = [];
    const bothServe = async (rev: number) => {
      const list = await routers();
      lastList = list;
      const a = on(list, "127.0.0.2");
      const b = on(list, "127.0.0.3");
      return a !== undefined &&
        b !== undefined &&
        a.revisions.web! >= rev &&
        b.revisions.web! >= rev
        ? list
        : undefined;
    };

    let r = await api(main, "POST", "/api/v1/apply", service("v1"));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const healthy = await waitFor(
      "v1 healthy",
      async () => {
        const s = await status();
        return s.status?.phase === "Healthy" && s.routeTable?.backends?.[0]?.endpoints?.length === 1
          ? s
          : undefined;
      },
      30_000,
    );
    await waitFor("both routers serve v1", () => bothServe(healthy.routeTable.revision)).catch(
      (err: Error) => {
        throw new Error(
          `${err.message}; routers: ${JSON.stringify(lastList)}; A: ${routerA.stderr()}; B: ${routerB.stderr()}`,
        );
      },
    );
    for (const host of ["127.0.0.2", "127.0.0.3"]) {
      const counts = await sendMany(port, 100, 8, host);
      const bodies = [...counts.keys()];
      assert.ok(
        bodies.every((k) => k.includes('"version":"v1"')),
        `${host}: ${JSON.stringify([...counts])}`,
      );
    }

    // `get routers` lists both as live, by pid, with the revision each serves.
    const g = await cli(["get", "routers", "-o", "json", "--server", main.url, "--token", token]);
    assert.equal(g.code, 0, g.stderr);
    const listed = (JSON.parse(g.stdout).items as RouterView[]).filter((x) =>
      x.address.includes(`:${port}`),
    );
    assert.deepEqual(listed.map((x) => x.pid).sort(), [routerA.proc.pid, routerB.proc.pid].sort());
    assert.ok(listed.every((x) => x.live && x.revisions.web === healthy.routeTable.revision));

    // A route table change (the canary's first step) reaches both routers through NOTIFY.
    r = await api(main, "POST", "/api/v1/apply", service("v2"));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const paused = await waitFor(
      "paused at 50%",
      async () => {
        const s = await status();
        return s.status?.phase === "Paused" && s.status.canaryWeight === 50 ? s : undefined;
      },
      30_000,
    );
    await waitFor("both routers serve the canary", () => bothServe(paused.routeTable.revision));
    const v1Endpoint: string = paused.routeTable.backends.find(
      (b: { version: string }) => b.version === "v1",
    ).endpoints[0];
    for (const host of ["127.0.0.2", "127.0.0.3"]) {
      const counts = await sendMany(port, 400, 8, host);
      const bodies = [...counts.keys()].join(" ");
      assert.doesNotMatch(bodies, /status \d/, `${host}: ${bodies}`);
      assert.match(bodies, /"version":"v1"/, `${host} sends to v1: ${bodies}`);
      assert.match(bodies, /"version":"v2"/, `${host} sends to v2: ${bodies}`);
    }

    // The stop gate: with router B frozen, promoting stops v1's instance only once B serves
    // a table without it.
    const alive = async () => {
      try {
        return (await fetch(`${v1Endpoint}/healthz`)).ok;
      } catch {
        return false;
      }
    };
    assert.equal(await alive(), true);
    routerB.proc.kill("SIGSTOP");
    const promoted = api(main, "POST", "/api/v1/services/web/promote", {});
    const final = await waitFor("a table without v1, served by router A", async () => {
      const s = await status();
      const t = s.routeTable;
      if (t.backends.some((b: { version: string }) => b.version === "v1")) return undefined;
      const a = on(await routers(), "127.0.0.2");
      return a !== undefined && a.revisions.web! >= t.revision ? t : undefined;
    });
    const b = on(await routers(), "127.0.0.3")!;
    assert.ok(b.revisions.web! < final.revision, "router B is frozen at the old table");
    assert.ok(b.live, `router B is still live (last heartbeat ${b.heartbeatAgeMs} ms ago)`);
    assert.equal(await alive(), true, "v1 still runs: the stop waits for router B");
    // Held at the gate: "stopping" (out of the table) but neither draining nor signalled, which
    // it would be at once after the gate let it go (process-runtime.ts).
    const held = ((await status()).instances as Instance[]).find((i) => i.url === v1Endpoint);
    assert.equal(held?.state, "stopping", JSON.stringify(held));
    assert.doesNotMatch(held.message ?? "", /draining|SIGTERM/);
    routerB.proc.kill("SIGCONT");
    await waitFor("router B serves the table without v1", () => bothServe(final.revision));
    await waitFor("v1's instance stopped", async () => !(await alive()));
    const res = await promoted;
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const history = await api(main, "GET", "/api/v1/services/web/history");
    const types = (history.json.events as { type: string }[]).map((e) => e.type);
    assert.equal(types.includes("DrainTimedOut"), false, types.join(","));
  });
});

/** Waits until a router in the registry reports `revision` (or later) of the service in force. */
async function routerServes(up: Up, service: string, revision: number): Promise<void> {
  await waitFor(`a router serving ${service} revision ${revision}`, async () => {
    const list = (await api(up, "GET", "/api/v1/routers")).json.items as RouterView[];
    return list.some((x) => (x.revisions[service] ?? 0) >= revision);
  });
}

function dbName(url: string): string {
  return new URL(url).pathname.slice(1);
}

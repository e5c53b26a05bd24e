/**
 * End to end, on several "hosts" (issue #14 item 8): network namespaces made by the test
 * (test/support/netns.ts), with PostgreSQL on one, two routers and two controllers on others,
 * the API on one more, the versions' servers on another, and a client host.
 *
 *   ctl network 10.213.1.0/24:  db .10 (PostgreSQL), r1 .11, r2 .12, c1 .21, c2 .22, api .30
 *   data network 10.213.2.0/24: r1 .11, r2 .12, app .40 (v1 on :9001, v2 on :9002), client .50
 *
 * Routers reach the database over ctl and the versions over data, as they would with a
 * database network apart from the service network; clients on the data network keep reaching
 * a router that has lost the database. Cutting a host off is pulling its ctl cable out of the
 * switch: silence, no error on either side (connections hang until they time out).
 *
 * (a) One router cut off: the other keeps serving and takes up a table committed meanwhile;
 *     the cut one keeps serving its last table to the clients that reach it, and serves the
 *     new one within a few seconds of being reconnected.
 * (b) The leading controller cut off in the middle of a rollout: it stops acting before its
 *     lease runs out (its own log says when), a standby leads within 10 s and finishes the
 *     rollout from the step it was at, and no event is recorded twice, not even once the old
 *     leader is reconnected.
 *
 * Root only (namespaces); skips with the reason elsewhere, but never under CI when `ip` is
 * there (`requireNetns`), nor without PostgreSQL under CI (`requirePostgres`).
 */
import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, type Dispatcher, Pool, request } from "undici";
import { ROOT, tempDir, waitFor } from "../helpers.js";
import { NetLab, requireNetns, type Spawned } from "../support/netns.js";
import { type PgCluster, requirePostgres, startCluster } from "../support/postgres.js";

const skip = requirePostgres() ?? requireNetns();

const CTL = "10.213.1";
const DATA = "10.213.2";
const API_PORT = 4040;
const SERVICE_PORT = 8080;
const LEASE_MS = 5000;

interface RouterView {
  id: string;
  address: string;
  pid: number;
  live: boolean;
  heartbeatAgeMs: number;
  revisions: Record<string, number>;
}

interface ControllerView {
  leader: string | null;
  epoch: number;
  since: number;
  renewedAt: number;
  leaseMs: number;
  released: boolean;
}

interface HistoryEvent {
  id: number;
  type: string;
  message: string;
  data: Record<string, unknown>;
  time: number;
}

/** A pino JSON log line. */
interface LogLine {
  time: number;
  level: number;
  msg: string;
  [k: string]: unknown;
}

function logLines(text: string): LogLine[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine);
}

describe("a fleet on several hosts (network namespaces)", { skip }, () => {
  let lab: NetLab;
  let pg: PgCluster | undefined;
  const dirs: string[] = [];
  let apiAgent: Agent | undefined;
  const clientSockets: Record<string, string> = {};
  const token = "netns-fleet-token-0123456789abcdef";
  const procs: Record<string, Spawned> = {};

  /** `turnout up` from source in `host`'s namespace, once it says it is up. */
  const up = async (host: string, args: string[], logLevel = "warn") => {
    const data = tempDir("turnout-netns-");
    dirs.push(data);
    const cli = [process.execPath, "--import", "tsx", join(ROOT, "src/cli/main.ts")];
    const s = await lab.spawn(
      host,
      [...cli, "up", "--data-dir", data, "--log-format", "json", ...args],
      {
        cwd: ROOT,
        env: { TURNOUT_LOG_LEVEL: logLevel },
        ready: /listening on http|\(no API\)/,
      },
    );
    procs[host] = s;
    return s;
  };

  /** The API, through the relay in the api host's namespace. */
  const call = async (method: Dispatcher.HttpMethod, path: string, body?: unknown) => {
    const res = await request(`http://${CTL}.30:${API_PORT}${path}`, {
      method,
      dispatcher: apiAgent,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.body.text();
    return { status: res.statusCode, json: text ? JSON.parse(text) : undefined };
  };

  /** The database's sessions, for failure messages: who holds or waits for what. */
  const activity = () =>
    pg!.psql(
      "select pid, client_addr, application_name, state, now() - xact_start as in_xact, wait_event_type, left(query, 80) from pg_stat_activity where datname = 'turnout'",
      "turnout",
    );

  const status = async () => (await call("GET", "/api/v1/services/shop/status")).json;
  const routers = async () => (await call("GET", "/api/v1/routers")).json.items as RouterView[];
  /** The registry's entry of the built-in router on `host` (its listener's address). */
  const routerOn = (list: RouterView[], host: "r1" | "r2") =>
    list.find((r) => r.address.includes(`${DATA}.${host === "r1" ? 11 : 12}:${SERVICE_PORT}`));
  const serves = async (host: "r1" | "r2", revision: number) => {
    const r = routerOn(await routers(), host);
    return r !== undefined && (r.revisions.shop ?? 0) >= revision;
  };

  /** `n` requests from the client host to a router; answers counted by body ("v1", "v2"). */
  const send = async (host: "r1" | "r2", n: number) => {
    const pool = new Pool(`http://${DATA}.${host === "r1" ? 11 : 12}:${SERVICE_PORT}`, {
      socketPath: clientSockets[host]!,
      connections: 8,
    });
    const counts: Record<string, number> = {};
    let sent = 0;
    const worker = async () => {
      while (sent < n) {
        sent++;
        const res = await pool.request({ path: "/", method: "GET" });
        const text = await res.body.text();
        const key = res.statusCode === 200 ? text : `status ${res.statusCode}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await pool.close();
    return counts;
  };

  const service = (version: string) => ({
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: "shop" },
    spec: {
      listen: { port: SERVICE_PORT },
      runtime: {
        static: {
          versions: {
            v1: { upstreams: [`http://${DATA}.40:9001`] },
            v2: { upstreams: [`http://${DATA}.40:9002`] },
          },
        },
      },
      version,
      strategy: {
        canary: {
          steps: [
            { setWeight: 50 },
            { pause: {} },
            { setWeight: 60 },
            { pause: { duration: "3s" } },
            { setWeight: 80 },
            { pause: { duration: "3s" } },
          ],
        },
      },
    },
  });

  before(async () => {
    lab = NetLab.create({ ctl: CTL, data: DATA });
    lab.addHost("db", { ctl: 10 });
    lab.addHost("r1", { ctl: 11, data: 11 });
    lab.addHost("r2", { ctl: 12, data: 12 });
    lab.addHost("c1", { ctl: 21 });
    lab.addHost("c2", { ctl: 22 });
    lab.addHost("api", { ctl: 30 });
    lab.addHost("app", { data: 40 });
    lab.addHost("client", { data: 50 });

    pg = await startCluster({
      netns: lab.ns("db"),
      listenAddress: `${CTL}.10`,
      trust: [`${CTL}.0/24`],
    });
    const url = await pg.createDatabase("turnout");
    // No server setting needed: the store ends its own sessions left idle in a transaction by a
    // network cut (idle_in_transaction_session_timeout, postgres-store.ts), which frees the
    // writers' lock for the rest of the fleet.
    const tokenDir = tempDir("turnout-netns-token-");
    dirs.push(tokenDir);
    const tokenFile = join(tokenDir, "token");
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const shared = ["--store", url, "--token-file", tokenFile];

    await lab.backends("app", `${DATA}.40`, { v1: 9001, v2: 9002 });
    // The API first: it brings the schema up to date (the others would wait on its lock).
    await up("api", [
      ...shared,
      "--roles",
      "api",
      "--host",
      `${CTL}.30`,
      "--port",
      String(API_PORT),
    ]);
    await Promise.all([
      up("r1", [...shared, "--roles", "router", "--router-address", `${DATA}.11`]),
      up("r2", [...shared, "--roles", "router", "--router-address", `${DATA}.12`]),
      up("c1", [...shared, "--roles", "controller", "--lease", `${LEASE_MS}ms`], "info"),
      up("c2", [...shared, "--roles", "controller", "--lease", `${LEASE_MS}ms`], "info"),
    ]);
    const { api: apiSocket } = await lab.relay("api", { api: `${CTL}.30:${API_PORT}` });
    apiAgent = new Agent({ connect: { socketPath: apiSocket! } });
    Object.assign(
      clientSockets,
      await lab.relay("client", {
        r1: `${DATA}.11:${SERVICE_PORT}`,
        r2: `${DATA}.12:${SERVICE_PORT}`,
      }),
    );
  });

  after(async () => {
    await apiAgent?.destroy().catch(() => undefined);
    // The fleet first (a clean stop), then PostgreSQL, then the namespaces with what is left.
    await Promise.all(
      Object.values(procs).map(async (p) => {
        if (p.proc.exitCode !== null || p.proc.signalCode !== null) return;
        p.proc.kill("SIGINT");
        const t = setTimeout(() => p.proc.kill("SIGKILL"), 5000);
        await p.exited;
        clearTimeout(t);
      }),
    );
    await pg?.stop();
    await lab?.destroy();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("serves v1 through both routers", async () => {
    const r = await call("POST", "/api/v1/apply", service("v1"));
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const healthy = await waitFor("v1 healthy", async () => {
      const s = await status();
      return s.status?.phase === "Healthy" ? s : undefined;
    });
    const rev = healthy.routeTable.revision as number;
    await waitFor("both routers serve v1's table", async () => {
      return (await serves("r1", rev)) && (await serves("r2", rev));
    });
    // In force; the upstream joins once the router's first health check passed.
    for (const host of ["r1", "r2"] as const) {
      await waitFor(`${host} answers from v1`, async () => (await send(host, 4)).v1 === 4);
      assert.deepEqual(await send(host, 100), { v1: 100 }, host);
    }
  });

  it("(a) a router cut off from the database keeps serving its last table and catches up", async (t) => {
    lab.cut("r1", "ctl");
    // A table change committed while r1 cannot hear of it: the canary's first step, 50%.
    const r = await call("POST", "/api/v1/apply", service("v2"));
    assert.equal(r.status, 200, `${JSON.stringify(r.json)}; ${activity()}`);
    const paused = await waitFor("paused at 50%", async () => {
      const s = await status();
      return s.status?.phase === "Paused" && s.status.canaryWeight === 50 ? s : undefined;
    });
    const rev = paused.routeTable.revision as number;

    // The other router takes it up and splits the traffic.
    await waitFor("r2 serves the canary's table", () => serves("r2", rev));
    await waitFor("r2 answers from v2", async () => ((await send("r2", 20)).v2 ?? 0) > 0);
    const split = await send("r2", 400);
    assert.equal(Object.keys(split).sort().join(","), "v1,v2", JSON.stringify(split));
    assert.ok(Math.abs(split.v2! - 200) <= 50, `r2's v2 share: ${JSON.stringify(split)}`);

    // The cut router: every answer from its last table (v1 only), none failed.
    assert.deepEqual(await send("r1", 200), { v1: 200 }, "r1 serves its last table");
    const r1 = routerOn(await routers(), "r1");
    assert.ok(r1 !== undefined && (r1.revisions.shop ?? 0) < rev, JSON.stringify(r1));

    lab.reconnect("r1", "ctl");
    const back = Date.now();
    await waitFor("r1 serves the canary's table", () => serves("r1", rev), 15_000);
    const caughtUpMs = Date.now() - back;
    t.diagnostic(`r1 served the new table ${caughtUpMs} ms after it was reconnected`);
    assert.ok(caughtUpMs < 5000, `r1 took ${caughtUpMs} ms to catch up after reconnection`);
    await waitFor("r1 answers from v2", async () => ((await send("r1", 20)).v2 ?? 0) > 0);
    const after = await send("r1", 400);
    assert.equal(Object.keys(after).sort().join(","), "v1,v2", JSON.stringify(after));
    assert.ok(Math.abs(after.v2! - 200) <= 50, `r1's v2 share: ${JSON.stringify(after)}`);
  });

  it("(b) the leader cut off stops acting before its lease ends; a standby finishes the rollout", async (t) => {
    const before = (await status()).controller as ControllerView;
    assert.ok(before?.leader, JSON.stringify(before));
    const leaderPid = Number(/pid (\d+)/.exec(before.leader)?.[1]);
    const [oldHost, standbyHost] = procs.c1!.proc.pid === leaderPid ? ["c1", "c2"] : ["c2", "c1"];
    assert.equal(
      procs[oldHost]!.proc.pid,
      leaderPid,
      `the leader (${before.leader}) is one of the controllers`,
    );

    // Promoted past the indefinite pause: 60%, a 3 s pause, 80%, a 3 s pause, done. The leader
    // goes as soon as the rollout is past the promote (the answer, which waits for the routers,
    // is not waited for: on a slow machine the pause could be over by then).
    const promoted = call("POST", "/api/v1/services/shop/promote", {});
    const at = await waitFor("the rollout past the promote", async () => {
      const s = await status();
      // stepIndex is null once the rollout completed.
      const i = s.status?.stepIndex as number | null | undefined;
      return typeof i === "number" && i >= 2 ? i : undefined;
    });
    lab.cut(oldHost, "ctl");
    const cutAt = Date.now();
    const p = await promoted;
    assert.equal(p.status, 200, `${JSON.stringify(p.json)}; ${activity()}`);

    const now = await waitFor(
      "a standby leads",
      async () => {
        const c = (await status()).controller as ControllerView;
        return c.leader !== null && c.leader !== before.leader ? c : undefined;
      },
      15_000,
    );
    const tookMs = Date.now() - cutAt;
    t.diagnostic(`the standby led ${tookMs} ms after the leader was cut off`);
    assert.ok(tookMs < 10_000, `a standby led ${tookMs} ms after the leader was cut off`);
    assert.ok(now.epoch > before.epoch, JSON.stringify({ before, now }));
    assert.equal(
      Number(/pid (\d+)/.exec(now.leader!)?.[1]),
      procs[standbyHost]!.proc.pid,
      "the standby leads",
    );

    // The old leader said it stopped acting, before the standby took over. On a loaded machine
    // it may have lost and retaken its lease before the cut too (a slow renewal counts as
    // failed): what matters is its last word before the takeover, and that it led at the cut.
    const lease = logLines(procs[oldHost]!.stderr()).filter(
      (l) =>
        l.msg.includes("the lease could not be renewed in time") ||
        l.msg.startsWith("controller lease: leading with epoch"),
    );
    const lastBefore = (t0: number) => lease.filter((l) => l.time <= t0).at(-1);
    const atCut = lastBefore(cutAt);
    const stopped = lastBefore(now.since);
    assert.ok(
      stopped?.msg.includes("the lease could not be renewed in time") === true,
      `the old leader's last word before the takeover: ${procs[oldHost]!.stderr().slice(-3000)}`,
    );
    if (stopped === undefined) return;
    if (atCut?.msg.startsWith("controller lease: leading")) {
      assert.ok(stopped.time > cutAt, "it stopped after it was cut off");
    } else {
      // It had already stopped acting (a slow renewal) when the cut came: still never two acting.
      t.diagnostic(`the old leader was not acting at the cut: ${JSON.stringify(atCut)}`);
    }
    t.diagnostic(
      `the old leader stopped acting ${stopped.time - cutAt} ms after the cut, ${now.since - stopped.time} ms before the standby took over`,
    );

    const done = await waitFor(
      "the rollout completed under the new leader",
      async () => {
        const s = await status();
        return s.status?.phase === "Completed" && s.status.stableVersion === "v2" ? s : undefined;
      },
      20_000,
    );
    await waitFor("both routers serve v2 only", async () => {
      return (
        (await serves("r1", done.routeTable.revision)) &&
        (await serves("r2", done.routeTable.revision))
      );
    });

    // The old leader back on the network: it learns it was deposed and writes nothing.
    lab.reconnect(oldHost, "ctl");
    const rejoined = Date.now();
    await waitFor(
      "the old leader talks to the store again",
      async () => {
        const row = pg!.psql(
          `select count(*) from pg_stat_activity where client_addr = '${CTL}.${oldHost === "c1" ? 21 : 22}' and state_change > to_timestamp(${rejoined / 1000})`,
          "turnout",
        );
        return Number(row.trim()) > 0;
      },
      30_000,
    );

    const history = (await call("GET", "/api/v1/services/shop/history")).json
      .events as HistoryEvent[];
    const rollout = history.filter((e) => e.type !== "ResourceApplied");
    // Every event but the leaders' once, each with what it says.
    const seen = new Map<string, number>();
    for (const e of rollout) {
      const key = `${e.type} ${JSON.stringify(e.data)}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
    const twice = [...seen].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], "no event recorded twice");
    const weights = rollout
      .filter((e) => e.type === "WeightChanged")
      .map((e) => e.data.to as number);
    assert.deepEqual(weights, [50, 60, 80], rollout.map((e) => e.type).join(","));
    assert.equal(rollout.filter((e) => e.type === "RolloutCompleted").length, 1);
    const resumed = rollout.filter(
      (e) => e.type === "ControllerStarted" && e.data.holder === now.leader,
    );
    assert.equal(resumed.length, 1, JSON.stringify(resumed));
    assert.equal(resumed[0]!.data.epoch, now.epoch);
    // Where the cut found it (0-based `at`), or further: the new leader picks up from there.
    const step = Number(
      /resuming rollout 1 \(v1 -> v2\) at step (\d+) /.exec(resumed[0]!.message)?.[1],
    );
    assert.ok(step >= at + 1 && step <= 6, `${resumed[0]!.message} (cut at step ${at + 1})`);
    assert.equal(
      rollout.filter((e) => e.type === "StepCompleted" && e.data.step === 3).length,
      1,
      "the timed pause completed once",
    );
  });
});

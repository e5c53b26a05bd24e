// `npm run bench:fleet` (issue #14, item 9): Turnout as a fleet on PostgreSQL, on this machine.
//
// 1. Routers: two router processes (`turnout up --roles router`, on 127.0.0.2 and 127.0.0.3)
//    against one, in the same run, in alternating rounds, over the same backends (one HAProxy
//    answering by itself, "v1" and "v2"). The load is always two wrk processes (-t1 -c32 each,
//    the sticky users script): both at router A for "one router", one at each for "two
//    routers". Reported: requests/s (sum of the two wrk), p99 (the worse of the two), and
//    requests per CPU-second of the router processes (all their threads, from /proc), since
//    the routers, wrk and the backends share this machine's cores.
// 2. Route tables in force: a table committed to the store (as the controller does), then the
//    time until every router's registry entry reports that revision (what the controller's
//    drain waits for). Heard through the store's LISTEN, checked by reading the registry.
// 3. Controller ticks with 200 services, on SQLite and on PostgreSQL: the Controller class with
//    a static runtime and the real stores, the time of `tick()`: steady ticks (nothing to write)
//    and ticks in which every service commits (a rollout starting, then its steps).
// 4. Failover: two `turnout up --roles controller` processes; the leader killed with SIGKILL,
//    the time until the standby's lease is in the store; a new standby is started each time.
//
// Options: --quick (a fast look: 1 short round, fewer commits, ticks and kills; writes nothing
// unless --write), --rounds N (3), --duration S (10), --kills N (20), --commits N (100),
// --no-write, --render (only rewrite the README section from bench/results/fleet.json). Writes bench/results/fleet.json and the fleet section of bench/README.md. Needs
// wrk, haproxy and PostgreSQL (a private cluster, test/support/postgres.ts).
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Controller } from "../src/controller/controller.js";
import { DEFAULT_LEASE_MS } from "../src/controller/lease.js";
import { systemClock } from "../src/core/clock.js";
import type { Resource, RouteTable } from "../src/core/model.js";
import { DEFAULT_TRAFFIC_POLICY } from "../src/core/model.js";
import { HASH_VERSION } from "../src/core/routes.js";
import { parseResources } from "../src/resources/load.js";
import { StaticRuntime } from "../src/runtime/static/static-runtime.js";
import { openPostgresStore, type PostgresStore } from "../src/store/postgres/postgres-store.js";
import { openSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import type { Store } from "../src/store/store.js";
import { type PgCluster, startCluster } from "../test/support/postgres.js";
// @ts-expect-error: plain ESM helpers without types
import { freePorts, killAllNow, startPinned, stop, stopAll } from "./lib/procs.mjs";
// @ts-expect-error: plain ESM helpers without types
import { median, parseWrk } from "./lib/wrk.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(ROOT, "src", "cli", "main.ts");
const LUA = join(ROOT, "bench", "lib", "users.lua");
/** Both cores: nothing here is pinned (two routers are meant to use both). */
const ANY_CORE = `0-${cpus().length - 1}`;
const SERVICES = 200;

const args = process.argv.slice(2);
const QUICK = args.includes("--quick");
const opt = (name: string, full: number, quick: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : QUICK ? quick : full;
};
const ROUNDS = opt("--rounds", 3, 1);
const DURATION = opt("--duration", 10, 3);
const KILLS = opt("--kills", 20, 3);
const COMMITS = opt("--commits", 100, 10);
const STEADY_TICKS = QUICK ? 10 : 50;
const ROLLOUTS = QUICK ? 1 : 5;
const WRITE = args.includes("--write") || (!QUICK && !args.includes("--no-write"));

interface Handle {
  name: string;
  pid: number;
  stdout: string;
  stderr: string;
  alive: boolean;
  exited: Promise<number | string>;
  lineListeners: Set<(line: string) => void>;
}

type Wrk = { rps: number; p99Ms: number; p50Ms: number; requests: number; errors: unknown };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Nearest-rank quantile (q in 0..1) of numbers. */
function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

function summary(values: number[]) {
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    n: values.length,
    medianMs: r(median(values)),
    p99Ms: r(quantile(values, 0.99)),
    maxMs: r(Math.max(...values)),
    minMs: r(Math.min(...values)),
  };
}

/** CPU seconds (user + system, every thread) of the processes so far, from /proc. */
function cpuSeconds(pids: number[]): number {
  const hz = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
  }
  return ticks / hz;
}

/** The machine's busy and total jiffies (all cores), from /proc/stat. */
function machineJiffies(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1);
  const n = f.map(Number);
  const total = n.reduce((a, b) => a + b, 0);
  const idle = n[3]! + n[4]!; // idle, iowait
  return { busy: total - idle, total };
}

function waitForLine(h: Handle, re: RegExp, timeoutMs = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (re.test(h.stdout)) return resolve();
    const timer = setTimeout(() => {
      h.lineListeners.delete(onLine);
      reject(new Error(`${h.name}: no ${re} after ${timeoutMs} ms; stderr: ${h.stderr}`));
    }, timeoutMs);
    const onLine = (line: string) => {
      if (!re.test(line)) return;
      clearTimeout(timer);
      h.lineListeners.delete(onLine);
      resolve();
    };
    h.lineListeners.add(onLine);
    void h.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${h.name} exited with ${code}: ${h.stderr}`));
    });
  });
}

/** `turnout up` from source (tsx: only module loading goes through it, not requests). */
async function turnoutUp(name: string, dataDir: string, upArgs: string[]): Promise<Handle> {
  const h = startPinned(
    name,
    ANY_CORE,
    process.execPath,
    ["--import", "tsx", CLI, "up", "--port", "0", "--data-dir", dataDir, ...upArgs],
    { cwd: ROOT, env: { ...process.env, TURNOUT_LOG_LEVEL: "warn" } },
  ) as Handle;
  await waitForLine(h, /\(no API\)|listening on/);
  return h;
}

async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function get(host: string, port: number): Promise<string | null> {
  try {
    const res = await fetch(`http://${host}:${port}/`, { headers: { "x-user-id": "probe" } });
    return res.ok ? await res.text() : null;
  } catch {
    return null;
  }
}

// ---- 1 and 2: routers ---------------------------------------------------------------------

function backendsConf(p1: number, p2: number): string {
  return [
    "global",
    "  nbthread 1",
    "  maxconn 5000",
    "defaults",
    "  mode http",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    "  timeout http-keep-alive 60s",
    "frontend v1",
    `  bind 127.0.0.1:${p1}`,
    "  http-request return status 200 content-type text/plain string v1",
    "frontend v2",
    `  bind 127.0.0.1:${p2}`,
    "  http-request return status 200 content-type text/plain string v2",
    "",
  ].join("\n");
}

function routeTable(port: number, p1: number, p2: number, canary: number) {
  return {
    service: "bench",
    listen: { host: "127.0.0.1", port },
    stickiness: { header: "x-user-id", salt: "bench" },
    hashVersion: HASH_VERSION,
    backends: [
      { version: "v2", weight: canary, endpoints: [`http://127.0.0.1:${p2}`] },
      { version: "v1", weight: 100 - canary, endpoints: [`http://127.0.0.1:${p1}`] },
    ],
    policy: DEFAULT_TRAFFIC_POLICY,
    updatedAt: Date.now(),
  } satisfies Omit<RouteTable, "revision">;
}

function validated(docs: unknown[]): Resource[] {
  const r = parseResources(JSON.stringify(docs));
  if (r.errors.length > 0) throw new Error(`bench resources: ${JSON.stringify(r.errors[0])}`);
  return r.resources;
}

async function wrk(host: string, port: number, seconds: number): Promise<Wrk> {
  const h = startPinned("wrk", ANY_CORE, "wrk", [
    "-t1",
    "-c32",
    `-d${seconds}s`,
    "--latency",
    "--timeout",
    "5s",
    "-s",
    LUA,
    `http://${host}:${port}/`,
  ]) as Handle;
  const code = await h.exited;
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${h.stderr}`);
  return parseWrk(h.stdout) as Wrk;
}

async function benchRouters(pg: PgCluster, dirs: string[]) {
  const url = await pg.createDatabase("fleet_routers");
  const store = await openPostgresStore({ url });
  const [port, p1, p2] = (await freePorts(3)) as number[];
  const confDir = mkdtempSync(join(tmpdir(), "turnout-bench-fleet-"));
  dirs.push(confDir);
  writeFileSync(join(confDir, "backends.cfg"), backendsConf(p1!, p2!));
  const backends = startPinned("backends", ANY_CORE, "haproxy", [
    "-db",
    "-f",
    join(confDir, "backends.cfg"),
  ]) as Handle;
  await until("the backends", async () =>
    (await get("127.0.0.1", p1!)) === "v1" ? true : undefined,
  );

  // The service and its 90/10 sticky table, written as the controller would (no controller
  // runs here: the table changes are this script's).
  await store.applyResources(
    validated([
      {
        apiVersion: "turnout.dev/v1",
        kind: "Service",
        metadata: { name: "bench" },
        spec: {
          listen: { host: "127.0.0.1", port },
          stickiness: { header: "x-user-id", salt: "bench" },
          runtime: {
            static: {
              versions: {
                v1: { upstreams: [`http://127.0.0.1:${p1}`] },
                v2: { upstreams: [`http://127.0.0.1:${p2}`] },
              },
            },
          },
          version: "v1",
        },
      },
    ]),
    { actor: "bench", now: Date.now() },
  );
  let committed = await store.commit({
    service: "bench",
    now: Date.now(),
    routeTable: routeTable(port!, p1!, p2!, 10),
  });
  const hosts = ["127.0.0.2", "127.0.0.3"];
  const routers: Handle[] = [];
  for (const [i, host] of hosts.entries()) {
    const dir = mkdtempSync(join(tmpdir(), "turnout-bench-router-"));
    dirs.push(dir);
    routers.push(
      await turnoutUp(`router-${i}`, dir, [
        "--store",
        url,
        "--roles",
        "router",
        "--router-address",
        host,
      ]),
    );
  }
  const registry = async () => {
    const list = await store.listRouters();
    return hosts.map((h) => list.find((r) => r.address.includes(`${h}:${port}`)));
  };
  const inForceEverywhere = async (revision: number) =>
    (await registry()).every((r) => r !== undefined && (r.revisions.bench ?? 0) >= revision);
  await until("both routers in force", async () =>
    (await inForceEverywhere(committed.routeTable!.revision)) ? true : undefined,
  );
  // Their first health checks let both versions in.
  for (const host of hosts)
    await until(`${host} answering`, async () => ((await get(host, port!)) ? true : undefined));

  // 1. One router against two, alternating, after a warm-up of each.
  const pids = routers.map((r) => r.pid);
  const run = async (mode: "one" | "two", seconds: number) => {
    const targets = mode === "one" ? [hosts[0]!, hosts[0]!] : hosts;
    const cpu0 = cpuSeconds(pids);
    const m0 = machineJiffies();
    const t0 = performance.now();
    const results = await Promise.all(targets.map((h) => wrk(h, port!, seconds)));
    const wall = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(pids) - cpu0;
    const m1 = machineJiffies();
    const requests = results.reduce((a, r) => a + r.requests, 0);
    return {
      mode,
      rps: Math.round(results.reduce((a, r) => a + r.rps, 0)),
      p50Ms: Math.max(...results.map((r) => r.p50Ms)),
      p99Ms: Math.max(...results.map((r) => r.p99Ms)),
      requests,
      routerCpuSeconds: Math.round(cpu * 100) / 100,
      requestsPerRouterCpuSecond: Math.round(requests / cpu),
      routerCoresUsed: Math.round((cpu / wall) * 100) / 100,
      machineBusy: Math.round(((m1.busy - m0.busy) / (m1.total - m0.total)) * 1000) / 1000,
      errors: results.map((r) => r.errors),
    };
  };
  await run("one", 2);
  await run("two", 2);
  const rounds: { one: Awaited<ReturnType<typeof run>>; two: Awaited<ReturnType<typeof run>> }[] =
    [];
  for (let i = 0; i < ROUNDS; i++) {
    const order: ("one" | "two")[] = i % 2 === 0 ? ["one", "two"] : ["two", "one"];
    const round: Partial<(typeof rounds)[number]> = {};
    for (const mode of order) {
      round[mode] = await run(mode, DURATION);
      console.error(`routers: round ${i + 1} ${mode}: ${JSON.stringify(round[mode])}`);
    }
    rounds.push(round as (typeof rounds)[number]);
  }
  const med = (mode: "one" | "two", k: "rps" | "p99Ms" | "requestsPerRouterCpuSecond") =>
    median(rounds.map((r) => r[mode][k])) as number;
  const throughput = {
    rounds: ROUNDS,
    durationSeconds: DURATION,
    connections: 64,
    one: {
      rps: med("one", "rps"),
      p99Ms: med("one", "p99Ms"),
      requestsPerRouterCpuSecond: med("one", "requestsPerRouterCpuSecond"),
    },
    two: {
      rps: med("two", "rps"),
      p99Ms: med("two", "p99Ms"),
      requestsPerRouterCpuSecond: med("two", "requestsPerRouterCpuSecond"),
    },
    byRound: rounds,
  };

  // 2. Commit -> in force on both routers. Heard through LISTEN ("routers" changes), checked
  // against the registry; a 20 ms poll as well, in case a notification is late.
  let wake: () => void = () => {};
  const unlisten = store.onChange((what) => {
    if (what === "routers") wake();
  });
  const fromCall: number[] = [];
  const fromCommitted: number[] = [];
  const commitMs: number[] = [];
  for (let k = 0; k < COMMITS; k++) {
    const t0 = performance.now();
    committed = await store.commit({
      service: "bench",
      now: Date.now(),
      routeTable: routeTable(port!, p1!, p2!, k % 2 === 0 ? 20 : 10),
    });
    const t1 = performance.now();
    const revision = committed.routeTable!.revision;
    while (!(await inForceEverywhere(revision))) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, 20);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    const t2 = performance.now();
    commitMs.push(t1 - t0);
    fromCall.push(t2 - t0);
    fromCommitted.push(t2 - t1);
    // Commits at varied phases of the routers' heartbeats and polls (deterministic spread).
    await sleep(50 + ((k * 37) % 100));
  }
  unlisten();
  const inForce = {
    commits: COMMITS,
    routers: hosts.length,
    fromCommitCall: summary(fromCall),
    fromCommitReturned: summary(fromCommitted),
    commit: summary(commitMs),
  };

  for (const r of routers) await stop(r);
  await stop(backends);
  await store.close();
  return { throughput, inForce };
}

// ---- 3: controller ticks -------------------------------------------------------------------

function services(version: string): Resource[] {
  return validated(
    Array.from({ length: SERVICES }, (_, i) => ({
      apiVersion: "turnout.dev/v1",
      kind: "Service",
      metadata: { name: `svc-${String(i).padStart(3, "0")}` },
      spec: {
        listen: { port: 20_000 + i },
        runtime: {
          static: {
            versions: {
              v1: { upstreams: [`http://10.0.${i >> 8}.${i & 255}:8080`] },
              v2: { upstreams: [`http://10.1.${i >> 8}.${i & 255}:8080`] },
            },
          },
        },
        version,
        strategy: { canary: { steps: [{ setWeight: 20 }, { setWeight: 50 }] } },
      },
    })),
  );
}

async function benchTicks(store: Store) {
  const controller = new Controller({ store, runtime: new StaticRuntime(), clock: systemClock });
  const tick = async () => {
    const t0 = performance.now();
    const r = await controller.tick();
    return { ms: performance.now() - t0, written: r.written.length };
  };
  await store.applyResources(services("v1"), { actor: "bench", now: Date.now() });
  // Until the first tick that writes nothing: stable versions set, instances in the tables.
  while ((await tick()).written > 0);
  const steady: number[] = [];
  for (let i = 0; i < STEADY_TICKS; i++) {
    const t = await tick();
    if (t.written !== 0) throw new Error(`a steady tick wrote ${t.written} services`);
    steady.push(t.ms);
  }
  // Rollouts of every service at once, back and forth: ticks until the store is quiet again.
  const writing: number[] = [];
  const written: number[] = [];
  for (let k = 0; k < ROLLOUTS; k++) {
    await store.applyResources(services(k % 2 === 0 ? "v2" : "v1"), {
      actor: "bench",
      now: Date.now(),
    });
    for (;;) {
      const t = await tick();
      if (t.written === 0) break;
      writing.push(t.ms);
      written.push(t.written);
    }
  }
  await controller.stop();
  return {
    services: SERVICES,
    steady: summary(steady),
    writing: { ...summary(writing), servicesWrittenMedian: median(written) },
  };
}

// ---- 4: failover ---------------------------------------------------------------------------

async function benchFailover(pg: PgCluster, dirs: string[]) {
  const url = await pg.createDatabase("fleet_failover");
  const store: PostgresStore = await openPostgresStore({ url, listen: false });
  const leaseMs = DEFAULT_LEASE_MS;
  const intervalMs = Math.floor(leaseMs / 4);
  let n = 0;
  const controller = async () => {
    const dir = mkdtempSync(join(tmpdir(), "turnout-bench-controller-"));
    dirs.push(dir);
    return turnoutUp(`controller-${n++}`, dir, ["--store", url, "--roles", "controller"]);
  };
  const pidOf = (holder: string) => Number(/pid (\d+)/.exec(holder)?.[1]);
  let running = [await controller(), await controller()];
  const samples: { failoverMs: number; epoch: number }[] = [];
  for (let k = 0; k < KILLS; k++) {
    // The standby has looked at the lease by now; the kill falls at varied phases of the
    // renewal interval (deterministic spread).
    await sleep(1000 + ((k * 331) % intervalMs));
    const lease = await until("a leader", async () => {
      const l = await store.controllerLease();
      return l !== null && !l.released ? l : undefined;
    });
    const victim = running.find((h) => h.pid === pidOf(lease.holder));
    if (victim === undefined) throw new Error(`the leader ${lease.holder} is not ours`);
    const killedAt = Date.now();
    process.kill(victim.pid, "SIGKILL");
    const next = await until(
      "a standby leading",
      async () => {
        const l = await store.controllerLease();
        return l !== null && l.epoch > lease.epoch && !l.released ? l : undefined;
      },
      30_000,
    );
    const failoverMs = Date.now() - killedAt;
    samples.push({ failoverMs, epoch: next.epoch });
    console.error(`failover ${k + 1}/${KILLS}: ${failoverMs} ms (epoch ${next.epoch})`);
    await victim.exited;
    running = [...running.filter((h) => h !== victim), await controller()];
  }
  for (const h of running) await stop(h);
  await store.close();
  return {
    kills: KILLS,
    leaseMs,
    intervalMs,
    failover: summary(samples.map((s) => s.failoverMs)),
    samples,
  };
}

// ---- main ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100);
  const dirs: string[] = [];
  process.on("exit", () => killAllNow());
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.on(sig, () => {
      killAllNow();
      process.exit(130);
    });
  const pg = await startCluster();
  const out: Record<string, unknown> = {};
  try {
    console.error("routers ...");
    Object.assign(out, { routers: await benchRouters(pg, dirs) });
    console.error("controller ticks ...");
    const sqliteDir = mkdtempSync(join(tmpdir(), "turnout-bench-ticks-"));
    dirs.push(sqliteDir);
    const sqlite = await openSqliteStore({ path: join(sqliteDir, "turnout.db") });
    const onSqlite = await benchTicks(sqlite);
    await sqlite.close();
    const postgres = await openPostgresStore({ url: await pg.createDatabase("fleet_ticks") });
    const onPostgres = await benchTicks(postgres);
    await postgres.close();
    out.ticks = { sqlite: onSqlite, postgres: onPostgres };
    console.error("failover ...");
    out.failover = await benchFailover(pg, dirs);
  } finally {
    await stopAll();
    await pg.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
  const version = (cmd: string, a: string[]) =>
    spawnSync(cmd, a, { encoding: "utf8" }).stdout.split("\n")[0]?.trim();
  const result = {
    at: new Date().toISOString(),
    quick: QUICK,
    git: version("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]),
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model,
      kernel: release(),
      node: process.version,
      postgres: version("psql", ["--version"]),
      wrk: version("dpkg-query", ["-W", "-f", "${Version}", "wrk"]),
      haproxy: version("haproxy", ["-v"]),
      loadAtStart,
      loadAtEnd: loadavg().map((x) => Math.round(x * 100) / 100),
    },
    ...out,
  };
  console.log(JSON.stringify(result, null, 2));
  if (WRITE) {
    writeFileSync(
      join(ROOT, "bench", "results", "fleet.json"),
      `${JSON.stringify(result, null, 2)}\n`,
    );
    updateReadme(result);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: the result object built in main, read back as JSON
function updateReadme(r: Record<string, any>): void {
  const t = r.routers.throughput;
  const f = r.routers.inForce;
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(", ");
  const n = (x: number) => Math.round(x).toLocaleString("en-US");
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const lines = [
    `Measured ${r.at.slice(0, 16).replace("T", " ")} UTC at git ${r.git} on ${r.machine.cpus} cores (${r.machine.model}, Linux ${r.machine.kernel}), Node ${r.machine.node}, ${r.machine.postgres}, wrk ${r.machine.wrk}. Load average (1, 5, 15 min) ${load(r.machine.loadAtStart)} at the start, ${load(r.machine.loadAtEnd)} at the end.`,
    "",
    `**Routers** (median of ${t.rounds} alternating rounds of ${t.durationSeconds} s, two wrk with 32 connections each, 90/10 sticky split):`,
    "",
    "| | requests/s | p99 | requests per router CPU-second | router cores used | machine busy |",
    "|---|---:|---:|---:|---:|---:|",
    ...(["one", "two"] as const).map((m) => {
      const last = t.byRound.map((x: Record<string, Record<string, number>>) => x[m]!);
      return `| ${m === "one" ? "one router process" : "two router processes"} | ${n(t[m].rps)} | ${ms(t[m].p99Ms)} | ${n(t[m].requestsPerRouterCpuSecond)} | ${median(last.map((x: Record<string, number>) => x.routerCoresUsed)).toFixed(2)} | ${(100 * median(last.map((x: Record<string, number>) => x.machineBusy))).toFixed(0)}% |`;
    }),
    `| two / one | ${(t.two.rps / t.one.rps).toFixed(2)}× | ${(t.two.p99Ms / t.one.p99Ms).toFixed(2)}× | ${(t.two.requestsPerRouterCpuSecond / t.one.requestsPerRouterCpuSecond).toFixed(2)}× | | |`,
    "",
    `**A route table committed, in force on both routers** (the registry reports its revision; ${f.commits} commits): median ${ms(f.fromCommitCall.medianMs)}, p99 ${ms(f.fromCommitCall.p99Ms)}, max ${ms(f.fromCommitCall.maxMs)} from the commit call (the commit itself: median ${ms(f.commit.medianMs)}).`,
    "",
    `**Controller tick, ${r.ticks.sqlite.services} services** (the Controller class, static runtime):`,
    "",
    "| store | steady tick (nothing to write): median / p99 | a tick that commits every service: median / p99 |",
    "|---|---:|---:|",
    ...(["sqlite", "postgres"] as const).map((s) => {
      const x = r.ticks[s];
      return `| ${s === "sqlite" ? "SQLite" : "PostgreSQL"} | ${ms(x.steady.medianMs)} / ${ms(x.steady.p99Ms)} (${x.steady.n} ticks) | ${ms(x.writing.medianMs)} / ${ms(x.writing.p99Ms)} (${x.writing.n} ticks) |`;
    }),
    "",
    `**Failover** (${r.failover.kills} kills of the leader with SIGKILL, lease ${r.failover.leaseMs / 1000} s renewed every ${r.failover.intervalMs / 1000} s): the standby's lease was in the store after a median of ${ms(r.failover.failover.medianMs)}, at most ${ms(r.failover.failover.maxMs)} (least ${ms(r.failover.failover.minMs)}).`,
  ];
  const path = join(ROOT, "bench", "README.md");
  const start = "<!-- bench:fleet:results:start -->";
  const end = "<!-- bench:fleet:results:end -->";
  const cur = readFileSync(path, "utf8");
  const block = `${start}\n${lines.join("\n")}\n${end}`;
  const a = cur.indexOf(start);
  const z = cur.indexOf(end);
  if (a < 0 || z < a) throw new Error(`bench/README.md has no ${start} ... ${end} section`);
  writeFileSync(path, cur.slice(0, a) + block + cur.slice(z + end.length));
  // The repository's formatter aligns the tables (CI checks it).
  spawnSync("npx", ["biome", "format", "--write", path], { cwd: ROOT, stdio: "ignore" });
}

if (args.includes("--render")) {
  // The README section again from the last results (after its wording changed), no run.
  updateReadme(JSON.parse(readFileSync(join(ROOT, "bench", "results", "fleet.json"), "utf8")));
} else {
  main().catch(async (err) => {
    console.error(err);
    await stopAll();
    process.exit(1);
  });
}

// `npm run bench:router`: Turnout's router against nginx, HAProxy and fastify + reply-from,
// each a 90/10 proxy to the same two nginx backends, the proxy pinned to one core, wrk on the
// other. Writes bench/results/router.json and the results section of bench/README.md.
//
// Options: --rounds N (3), --duration S (10), --warmup S (3), --rss-duration S (5),
// --no-build (use dist/ as it is), --profile (profile Turnout even when every goal is met),
// --keep-profile (also copy the .cpuprofile to bench/results/, for DevTools),
// --bare (add a featureless node:http + undici proxy as a reference point),
// --node-flags "..." (extra node flags for Turnout's process, e.g. "--max-semi-space-size=4"),
// --no-write (print only), --quick (1 round of 3 s, a smoke test; implies --no-write).
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { Agent } from "node:http";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { backendsNginxConf, haproxyConf, proxyNginxConf } from "./lib/configs.mjs";
import { aggregateCpuProfile } from "./lib/cpuprofile.mjs";
import {
  cpuSecondsOf,
  freePorts,
  httpGet,
  killAllNow,
  memoryOf,
  processTree,
  runPinned,
  startPinned,
  stop,
  stopAll,
  waitForOk,
  waitForReadyLine,
} from "./lib/procs.mjs";
import { markdownSection, terminalTable, updateReadme } from "./lib/report.mjs";
import { median, parseWrk } from "./lib/wrk.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BENCH = join(ROOT, "bench");
const LUA = join(BENCH, "lib", "users.lua");
const USERS = 10_000;
const CONNECTIONS = 64;
const RSS_CONNECTIONS = 1000;
const GOALS = { rpsVsNginx: 0.4, rpsVsFastify: 1.6, p99VsNginx: 3, rssMB: 120 };

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

function parseArgs(argv) {
  const o = {
    rounds: 3,
    duration: 10,
    warmup: 3,
    rssDuration: 5,
    build: true,
    profile: false,
    keepProfile: false,
    bare: false,
    nodeFlags: [],
    write: true,
    quick: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === "--rounds") o.rounds = num();
    else if (a === "--duration") o.duration = num();
    else if (a === "--warmup") o.warmup = num();
    else if (a === "--rss-duration") o.rssDuration = num();
    else if (a === "--no-build") o.build = false;
    else if (a === "--profile") o.profile = true;
    else if (a === "--keep-profile") o.keepProfile = o.profile = true;
    else if (a === "--bare") o.bare = true;
    else if (a === "--no-write") o.write = false;
    else if (a === "--node-flags") o.nodeFlags = (argv[++i] ?? "").split(/\s+/).filter(Boolean);
    else if (a === "--quick") {
      o.quick = true;
      o.write = false;
      o.rounds = 1;
      o.duration = 3;
      o.warmup = 1;
      o.rssDuration = 2;
    } else throw new Error(`unknown option ${a}`);
  }
  return o;
}

// ---------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------

const TOOLS = [
  { bin: "nginx", pkg: "nginx" },
  { bin: "haproxy", pkg: "haproxy" },
  { bin: "wrk", pkg: "wrk" },
  { bin: "taskset", pkg: "util-linux" },
];

function has(bin) {
  return spawnSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" }).status === 0;
}

/** Installs missing tools from Debian's packages (as root), or says what to install. */
function ensureTools() {
  const missing = TOOLS.filter((t) => !has(t.bin));
  if (missing.length === 0) return;
  const pkgs = missing.map((t) => t.pkg);
  const hint = `apt-get update && apt-get install -y ${pkgs.join(" ")}`;
  if (process.getuid?.() !== 0 || !has("apt-get")) {
    console.error(
      `bench:router needs ${missing.map((t) => t.bin).join(", ")}. Install them:\n  sudo ${hint}`,
    );
    process.exit(1);
  }
  console.log(`installing ${pkgs.join(", ")} with apt-get ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const up = spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
  const inst =
    up.status === 0
      ? spawnSync("apt-get", ["install", "-y", "-qq", ...pkgs], { stdio: "inherit", env })
      : up;
  const still = TOOLS.filter((t) => !has(t.bin));
  if (inst.status !== 0 || still.length > 0) {
    console.error(`apt-get could not install ${pkgs.join(" ")}; install them by hand:\n  ${hint}`);
    process.exit(1);
  }
}

function versionOf(cmd, args, re) {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  const text = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  return re.exec(text)?.[1] ?? text.split("\n")[0].trim();
}

function machineInfo() {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  return {
    nproc: Number(spawnSync("nproc", { encoding: "utf8" }).stdout.trim()) || cpus().length,
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    kernel: `Linux ${release()}`,
    node: process.version,
    nginx: versionOf("nginx", ["-v"], /nginx\/(\S+)/),
    haproxy: versionOf("haproxy", ["-v"], /version (\S+)/),
    wrk: versionOf("wrk", ["-v"], /^wrk (\S+)/m),
  };
}

function gitRevision() {
  const r = spawnSync("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"], { encoding: "utf8" });
  if (r.status !== 0) return null;
  const dirty = spawnSync("git", ["-C", ROOT, "status", "--porcelain", "--", "src"], {
    encoding: "utf8",
  }).stdout.trim();
  return `${r.stdout.trim()}${dirty === "" ? "" : " + uncommitted changes in src/"}`;
}

function build() {
  console.log("building (npm run build) ...");
  const r = spawnSync("npm", ["run", "build", "--silent"], { cwd: ROOT, encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`npm run build failed:\n${r.stdout}${r.stderr}`);
  }
}

/** Formats the written files as the project's linter wants them, so `npm run lint` stays green. */
function formatOutputs(files) {
  const biome = join(ROOT, "node_modules", ".bin", "biome");
  const r = spawnSync(biome, ["format", "--write", ...files], { encoding: "utf8" });
  if (r.status !== 0) {
    console.warn(`note: could not format ${files.join(", ")} with biome; run npm run format`);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  ensureTools();
  opts.loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100);
  if (opts.loadAtStart[0] > 0.5) {
    console.warn(
      `warning: load average ${opts.loadAtStart[0]} before the run: other work on this machine skews the figures`,
    );
  }
  const machine = machineInfo();
  const cores = {
    proxy: 0,
    backends: machine.nproc >= 2 ? 1 : 0,
    wrk: machine.nproc >= 3 ? 2 : machine.nproc >= 2 ? 1 : 0,
  };
  if (machine.nproc < 2) console.warn("warning: 1 core; proxy, backends and wrk share it");
  if (opts.build) build();

  const dir = mkdtempSync(join(tmpdir(), "turnout-bench-"));
  cleanupDir = dir;
  for (const d of ["backends-tmp", "nginx-proxy-tmp", "prof"]) mkdirSync(join(dir, d));
  const [portA, portB, pTurnout, pNginx, pHaproxy, pFastify, pProfile, pBare] = await freePorts(8);

  // 1. Backends: one nginx, "ok" on two ports, a log line per request into a file each.
  const logs = [join(dir, "backend-a.log"), join(dir, "backend-b.log")];
  writeFileSync(join(dir, "backends.conf"), backendsNginxConf(dir, [portA, portB], logs));
  const backends = startPinned("backends (nginx)", cores.backends, "nginx", [
    "-p",
    dir,
    "-e",
    join(dir, "backends.error.log"),
    "-c",
    join(dir, "backends.conf"),
    "-g",
    "daemon off;",
  ]);
  await waitForOk("backend a", portA, backends);
  await waitForOk("backend b", portB, backends);

  // 2. The four proxies, each 90/10 to backend a / backend b.
  const split = [
    { url: `http://127.0.0.1:${portA}`, port: portA, weight: 90, nginxWeight: 9, version: "v1" },
    { url: `http://127.0.0.1:${portB}`, port: portB, weight: 10, nginxWeight: 1, version: "v2" },
  ];
  const turnoutConfig = (port) =>
    JSON.stringify({
      db: join(dir, `turnout-${port}.db`),
      port,
      // Canary (the 10% one) first, as the controller writes tables.
      backends: [split[1], split[0]].map(({ version, weight, url }) => ({ version, weight, url })),
      stickiness: { header: "x-user-id", salt: "bench" },
    });
  writeFileSync(join(dir, "nginx-proxy.conf"), proxyNginxConf(dir, pNginx, split));
  writeFileSync(join(dir, "haproxy.cfg"), haproxyConf(pHaproxy, split));
  const nodeEnv = { ...process.env, NODE_ENV: "production" };
  const proxies = [
    {
      id: "turnout",
      label: "Turnout router",
      port: pTurnout,
      start: () =>
        startPinned(
          "turnout",
          cores.proxy,
          process.execPath,
          [...opts.nodeFlags, join(BENCH, "lib", "turnout-proxy.mjs"), turnoutConfig(pTurnout)],
          { env: nodeEnv, cwd: ROOT },
        ),
      node: true,
    },
    {
      id: "nginx",
      label: "nginx",
      port: pNginx,
      start: () =>
        startPinned("nginx proxy", cores.proxy, "nginx", [
          "-p",
          dir,
          "-e",
          join(dir, "nginx-proxy.error.log"),
          "-c",
          join(dir, "nginx-proxy.conf"),
          "-g",
          "daemon off;",
        ]),
    },
    {
      id: "haproxy",
      label: "HAProxy",
      port: pHaproxy,
      start: () =>
        startPinned("haproxy", cores.proxy, "haproxy", ["-db", "-f", join(dir, "haproxy.cfg")]),
    },
    {
      id: "fastify",
      label: "fastify + reply-from",
      port: pFastify,
      start: () =>
        startPinned(
          "fastify",
          cores.proxy,
          process.execPath,
          [
            join(BENCH, "lib", "fastify-proxy.mjs"),
            JSON.stringify({
              port: pFastify,
              backends: split.map(({ url, weight }) => ({ url, weight })),
            }),
          ],
          { env: nodeEnv, cwd: ROOT },
        ),
      node: true,
    },
  ];
  if (opts.bare) {
    proxies.push({
      id: "bare",
      label: "bare node:http + undici",
      port: pBare,
      start: () =>
        startPinned(
          "bare",
          cores.proxy,
          process.execPath,
          [
            join(BENCH, "lib", "bare-proxy.mjs"),
            JSON.stringify({
              port: pBare,
              backends: split.map(({ url, weight }) => ({ url, weight })),
            }),
          ],
          { env: nodeEnv, cwd: ROOT },
        ),
      node: true,
    });
  }
  for (const p of proxies) {
    p.handle = p.start();
    if (p.node) await waitForReadyLine(p.handle);
    await waitForOk(p.label, p.port, p.handle);
    p.startRss = sumMemory(processTree(p.handle.pid));
    p.runs = [];
    p.splitCounts = [0, 0];
  }
  // Sticky assignment, request by request, before any load.
  const stickyCheck = await checkSticky(pTurnout);
  console.log(`sticky check: ${stickyCheck.verdict}`);

  const wrk = async (port, connections, seconds) => {
    const out = await runPinned("wrk", cores.wrk, "wrk", [
      "-t1",
      `-c${connections}`,
      `-d${seconds}s`,
      "--latency",
      "--timeout",
      "5s",
      "-s",
      LUA,
      `http://127.0.0.1:${port}/`,
    ]);
    return parseWrk(out);
  };
  const alive = (p) => {
    if (!p.handle.alive) {
      throw new Error(`${p.label} exited (${p.handle.exitCode}): ${p.handle.stderr.trim()}`);
    }
  };

  // 3. Warm-up (JIT, connection pools), then interleaved rounds with the order rotated.
  console.log(`warm-up: ${opts.warmup} s per proxy`);
  for (const p of proxies) {
    await wrk(p.port, CONNECTIONS, opts.warmup);
    alive(p);
  }
  for (let r = 0; r < opts.rounds; r++) {
    const order = proxies.map((_, i) => proxies[(i + r) % proxies.length]);
    for (const p of order) {
      const before = await settledLogSizes(logs);
      const cpu0 = coreTimes();
      const pids = processTree(p.handle.pid);
      const proxyCpu0 = cpuSecondsOf(pids);
      const res = await wrk(p.port, CONNECTIONS, opts.duration);
      const proxyCpu = cpuSecondsOf(pids) - proxyCpu0;
      const busy = coreBusy(cpu0, coreTimes());
      const after = await settledLogSizes(logs);
      alive(p);
      // Each backend request logs a 2-byte line ("1\n").
      const counts = [(after[0] - before[0]) / 2, (after[1] - before[1]) / 2];
      p.splitCounts[0] += counts[0];
      p.splitCounts[1] += counts[1];
      // Busy share of the proxy's core and of wrk's: tells which side was the bottleneck (and
      // shows other work on the machine, if any).
      const cpuBusy = { proxyCore: busy[cores.proxy], wrkCore: busy[cores.wrk] };
      // The proxy's own CPU time: requests per CPU-second is its efficiency, which other work
      // on the machine (taking turns on the proxy's core) disturbs much less than requests/s.
      const proxyCpuShare = Math.round((proxyCpu / opts.duration) * 1000) / 1000;
      const rpsPerCpu = proxyCpu > 0 ? Math.round(res.requests / proxyCpu) : null;
      p.runs.push({
        round: r + 1,
        ...res,
        backendCounts: counts,
        cpuBusy,
        proxyCpuSeconds: proxyCpu,
        proxyCpuShare,
        rpsPerCpu,
      });
      console.log(
        `round ${r + 1}  ${p.label.padEnd(22)} ${Math.round(res.rps).toString().padStart(7)} req/s  ` +
          `p50 ${res.p50Ms.toFixed(2)} ms  p99 ${res.p99Ms.toFixed(2)} ms  ` +
          `share b ${((counts[1] / (counts[0] + counts[1])) * 100).toFixed(2)}%  ` +
          `proxy used ${pct(proxyCpuShare)} of a core (core busy ${pct(cpuBusy.proxyCore)}), ` +
          `wrk core busy ${pct(cpuBusy.wrkCore)}`,
      );
    }
  }

  // 4. Memory at 1,000 concurrent connections.
  for (const p of proxies) {
    const pids = processTree(p.handle.pid);
    const idle = sumMemory(pids);
    let maxRss = 0;
    const sampler = setInterval(() => {
      const m = sumMemory(pids);
      if (m !== null) maxRss = Math.max(maxRss, m.rssMB);
    }, 100);
    let res;
    try {
      res = await wrk(p.port, RSS_CONNECTIONS, opts.rssDuration);
    } finally {
      clearInterval(sampler);
    }
    alive(p);
    const end = sumMemory(pids);
    p.rss = {
      connections: RSS_CONNECTIONS,
      processes: pids.length,
      startRssMB: round1(p.startRss?.rssMB),
      idleRssMB: round1(idle?.rssMB),
      maxRssMB: round1(Math.max(maxRss, end?.rssMB ?? 0)),
      hwmMB: round1(end?.hwmMB),
      rps: Math.round(res.rps),
      p99Ms: res.p99Ms,
      errors: res.errors,
    };
    console.log(
      `RSS at ${RSS_CONNECTIONS} conns  ${p.label.padEnd(22)} max ${p.rss.maxRssMB} MB, ` +
        `HWM ${p.rss.hwmMB} MB (${pids.length} process${pids.length > 1 ? "es" : ""}), ${p.rss.rps} req/s`,
    );
  }

  // Stop the proxies; Turnout prints its own per-version counters as it exits.
  for (const p of proxies) await stop(p.handle);
  const statsLine = proxies[0].handle.stdout
    .split("\n")
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return null;
      }
    })
    .find((m) => m?.stats !== undefined);

  const results = summarize(opts, machine, cores, proxies, statsLine?.stats, stickyCheck);
  results.proxies[0].split.expectedStickyShareB = stickyCheck.expectedShareB;
  results.proxies[0].stickyCheck = stickyCheck;

  // 5. When a goal is not met, profile Turnout under the same load to show where time goes.
  if (opts.profile || results.goals.some((g) => !g.met)) {
    console.log("profiling Turnout's router (--cpu-prof) ...");
    results.profile = await profileTurnout(
      dir,
      cores,
      pProfile,
      turnoutConfig(pProfile),
      wrk,
      opts,
    );
  }
  results.durationSeconds = Math.round((Date.now() - started) / 1000);

  console.log("");
  console.log(terminalTable(results));
  if (!opts.write) {
    console.log("\nresults not written (--quick or --no-write)");
    return;
  }
  mkdirSync(join(BENCH, "results"), { recursive: true });
  writeFileSync(join(BENCH, "results", "router.json"), `${JSON.stringify(results, null, 2)}\n`);
  updateReadme(join(BENCH, "README.md"), markdownSection(results));
  formatOutputs([join(BENCH, "README.md"), join(BENCH, "results", "router.json")]);
  console.log("\nwrote bench/results/router.json and bench/README.md");
}

const pct = (x) => `${Math.round(x * 100)}%`;

/** Per-core [busy, total] jiffies from /proc/stat. */
function coreTimes() {
  const out = [];
  for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const f = m[2].split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal ...; idle + iowait is not busy.
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    out[Number(m[1])] = [total - f[3] - f[4], total];
  }
  return out;
}

/** Busy share (0..1) per core between two `coreTimes()` readings. */
function coreBusy(a, b) {
  return b.map((t, i) => {
    const dt = t[1] - a[i][1];
    return dt > 0 ? Math.round(((t[0] - a[i][0]) / dt) * 1000) / 1000 : 0;
  });
}

const STICKY_SAMPLE_USERS = 200;
const STICKY_REPEATS = 3;

/**
 * Checks sticky assignment through Turnout: each of 200 users sends 3 requests, which must all
 * reach one backend (the backends name themselves in `X-Backend`), and, when the built code
 * has `bucketOf`, the backend its bucket says: the canary ("b", first in the table) owns the
 * first 10% of buckets. Also returns the share of wrk's 10,000 users whose bucket is the
 * canary's, which is what Turnout's observed split should be with stickiness on (wrk cycles
 * through the users evenly), rather than exactly 10%.
 */
async function checkSticky(port) {
  let bucketOf = null;
  try {
    const mod = await import(join(ROOT, "dist", "core", "hashing.js"));
    if (typeof mod.bucketOf === "function") bucketOf = mod.bucketOf;
  } catch {
    // Not built yet: only consistency is checked.
  }
  const canary = (user) => bucketOf("bench", user, 1) < 100_000;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let consistent = 0;
  let matchesHash = 0;
  try {
    for (let k = 1; k <= STICKY_SAMPLE_USERS; k++) {
      const user = `user-${k}`;
      const seen = new Set();
      for (let i = 0; i < STICKY_REPEATS; i++) {
        const r = await httpGet(port, { "x-user-id": user }, agent);
        if (r.status !== 200) throw new Error(`turnout: request for ${user} got ${r.status}`);
        seen.add(r.headers["x-backend"]);
      }
      if (seen.size === 1) consistent++;
      if (bucketOf !== null && seen.size === 1 && seen.has(canary(user) ? "b" : "a")) matchesHash++;
    }
  } finally {
    agent.destroy();
  }
  let expectedShareB = null;
  if (bucketOf !== null) {
    let inCanary = 0;
    for (let k = 1; k <= USERS; k++) if (canary(`user-${k}`)) inCanary++;
    expectedShareB = inCanary / USERS;
  }
  const inEffect =
    consistent === STICKY_SAMPLE_USERS && (bucketOf === null || matchesHash === consistent);
  const verdict =
    `${consistent} of ${STICKY_SAMPLE_USERS} users kept one backend over ${STICKY_REPEATS} requests` +
    (bucketOf === null
      ? " (no bucketOf in dist/core/hashing.js to compare with)"
      : `, ${matchesHash} on the backend their hash bucket names`) +
    `: sticky assignment ${inEffect ? "in effect" : "NOT in effect"}`;
  return {
    users: STICKY_SAMPLE_USERS,
    repeats: STICKY_REPEATS,
    consistent,
    matchesHash: bucketOf === null ? null : matchesHash,
    inEffect,
    expectedShareB,
    verdict,
  };
}

function round1(x) {
  return x === undefined || x === null ? null : Math.round(x * 10) / 10;
}

/** VmRSS / VmHWM summed over a proxy's processes (nginx: master + worker), in MB (10^6 bytes). */
function sumMemory(pids) {
  let rss = 0;
  let hwm = 0;
  let any = false;
  for (const pid of pids) {
    const m = memoryOf(pid);
    if (m === null) continue;
    any = true;
    rss += m.rssMiB;
    hwm += m.hwmMiB;
  }
  const toMB = 1.048576;
  return any ? { rssMB: rss * toMB, hwmMB: hwm * toMB } : null;
}

/** Backend log sizes once nginx has flushed its buffers (flush=100ms): stable for 300 ms. */
async function settledLogSizes(logs) {
  const size = () => logs.map((f) => statSync(f, { throwIfNoEntry: false })?.size ?? 0);
  const deadline = Date.now() + 5000;
  let last = size();
  for (;;) {
    await sleep(300);
    const now = size();
    if ((now[0] === last[0] && now[1] === last[1]) || Date.now() > deadline) return now;
    last = now;
  }
}

function summarize(opts, machine, cores, proxies, routerStats, stickyCheck) {
  const pick = (p, key) => p.runs.map((r) => r[key]);
  const out = proxies.map((p) => {
    const total = p.splitCounts[0] + p.splitCounts[1];
    const errorsTotal = p.runs.reduce(
      (s, r) => s + Object.values(r.errors).reduce((a, b) => a + b, 0),
      0,
    );
    return {
      id: p.id,
      label: p.label,
      rps: { median: Math.round(median(pick(p, "rps"))), rounds: pick(p, "rps").map(Math.round) },
      rpsPerCpuSecond: {
        median: Math.round(median(pick(p, "rpsPerCpu"))),
        rounds: pick(p, "rpsPerCpu"),
      },
      proxyCpuShare: { median: median(pick(p, "proxyCpuShare")), rounds: pick(p, "proxyCpuShare") },
      p50Ms: { median: median(pick(p, "p50Ms")), rounds: pick(p, "p50Ms") },
      p99Ms: { median: median(pick(p, "p99Ms")), rounds: pick(p, "p99Ms") },
      errorsTotal,
      split: {
        backendA: p.splitCounts[0],
        backendB: p.splitCounts[1],
        shareB: total === 0 ? null : Math.round((p.splitCounts[1] / total) * 1e6) / 1e6,
        expectedShareB: 0.1,
      },
      rss: p.rss,
      runs: p.runs,
      ...(p.id === "turnout" && routerStats !== undefined ? { routerStats } : {}),
    };
  });
  const t = out.find((p) => p.id === "turnout");
  for (const p of out) {
    if (p === t) continue;
    p.turnoutRatio = {
      rps: Math.round((t.rps.median / p.rps.median) * 1000) / 1000,
      rpsPerCpuSecond:
        Math.round((t.rpsPerCpuSecond.median / p.rpsPerCpuSecond.median) * 1000) / 1000,
      p99: Math.round((t.p99Ms.median / p.p99Ms.median) * 1000) / 1000,
    };
  }
  const by = (id) => out.find((p) => p.id === id);
  const rpsNginx = by("nginx").turnoutRatio.rps;
  const rpsFastify = by("fastify").turnoutRatio.rps;
  const p99Nginx = by("nginx").turnoutRatio.p99;
  const rss = t.rss.hwmMB;
  const goals = [
    {
      goal: "sticky assignment in effect during the measurement (precondition)",
      target: true,
      actual: stickyCheck.inEffect,
      measured: stickyCheck.verdict.slice(0, stickyCheck.verdict.lastIndexOf(":")),
      met: stickyCheck.inEffect,
    },
    {
      goal: `req/s ≥ ${GOALS.rpsVsNginx}× nginx`,
      reference: "nginx",
      target: GOALS.rpsVsNginx,
      actual: rpsNginx,
      measured: `${rpsNginx.toFixed(2)}×`,
      met: rpsNginx >= GOALS.rpsVsNginx,
    },
    {
      goal: `req/s ≥ ${GOALS.rpsVsFastify}× fastify + reply-from`,
      reference: "fastify",
      target: GOALS.rpsVsFastify,
      actual: rpsFastify,
      measured: `${rpsFastify.toFixed(2)}×`,
      met: rpsFastify >= GOALS.rpsVsFastify,
    },
    {
      goal: `p99 ≤ ${GOALS.p99VsNginx}× nginx's`,
      reference: "nginx",
      target: GOALS.p99VsNginx,
      actual: p99Nginx,
      measured: `${p99Nginx.toFixed(2)}× (${t.p99Ms.median.toFixed(2)} ms vs ${by("nginx").p99Ms.median.toFixed(2)} ms)`,
      met: p99Nginx <= GOALS.p99VsNginx,
    },
    {
      goal: `RSS ≤ ${GOALS.rssMB} MB at ${RSS_CONNECTIONS} connections (peak, VmHWM)`,
      target: GOALS.rssMB,
      actual: rss,
      measured: `${rss.toFixed(1)} MB`,
      met: rss <= GOALS.rssMB,
    },
  ];
  // A reference that did not saturate its core was held back by the load generator's core
  // (wrk and the backends share it): its requests/s understate it, and ratios to it flatter
  // Turnout. Requests per CPU-second does not depend on that.
  for (const id of ["nginx", "haproxy", "fastify"]) {
    const ref = by(id);
    const used = ref.proxyCpuShare.median;
    if (used >= 0.95) continue;
    const caveat =
      `${ref.label} used ${Math.round(used * 100)}% of its core, held back by wrk and the backends ` +
      `on core ${cores.wrk}, so this ratio flatters Turnout; per CPU-second Turnout is ` +
      `${ref.turnoutRatio.rpsPerCpuSecond.toFixed(2)}× ${ref.label}`;
    for (const g of goals) if (g.reference === id) g.caveat = caveat;
  }
  return {
    date: new Date().toISOString(),
    git: gitRevision(),
    loadAverageAtStart: opts.loadAtStart,
    machine,
    config: {
      connections: CONNECTIONS,
      durationSeconds: opts.duration,
      warmupSeconds: opts.warmup,
      rounds: opts.rounds,
      rssConnections: RSS_CONNECTIONS,
      rssDurationSeconds: opts.rssDuration,
      users: USERS,
      cores,
      priority: process.getuid?.() === 0 ? "nice -20 (proxies, backends, wrk)" : "default",
      split: "90/10 (backend a / backend b)",
      turnout:
        "dist/ with plain node; route table via the SQLite store; stickiness header x-user-id; default traffic policy",
      turnoutNodeFlags: opts.nodeFlags,
    },
    proxies: out,
    goals,
  };
}

async function profileTurnout(dir, cores, port, config, wrk, opts) {
  const profDir = join(dir, "prof");
  const h = startPinned(
    "turnout (profiled)",
    cores.proxy,
    process.execPath,
    [
      ...opts.nodeFlags,
      "--cpu-prof",
      `--cpu-prof-dir=${profDir}`,
      join(BENCH, "lib", "turnout-proxy.mjs"),
      config,
    ],
    { env: { ...process.env, NODE_ENV: "production" }, cwd: ROOT },
  );
  await waitForReadyLine(h);
  await waitForOk("turnout (profiled)", port, h);
  await wrk(port, CONNECTIONS, opts.warmup);
  const res = await wrk(port, CONNECTIONS, opts.duration);
  await stop(h, 15_000);
  const file = readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
  if (file === undefined) throw new Error("turnout (profiled): no .cpuprofile was written");
  const agg = aggregateCpuProfile(JSON.parse(readFileSync(join(profDir, file), "utf8")), 20);
  if (opts.keepProfile && opts.write) {
    mkdirSync(join(BENCH, "results"), { recursive: true });
    copyFileSync(join(profDir, file), join(BENCH, "results", "turnout-router.cpuprofile"));
  }
  return { durationSeconds: opts.duration, rps: Math.round(res.rps), ...agg };
}

// ---------------------------------------------------------------------------------------
// Cleanup: every child process and the temp dir, on success, error and Ctrl-C alike.
// ---------------------------------------------------------------------------------------

let cleanupDir = null;
let cleaning = null;
let interrupted = false;
function cleanup() {
  cleaning ??= stopAll().finally(() => {
    if (cleanupDir !== null) rmSync(cleanupDir, { recursive: true, force: true });
  });
  return cleaning;
}
process.on("exit", () => {
  killAllNow();
  if (cleanupDir !== null) rmSync(cleanupDir, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    interrupted = true;
    console.error(`\n${sig}: stopping every process the benchmark started ...`);
    cleanup().finally(() => process.exit(130));
  });
}

try {
  await main();
  await cleanup();
} catch (err) {
  // After Ctrl-C the runs fail because their processes were stopped; that is not news.
  if (!interrupted)
    console.error(`bench:router failed: ${err instanceof Error ? err.message : err}`);
  await cleanup();
  process.exit(interrupted ? 130 : 1);
}

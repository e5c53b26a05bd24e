// `npm run bench:shadow`: what mirroring costs. Requests/s through Turnout's router with 100%
// of requests mirrored (copies sent, answers captured and compared) against the same router
// without a mirror, in the same run and the same process (two services, two listeners),
// beside nginx with its `mirror` directive against nginx without. Every proxy is pinned to
// core 0; the nginx backends (primary and shadow, "ok" on two ports) and wrk share core 1.
// Writes bench/results/shadow.json and the shadow section of bench/README.md.
//
// Options: --rounds N (3), --duration S (8), --warmup S (3), --no-write (print only),
// --quick (1 round of 3 s; implies --no-write).
// Internal: `--serve JSON` runs the Turnout router itself (started by this script under tsx).
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { nginxHead } from "./lib/configs.mjs";
import {
  cpuSecondsOf,
  freePorts,
  killAllNow,
  processTree,
  runPinned,
  startPinned,
  stop,
  stopAll,
  waitForOk,
  waitForReadyLine,
} from "./lib/procs.mjs";
import { median, parseWrk } from "./lib/wrk.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CONNECTIONS = 64;
const GOAL = 0.6;
const START = "<!-- bench:shadow:results:start -->";
const END = "<!-- bench:shadow:results:end -->";

// ---------------------------------------------------------------------------------------
// The Turnout side: one router, service "plain" (no mirror) and "mirrored" (100% mirrored)
// ---------------------------------------------------------------------------------------

async function serve(cfg) {
  const { Router } = await import("../src/router/router.ts");
  const { MemoryRouteTableSource } = await import("../src/router/testing.ts");
  const { DEFAULT_TRAFFIC_POLICY } = await import("../src/core/model.ts");
  const { DEFAULT_MIRROR_LIMITS } = await import("../src/core/shadow/types.ts");
  const source = new MemoryRouteTableSource();
  const table = (service, port, mirror, shadow = cfg.shadow) => ({
    service,
    listen: { host: "127.0.0.1", port },
    backends: [{ version: "v1", weight: 100, endpoints: [cfg.primary] }],
    policy: DEFAULT_TRAFFIC_POLICY,
    ...(mirror
      ? {
          mirror: {
            id: "bench",
            version: "v2",
            endpoints: [shadow],
            percent: 100,
            methods: ["GET", "HEAD"],
            stripHeaders: ["authorization"],
            limits: { ...DEFAULT_MIRROR_LIMITS },
            // The default comparison: status and body (JSON, else text), as a user gets it.
            compare: {},
          },
        }
      : {}),
  });
  source.set(table("plain", cfg.plainPort, false));
  source.set(table("mirrored", cfg.mirrorPort, true));
  // A shadow that refuses connections and one that never answers: the primary must not notice.
  source.set(table("dead", cfg.deadPort, true, cfg.deadShadow));
  source.set(table("slow", cfg.slowPort, true, cfg.slowShadow));
  const router = new Router({ source });
  await router.start();
  console.log(JSON.stringify({ ready: true, pid: process.pid }));
  let stopping = false;
  const onStop = async () => {
    if (stopping) return;
    stopping = true;
    const mirror = router.mirrorStats("mirrored");
    const dead = router.mirrorStats("dead");
    const slow = router.mirrorStats("slow");
    const report = router.mirrors.report("mirrored")?.report ?? null;
    await router.stop();
    console.log(
      JSON.stringify({
        mirror,
        dead,
        slow,
        report: report && {
          samples: report.samples,
          mismatchRate: report.mismatchRate,
          drops: report.drops,
        },
      }),
    );
    process.exit(0);
  };
  process.on("SIGTERM", onStop);
  process.on("SIGINT", onStop);
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

function parseArgs(argv) {
  const o = { rounds: 3, duration: 8, warmup: 3, write: true };
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
    else if (a === "--no-write") o.write = false;
    else if (a === "--quick") Object.assign(o, { rounds: 1, duration: 3, warmup: 1, write: false });
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

/** The backends: primary and shadow answer "ok"; each logs 2 bytes per request to count them. */
function backendsConf(dir, primaryPort, shadowPort, logs) {
  const server = (port, log) => `
  server {
    listen 127.0.0.1:${port} backlog=4096;
    access_log ${log} one buffer=64k flush=100ms;
    location / { return 200 "ok"; }
  }`;
  return `${nginxHead(dir, "backends")}
  log_format one '1';
${server(primaryPort, logs[0])}
${server(shadowPort, logs[1])}
}
`;
}

/** nginx as the proxy: one server without a mirror, one with `mirror` to the shadow. */
function proxyConf(dir, plainPort, mirrorPort, primaryPort, shadowPort) {
  const proxy = `proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`;
  return `${nginxHead(dir, "proxy")}
  upstream primary { server 127.0.0.1:${primaryPort}; keepalive 256; }
  upstream shadow { server 127.0.0.1:${shadowPort}; keepalive 256; }
  server {
    listen 127.0.0.1:${plainPort} backlog=4096;
    location / { proxy_pass http://primary; ${proxy} }
  }
  server {
    listen 127.0.0.1:${mirrorPort} backlog=4096;
    location / {
      mirror /__mirror;
      proxy_pass http://primary;
      ${proxy}
    }
    location = /__mirror {
      internal;
      proxy_pass http://shadow$request_uri;
      proxy_set_header X-Turnout-Shadow 1;
      ${proxy}
    }
  }
}
`;
}

function versionOf(cmd, args, re) {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  const m = re.exec(`${r.stdout ?? ""}${r.stderr ?? ""}`);
  return m ? m[1] : null;
}

async function settledLogSizes(logs) {
  // nginx flushes its log buffers every 100 ms: wait until two reads agree.
  let prev = logs.map((f) => statSafe(f));
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    const now = logs.map((f) => statSafe(f));
    if (now.every((v, i) => v === prev[i])) return now;
    prev = now;
  }
}

function statSafe(f) {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  process.on("exit", killAllNow);
  process.on("SIGINT", () => {
    killAllNow();
    process.exit(130);
  });
  const nproc = cpus().length;
  const cores = { proxy: 0, other: nproc >= 2 ? 1 : 0 };
  const dir = mkdtempSync(join(tmpdir(), "turnout-bench-shadow-"));
  for (const d of ["backends-tmp", "proxy-tmp"]) mkdirSync(join(dir, d));
  const [primaryPort, shadowPort, tPlain, tMirror, nPlain, nMirror, tDead, tSlow, deadPort] =
    await freePorts(9);
  // A shadow that accepts connections and never answers (a 5 s sleeper and worse).
  const held = new Set();
  const slowShadow = createServer((sock) => {
    held.add(sock);
    sock.on("error", () => {});
    sock.on("close", () => held.delete(sock));
  });
  await new Promise((r) => slowShadow.listen(0, "127.0.0.1", r));
  const loadAtStart = loadavg();
  try {
    const logs = [join(dir, "primary.log"), join(dir, "shadow.log")];
    writeFileSync(join(dir, "backends.conf"), backendsConf(dir, primaryPort, shadowPort, logs));
    const backends = startPinned("backends (nginx)", cores.other, "nginx", [
      "-p",
      dir,
      "-e",
      join(dir, "backends.error.log"),
      "-c",
      join(dir, "backends.conf"),
      "-g",
      "daemon off;",
    ]);
    await waitForOk("primary", primaryPort, backends);
    await waitForOk("shadow", shadowPort, backends);

    writeFileSync(
      join(dir, "proxy.conf"),
      proxyConf(dir, nPlain, nMirror, primaryPort, shadowPort),
    );
    const nginx = startPinned("nginx proxy", cores.proxy, "nginx", [
      "-p",
      dir,
      "-e",
      join(dir, "proxy.error.log"),
      "-c",
      join(dir, "proxy.conf"),
      "-g",
      "daemon off;",
    ]);
    await waitForOk("nginx plain", nPlain, nginx);
    await waitForOk("nginx mirror", nMirror, nginx);

    const cfg = {
      primary: `http://127.0.0.1:${primaryPort}`,
      shadow: `http://127.0.0.1:${shadowPort}`,
      plainPort: tPlain,
      mirrorPort: tMirror,
      deadPort: tDead,
      slowPort: tSlow,
      deadShadow: `http://127.0.0.1:${deadPort}`,
      slowShadow: `http://127.0.0.1:${slowShadow.address().port}`,
    };
    const turnout = startPinned(
      "turnout",
      cores.proxy,
      process.execPath,
      [
        // e.g. SHADOW_BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the router.
        ...(process.env.SHADOW_BENCH_NODE_FLAGS?.split(" ").filter(Boolean) ?? []),
        "--import",
        "tsx",
        join(ROOT, "bench", "shadow.mjs"),
        "--serve",
        JSON.stringify(cfg),
      ],
      { env: { ...process.env, NODE_ENV: "production" }, cwd: ROOT },
    );
    await waitForReadyLine(turnout);
    await waitForOk("turnout plain", tPlain, turnout);
    await waitForOk("turnout mirrored", tMirror, turnout);
    await waitForOk("turnout dead shadow", tDead, turnout);
    await waitForOk("turnout slow shadow", tSlow, turnout);

    const targets = [
      { id: "turnout-none", proxy: "turnout", mirror: false, port: tPlain, handle: turnout },
      { id: "turnout-mirror", proxy: "turnout", mirror: true, port: tMirror, handle: turnout },
      { id: "turnout-dead-shadow", proxy: "turnout", mirror: true, port: tDead, handle: turnout },
      { id: "turnout-slow-shadow", proxy: "turnout", mirror: true, port: tSlow, handle: turnout },
      { id: "nginx-none", proxy: "nginx", mirror: false, port: nPlain, handle: nginx },
      { id: "nginx-mirror", proxy: "nginx", mirror: true, port: nMirror, handle: nginx },
    ];
    const wrk = async (port, seconds) =>
      parseWrk(
        await runPinned("wrk", cores.other, "wrk", [
          "-t1",
          `-c${CONNECTIONS}`,
          `-d${seconds}s`,
          "--latency",
          "--timeout",
          "5s",
          `http://127.0.0.1:${port}/`,
        ]),
      );
    console.log(`warm-up: ${opts.warmup} s per target`);
    for (const t of targets) await wrk(t.port, opts.warmup);
    const runs = Object.fromEntries(targets.map((t) => [t.id, []]));
    for (let r = 0; r < opts.rounds; r++) {
      const order = targets.map((_, i) => targets[(i + r) % targets.length]);
      for (const t of order) {
        const before = await settledLogSizes(logs);
        const pids = processTree(t.handle.pid);
        const cpu0 = cpuSecondsOf(pids);
        const res = await wrk(t.port, opts.duration);
        const cpu = cpuSecondsOf(pids) - cpu0;
        const after = await settledLogSizes(logs);
        const primary = (after[0] - before[0]) / 2;
        const copies = (after[1] - before[1]) / 2;
        runs[t.id].push({ ...res, cpuSeconds: cpu, primaryRequests: primary, copies });
        console.log(
          `round ${r + 1} ${t.id.padEnd(15)} ${res.rps.toFixed(0).padStart(7)} req/s  p99 ${res.p99Ms.toFixed(2)} ms  copies ${copies}/${primary}  errors ${JSON.stringify(res.errors)}`,
        );
      }
    }
    await stop(turnout);
    const turnoutStats = turnout.stdout
      .split("\n")
      .map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return null;
        }
      })
      .find((x) => x && "mirror" in x);

    const summary = {};
    for (const t of targets) {
      const rs = runs[t.id];
      const copies = rs.reduce((s, x) => s + x.copies, 0);
      const primary = rs.reduce((s, x) => s + x.primaryRequests, 0);
      summary[t.id] = {
        rps: median(rs.map((x) => x.rps)),
        p50Ms: median(rs.map((x) => x.p50Ms)),
        p99Ms: median(rs.map((x) => x.p99Ms)),
        rpsPerCpuSecond: median(
          rs.map((x) => (x.rps * opts.duration) / Math.max(x.cpuSeconds, 1e-9)),
        ),
        copiesPerRequest: primary > 0 ? copies / primary : 0,
        errors: rs.reduce(
          (s, x) => s + x.errors.non2xx3xx + x.errors.timeout + x.errors.read + x.errors.connect,
          0,
        ),
      };
    }
    const ratio = (a, b) => summary[a].rps / summary[b].rps;
    const result = {
      date: new Date().toISOString(),
      machine: { nproc, cpu: cpus()[0]?.model ?? "?", kernel: release(), loadAtStart },
      versions: {
        node: process.version,
        nginx: versionOf("nginx", ["-v"], /nginx\/(\S+)/),
        wrk: versionOf("wrk", ["-v"], /^wrk (\S+)/m),
      },
      options: { ...opts, connections: CONNECTIONS },
      summary,
      ratios: {
        turnoutMirrorVsNone: ratio("turnout-mirror", "turnout-none"),
        nginxMirrorVsNone: ratio("nginx-mirror", "nginx-none"),
        turnoutMirrorVsNginxMirror: ratio("turnout-mirror", "nginx-mirror"),
        p99TurnoutMirrorVsNone: summary["turnout-mirror"].p99Ms / summary["turnout-none"].p99Ms,
        deadShadowVsNone: ratio("turnout-dead-shadow", "turnout-none"),
        slowShadowVsNone: ratio("turnout-slow-shadow", "turnout-none"),
        p99DeadShadowVsNone: summary["turnout-dead-shadow"].p99Ms / summary["turnout-none"].p99Ms,
        p99SlowShadowVsNone: summary["turnout-slow-shadow"].p99Ms / summary["turnout-none"].p99Ms,
        // Round by round (each round measures all four back to back): the spread shows noise.
        turnoutMirrorVsNoneByRound: runs["turnout-mirror"].map(
          (x, i) => x.rps / runs["turnout-none"][i].rps,
        ),
        nginxMirrorVsNoneByRound: runs["nginx-mirror"].map(
          (x, i) => x.rps / runs["nginx-none"][i].rps,
        ),
      },
      goal: { turnoutMirrorVsNone: GOAL, met: ratio("turnout-mirror", "turnout-none") >= GOAL },
      turnoutMirror: turnoutStats ?? null,
      runs,
    };
    console.log("\nsummary (medians):");
    for (const [id, s] of Object.entries(summary)) {
      console.log(
        `  ${id.padEnd(15)} ${s.rps.toFixed(0).padStart(7)} req/s  p50 ${s.p50Ms.toFixed(2)} ms  p99 ${s.p99Ms.toFixed(2)} ms  copies/request ${s.copiesPerRequest.toFixed(3)}  errors ${s.errors}`,
      );
    }
    console.log(
      `  Turnout mirror/none ${result.ratios.turnoutMirrorVsNone.toFixed(2)}x (goal >= ${GOAL}x: ${result.goal.met ? "met" : "NOT met"}); nginx mirror/none ${result.ratios.nginxMirrorVsNone.toFixed(2)}x`,
    );
    if (turnoutStats)
      console.log(`  Turnout mirror counters: ${JSON.stringify(turnoutStats.mirror)}`);
    if (opts.write) {
      writeFileSync(
        join(ROOT, "bench", "results", "shadow.json"),
        `${JSON.stringify(result, null, 2)}\n`,
      );
      updateReadme(result);
      console.log("wrote bench/results/shadow.json and bench/README.md");
    }
  } finally {
    for (const sock of held) sock.destroy();
    slowShadow.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

function updateReadme(r) {
  const file = join(ROOT, "bench", "README.md");
  const s = r.summary;
  const row = (id, label) =>
    `| ${label} | ${s[id].rps.toFixed(0)} | ${s[id].p50Ms.toFixed(2)} | ${s[id].p99Ms.toFixed(2)} | ${s[id].copiesPerRequest.toFixed(2)} | ${s[id].errors} |`;
  const section = `${START}
Run ${r.date.slice(0, 10)} on ${r.machine.nproc} cores (${r.machine.cpu}), Node ${r.versions.node}, nginx ${r.versions.nginx}, wrk ${r.versions.wrk}; ${r.options.rounds} rounds of ${r.options.duration} s, ${r.options.connections} connections, medians. Load average at start: ${r.machine.loadAtStart.map((x) => x.toFixed(2)).join(", ")}.

| proxy | req/s | p50 ms | p99 ms | copies per request | errors |
|---|---:|---:|---:|---:|---:|
${row("turnout-none", "Turnout, no mirror")}
${row("turnout-mirror", "Turnout, 100% mirrored and compared")}
${row("turnout-dead-shadow", "Turnout, 100% mirrored to a shadow that refuses connections")}
${row("turnout-slow-shadow", "Turnout, 100% mirrored to a shadow that never answers")}
${row("nginx-none", "nginx, no mirror")}
${row("nginx-mirror", "nginx, `mirror` 100%")}

- Turnout with 100% mirroring keeps **${r.ratios.turnoutMirrorVsNone.toFixed(2)}x** of its requests/s without (goal >= ${GOAL}x: ${r.goal.met ? "met" : "**not met**"}); nginx keeps ${r.ratios.nginxMirrorVsNone.toFixed(2)}x with its \`mirror\`.
- Round by round, Turnout ${r.ratios.turnoutMirrorVsNoneByRound.map((x) => x.toFixed(2)).join(", ")}; nginx ${r.ratios.nginxMirrorVsNoneByRound.map((x) => x.toFixed(2)).join(", ")}.${r.machine.loadAtStart[0] > r.machine.nproc ? ` The machine was busy with other work (load ${r.machine.loadAtStart[0].toFixed(1)} on ${r.machine.nproc} cores): absolute figures are low and noisy; the ratios, measured back to back, are the result.` : ""}
- A dead shadow (connections refused) keeps ${r.ratios.deadShadowVsNone.toFixed(2)}x of the requests/s, p99 ${r.ratios.p99DeadShadowVsNone.toFixed(2)}x; a shadow that never answers keeps ${r.ratios.slowShadowVsNone.toFixed(2)}x, p99 ${r.ratios.p99SlowShadowVsNone.toFixed(2)}x (its copies are dropped as \`queue_full\`: ${r.turnoutMirror?.slow?.drops?.queue_full ?? "?"}); zero errors for users either way.
- Turnout mirrored / nginx mirrored: ${r.ratios.turnoutMirrorVsNginxMirror.toFixed(2)}x. Turnout's p99 with the mirror is ${r.ratios.p99TurnoutMirrorVsNone.toFixed(2)}x its p99 without.
- Turnout's mirror counters at the end: ${r.turnoutMirror ? `\`${JSON.stringify(r.turnoutMirror.mirror?.drops ?? {})}\` drops, ${r.turnoutMirror.mirror?.compared ?? "?"} pairs compared` : "not reported"}. A copy that cannot be sent at once waits in a bounded queue or is dropped (counted); with nginx's \`mirror\`, a keep-alive connection's next request waits until the copy's subrequest is done (a known nginx behaviour), so a slow shadow slows nginx's clients.
${END}`;
  let text = readFileSync(file, "utf8");
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) text = text.slice(0, a) + section + text.slice(b + END.length);
  else
    text += `\n## Shadow mirroring (\`npm run bench:shadow\`)\n\nRequests/s with 100% of requests mirrored to a shadow (copies sent, answers captured and compared) against none, same run, same process, beside nginx's \`mirror\` directive. The proxies are pinned to one core; the two nginx backends and wrk share the other.\n\n${section}\n`;
  writeFileSync(file, text);
  // The tables above are written unpadded; the project's formatter aligns them (lint checks it).
  spawnSync(
    process.execPath,
    [join(ROOT, "node_modules/@biomejs/biome/bin/biome"), "format", "--write", file],
    {
      stdio: "ignore",
    },
  );
}

// Last, so that every constant above is initialized.
if (process.argv[2] === "--serve") await serve(JSON.parse(process.argv[3]));
else await main();

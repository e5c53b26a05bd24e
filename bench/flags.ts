/**
 * `npm run bench:flags`: feature flag evaluation speed.
 *
 * 1. In-process evaluations per second of three equivalent flags (static; a rule "email ends
 *    with @acme.com"; a 50% rollout by user id) by Turnout's core and, in the same run and on
 *    the same contexts, by @openfeature/flagd-core, @growthbook/growthbook (GrowthBookClient)
 *    and unleash-client. Each measurement is a time-boxed loop over 10,000 pre-built
 *    contexts; rounds are interleaved and the median is kept. Answers are checked to agree in
 *    kind (share of "on") so that nobody is timed doing less.
 * 2. OFREP throughput: `turnout up` pinned to one core (taskset), wrk pinned to the other,
 *    POSTing single evaluations of the percentage flag with a new targetingKey each time.
 *
 * Writes bench/results/flags.json and the table between the markers in bench/README.md.
 * Options: --quick (shorter), --no-wrk (skip part 2).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GrowthBookClient } from "@growthbook/growthbook";
import { FlagdCore } from "@openfeature/flagd-core";
import { Unleash } from "unleash-client";
import { compileFlags, evaluate } from "../src/core/flags/evaluate.js";
import type { FlagSpec } from "../src/core/flags/types.js";
// @ts-expect-error: plain ESM helpers without types
import { startPinned, stop, stopAll, waitForReadyLine } from "./lib/procs.mjs";
// @ts-expect-error: plain ESM helpers without types
import { median, parseWrk } from "./lib/wrk.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const quick = process.argv.includes("--quick");
const noWrk = process.argv.includes("--no-wrk");
const ROUNDS = quick ? 3 : 5;
const MS_PER_ROUND = quick ? 300 : 700;

// ---- the same three flags, four ways ----------------------------------------------------

const bool = (over: Partial<FlagSpec>): FlagSpec => ({
  type: "boolean",
  variants: { on: true, off: false },
  defaultVariant: "off",
  state: "ENABLED",
  ...over,
});
const turnout = compileFlags([
  { key: "static", spec: bool({ defaultVariant: "on" }) },
  {
    key: "rule",
    spec: bool({
      rules: [
        { conditions: [{ attribute: "email", op: "endsWith", value: "@acme.com" }], variant: "on" },
      ],
    }),
  },
  { key: "percentage", spec: bool({ rollout: { variant: "on", percentage: 50 } }) },
]);

const flagd = new FlagdCore();
flagd.setConfigurations(
  JSON.stringify({
    flags: {
      static: { state: "ENABLED", variants: { on: true, off: false }, defaultVariant: "on" },
      rule: {
        state: "ENABLED",
        variants: { on: true, off: false },
        defaultVariant: "off",
        targeting: { if: [{ ends_with: [{ var: "email" }, "@acme.com"] }, "on", "off"] },
      },
      percentage: {
        state: "ENABLED",
        variants: { on: true, off: false },
        defaultVariant: "off",
        targeting: {
          fractional: [
            ["on", 50],
            ["off", 50],
          ],
        },
      },
    },
  }),
);

const gb = new GrowthBookClient().initSync({
  payload: {
    features: {
      static: { defaultValue: true },
      rule: {
        defaultValue: false,
        rules: [{ condition: { email: { $regex: "@acme\\.com$" } }, force: true }],
      },
      percentage: {
        defaultValue: false,
        rules: [{ force: true, coverage: 0.5, hashAttribute: "id" }],
      },
    },
  },
});

const unleash = new Unleash({
  appName: "bench",
  url: "http://127.0.0.1:9/api/",
  refreshInterval: 0,
  disableMetrics: true,
  bootstrap: {
    data: [
      { name: "static", enabled: true, strategies: [{ name: "default", parameters: {} }] },
      {
        name: "rule",
        enabled: true,
        strategies: [
          {
            name: "default",
            parameters: {},
            constraints: [
              { contextName: "email", operator: "STR_ENDS_WITH", values: ["@acme.com"] },
            ],
          },
        ],
      },
      {
        name: "percentage",
        enabled: true,
        strategies: [
          {
            name: "flexibleRollout",
            parameters: { rollout: "50", stickiness: "userId", groupId: "percentage" },
          },
        ],
      },
    ] as never,
  },
});
unleash.on("error", () => undefined);
unleash.on("warn", () => undefined);

// ---- contexts ---------------------------------------------------------------------------

const N = 10_000;
const ids = Array.from({ length: N }, (_, i) => `user-${i}`);
const emails = ids.map((id, i) => (i % 2 === 0 ? `${id}@acme.com` : `${id}@example.org`));
const turnoutCtx = ids.map((id, i) => ({ targetingKey: id, email: emails[i]! }));
const flagdCtx = turnoutCtx;
const gbCtx = ids.map((id, i) => ({ attributes: { id, email: emails[i] } }));
const unleashCtx = ids.map((id, i) => ({ userId: id, properties: { email: emails[i] } }));

type Impl = { name: string; eval: (flag: string, i: number) => boolean };
const impls: Impl[] = [
  { name: "turnout", eval: (f, i) => evaluate(turnout, f, turnoutCtx[i]!).value === true },
  {
    name: "flagd-core",
    eval: (f, i) => flagd.resolveBooleanEvaluation(f, false, flagdCtx[i]!, console).value === true,
  },
  { name: "growthbook", eval: (f, i) => gb.evalFeature(f, gbCtx[i]!).on === true },
  { name: "unleash", eval: (f, i) => unleash.isEnabled(f, unleashCtx[i]!) },
];
const FLAGS = ["static", "rule", "percentage"] as const;

function measure(impl: Impl, flag: string, ms: number): { perSec: number; onShare: number } {
  let n = 0;
  let on = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let j = 0; j < 1000; j++) {
      if (impl.eval(flag, (n + j) % N)) on++;
    }
    n += 1000;
    now = performance.now();
  }
  return { perSec: (n * 1000) / (now - start), onShare: on / n };
}

async function inProcess() {
  await new Promise((r) => setTimeout(r, 200)); // let unleash load its bootstrap
  const samples = new Map<string, number[]>();
  const shares = new Map<string, number>();
  for (const impl of impls) for (const f of FLAGS) measure(impl, f, 100); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    for (const f of FLAGS) {
      for (const impl of impls) {
        const r = measure(impl, f, MS_PER_ROUND);
        const k = `${impl.name}/${f}`;
        samples.set(k, [...(samples.get(k) ?? []), r.perSec]);
        shares.set(k, r.onShare);
      }
    }
  }
  const rows = FLAGS.map((f) => {
    const t = median(samples.get(`turnout/${f}`)!) as number;
    const row: Record<string, unknown> = { flag: f, turnoutPerSec: Math.round(t) };
    for (const impl of impls.slice(1)) {
      const v = median(samples.get(`${impl.name}/${f}`)!) as number;
      row[impl.name] = { perSec: Math.round(v), turnoutSpeedup: Math.round((t / v) * 10) / 10 };
    }
    row.onShare = Object.fromEntries(
      impls.map((i) => [i.name, Math.round(shares.get(`${i.name}/${f}`)! * 1000) / 1000]),
    );
    return row;
  });
  unleash.destroy();
  return rows;
}

// ---- OFREP with wrk -----------------------------------------------------------------------

async function ofrepThroughput() {
  if (spawnSync("wrk", ["--version"]).error)
    return { skipped: "wrk not installed (apt-get install -y wrk)" };
  const dir = join(tmpdir(), `turnout-bench-flags-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const serverCore = cpus().length > 1 ? 1 : 0;
  // The built package, as users run it (and as bench:router measures it): no TypeScript loader.
  const built = spawnSync("npm", ["run", "build", "--silent"], { cwd: ROOT, encoding: "utf8" });
  if (built.status !== 0) throw new Error(`npm run build failed:\n${built.stdout}${built.stderr}`);
  const h = startPinned(
    "turnout",
    serverCore,
    process.execPath,
    [join(ROOT, "dist/cli/main.js"), "up", "--port", "0", "--data-dir", dir],
    { env: { ...process.env, TURNOUT_LOG_LEVEL: "warn" }, cwd: ROOT },
  );
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`turnout not up: ${h.stderr}`)), 30_000);
      const check = () => {
        const m = /listening on (http:\/\/\S+)/.exec(h.stdout);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        } else setTimeout(check, 50);
      };
      check();
    });
    const token = readFileSync(join(dir, "token"), "utf8").trim();
    const key = readFileSync(join(dir, "flag-keys"), "utf8")
      .split("\n")
      .find((l) => l.startsWith("tfk_"))!;
    const yaml = `apiVersion: turnout.dev/v1
kind: Flag
metadata: { name: percentage }
spec:
  type: boolean
  variants: { on: true, off: false }
  defaultVariant: off
  rules: [{ conditions: [{ attribute: email, op: endsWith, value: "@example.org" }], variant: on }]
  rollout: { variant: on, percentage: 50 }
`;
    const r = await fetch(`${url}/api/v1/apply`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/yaml" },
      body: yaml,
    });
    if (r.status !== 200) throw new Error(`apply: ${r.status} ${await r.text()}`);
    const clientCore = 0;
    const seconds = quick ? 5 : 10;
    const wrk = (target: string) => {
      const out = spawnSync(
        "taskset",
        [
          "-c",
          String(clientCore),
          "wrk",
          "-t1",
          "-c64",
          `-d${seconds}s`,
          "--latency",
          "-s",
          join(ROOT, "bench/lib/ofrep.lua"),
          target,
        ],
        { env: { ...process.env, TURNOUT_FLAG_KEY: key }, encoding: "utf8" },
      );
      const w = parseWrk(out.stdout);
      return { rps: Math.round(w.rps), p50Ms: w.p50Ms, p99Ms: w.p99Ms, non2xx: w.errors.non2xx3xx };
    };
    // The baseline: a bare fastify answering a constant body, pinned to the same core,
    // measured between Turnout's runs so both see the same machine load.
    const base = startPinned(
      "fastify-baseline",
      serverCore,
      process.execPath,
      [join(ROOT, "bench/lib/fastify-baseline.mjs")],
      { cwd: ROOT },
    );
    const { port: basePort } = (await waitForReadyLine(base)) as { port: number };
    const runs: ReturnType<typeof wrk>[] = [];
    const baseline: ReturnType<typeof wrk>[] = [];
    try {
      for (let i = 0; i < (quick ? 1 : 3); i++) {
        runs.push(wrk(`${url}/ofrep/v1/evaluate/flags/percentage`));
        baseline.push(wrk(`http://127.0.0.1:${basePort}/ofrep/v1/evaluate/flags/percentage`));
      }
    } finally {
      await stop(base);
    }
    const loadavg = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
    return {
      serverCore,
      clientCore,
      connections: 64,
      seconds,
      runs,
      medianRps: median(runs.map((x) => x.rps)),
      fastifyBaselineRuns: baseline,
      fastifyBaselineMedianRps: median(baseline.map((x) => x.rps)),
      loadavg,
      goalRps: 20_000,
    };
  } finally {
    await stop(h);
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- report -------------------------------------------------------------------------------

// The JSON rows as they are printed; loosely typed on purpose (report code only).
// biome-ignore lint/suspicious/noExplicitAny: report rows are read field by field
type Rec = Record<string, any>;

const START = "<!-- bench:flags:results:start -->";
const END = "<!-- bench:flags:results:end -->";

function markdown(result: { evaluation: Rec[]; ofrep: Rec; machine: string; date: string }) {
  const lines = [
    START,
    `Measured ${result.date} on ${result.machine} (\`npm run bench:flags\`${quick ? " --quick" : ""}). Evaluations per second, one thread, median of ${ROUNDS} interleaved rounds; the speed-up is Turnout's rate divided by the other's.`,
    "",
  ];
  const fmt = (n: number) => n.toLocaleString("en-US");
  // Columns padded as the repository's formatter (biome) lays tables out: first column left,
  // the others right-aligned, so a fresh run leaves README.md formatted.
  const rows = [
    ["flag", "Turnout", "flagd-core", "GrowthBook", "unleash-client"],
    ...result.evaluation.map((r) => {
      const cell = (k: string) => `${fmt(r[k].perSec)} (${r[k].turnoutSpeedup}×)`;
      return [
        r.flag,
        fmt(r.turnoutPerSec),
        cell("flagd-core"),
        cell("growthbook"),
        cell("unleash"),
      ];
    }),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const line = (row: string[]) =>
    `| ${row.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join(" | ")} |`;
  lines.push(line(rows[0]!));
  lines.push(
    `| ${widths.map((w, c) => (c === 0 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`)).join(" | ")} |`,
  );
  for (const row of rows.slice(1)) lines.push(line(row));
  lines.push("");
  const o = result.ofrep;
  if (o.skipped) lines.push(`OFREP throughput: not measured (${o.skipped}).`);
  else
    lines.push(
      `OFREP single evaluations (\`POST /ofrep/v1/evaluate/flags/percentage\`, a rule and a 50% rollout, a new targetingKey per request), Turnout pinned to core ${o.serverCore}, wrk -t1 -c${o.connections} pinned to core ${o.clientCore}, ${o.seconds} s runs: median **${fmt(o.medianRps)} requests/s** (runs: ${o.runs.map((r: { rps: number }) => fmt(r.rps)).join(", ")}; p50 ${o.runs[0].p50Ms} ms, p99 ${o.runs[0].p99Ms} ms; goal ${fmt(o.goalRps)}). In the same conditions a bare fastify app answering a constant OFREP body (\`bench/lib/fastify-baseline.mjs\`) did ${fmt(o.fastifyBaselineMedianRps)} requests/s; load average at the end: ${o.loadavg} (2 cores).`,
    );
  lines.push(END);
  return lines.join("\n");
}

async function main() {
  process.on("SIGINT", () => void stopAll().then(() => process.exit(130)));
  const evaluation = await inProcess();
  console.table(
    evaluation.map((r: Rec) => ({
      flag: r.flag,
      turnout: r.turnoutPerSec,
      "flagd-core": `${r["flagd-core"].perSec} (${r["flagd-core"].turnoutSpeedup}x)`,
      growthbook: `${r.growthbook.perSec} (${r.growthbook.turnoutSpeedup}x)`,
      unleash: `${r.unleash.perSec} (${r.unleash.turnoutSpeedup}x)`,
    })),
  );
  const ofrep = noWrk ? { skipped: "--no-wrk" } : await ofrepThroughput();
  console.log("ofrep", JSON.stringify(ofrep));
  const result = {
    date: new Date().toISOString().slice(0, 10),
    machine: `${cpus().length}× ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`,
    node: process.version,
    quick,
    evaluation,
    ofrep,
  };
  mkdirSync(join(ROOT, "bench/results"), { recursive: true });
  writeFileSync(join(ROOT, "bench/results/flags.json"), `${JSON.stringify(result, null, 2)}\n`);
  const readmePath = join(ROOT, "bench/README.md");
  const readme = readFileSync(readmePath, "utf8");
  const section = markdown(result as never);
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a !== -1 && b !== -1) {
    writeFileSync(readmePath, readme.slice(0, a) + section + readme.slice(b + END.length));
    // Tables are written unpadded; the project's formatter aligns them (lint checks it).
    const biome = join(ROOT, "node_modules/@biomejs/biome/bin/biome");
    spawnSync(process.execPath, [biome, "format", "--write", readmePath], { stdio: "ignore" });
  } else console.log(`\n(bench/README.md has no ${START} markers; the section is:)\n${section}`);
}

await main();

/**
 * `turnout lab --live`: the lab's scenarios through a real Turnout (`startTurnout`: the API,
 * the controller, the SQLite store and the built-in router on its thread), real processes of
 * the example model server (examples/model/server.mjs) and users sending real requests, on the
 * scaled-down setup of live-config.ts. The figures come from what really happened: the answers
 * users got (which version the router says served each, its status, its label), the events the
 * controller wrote, the instances the runtime ran; they are printed beside the simulator's
 * figures for the same setup, with the tolerance each is held to and, where they differ, why.
 *
 * How the example model plays each scenario (v1 is the stable version: no errors, 20 ms):
 *   good: v2 answers exactly as v1 (the same weights); errors: v2 fails every 10th request
 *   (ERROR_RATE=0.1, a counter); latency: v2 waits 30 ms; wrongPredictions: v2 has other
 *   weights, and the users' inputs are drawn from a pool in which exactly 10% get another label
 *   from them (found before the run by asking both models); crash: v2's command exits 1.
 * What a user counts as wrong is an answer whose label differs from v1's for the same input.
 * blueGreenFlags does not run live: the example model does not read the flag the router passes
 * (`x-turnout-flags`), so it cannot keep its bad behaviour behind the flag.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { Pool, request } from "undici";
import type {
  AnalysisTemplateResource,
  ServiceResource,
  ServiceStatus,
  TurnoutEvent,
} from "../core/model.js";
import { plural } from "../core/plural.js";
import { defaultPortAllocator } from "../runtime/process/ports.js";
import { simulationRng } from "../sim/random.js";
import { packageRoot } from "../version.js";
import { type ScenarioName, type StrategyName, serviceSpec } from "./config.js";
import { METRICS, quantile, runJob } from "./lab.js";
import { LIVE_CONFIG, LIVE_LATENCY_MS, TIME_SCALE } from "./live-config.js";
import { CANDIDATE, detects, type RunMetrics, type RunResult, STABLE } from "./run.js";

export const LIVE_STRATEGIES: readonly StrategyName[] = [
  "blueGreen",
  "canary",
  "rolling",
  "shadow",
  "abTest",
];
export const LIVE_SKIPPED: Partial<Record<StrategyName, string>> = {
  blueGreenFlags:
    "not run live: the example model does not read the flag the router passes (x-turnout-flags), so its bad behaviour cannot stay behind the flag",
};

/** How far a live figure may lie outside the simulated runs' 10th..90th percentiles. */
export const TOLERANCE: Record<(typeof METRICS)[number], { abs: number; rel: number }> = {
  usersExposed: { abs: 20, rel: 0.25 },
  failedRequests: { abs: 5, rel: 0.25 },
  wrongAnswers: { abs: 10, rel: 0.25 },
  detectSeconds: { abs: 1.5, rel: 0.25 },
  recoverSeconds: { abs: 1.5, rel: 0.25 },
  extraInstanceSeconds: { abs: 3, rel: 0.25 },
  manualActions: { abs: 0, rel: 0 },
  totalSeconds: { abs: 2, rel: 0.25 },
};

/** Below this share of the intended rate, a run says the machine did not keep up. */
export const OVERLOADED = 0.8;

/** Why a live figure can differ from the simulated one (printed with each difference). */
const WHY: Record<(typeof METRICS)[number], string> = {
  usersExposed:
    "users keep arriving (50/s) until the bad version is gone, so it follows the detection and recovery times",
  failedRequests:
    "the model fails exactly every 10th request per instance (a counter), not 10% at random; otherwise it follows the time to recovery",
  wrongAnswers: "follows how long users got the wrong version",
  detectSeconds:
    "real time: analysis windows close on the wall clock, the controller resyncs every 200 ms, instances take their real time to start, and on a loaded machine a timer or process can be late",
  recoverSeconds:
    "the route table reaches the router on its next poll and requests in flight finish, after the detection",
  extraInstanceSeconds:
    "real instances take time to start and to stop (0.5 s drain, then SIGTERM); simulated ones change at once",
  manualActions: "the person acts on what the API shows when it polls (every 200 ms)",
  totalSeconds:
    "real time: pauses and analyses run on the wall clock, plus instance start-up and the router's poll",
};

export interface LiveOptions {
  seeds: number;
  seed: number;
  strategies: readonly StrategyName[];
  scenarios: readonly ScenarioName[];
  /** Simulated seeds per strategy × scenario for the comparison (default 20). */
  simulatedSeeds?: number;
  /** A line per finished live run (progress). */
  onRun?: (line: string) => void;
}

export interface LiveRun extends RunMetrics {
  strategy: StrategyName;
  scenario: ScenarioName;
  seed: number;
  outcome: RunResult["outcome"];
  /** Requests users sent and answers they got by version. */
  requests: number;
  /**
   * Answers users got a second while the rollout ran: the rate the strategy was really
   * judged on. Below the intended rate when this machine cannot keep up.
   */
  answeredPerSecond: number;
  answers: Record<string, number>;
  /** Median latency users saw from the stable version, ms. */
  stableLatencyMs: number | null;
}

export interface LiveComparison {
  strategy: StrategyName;
  scenario: ScenarioName;
  seed: number;
  live: LiveRun;
  simulated: {
    median: RunMetrics;
    p10: RunMetrics;
    p90: RunMetrics;
    outcomes: Record<string, number>;
  };
  agrees: Record<string, boolean>;
  /** Per differing metric, why. */
  reasons: Record<string, string>;
}

export interface LiveReport {
  seeds: number;
  seed: number;
  timeScale: number;
  simulatedSeeds: number;
  skipped: { strategy: StrategyName; reason: string }[];
  results: LiveComparison[];
}

// ---------------------------------------------------------------------------------------
// The example model's processes and the inputs users send

const MODEL = () => join(packageRoot(), "examples/model/server.mjs");
/** The weights v2 gets in `wrongPredictions` (the model mixes its MODEL_VERSION into them). */
const WRONG_WEIGHTS = "v2-retrained";
const FEATURES = 8;
const POOL = 1000;

interface Pooled {
  features: number[];
  label: string;
}

async function startModel(version: string): Promise<{ url: string; proc: ChildProcess }> {
  // The model prints the port it was given, not the one bound: so it is given a free one.
  const port = await defaultPortAllocator.allocate();
  const proc = spawn(process.execPath, [MODEL()], {
    env: { ...process.env, PORT: String(port), MODEL_VERSION: version },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.on("exit", (code) => reject(new Error(`the example model exited (${code}) on start`)));
  });
  return { url, proc };
}

async function label(url: string, features: number[]): Promise<string> {
  const res = await request(`${url}/predict`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ features }),
  });
  return ((await res.body.json()) as { label: string }).label;
}

/**
 * The inputs users send: `POOL` feature vectors of which exactly 10% get another label from the
 * wrong weights than from v1's, each with v1's label, found by asking both real models.
 */
async function inputPool(seed: number): Promise<Pooled[]> {
  const [a, b] = await Promise.all([startModel(STABLE), startModel(WRONG_WEIGHTS)]);
  try {
    const rng = simulationRng(seed * 7919 + 17);
    const wantWrong = Math.round(POOL * LIVE_CONFIG.scenarios.wrongPredictions.wrongRate);
    const same: Pooled[] = [];
    const differ: Pooled[] = [];
    for (
      let i = 0;
      i < 50_000 && (same.length < POOL - wantWrong || differ.length < wantWrong);
      i++
    ) {
      const features = Array.from({ length: FEATURES }, () => rng() * 4 - 2);
      const [la, lb] = await Promise.all([label(a.url, features), label(b.url, features)]);
      (la === lb ? same : differ).push({ features, label: la });
    }
    if (differ.length < wantWrong) throw new Error("the two models agree too often for the pool");
    return [...same.slice(0, POOL - wantWrong), ...differ.slice(0, wantWrong)];
  } finally {
    a.proc.kill();
    b.proc.kill();
  }
}

// ---------------------------------------------------------------------------------------
// One service: a strategy × scenario with its users

const TEMPLATES: AnalysisTemplateResource[] = Object.entries(LIVE_CONFIG.templates).map(
  ([name, spec]) => ({
    apiVersion: "turnout.dev/v1",
    kind: "AnalysisTemplate",
    metadata: { name },
    spec,
  }),
);

function liveService(
  name: string,
  port: number,
  strategy: StrategyName,
  scenario: ScenarioName,
  version: string,
): ServiceResource {
  const base = serviceSpec(strategy, version, LIVE_CONFIG);
  const beh = LIVE_CONFIG.scenarios[scenario];
  const v2: { command?: string[]; env?: Record<string, string> } = beh.crash
    ? { command: [process.execPath, "-e", "process.exit(1)"] }
    : {
        env: {
          ERROR_RATE: String(beh.errorRate),
          LATENCY_MS: String(Math.round(LIVE_LATENCY_MS * beh.latencyFactor)),
          MODEL_VERSION: beh.wrongRate > 0 ? WRONG_WEIGHTS : STABLE,
        },
      };
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name },
    spec: {
      ...base,
      listen: { host: "127.0.0.1", port },
      runtime: {
        process: {
          command: [process.execPath, MODEL()],
          // Every version answers with v1's weights unless the scenario says otherwise.
          env: { MODEL_VERSION: STABLE, ERROR_RATE: "0", LATENCY_MS: String(LIVE_LATENCY_MS) },
          versions: { [CANDIDATE]: v2 },
          replicas: LIVE_CONFIG.traffic.replicas,
          readiness: {
            path: "/healthz",
            periodSeconds: 0.2,
            timeoutSeconds: 1,
            initialDelaySeconds: 0,
          },
          startupTimeoutSeconds: 30,
          terminationGracePeriodSeconds: 5,
          drainSeconds: 0.5,
        },
      },
    },
  };
}

interface Api {
  call<T>(method: string, path: string, body?: unknown): Promise<T>;
}

interface StatusView {
  status: ServiceStatus | null;
  routeTable: { backends: { version: string; weight: number; endpoints: string[] }[] } | null;
  instances?: { version: string; state: string }[];
}

/** Users of one service: `rps` requests a second, each from a user drawn by the seed. */
class Users {
  private readonly pool: Pool;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private inFlight = new Set<Promise<void>>();
  private events: { idempotencyKey: string; unit: string; metric: string; timestamp: number }[] =
    [];
  private nEvents = 0;
  requests = 0;
  answers: Record<string, number> = {};
  exposed = new Set<number>();
  failed = 0;
  wrong = 0;
  lastBadAt = -1;
  /** When answers came, to count those within the rollout. */
  answeredAt: number[] = [];
  stableLatencies: number[] = [];

  constructor(
    private readonly name: string,
    port: number,
    private readonly seed: number,
    private readonly inputs: Pooled[],
    private readonly api: Api,
    /** Post the users' conversions (only an A/B test reads them). */
    private readonly conversions: boolean,
  ) {
    this.pool = new Pool(`http://127.0.0.1:${port}`, { connections: 32 });
  }

  start(): void {
    const t = LIVE_CONFIG.traffic;
    const rng = simulationRng(this.seed * 4099 + 3);
    const t0 = Date.now();
    this.loop = (async () => {
      let flushedAt = t0;
      while (!this.stopped) {
        // Catch up to rps × elapsed: a late timer sends the requests it owes, not fewer.
        const owed = Math.floor(((Date.now() - t0) * t.rps) / 1000) - this.requests;
        for (let i = 0; i < owed; i++) {
          const u = Math.floor(rng() * t.users);
          const input = this.inputs[Math.floor(rng() * this.inputs.length)]!;
          const conv = rng();
          const p = this.one(u, input, conv).finally(() => this.inFlight.delete(p));
          this.inFlight.add(p);
        }
        if (Date.now() - flushedAt >= 250) {
          flushedAt = Date.now();
          await this.flush();
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
  }

  private async one(u: number, input: Pooled, conv: number): Promise<void> {
    this.requests++;
    const started = performance.now();
    try {
      const res = await this.pool.request({
        path: "/predict",
        method: "POST",
        headers: { "content-type": "application/json", "x-user-id": `u${u}` },
        body: JSON.stringify({ features: input.features }),
      });
      const body = (await res.body.json().catch(() => null)) as { label?: string } | null;
      const v = String(res.headers["x-turnout-version"] ?? "?");
      this.answers[v] = (this.answers[v] ?? 0) + 1;
      this.answeredAt.push(Date.now());
      if (v === CANDIDATE) {
        this.exposed.add(u);
        this.lastBadAt = Date.now();
      } else if (v === STABLE && res.statusCode === 200) {
        this.stableLatencies.push(performance.now() - started);
      }
      if (res.statusCode >= 500) this.failed++;
      else if (res.statusCode === 200 && body?.label !== input.label) this.wrong++;
      // The user converts (the A/B test's goal): the sound v2 converts 20% more.
      const lift = v === CANDIDATE ? LIVE_CONFIG.scenarios.good.conversionFactor : 1;
      if (
        this.conversions &&
        res.statusCode === 200 &&
        conv < LIVE_CONFIG.traffic.conversionRate * lift
      ) {
        this.events.push({
          idempotencyKey: `${this.name}-${this.nEvents++}`,
          unit: `u${u}`,
          metric: "conversion",
          timestamp: Date.now(),
        });
      }
    } catch {
      this.answers["?"] = (this.answers["?"] ?? 0) + 1;
      this.failed++;
    }
  }

  private async flush(): Promise<void> {
    while (this.events.length > 0) {
      // The API takes at most 1000 events a request.
      const events = this.events.splice(0, 500);
      await this.api.call("POST", "/api/v1/events", { events });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await Promise.all([...this.inFlight]);
    await this.flush();
    await this.pool.close();
  }
}

/** One live run: v1 ready, users on, v2 applied, watched until it settles. */
async function runService(
  api: Api,
  strategy: StrategyName,
  scenario: ScenarioName,
  seed: number,
  index: number,
  inputs: Pooled[],
): Promise<LiveRun> {
  const t = LIVE_CONFIG.traffic;
  const name = `lab-${index}-${strategy.toLowerCase()}-${scenario.toLowerCase()}`;
  const port = await defaultPortAllocator.allocate();
  const view = () => api.call<StatusView>("GET", `/api/v1/services/${name}/status`);
  await api.call("POST", "/api/v1/apply", {
    resources: [liveService(name, port, strategy, scenario, STABLE)],
  });
  await waitFor(
    async () => {
      const v = await view();
      const b = v.routeTable?.backends.find((x) => x.version === STABLE);
      return (b?.endpoints.length ?? 0) >= t.replicas;
    },
    30_000,
    `${name}: v1 not ready`,
  );
  const users = new Users(name, port, seed, inputs, api, strategy === "abTest");
  users.start();
  const t0 = Date.now();
  await api.call("POST", "/api/v1/apply", {
    resources: [liveService(name, port, strategy, scenario, CANDIDATE)],
  });
  const bad = scenario !== "good";
  let manual = 0;
  let pausedSince: number | null = null;
  let extraMs = 0;
  let lastSample = t0;
  let outcome: LiveRun["outcome"] = "timeout";
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    const v = await view();
    const now = Date.now();
    const live = (v.instances ?? []).filter((i) => i.state !== "stopping");
    extraMs += Math.max(0, live.length - t.replicas) * (now - lastSample);
    lastSample = now;
    const s = v.status;
    if (!s) continue;
    if (s.canaryVersion !== null && s.phase === "Paused") {
      pausedSince ??= now;
      if (now - pausedSince >= t.operatorDelaySeconds * 1000) {
        await api.call("POST", `/api/v1/services/${name}/promote`, { reason: "lab person" });
        manual++;
        pausedSince = null;
      }
    } else pausedSince = null;
    const ended = s.canaryVersion === null;
    const settled =
      live.length === t.replicas &&
      live.every((i) => i.state === "ready" && i.version === live[0]!.version);
    const candServing =
      s.stableVersion === CANDIDATE ||
      (v.routeTable?.backends.some((b) => b.version === CANDIDATE && b.weight > 0) ?? false);
    const elapsed = (now - t0) / 1000;
    if (ended && settled && (!(bad && candServing) || elapsed >= t.horizonSeconds)) {
      outcome = s.stableVersion === CANDIDATE ? "completed" : "rolledBack";
      break;
    }
    if (elapsed >= t.maxSeconds) break;
  }
  const tEnd = Date.now();
  await users.stop();
  const answered = users.answeredAt.filter((x) => x >= t0 && x <= tEnd).length;
  const history = await api.call<{ events: TurnoutEvent[] }>(
    "GET",
    `/api/v1/services/${name}/history`,
  );
  await api.call("DELETE", `/api/v1/services/${name}`);
  const secs = (ms: number) => Math.round((ms - t0) / 100) / 10;
  const rollout = history.events.filter((e) => e.time >= t0);
  const detected = rollout.find(detects);
  const completed = rollout.find((e) => e.type === "RolloutCompleted");
  const stillBad = bad && outcome === "completed";
  users.stableLatencies.sort((a, b) => a - b);
  return {
    strategy,
    scenario,
    seed,
    outcome,
    usersExposed: users.exposed.size,
    failedRequests: users.failed,
    wrongAnswers: users.wrong,
    detectSeconds: detected ? secs(detected.time) : null,
    recoverSeconds: !bad ? null : users.lastBadAt < 0 ? 0 : stillBad ? null : secs(users.lastBadAt),
    extraInstanceSeconds: Math.round(extraMs / 100) / 10,
    manualActions: manual,
    totalSeconds: completed ? secs(completed.time) : null,
    requests: users.requests,
    answeredPerSecond: Math.round((answered / ((tEnd - t0) / 1000)) * 10) / 10,
    answers: users.answers,
    stableLatencyMs:
      users.stableLatencies.length > 0
        ? Math.round(users.stableLatencies[users.stableLatencies.length >> 1]! * 10) / 10
        : null,
  };
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`lab --live: ${what} within ${timeoutMs / 1000} s`);
}

// ---------------------------------------------------------------------------------------
// The live lab

/** Runs the live lab and compares it with the simulation of the same setup. */
export async function runLive(opts: LiveOptions): Promise<LiveReport> {
  const strategies = opts.strategies.filter((s) => LIVE_STRATEGIES.includes(s));
  const skipped = opts.strategies
    .filter((s) => !LIVE_STRATEGIES.includes(s))
    .map((s) => ({ strategy: s, reason: LIVE_SKIPPED[s] ?? "not run live" }));
  const simulatedSeeds = opts.simulatedSeeds ?? 20;
  const { startTurnout } = await import("../server.js");
  const { Client } = await import("../cli/client.js");
  const dataDir = mkdtempSync(join(tmpdir(), "turnout-lab-live-"));
  const runs: LiveRun[] = [];
  try {
    const inputs = await inputPool(opts.seed);
    const t = await startTurnout({
      dataDir,
      port: 0,
      // Fatal only: deleting a finished run's service can race a controller tick, which logs
      // a harmless "no Service of that name" error; the lab reports its own failures.
      logger: pino({ level: "fatal", base: undefined }, pino.destination(2)),
      pollIntervalMs: 200,
    });
    try {
      const api = new Client({ server: t.url, token: t.token, actor: "lab" });
      await api.call("POST", "/api/v1/apply", { resources: TEMPLATES });
      let index = 0;
      for (let seed = opts.seed; seed < opts.seed + opts.seeds; seed++) {
        for (const strategy of strategies) {
          // One rollout at a time: side by side they starve each other on a small machine,
          // and what is measured is then the machine, not the strategy.
          for (const scenario of opts.scenarios) {
            const r = await runService(api, strategy, scenario, seed, index++, inputs);
            runs.push(r);
            opts.onRun?.(
              `lab --live: ${r.strategy} × ${r.scenario} (seed ${r.seed}): ${r.outcome}, ${plural(r.requests, "request")}`,
            );
          }
        }
      }
    } finally {
      await t.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }

  const results: LiveComparison[] = [];
  for (const strategy of strategies) {
    for (const scenario of opts.scenarios) {
      const sim = await runJob({
        strategy,
        scenario,
        fromSeed: opts.seed,
        toSeed: opts.seed + simulatedSeeds,
        config: LIVE_CONFIG,
      });
      const at = (q: number) => {
        const row: Record<string, number | null> = {};
        for (const m of METRICS)
          row[m] = quantile(
            sim.map((r) => r[m]),
            q,
          );
        return row as unknown as RunMetrics;
      };
      const simulated = {
        median: at(0.5),
        p10: at(0.1),
        p90: at(0.9),
        outcomes: {} as Record<string, number>,
      };
      for (const r of sim) simulated.outcomes[r.outcome] = (simulated.outcomes[r.outcome] ?? 0) + 1;
      for (const live of runs.filter((r) => r.strategy === strategy && r.scenario === scenario)) {
        const agrees: Record<string, boolean> = {};
        const reasons: Record<string, string> = {};
        for (const m of METRICS) {
          agrees[m] = within(
            live[m],
            simulated.p10[m],
            simulated.p90[m],
            simulated.median[m],
            TOLERANCE[m],
          );
          if (!agrees[m]) {
            const same = simulated.outcomes[live.outcome] ?? 0;
            const why: string[] = [];
            if (live.answeredPerSecond < OVERLOADED * LIVE_CONFIG.traffic.rps) {
              why.push(
                `users got only ${live.answeredPerSecond} answers/s of the ${LIVE_CONFIG.traffic.rps} sent a second (this machine could not keep up), so the analysis had fewer samples in each window`,
              );
            }
            if (same < sim.length / 2) {
              why.push(
                `the live run ended ${live.outcome}, as ${same} of ${sim.length} simulated runs did`,
              );
            }
            why.push(WHY[m]);
            reasons[m] = why.join("; ");
          }
        }
        results.push({ strategy, scenario, seed: live.seed, live, simulated, agrees, reasons });
      }
    }
  }
  return {
    seeds: opts.seeds,
    seed: opts.seed,
    timeScale: TIME_SCALE,
    simulatedSeeds,
    skipped,
    results,
  };
}

/** Whether `x` lies within [p10, p90] widened by the tolerance (both null: agree). */
export function within(
  x: number | null,
  p10: number | null,
  p90: number | null,
  median: number | null,
  tol: { abs: number; rel: number },
): boolean {
  if (x === null || median === null) return x === median;
  const slack = Math.max(tol.abs, tol.rel * Math.abs(median));
  const lo = (p10 ?? median) - slack;
  // A null p90 (over a tenth of the runs never got there): no upper bound.
  const hi = p90 === null ? Number.POSITIVE_INFINITY : p90 + slack;
  return x >= lo && x <= hi;
}

// ---------------------------------------------------------------------------------------
// Text

const LABEL: Record<(typeof METRICS)[number], string> = {
  usersExposed: "users exposed",
  failedRequests: "failed requests",
  wrongAnswers: "wrong answers",
  detectSeconds: "detect s",
  recoverSeconds: "recover s",
  extraInstanceSeconds: "extra instance·s",
  manualActions: "manual actions",
  totalSeconds: "total s",
};

export function formatLive(r: LiveReport): string {
  const fmt = (x: number | null) => (x === null ? "-" : String(x));
  const out: string[] = [
    `Strategy lab, live: ${plural(r.seeds, "seed")} from ${r.seed} through a real Turnout (API, controller, SQLite, the built-in router),`,
    `real processes of examples/model/server.mjs and users sending 50 requests/s, on a setup ${r.timeScale} times faster`,
    `than the default lab (every duration divided by ${r.timeScale}, sample thresholds by 20; 2 instances, 1,000 users; src/lab/live-config.ts),`,
    "one rollout at a time.",
    `Beside each live figure: the simulator on the same setup, median [p10, p90] over ${plural(r.simulatedSeeds, "seed")}. A live figure agrees`,
    "when it lies within [p10, p90] widened by max(absolute, 25% of the median): users 20, requests 5, wrong answers 10,",
    "seconds 1.5 (total 2), instance-seconds 3, manual actions 0.",
    ...r.skipped.map((s) => `${s.strategy}: ${s.reason}.`),
  ];
  let agreeing = 0;
  let total = 0;
  for (const c of r.results) {
    const n = METRICS.filter((m) => c.agrees[m]).length;
    agreeing += n;
    total += METRICS.length;
    // What users waited, which is more than the model's 20 ms when this machine is busy.
    const stable =
      c.live.stableLatencyMs === null
        ? ""
        : `, users waited a median ${c.live.stableLatencyMs} ms for v1's answers`;
    out.push(
      "",
      `${c.strategy} × ${c.scenario} (seed ${c.seed}): live ${c.live.outcome} (simulated: ${Object.entries(
        c.simulated.outcomes,
      )
        .map(([k, v]) => `${k} ${v}`)
        .join(
          ", ",
        )}); ${c.live.requests} requests, ${c.live.answeredPerSecond} answers/s during the rollout${stable}; agrees on ${n} of ${METRICS.length}`,
    );
    const rows = METRICS.map((m) => [
      `  ${LABEL[m]}`,
      fmt(c.live[m]),
      `${fmt(c.simulated.median[m])} [${fmt(c.simulated.p10[m])}, ${fmt(c.simulated.p90[m])}]`,
      c.agrees[m] ? "agrees" : `DIFFERS: ${c.reasons[m]}`,
    ]);
    const w = [0, 1, 2].map((i) =>
      Math.max(...[["", "live", "simulated"][i]!, ...rows.map((x) => x[i]!)].map((s) => s.length)),
    );
    out.push(`${"".padEnd(w[0]!)}  ${"live".padEnd(w[1]!)}  ${"simulated".padEnd(w[2]!)}`);
    for (const x of rows)
      out.push(`${x[0]!.padEnd(w[0]!)}  ${x[1]!.padEnd(w[1]!)}  ${x[2]!.padEnd(w[2]!)}  ${x[3]}`);
  }
  out.push("", `Agreement: ${agreeing} of ${plural(total, "figure")} within tolerance.`);
  return out.join("\n");
}

/** `-o json` with `--live`. */
export function liveJson(r: LiveReport) {
  return {
    seeds: r.seeds,
    seed: r.seed,
    timeScale: r.timeScale,
    simulatedSeeds: r.simulatedSeeds,
    skipped: r.skipped,
    results: r.results.map((c) => ({
      strategy: c.strategy,
      scenario: c.scenario,
      seed: c.seed,
      outcome: c.live.outcome,
      answeredPerSecond: c.live.answeredPerSecond,
      live: Object.fromEntries(METRICS.map((m) => [m, c.live[m]])),
      simulated: Object.fromEntries(
        METRICS.map((m) => [
          m,
          { median: c.simulated.median[m], p10: c.simulated.p10[m], p90: c.simulated.p90[m] },
        ]),
      ),
      agrees: c.agrees,
      reasons: c.reasons,
    })),
  };
}

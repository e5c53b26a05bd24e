/**
 * `turnout demo`: the main job end to end on the embedded defaults (SQLite, local processes).
 * Starts Turnout, runs two versions of the example model server, drives traffic at the
 * router, rolls v1 -> v2 with a canary (timed pauses and one pause a person must promote,
 * which the demo does through the API), shows progress each second, and exits 0 when done.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import type {
  AnalysisTemplateResource,
  ServiceResource,
  ServiceStatus,
  TurnoutEvent,
} from "../core/model.js";
import { plural } from "../core/plural.js";
import { demoLabText } from "../lab/doc.js";
import { runLab } from "../lab/lab.js";
import { workerPool } from "../lab/pool.js";
import { defaultPortAllocator } from "../runtime/process/ports.js";
import { Client } from "./client.js";
import { runAbTestDemo } from "./demo/abtest.js";
import { runFlagsDemo } from "./demo/flags.js";
import { runHaproxyDemo } from "./demo/haproxy.js";
import { modelRuntime, nextSection, resetSections, until } from "./demo/model.js";
import { runShadowDemo } from "./demo/shadow.js";
import { runZeroDowntimeDemo } from "./demo/zero-downtime.js";
import { bold, cyan, dim, formatHistory, green, phaseColor, red } from "./format.js";

const SERVICE = "fraud-model";

/** The gate every rollout of the demo passes through: the router's own error rates. */
const TEMPLATE: AnalysisTemplateResource = {
  apiVersion: "turnout.dev/v1",
  kind: "AnalysisTemplate",
  metadata: { name: "error-budget" },
  spec: {
    metrics: [
      {
        name: "errors",
        source: { builtin: "error_rate" },
        // Always valid under continuous monitoring: looked at every 2 s, false rollbacks stay
        // below 1%, and a bad canary stops as soon as the evidence allows.
        judge: { sequential: { maxIncrease: 0.02, alpha: 0.01 } },
        interval: "2s",
        minSamples: 30,
      },
    ],
  },
};

function serviceSpec(port: number, version: string): ServiceResource {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: SERVICE },
    spec: {
      listen: { host: "127.0.0.1", port },
      runtime: modelRuntime(2, {
        // v3 is the bad release of the story: 25% of its answers are errors.
        versions: { v3: { env: { ERROR_RATE: "0.25" } } },
      }),
      version,
      strategy: {
        canary: {
          steps: [
            { setWeight: 10 },
            { pause: { duration: "4s" } },
            { setWeight: 25 },
            { pause: { duration: "4s" } },
            { setWeight: 50 },
            { pause: {} },
            { setWeight: 75 },
            { pause: { duration: "3s" } },
          ],
          analysis: { templates: ["error-budget"], startingStep: 0 },
          abortScaleDownDelaySeconds: 0,
        },
      },
    },
  };
}

/** Synthetic users: a few concurrent loops posting feature vectors, counting answers per version. */
class Traffic {
  private pool: Pool;
  private stopped = false;
  private loops: Promise<void>[] = [];
  private seed = 42;
  window = new Map<string, number>();
  total = new Map<string, number>();
  errors = 0;
  errorsBy = new Map<string, number>();
  requests = 0;

  constructor(port: number) {
    this.pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8 });
  }
  private rand(): number {
    // mulberry32: a seeded generator, so every demo run sends the same inputs.
    this.seed = (this.seed + 0x6d2b79f5) | 0;
    let t = this.seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  start(concurrency = 4, perLoopDelayMs = 20): void {
    for (let i = 0; i < concurrency; i++) {
      this.loops.push(
        (async () => {
          while (!this.stopped) {
            const features = [this.rand(), this.rand(), this.rand(), this.rand()];
            try {
              const res = await this.pool.request({
                path: "/predict",
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ features }),
              });
              await res.body.text();
              this.requests++;
              const v = String(res.headers["x-turnout-version"] ?? "?");
              if (res.statusCode >= 500) {
                this.errors++;
                this.errorsBy.set(v, (this.errorsBy.get(v) ?? 0) + 1);
              }
              this.window.set(v, (this.window.get(v) ?? 0) + 1);
              this.total.set(v, (this.total.get(v) ?? 0) + 1);
            } catch {
              this.requests++;
              this.errors++;
            }
            await new Promise((r) => setTimeout(r, perLoopDelayMs));
          }
        })(),
      );
    }
  }
  takeWindow(): Map<string, number> {
    const w = this.window;
    this.window = new Map();
    return w;
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    await this.pool.close();
  }
}

interface StatusView {
  status: ServiceStatus | null;
  routeTable: { backends: { version: string; weight: number; endpoints: string[] }[] } | null;
  steps: unknown[];
  generation: number;
}

export async function runDemo(opts: { keep: boolean }): Promise<number> {
  const { startTurnout, createLogger } = await import("../server.js");
  const dataDir = mkdtempSync(join(tmpdir(), "turnout-demo-"));
  process.env.TURNOUT_LOG_LEVEL ??= "warn";
  const out = (s: string) => process.stdout.write(`${s}\n`);
  out(bold("Turnout demo: canaries of an example fraud model: v1 -> v2, then a bad v3"));
  out(dim(`data dir ${dataDir}`));

  const t = await startTurnout({ dataDir, port: 0, logger: createLogger(), pollIntervalMs: 250 });
  const api = new Client({ server: t.url, token: t.token, actor: "demo" });
  let traffic: Traffic | null = null;
  let interrupted = false;
  const cleanup = async () => {
    await traffic?.stop().catch(() => undefined);
    await t.stop();
    if (!opts.keep) rmSync(dataDir, { recursive: true, force: true });
  };
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    out(dim("\ninterrupted: stopping everything..."));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    // The runtime's allocator: the router's port is then never handed to a model instance.
    const port = await defaultPortAllocator.allocate();
    resetSections();
    out(
      `${cyan(nextSection())} API on ${t.url}; the router will listen on http://127.0.0.1:${port}`,
    );
    await api.call("POST", "/api/v1/apply", { resources: [TEMPLATE, serviceSpec(port, "v1")] });
    out(
      `${cyan(nextSection())} applied service ${SERVICE} at v1 (2 local processes of examples/model/server.mjs)`,
    );
    const view = () => api.call<StatusView>("GET", `/api/v1/services/${SERVICE}/status`);
    const ready = await until(
      async () => {
        const v = await view();
        const b = v.routeTable?.backends.find((x) => x.version === "v1");
        return (b?.endpoints.length ?? 0) >= 2;
      },
      30_000,
      () => interrupted,
    );
    if (!ready) throw new Error(interrupted ? "interrupted" : "v1 did not become ready in 30 s");
    out(`   v1 is ${green("Healthy")}: 2/2 instances ready, serving 100%`);

    traffic = new Traffic(port);
    traffic.start();
    out(`${cyan(nextSection())} synthetic users are sending predictions (about 150 requests/s)`);
    await api.call("POST", "/api/v1/apply", { resources: [serviceSpec(port, "v2")] });
    out(
      `${cyan(nextSection())} applied v2: the canary starts (setWeight 10, 25, 50 with pauses; one pause waits for a person)\n`,
    );

    const watch = async (): Promise<ServiceStatus | null> => {
      const started = Date.now();
      let promoted = false;
      while (!interrupted) {
        await new Promise((r) => setTimeout(r, 1000));
        const v = await view();
        const s = v.status;
        const w = traffic!.takeWindow();
        const n = [...w.values()].reduce((a, b) => a + b, 0) || 1;
        const observed = [...w.entries()]
          .sort()
          .map(([ver, c]) => `${ver} ${((100 * c) / n).toFixed(1)}%`)
          .join(" ");
        const configured = (v.routeTable?.backends ?? [])
          .filter((b) => b.weight > 0)
          .map((b) => `${b.version} ${b.weight}%`)
          .join(" ");
        const step =
          s?.stepIndex !== null && s?.stepIndex !== undefined
            ? `step ${Math.min(s.stepIndex + 1, v.steps.length)}/${v.steps.length}`
            : "";
        const secs = String(Math.round((Date.now() - started) / 1000)).padStart(3);
        // Pad the phase before colouring it: the colour codes would count towards the width on
        // a terminal and shift the columns after "Paused" or "Degraded".
        const phase = s?.phase ?? "?";
        out(
          `[${secs}s] ${phaseColor(phase)}${" ".repeat(Math.max(0, 12 - phase.length))} ${step.padEnd(9)} weights ${configured.padEnd(14)} observed ${observed.padEnd(20)} ${dim(`${traffic!.requests} req, ${plural(traffic!.errors, "error")}`)}`,
        );
        if (s?.phase === "Paused" && !promoted) {
          out(dim(`       ${s.message}`));
          out(
            `       ${cyan("a person checks the canary and promotes it:")} turnout promote ${SERVICE}`,
          );
          await api.call("POST", `/api/v1/services/${SERVICE}/promote`, {
            reason: "demo: dashboards look fine",
          });
          promoted = true;
        }
        if (s && (s.phase === "Completed" || s.phase === "Degraded") && !s.canaryVersion) return s;
        if (Date.now() - started > 120_000) throw new Error("the rollout did not finish in 120 s");
      }
      return null;
    };

    const good = await watch();
    if (!good) return 130;
    out(`\n${good.phase === "Completed" ? green("done") : red("rolled back")}: ${good.message}\n`);

    await api.call("POST", "/api/v1/apply", { resources: [serviceSpec(port, "v3")] });
    out(
      `${cyan(nextSection())} applied v3, a bad release (25% of its answers are errors); the error-budget analysis watches it\n`,
    );
    const bad = await watch();
    await traffic.stop();
    if (!bad) return 130;
    out(
      `\n${bad.phase === "Degraded" ? green("rolled back automatically") : red("not rolled back")}: ${bad.message}`,
    );
    const history = await api.call<{ events: TurnoutEvent[] }>(
      "GET",
      `/api/v1/services/${SERVICE}/history`,
    );
    const verdict = history.events.findLast((e) => e.type === "AnalysisFailed");
    const metrics = (verdict?.data.metrics ?? []) as {
      name: string;
      last: { explanation: string } | null;
    }[];
    for (const m of metrics) if (m.last) out(`   verdict: ${m.last.explanation}`);

    const totals = [...traffic.total.entries()]
      .sort()
      .map(([ver, c]) => `${ver} ${c} (${plural(traffic!.errorsBy.get(ver) ?? 0, "error")})`)
      .join(", ");
    out(`requests: ${traffic.requests}: ${totals}`);
    out(`\n${bold("history")} (turnout history ${SERVICE}):`);
    out(formatHistory(history.events));
    const goodErrors = (traffic.errorsBy.get("v1") ?? 0) + (traffic.errorsBy.get("v2") ?? 0);
    // Rolling and blue-green under load (demo/zero-downtime.ts).
    const zeroDowntime = await runZeroDowntimeDemo(api, out, () => interrupted);
    // The A/B test (demo/abtest.ts): two model versions, decided by synthetic users' purchases.
    const abWon = await runAbTestDemo(api, out, () => interrupted);
    if (interrupted) return 130;
    // The shadow deployment (demo/shadow.ts): a model version compared on mirrored traffic.
    const shadowPassed = await runShadowDemo(api, out, () => interrupted);
    if (interrupted) return 130;
    // Blue-green with feature flags (demo/flags.ts): a flag raised after the switch, killed.
    const flagsKilled = await runFlagsDemo(api, out, () => interrupted);
    if (interrupted) return 130;
    // The canary once more on HAProxy (demo/haproxy.ts), when haproxy is installed.
    const haproxyRolledBack = await runHaproxyDemo(api, out, () => interrupted);
    if (interrupted) return 130;
    // The strategies' usual ratings beside what a quick strategy lab measures (src/lab/).
    out(`\n${demoLabText(await runLab({ seeds: 20, seed: 1, execute: workerPool() }))}`);
    // The close: what was shown, whether it went as it should, and where to go from here.
    const shown: [boolean, string][] = [
      [
        good.phase === "Completed" && goodErrors === 0,
        "a canary took v2 to 100% step by step, no request failed",
      ],
      [bad.phase === "Degraded", "the bad v3 was rolled back by the analysis, nobody had to act"],
      [zeroDowntime, "rolling and blue-green replaced a version under load, no request failed"],
      [
        abWon,
        "an A/B test found the model users bought more from, by a sequential test, and promoted it",
      ],
      [
        shadowPassed,
        "a shadow compared a new model's answers on copied traffic, then rolled it out",
      ],
      [
        flagsKilled,
        "a feature failing behind a flag was turned off by the analysis, no redeploy; then the kill switch",
      ],
    ];
    if (haproxyRolledBack !== "skipped")
      shown.push([haproxyRolledBack, "the same bad canary was rolled back on HAProxy"]);
    const allWell = shown.every(([ok]) => ok);
    out(`\n${bold("What the demo showed")}`);
    for (const [ok, what] of shown) out(`  ${ok ? green("✓") : red("✗")} ${what}`);
    out(
      allWell
        ? "All went as it should."
        : red("Not everything went as it should (✗ above): the demo exits 1."),
    );
    out(
      `\n${bold("Next")}: \`turnout up\`, then take a model of your own through the same strategies:\n  docs/guides/your-own-model.md. docs/demo.md explains each part of this demo; \`turnout lab\`\n  measures the strategies in full.`,
    );
    return allWell ? 0 : 1;
  } catch (err) {
    if (!interrupted) process.stderr.write(`${red("demo failed")}: ${(err as Error).message}\n`);
    return interrupted ? 130 : 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await cleanup();
  }
}

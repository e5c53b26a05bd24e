/**
 * A populated Turnout for the dashboard's screenshots (scripts/screenshots.ts) and for looking
 * at it by hand (`npx tsx scripts/dashboard-fixture.ts` prints the sign-in URL and keeps
 * running): a canary gated by analysis and paused for a person, a shadow of a model with
 * its comparison, an A/B test with outcome events, and flags. Real processes and sockets.
 */
import { mkdtempSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import { modelRuntime } from "../src/cli/demo/model.js";
import { mulberry32 } from "../src/core/stats/random.js";
import { defaultPortAllocator } from "../src/runtime/process/ports.js";
import { createLogger, type RunningTurnout, startTurnout } from "../src/server.js";

export interface Fixture {
  turnout: RunningTurnout;
  stop(): Promise<void>;
}

async function backend(name: string, latencyMs: number, errorEvery: number) {
  let n = 0;
  const rng = mulberry32(name.length * 7919);
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      n++;
      setTimeout(
        () => {
          res.writeHead(errorEvery > 0 && n % errorEvery === 0 ? 500 : 200, {
            "content-type": "text/plain",
          });
          res.end(name);
        },
        latencyMs * (0.5 + rng()),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address();
  return { url: `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`, server };
}

const meta = (kind: string, name: string, spec: unknown) => ({
  apiVersion: "turnout.dev/v1",
  kind,
  metadata: { name },
  spec,
});

async function call(t: RunningTurnout, method: string, path: string, body?: unknown) {
  const res = await fetch(`${t.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${t.token}`,
      "x-turnout-actor": "alice",
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const json = (await res.json()) as unknown;
  if (res.status >= 400) throw new Error(`${method} ${path}: ${JSON.stringify(json)}`);
  // biome-ignore lint/suspicious/noExplicitAny: the fixture reads a few fields of many API answers
  return json as Record<string, any>;
}

async function until(what: string, check: () => Promise<boolean>, ms = 60_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function startFixture(opts: { port?: number } = {}): Promise<Fixture> {
  const dataDir = mkdtempSync(join(tmpdir(), "turnout-dash-"));
  process.env.TURNOUT_LOG_LEVEL ??= "warn";
  const turnout = await startTurnout({
    dataDir,
    port: opts.port ?? 0,
    logger: createLogger(),
    pollIntervalMs: 200,
  });
  const servers = [
    await backend("checkout v1", 8, 0),
    await backend("checkout v1", 8, 0),
    await backend("checkout v2", 11, 90),
  ];
  const [ckPort, shPort, abPort] = [
    await defaultPortAllocator.allocate(),
    await defaultPortAllocator.allocate(),
    await defaultPortAllocator.allocate(),
  ];
  const checkout = (version: string) =>
    meta("Service", "checkout", {
      listen: { host: "127.0.0.1", port: ckPort },
      stickiness: { header: "x-user-id" },
      flags: ["new-checkout"],
      runtime: {
        static: {
          versions: {
            v1: { upstreams: [servers[0]!.url, servers[1]!.url] },
            v2: { upstreams: [servers[2]!.url] },
          },
        },
      },
      version,
      strategy: {
        canary: {
          steps: [
            { setWeight: 10 },
            { analysis: { templates: ["golden-signals"] } },
            { setWeight: 30 },
            { pause: {} },
            { setWeight: 60 },
            { pause: { duration: "30s" } },
          ],
          analysis: { templates: ["error-budget"] },
        },
      },
    });
  const golden = meta("AnalysisTemplate", "golden-signals", {
    metrics: [
      {
        name: "errors",
        source: { builtin: "error_rate" },
        judge: { sequential: { maxIncrease: 0.08, alpha: 0.05 } },
        interval: "3s",
        count: 5,
        minSamples: 40,
      },
      {
        name: "latency",
        source: { builtin: "latency" },
        judge: { mannWhitney: { maxRelativeIncrease: 1.5 } },
        interval: "3s",
        count: 5,
        minSamples: 40,
      },
    ],
  });
  const budget = meta("AnalysisTemplate", "error-budget", {
    metrics: [
      {
        name: "error-rate",
        source: { builtin: "error_rate" },
        judge: { threshold: { max: 0.05 } },
        interval: "5s",
        minSamples: 20,
      },
      {
        name: "latency-ceiling",
        source: { builtin: "latency" },
        judge: { threshold: { max: 2000 } },
        interval: "5s",
        minSamples: 20,
      },
    ],
  });
  const flags = [
    meta("Flag", "new-checkout", {
      type: "boolean",
      variants: { on: true, off: false },
      defaultVariant: "off",
      state: "ENABLED",
      rollout: { variant: "on", percentage: 25 },
    }),
    meta("Segment", "beta-testers", {
      conditions: [{ attribute: "email", op: "endsWith", value: "@example.com" }],
    }),
    meta("Flag", "ranking-model", {
      type: "string",
      variants: { classic: "classic", neural: "neural", hybrid: "hybrid" },
      defaultVariant: "classic",
      state: "ENABLED",
      rules: [{ name: "beta", segments: ["beta-testers"], variant: "neural" }],
    }),
  ];
  const shadowSvc = (version: string) =>
    meta("Service", "fraud-model", {
      listen: { host: "127.0.0.1", port: shPort },
      runtime: modelRuntime(1),
      version,
      strategy: {
        canary: {
          steps: [
            {
              shadow: {
                percent: 100,
                methods: ["POST"],
                sideEffectFree: true,
                noise: true,
                compare: {
                  ignore: ["$.version"],
                  tolerance: { absolute: 0.01 },
                  classification: { field: "$.label" },
                  regression: { field: "$.score" },
                  drift: {},
                },
                gate: { minSamples: 100000, minAgreement: 0.95, maxLatencyIncrease: 1 },
              },
            },
            { setWeight: 50 },
          ],
        },
      },
    });
  const abSvc = (version: string) =>
    meta("Service", "recommender", {
      listen: { host: "127.0.0.1", port: abPort },
      runtime: modelRuntime(1),
      version,
      strategy: {
        abTest: {
          name: "rec-ranking",
          split: 50,
          assignment: { header: "x-user" },
          metrics: [
            { name: "purchase", kind: "binomial", role: "goal", source: { event: "purchase" } },
            {
              name: "errors",
              kind: "binomial",
              role: "guardrail",
              source: { builtin: "error_rate" },
            },
          ],
          method: "sequential",
          alpha: 0.05,
          minSamples: 100000,
          maxDuration: "1h",
          decision: "manual",
          chanceToWin: 0.95,
        },
      },
    });

  const flagsParsed = flags.map((f) => f);
  // Flags are applied before the services that name them.
  await call(turnout, "POST", "/api/v1/apply", { resources: [...flagsParsed, golden, budget] });
  await call(turnout, "POST", "/api/v1/apply", {
    resources: [checkout("v1"), shadowSvc("d1"), abSvc("m1")],
  });
  const ready = (name: string) => async () => {
    const v = await call(turnout, "GET", `/api/v1/services/${name}/status`);
    return (v.routeTable?.backends?.[0]?.endpoints?.length ?? 0) > 0;
  };
  for (const n of ["checkout", "fraud-model", "recommender"]) await until(`${n} ready`, ready(n));
  await call(turnout, "POST", "/api/v1/apply", {
    resources: [checkout("v2"), shadowSvc("d2"), abSvc("m2")],
  });

  // Traffic: users on the canary, predictions through the shadow, shoppers on the A/B test.
  let stopped = false;
  const rng = mulberry32(42);
  const pools = [ckPort, shPort, abPort].map(
    (p) => new Pool(`http://127.0.0.1:${p}`, { connections: 4 }),
  );
  const BUY: Record<string, number> = { m1: 0.1, m2: 0.14 };
  // Several workers per service: enough requests for the analysis to decide within seconds.
  const worker = async (k: number) => {
    let i = 0;
    while (!stopped) {
      i++;
      const user = `u${Math.floor(rng() * 5000)}`;
      try {
        if (k < 4) {
          const r = await pools[0]!.request({
            path: "/",
            method: "GET",
            headers: { "x-user-id": user },
          });
          await r.body.text();
        } else if (k < 6) {
          const r = await pools[1]!.request({
            path: "/predict",
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ features: [rng(), rng(), rng(), rng()] }),
          });
          await r.body.text();
          await new Promise((res) => setTimeout(res, 10));
        } else {
          const r = await pools[2]!.request({
            path: "/",
            method: "GET",
            headers: { "x-user": user },
          });
          await r.body.text();
          const v = String(r.headers["x-turnout-version"] ?? "");
          if (rng() < (BUY[v] ?? 0))
            await call(turnout, "POST", "/api/v1/events", {
              events: [
                {
                  idempotencyKey: `e${k}-${i}`,
                  unit: user,
                  metric: "purchase",
                  timestamp: Date.now(),
                },
              ],
            });
          await new Promise((res) => setTimeout(res, 10));
        }
      } catch {
        await new Promise((res) => setTimeout(res, 50));
      }
    }
  };
  const traffic = Promise.all(Array.from({ length: 8 }, (_, k) => worker(k)));

  return {
    turnout,
    async stop() {
      stopped = true;
      await traffic;
      for (const p of pools) await p.close();
      await turnout.stop();
      for (const s of servers) s.server.close();
    },
  };
}

/** Waits for the populated state the screenshots want: canary paused at 30%, verdicts shown. */
export async function settle(f: Fixture): Promise<void> {
  const t = f.turnout;
  let last = "";
  await until(
    "checkout paused at 30%",
    async () => {
      const v = await call(t, "GET", "/api/v1/services/checkout/status");
      last = `${v.status?.phase} ${v.status?.canaryWeight}%: ${v.status?.message}`;
      // A step analysis that ends inconclusive on little traffic pauses for a person: one goes on.
      if (v.status?.phase === "Paused" && v.status.canaryWeight === 10)
        await call(t, "POST", "/api/v1/services/checkout/promote", {
          reason: "inconclusive on a quiet hour; error rate looks fine",
        });
      return v.status?.canaryWeight === 30 && v.status.phase === "Paused";
    },
    120_000,
  ).catch((err) => {
    throw new Error(`${(err as Error).message}; last: ${last}`);
  });
  await until(
    "shadow pairs",
    async () => {
      const v = await call(t, "GET", "/api/v1/services/fraud-model/shadow");
      return (v.report?.report?.pairs ?? v.report?.pairs ?? 0) > 50;
    },
    60_000,
  ).catch(() => undefined);
  await call(t, "POST", "/api/v1/flags/ranking-model/set", {
    variant: "hybrid",
    reason: "try",
  }).catch(() => undefined);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const f = await startFixture({ port: Number(process.env.PORT ?? 0) });
  const code = await call(f.turnout, "POST", "/api/v1/sessions/codes");
  console.log(`turnout at ${f.turnout.url}; token ${f.turnout.token}\nsign in: ${code.url}`);
  process.on("SIGINT", () => void f.stop().then(() => process.exit(0)));
}

/**
 * The demo's A/B test: two versions of the example model (m1, m2) behind a `recommender`
 * service, synthetic users identified by `x-user`, each calling the model once and then
 * "buying" with a probability that depends on the version that answered them (10% on m1, 20%
 * on m2: m2 is the better model). The app's side posts the purchases to `POST /api/v1/events`
 * in batches; Turnout's router assigns the users and logs their exposures, and the controller
 * runs the sequential analysis until m2 wins and is promoted. Then the results table.
 */
import { Pool } from "undici";
import type { ServiceResource, ServiceStatus } from "../../core/model.js";
import { plural } from "../../core/plural.js";
import { mulberry32 } from "../../core/stats/random.js";
import { defaultPortAllocator } from "../../runtime/process/ports.js";
import type { Client } from "../client.js";
import { formatResults } from "../experiment.js";
import { bold, cyan, dim, green, red } from "../format.js";
import { modelRuntime, nextSection, until } from "./model.js";

const SERVICE = "recommender";
const EXPERIMENT = "recommender-m2";
/** Chance that a user buys after an answer from each version. */
const BUY = { m1: 0.1, m2: 0.2 } as Record<string, number>;

function service(port: number, version: string): ServiceResource {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: SERVICE },
    spec: {
      listen: { host: "127.0.0.1", port },
      runtime: modelRuntime(1),
      version,
      strategy: {
        abTest: {
          name: EXPERIMENT,
          split: 50,
          assignment: { header: "x-user" },
          force: { header: "x-turnout-arm" },
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
          minSamples: 300,
          maxDuration: "2m",
          decision: "auto",
          correction: "holm",
          sequentialTuning: 5000,
          chanceToWin: 0.95,
          abortScaleDownDelaySeconds: 0,
        },
      },
    },
  };
}

/**
 * Runs the A/B part of the demo; resolves true when m2 won and was promoted.
 * `cancelled` is polled so Ctrl-C stops it.
 */
export async function runAbTestDemo(
  api: Client,
  out: (s: string) => void,
  cancelled: () => boolean,
): Promise<boolean> {
  const port = await defaultPortAllocator.allocate();
  out(`\n${bold("A/B test")}: two versions of a recommender model, decided by what users do`);
  await api.call("POST", "/api/v1/apply", { resources: [service(port, "m1")] });
  const status = async () =>
    await api.call<{
      status: ServiceStatus | null;
      routeTable: { backends: { endpoints: string[] }[] } | null;
    }>("GET", `/api/v1/services/${SERVICE}/status`);
  const ready = await until(
    async () => ((await status()).routeTable?.backends[0]?.endpoints.length ?? 0) > 0,
    30_000,
    cancelled,
  );
  if (cancelled()) return false;
  if (!ready) throw new Error("m1 did not become ready in 30 s");
  if (cancelled()) return false;
  await api.call("POST", "/api/v1/apply", { resources: [service(port, "m2")] });
  out(
    `${cyan(nextSection())} applied ${SERVICE} m2 with strategy abTest: users split 50/50 by x-user (sticky), purchases posted as events, sequential test (alpha 0.05)`,
  );
  // The router has the experiment once a forced request reaches m2.
  const experimentLive = await until(
    async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`, {
        headers: { "x-user": "qa", "x-turnout-arm": "B" },
      }).catch(() => null);
      return res?.headers.get("x-turnout-version") === "m2";
    },
    30_000,
    cancelled,
  );
  if (!experimentLive && !cancelled()) throw new Error("the experiment did not start in 30 s");

  if (cancelled()) return false;
  const rng = mulberry32(7);
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8 });
  let users = 0;
  const byVersion = new Map<string, { users: number; bought: number }>();
  let batch: { idempotencyKey: string; unit: string; metric: string; timestamp: number }[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const events = batch;
    batch = [];
    await api.call("POST", "/api/v1/events", { events });
  };
  const started = Date.now();
  let lastPrint = started;
  let final: ServiceStatus | null = null;
  try {
    while (!cancelled() && Date.now() - started < 90_000) {
      // 200 new users, 8 at a time: each asks the model once, then buys (or not).
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let k = 0; k < 25; k++) {
            const user = `user-${users++}`;
            const features = [rng(), rng(), rng(), rng()];
            const res = await pool.request({
              path: "/predict",
              method: "POST",
              headers: { "content-type": "application/json", "x-user": user },
              body: JSON.stringify({ features }),
            });
            await res.body.text();
            const v = String(res.headers["x-turnout-version"] ?? "?");
            const s = byVersion.get(v) ?? { users: 0, bought: 0 };
            s.users++;
            if (rng() < (BUY[v] ?? 0)) {
              s.bought++;
              batch.push({
                idempotencyKey: `buy-${user}`,
                unit: user,
                metric: "purchase",
                timestamp: Date.now(),
              });
            }
            byVersion.set(v, s);
          }
        }),
      );
      await flush();
      const v = await status();
      if (Date.now() - lastPrint >= 1000) {
        lastPrint = Date.now();
        const seen = [...byVersion]
          .sort()
          .map(
            ([ver, s]) =>
              `${ver} ${plural(s.users, "user")} ${((100 * s.bought) / Math.max(1, s.users)).toFixed(1)}% bought`,
          )
          .join(", ");
        out(`[${String(Math.round((Date.now() - started) / 1000)).padStart(3)}s] ${seen}`);
        out(dim(`       ${v.status?.message ?? ""}`));
      }
      const s = v.status;
      if (s && (s.phase === "Completed" || s.phase === "Degraded") && !s.canaryVersion) {
        final = s;
        break;
      }
    }
  } finally {
    await pool.close();
  }
  if (!final) return false;
  out(
    `\n${final.phase === "Completed" ? green("m2 promoted") : red("m2 not promoted")}: ${final.message}\n`,
  );
  out(`${bold("results")} (turnout experiment results ${EXPERIMENT}):`);
  const results = await api.call<Parameters<typeof formatResults>[0]>(
    "GET",
    `/api/v1/experiments/${EXPERIMENT}/results`,
  );
  out(formatResults(results));
  return final.phase === "Completed" && final.stableVersion === "m2";
}

/**
 * The demo's shadow deployment: a fraud model's new version (d2) sees copies of live POST
 * /predict requests while users only get d1's answers. The example model's versions disagree
 * near the decision boundary (examples/model/server.mjs perturbs the weights by version), so
 * the report shows the agreement, which labels flipped, the score error and drift, latency and
 * drops; the gate passes on it and the rollout goes on into a canary (shadow -> 50% -> 100%).
 */
import { Pool } from "undici";
import type { ServiceResource, ServiceStatus } from "../../core/model.js";
import { plural } from "../../core/plural.js";
import { mulberry32 } from "../../core/stats/random.js";
import { defaultPortAllocator } from "../../runtime/process/ports.js";
import type { Client } from "../client.js";
import { bold, cyan, dim, green, red } from "../format.js";
import { formatShadow, type ShadowView } from "../shadow.js";
import { modelRuntime, nextSection, until } from "./model.js";

const SERVICE = "fraud-shadow";

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
        canary: {
          steps: [
            {
              shadow: {
                percent: 100,
                methods: ["POST"],
                sideEffectFree: true,
                stripHeaders: ["authorization"],
                noise: true,
                compare: {
                  ignore: ["$.version"],
                  tolerance: { absolute: 0.01 },
                  classification: { field: "$.label" },
                  regression: { field: "$.score" },
                  drift: {},
                },
                // d2 agrees with d1 on about 95% of these inputs (server.mjs shifts the weights by
                // version): a 95% bar would make the story a coin toss, 90% lets the sound d2
                // pass every run while a model that flips one label in four still fails.
                gate: { minSamples: 300, minAgreement: 0.9, maxLatencyIncrease: 1 },
              },
            },
            { setWeight: 50 },
            { pause: { duration: "2s" } },
          ],
          abortScaleDownDelaySeconds: 0,
        },
      },
    },
  };
}

/** Runs the shadow part of the demo; resolves true when d2 passed its shadow gate and was promoted. */
export async function runShadowDemo(
  api: Client,
  out: (s: string) => void,
  cancelled: () => boolean,
): Promise<boolean> {
  const port = await defaultPortAllocator.allocate();
  out(
    `\n${bold("Shadow")}: a fraud model's new version sees live requests; users only get the old one's answers`,
  );
  await api.call("POST", "/api/v1/apply", { resources: [service(port, "d1")] });
  const status = () =>
    api.call<{
      status: ServiceStatus | null;
      routeTable: { backends: { endpoints: string[] }[] } | null;
    }>("GET", `/api/v1/services/${SERVICE}/status`);
  const ready = await until(
    async () => ((await status()).routeTable?.backends[0]?.endpoints.length ?? 0) > 0,
    30_000,
    cancelled,
  );
  if (cancelled()) return false;
  if (!ready) throw new Error("d1 did not become ready in 30 s");
  await api.call("POST", "/api/v1/apply", { resources: [service(port, "d2")] });
  out(
    `${cyan(nextSection())} applied ${SERVICE} d2: shadow 100% of POST /predict (labels, scores, drift compared; noise learned from a second copy to d1), gate: 300 pairs, agreement >= 90%; then a canary at 50%`,
  );

  const rng = mulberry32(11);
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8 });
  const byVersion = new Map<string, number>();
  let errors = 0;
  let final: ServiceStatus | null = null;
  const started = Date.now();
  let lastPrint = started;
  try {
    while (!cancelled() && Date.now() - started < 60_000) {
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let k = 0; k < 10; k++) {
            const res = await pool.request({
              path: "/predict",
              method: "POST",
              headers: { "content-type": "application/json", authorization: "Bearer user-token" },
              body: JSON.stringify({ features: [rng(), rng(), rng(), rng()] }),
            });
            await res.body.text();
            if (res.statusCode >= 500) errors++;
            const v = String(res.headers["x-turnout-version"] ?? "?");
            byVersion.set(v, (byVersion.get(v) ?? 0) + 1);
          }
        }),
      );
      const v = await status();
      const s = v.status;
      if (Date.now() - lastPrint >= 1000) {
        lastPrint = Date.now();
        const seen = [...byVersion]
          .sort()
          .map(([ver, n]) => `${ver} answered ${n}`)
          .join(", ");
        out(`[${String(Math.round((Date.now() - started) / 1000)).padStart(3)}s] ${seen}`);
        out(dim(`       ${s?.message ?? ""}`));
      }
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
    `\n${final.phase === "Completed" ? green("d2 promoted") : red("d2 not promoted")}: ${final.message}`,
  );
  out(dim(`${plural(errors, "error")} seen by users`));
  out(`\n${bold("shadow report")} (turnout shadow ${SERVICE}):`);
  const view = await api.call<ShadowView>("GET", `/api/v1/services/${SERVICE}/shadow`);
  out(formatShadow(view));
  return final.phase === "Completed" && final.stableVersion === "d2" && errors === 0;
}

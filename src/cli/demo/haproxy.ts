/**
 * The demo's HAProxy part: the same bad release as the canary story (v3, 25% errors), this
 * time on HAProxy (`spec.traffic: {haproxy: {}}`): Turnout starts an HAProxy for the service,
 * moves its weights over HAProxy's runtime API, reads its measurements from HAProxy's log, and
 * the same analysis rolls the canary back. Skipped, saying so, where haproxy is not installed.
 */
import { Pool } from "undici";
import type { ServiceResource, ServiceStatus, TurnoutEvent } from "../../core/model.js";
import { plural } from "../../core/plural.js";
import { defaultPortAllocator } from "../../runtime/process/ports.js";
import { checkHaproxy } from "../../traffic/haproxy/supervisor.js";
import type { Client } from "../client.js";
import { cyan, dim, green, red, yellow } from "../color.js";
import { modelRuntime, nextSection, until } from "./model.js";

const SERVICE = "fraud-model-hx";

function service(port: number, version: string): ServiceResource {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: SERVICE },
    spec: {
      listen: { host: "127.0.0.1", port },
      traffic: { haproxy: {} },
      runtime: modelRuntime(2, { versions: { v3: { env: { ERROR_RATE: "0.25" } } } }),
      version,
      strategy: {
        canary: {
          steps: [
            { setWeight: 20 },
            { pause: { duration: "5s" } },
            { setWeight: 50 },
            { pause: {} },
          ],
          // The template the canary story applied: the builtin error rate, looked at every 2 s.
          analysis: { templates: ["error-budget"], startingStep: 0 },
          abortScaleDownDelaySeconds: 0,
        },
      },
    },
  };
}

/** Resolves true when the canary on HAProxy was rolled back, "skipped" when HAProxy is absent. */
export async function runHaproxyDemo(
  api: Client,
  out: (s: string) => void,
  cancelled: () => boolean,
): Promise<boolean | "skipped"> {
  out(`\n${cyan("HAProxy")}: the bad release once more, with HAProxy as the data plane`);
  try {
    const bin = checkHaproxy();
    out(dim(`   ${bin.path}: HAProxy ${bin.version} with Lua`));
  } catch (err) {
    out(yellow(`   skipped: ${(err as Error).message}`));
    return "skipped";
  }
  const port = await defaultPortAllocator.allocate();
  await api.call("POST", "/api/v1/apply", { resources: [service(port, "v1")] });
  out(
    `${cyan(nextSection())} applied ${SERVICE} at v1 with spec.traffic: {haproxy: {}}: Turnout starts an HAProxy on http://127.0.0.1:${port}`,
  );
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 4 });
  const served = new Map<string, number>();
  let errors = 0;
  const predict = async (): Promise<string | null> => {
    try {
      const res = await pool.request({
        path: "/predict",
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ features: [0.2, 0.4, 0.6, 0.8] }),
      });
      await res.body.text();
      const v = String(res.headers["x-turnout-version"] ?? "?");
      if (res.statusCode >= 500) errors++;
      served.set(v, (served.get(v) ?? 0) + 1);
      return res.statusCode === 200 ? v : null;
    } catch {
      return null;
    }
  };
  let stop = false;
  try {
    const ready = await until(async () => (await predict()) === "v1", 30_000, cancelled);
    if (!ready) {
      out(red("   v1 did not answer through HAProxy within 30 s"));
      return false;
    }
    out("   v1 answers through HAProxy");
    served.clear();
    errors = 0;
    const loops = Array.from({ length: 4 }, async () => {
      while (!stop && !cancelled()) {
        await predict();
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    await api.call("POST", "/api/v1/apply", { resources: [service(port, "v3")] });
    out(
      `${cyan(nextSection())} applied v3 (25% errors): HAProxy's weights move live; its log feeds the analysis`,
    );
    let final: ServiceStatus | null = null;
    const started = Date.now();
    await until(
      async () => {
        const v = await api.call<{ status: ServiceStatus | null }>(
          "GET",
          `/api/v1/services/${SERVICE}/status`,
        );
        const s = v.status;
        if (s && (s.phase === "Degraded" || s.phase === "Completed") && !s.canaryVersion) {
          final = s;
          return true;
        }
        return false;
      },
      90_000,
      cancelled,
    );
    stop = true;
    await Promise.all(loops);
    const s = final as ServiceStatus | null;
    if (!s) {
      out(red("   the canary on HAProxy did not end within 90 s"));
      return false;
    }
    const secs = Math.round((Date.now() - started) / 1000);
    out(
      `   ${s.phase === "Degraded" ? green("rolled back automatically") : red("not rolled back")} after ${secs}s: ${s.message}`,
    );
    const history = await api.call<{ events: TurnoutEvent[] }>(
      "GET",
      `/api/v1/services/${SERVICE}/history`,
    );
    const verdict = history.events.findLast((e) => e.type === "AnalysisVerdict");
    if (verdict) out(`   verdict: ${verdict.message}`);
    const counts = [...served.entries()]
      .sort()
      .map(([v, n]) => `${v} ${n}`)
      .join(", ");
    out(dim(`   answers through HAProxy: ${counts}; ${plural(errors, "error")} (all from v3)`));
    return s.phase === "Degraded" && (served.get("v3") ?? 0) > 0;
  } finally {
    stop = true;
    await pool.close();
  }
}

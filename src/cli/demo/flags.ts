/**
 * The demo's blue-green with feature flags: a checkout service's green (v2) ships a new
 * checkout behind the flag `new-checkout`, dark. Blue-green switches all traffic to green, then
 * `flagSteps` raise the feature 10% -> 50% with an analysis comparing the router's error rate
 * of green's requests with the feature on against those with it off (the router evaluates the
 * flag per request at the edge and labels its measurements by variant). The new checkout fails
 * a third of its orders: the analysis fails, the flag is turned off at once and green keeps
 * serving with the feature dark (no redeploy, no switch back). Then the manual kill switch: `turnout flags disable`, in force at
 * the edge when the command returns. Runs in about 15 s.
 */
import { createServer, type Server } from "node:http";
import { Pool } from "undici";
import { plural } from "../../core/plural.js";
import { defaultPortAllocator } from "../../runtime/process/ports.js";
import type { Client } from "../client.js";
import { bold, cyan, dim, green, red } from "../format.js";
import { nextSection } from "./model.js";

const SERVICE = "checkout-flags";

/** Blue or green; green's new checkout fails every third order when the flag is on. */
function upstream(name: string, buggy: boolean): Promise<{ url: string; server: Server }> {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    const on = String(req.headers["x-turnout-flags"] ?? "").includes("new-checkout=on");
    const fail = buggy && on && ++n % 3 === 0;
    res.writeHead(fail ? 500 : 200, { "content-type": "text/plain" });
    res.end(`${name} ${on ? "new" : "old"} checkout`);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      resolve({ url: `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`, server });
    }),
  );
}

function resources(port: number, blue: string, green: string, version: string): unknown[] {
  return [
    {
      apiVersion: "turnout.dev/v1",
      kind: "Flag",
      metadata: { name: "new-checkout" },
      spec: {
        type: "boolean",
        variants: { on: true, off: false },
        defaultVariant: "off",
        rollout: { variant: "on", percentage: 0 },
      },
    },
    {
      apiVersion: "turnout.dev/v1",
      kind: "AnalysisTemplate",
      metadata: { name: "checkout-errors" },
      spec: {
        metrics: [
          {
            name: "new-vs-old-checkout",
            source: { builtin: { metric: "error_rate", flag: "new-checkout" } },
            judge: { sequential: { maxIncrease: 0.02, alpha: 0.01 } },
            interval: "1s",
            count: 20,
            minSamples: 30,
          },
        ],
      },
    },
    {
      apiVersion: "turnout.dev/v1",
      kind: "Service",
      metadata: { name: SERVICE },
      spec: {
        listen: { host: "127.0.0.1", port },
        stickiness: { header: "x-user-id" },
        flags: ["new-checkout"],
        runtime: {
          static: { versions: { blue: { upstreams: [blue] }, green: { upstreams: [green] } } },
        },
        version,
        strategy: {
          blueGreen: {
            autoPromotionSeconds: 0,
            flagSteps: [
              { setFlag: { flag: "new-checkout", percentage: 10 } },
              { pause: { duration: "2s" } },
              { setFlag: { flag: "new-checkout", percentage: 50 } },
              { analysis: { templates: ["checkout-errors"] } },
              { setFlag: { flag: "new-checkout", percentage: 100 } },
            ],
          },
        },
      },
    },
  ];
}

interface StatusLike {
  status: { phase: string; message: string; canaryVersion: string | null } | null;
}

/** Runs the flags part of the demo; true when the flag was turned off by the failed analysis. */
export async function runFlagsDemo(
  api: Client,
  out: (s: string) => void,
  cancelled: () => boolean,
): Promise<boolean> {
  out(
    `\n${bold("Blue-green with feature flags")}: the new checkout ships dark, then a flag raises it`,
  );
  const blueUp = await upstream("blue", false);
  const greenUp = await upstream("green", true);
  const port = await defaultPortAllocator.allocate();
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8 });
  let stop = false;
  let sent = 0;
  const window = { on: 0, off: 0, errors: 0 };
  const ask = async (user: string) => {
    const res = await pool.request({ path: "/", method: "GET", headers: { "x-user-id": user } });
    return { status: res.statusCode, body: await res.body.text() };
  };
  const traffic = (async () => {
    while (!stop) {
      try {
        const r = await ask(`user-${sent++ % 1000}`);
        if (r.body.includes("new")) window.on++;
        else window.off++;
        if (r.status >= 500) window.errors++;
      } catch {
        // The listener may not be bound yet at the start.
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    await api.call("POST", "/api/v1/apply", {
      resources: resources(port, blueUp.url, greenUp.url, "blue"),
    });
    out(
      `${cyan(nextSection())} ${SERVICE} on blue; flag new-checkout at 0% (dark); users on :${port}`,
    );
    await new Promise((r) => setTimeout(r, 1000));
    await api.call("POST", "/api/v1/apply", {
      resources: resources(port, blueUp.url, greenUp.url, "green").slice(2),
    });
    out(
      `${cyan(nextSection())} applied green: switch, then setFlag 10% -> pause 2s -> 50% -> analysis (new vs old checkout) -> 100%`,
    );
    const started = Date.now();
    let final: StatusLike["status"] = null;
    while (!cancelled() && Date.now() - started < 40_000) {
      await new Promise((r) => setTimeout(r, 1000));
      const v = await api.call<StatusLike>("GET", `/api/v1/services/${SERVICE}/status`);
      const f = await api.call<{ effective: { state: string; rollout?: { percentage: number } } }>(
        "GET",
        "/api/v1/flags/new-checkout",
      );
      const n = window.on + window.off || 1;
      out(
        `[${String(Math.round((Date.now() - started) / 1000)).padStart(3)}s] ${(v.status?.phase ?? "?").padEnd(12)} flag ${f.effective.state === "ENABLED" ? `${f.effective.rollout?.percentage ?? 0}%`.padEnd(8) : red("off".padEnd(8))} observed new checkout ${((100 * window.on) / n).toFixed(1).padStart(5)}%  ${dim(plural(window.errors, "error"))}`,
      );
      window.on = 0;
      window.off = 0;
      window.errors = 0;
      if (v.status && v.status.phase !== "Progressing" && v.status.canaryVersion === null) {
        final = v.status;
        break;
      }
    }
    if (final === null) return false;
    const f = await api.call<{ effective: { state: string } }>("GET", "/api/v1/flags/new-checkout");
    out(
      `${final.phase === "Completed" && f.effective.state === "DISABLED" ? green("flag turned off at once, green kept") : red("flag not turned off")}: ${final.message}`,
    );
    const h = await api.call<{ history: { action: string; message: string }[] }>(
      "GET",
      "/api/v1/flags/new-checkout/history",
    );
    for (const e of h.history.slice(-3))
      out(dim(`   history: ${e.action.padEnd(12)} ${e.message}`));

    out(
      `${cyan(nextSection())} the manual kill switch: turnout flags enable / disable new-checkout`,
    );
    await api.call("POST", "/api/v1/flags/new-checkout/set", { percentage: 100 });
    await api.call("POST", "/api/v1/flags/new-checkout/enable", { reason: "demo" });
    const before = (await ask("user-1")).body;
    const t0 = performance.now();
    await api.call("POST", "/api/v1/flags/new-checkout/disable", { reason: "demo: kill switch" });
    const after = (await ask("user-1")).body;
    const ms = (performance.now() - t0).toFixed(0);
    out(`   before: "${before}"; right after disable (${ms} ms incl. the API call): "${after}"`);
    return (
      final.phase === "Completed" &&
      f.effective.state === "DISABLED" &&
      before.includes("new") &&
      after.includes("old")
    );
  } finally {
    stop = true;
    await traffic;
    await pool.close();
    blueUp.server.close();
    greenUp.server.close();
  }
}

/**
 * The demo's zero-downtime part (issue #4): a `checkout` service of 4 local instances is
 * updated with a rolling update (batch by batch, traffic following ready instances), then
 * with a blue-green switch (green previewed on its own port while blue serves everyone), then
 * rolled back, which is an instant switch back because blue stayed warm. Users keep sending
 * requests over keep-alive and fresh connections throughout; the demo counts every failure.
 */

import { Agent, request } from "node:http";
import type { ServiceResource, ServiceStatus } from "../../core/model.js";
import { plural } from "../../core/plural.js";
import { defaultPortAllocator } from "../../runtime/process/ports.js";
import type { Client } from "../client.js";
import { bold, cyan, dim, green, red } from "../format.js";
import { modelRuntime, nextSection } from "./model.js";

const SERVICE = "checkout";

function service(
  port: number,
  previewPort: number,
  version: string,
  rolling: boolean,
): ServiceResource {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: SERVICE },
    spec: {
      listen: { host: "127.0.0.1", port },
      runtime: modelRuntime(4, { drainSeconds: 0.5 }),
      version,
      strategy: rolling
        ? { rolling: { maxSurge: 1, maxUnavailable: 0 } }
        : {
            blueGreen: {
              preview: { port: previewPort },
              scaleDownDelaySeconds: 60,
            },
          },
    },
  } as ServiceResource;
}

/** Users on keep-alive connections and users opening a fresh connection per request. */
class Users {
  ok = 0;
  failed = 0;
  byVersion = new Map<string, number>();
  private running = true;
  private loops: Promise<void>[];
  private agent = new Agent({ keepAlive: true, maxSockets: 3 });

  constructor(port: number) {
    const once = (fresh: boolean) =>
      new Promise<void>((resolve) => {
        const req = request(
          {
            host: "127.0.0.1",
            port,
            path: "/predict",
            method: "POST",
            headers: {
              "content-type": "application/json",
              ...(fresh ? { connection: "close" } : {}),
            },
            agent: fresh ? false : this.agent,
          },
          (res) => {
            res.resume();
            res.on("end", () => {
              const ok = (res.statusCode ?? 0) < 400;
              if (ok) {
                this.ok++;
                const v = String(res.headers["x-turnout-version"] ?? "?");
                this.byVersion.set(v, (this.byVersion.get(v) ?? 0) + 1);
              } else this.failed++;
              resolve();
            });
          },
        );
        req.on("error", () => {
          this.failed++;
          resolve();
        });
        req.end(JSON.stringify({ features: [0.3, 0.6, 0.9] }));
      });
    const loop = async (fresh: boolean) => {
      while (this.running) {
        await once(fresh);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    this.loops = [loop(false), loop(false), loop(false), loop(true), loop(true)];
  }
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
  }
}

interface View {
  status: ServiceStatus | null;
  routeTable: { backends: { version: string; weight: number; endpoints: string[] }[] } | null;
}

/** Runs the part; true when every phase finished with zero failed requests. */
export async function runZeroDowntimeDemo(
  api: Client,
  out: (s: string) => void,
  cancelled: () => boolean,
): Promise<boolean> {
  const port = await defaultPortAllocator.allocate();
  const previewPort = await defaultPortAllocator.allocate();
  const view = () => api.call<View>("GET", `/api/v1/services/${SERVICE}/status`);
  const wait = async (what: string, check: (v: View) => boolean, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline && !cancelled()) {
      const v = await view();
      if (check(v)) return v;
      const line = v.status?.message ?? "";
      if (line !== last) out(dim(`   ${line}`));
      last = line;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${what} did not happen in ${timeoutMs / 1000} s`);
  };

  out(`\n${bold("Zero downtime: a rolling update, a blue-green switch and a rollback")}`);
  await api.call("POST", "/api/v1/apply", { resources: [service(port, previewPort, "v1", true)] });
  await wait("checkout v1 ready", (v) => v.routeTable?.backends[0]?.endpoints.length === 4);
  out(
    `${cyan(nextSection())} ${SERVICE} v1 runs 4 local instances on http://127.0.0.1:${port}; users arrive`,
  );
  const users = new Users(port);
  let ok = true;
  const phase = async (label: string, body: () => Promise<void>) => {
    const before = { ok: users.ok, failed: users.failed };
    const t0 = Date.now();
    await body();
    const n = users.ok - before.ok;
    const f = users.failed - before.failed;
    ok &&= f === 0;
    out(
      `   ${f === 0 ? green("zero failed requests") : red(`${f} failed requests`)} of ${n + f} during ${label} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );
  };
  try {
    await phase("the rolling update", async () => {
      await api.call("POST", "/api/v1/apply", {
        resources: [service(port, previewPort, "v2", true)],
      });
      out(
        `${cyan(nextSection())} rolling update to v2 (maxSurge 1, maxUnavailable 0): one instance at a time`,
      );
      await wait(
        "rolling update",
        (v) => v.status?.phase === "Completed" && v.status.stableVersion === "v2",
      );
    });
    await phase("the blue-green switch", async () => {
      await api.call("POST", "/api/v1/apply", {
        resources: [service(port, previewPort, "v3", false)],
      });
      out(
        `${cyan(nextSection())} blue-green to v3: green starts beside blue, previewed on port ${previewPort}`,
      );
      await wait("green ready", (v) => v.status?.phase === "Paused");
      const res = await fetch(`http://127.0.0.1:${previewPort}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ features: [0.1, 0.2, 0.3] }),
      });
      await res.arrayBuffer();
      out(
        `   a tester's request on the preview port is answered by ${res.headers.get("x-turnout-version")}; users still see only v2 (${plural(users.byVersion.get("v3") ?? 0, "answer")} from v3 so far)`,
      );
      out(`   ${cyan("turnout promote checkout")}: the switch`);
      await api.call("POST", `/api/v1/services/${SERVICE}/promote`, {
        reason: "demo: preview looks good",
      });
      await wait("switch", (v) => v.status?.stableVersion === "v3");
    });
    await phase("the rollback", async () => {
      out(
        `${cyan(nextSection())} ${cyan("turnout undo checkout")}: v2 is still warm, so going back is a switch`,
      );
      await api.call("POST", `/api/v1/services/${SERVICE}/undo`, { reason: "demo" });
      await wait(
        "switch back",
        (v) => v.status?.stableVersion === "v2" && v.status.phase === "Completed",
      );
    });
  } finally {
    await users.stop();
  }
  out(
    `   ${ok ? green("no user saw an error") : red("some users saw errors")}: ${plural(users.ok + users.failed, "request")}, ${users.failed} failed`,
  );
  return ok;
}

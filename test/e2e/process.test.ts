/**
 * End to end on the process runtime: Turnout starts the example model server as local
 * processes, switches v1 -> v2 when they are ready, and leaves no process behind on exit.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { api, freePort, pidsWith, ROOT, startUp, tempDir, waitFor } from "../helpers.js";

async function predict(
  port: number,
): Promise<{ status: number; version: string | null; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}/predict`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ features: [0.1, 0.5, 0.9] }),
  });
  return {
    status: res.status,
    version: res.headers.get("x-turnout-version"),
    body: await res.json(),
  };
}

describe("process runtime, end to end", () => {
  const dir = tempDir();
  const marker = `turnout-e2e-marker-${process.pid}-${Date.now()}`;
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("runs versions as local processes, switches when ready, and leaves no orphans", async () => {
    const up = await startUp(dir);
    try {
      const port = await freePort();
      const service = (version: string) => ({
        apiVersion: "turnout.dev/v1",
        kind: "Service",
        metadata: { name: "model" },
        spec: {
          listen: { port },
          runtime: {
            process: {
              command: [process.execPath, join(ROOT, "examples/model/server.mjs"), marker],
              env: { MODEL_VERSION: "${version}" },
              replicas: 2,
              readiness: { path: "/healthz" },
              terminationGracePeriodSeconds: 2,
            },
          },
          version,
        },
      });
      let r = await api(up, "POST", "/api/v1/apply", service("v1"));
      assert.equal(r.status, 200, JSON.stringify(r.json));
      await waitFor("v1 ready", async () => {
        const v = (await api(up, "GET", "/api/v1/services/model/status")).json;
        return v.routeTable?.backends?.[0]?.endpoints?.length === 2;
      });
      const first = await predict(port);
      assert.equal(first.status, 200);
      assert.equal(first.version, "v1");
      assert.equal(first.body.version, "v1");
      assert.equal(pidsWith(marker).length, 2, "two v1 instances run");

      r = await api(up, "POST", "/api/v1/apply", service("v2"));
      assert.equal(r.status, 200);
      await waitFor("v2 completed", async () => {
        const v = (await api(up, "GET", "/api/v1/services/model/status")).json;
        return v.status?.phase === "Completed";
      });
      const second = await predict(port);
      assert.equal(second.version, "v2");
      assert.equal(second.body.version, "v2");
      // v1's instances are stopped once v2 serves everything.
      await waitFor("v1 stopped", async () => pidsWith(marker).length === 2);
      const history = (await api(up, "GET", "/api/v1/services/model/history")).json.events.map(
        (e: { type: string }) => e.type,
      );
      assert.ok(history.includes("RolloutCompleted"), history.join(","));
    } finally {
      const code = await up.stop("SIGTERM");
      assert.equal(code, 0, up.stderr());
    }
    assert.deepEqual(pidsWith(marker), [], "no instance outlives turnout");
  });
});

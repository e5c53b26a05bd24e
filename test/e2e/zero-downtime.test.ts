/**
 * Issue #4's acceptance, end to end on the process runtime: with a load generator running
 * throughout (keep-alive and fresh connections, at least 2,000 requests per phase), a rolling
 * update of 4 instances, a blue-green switch, a blue-green rollback and an abort midway through
 * a rolling update each finish with zero failed requests; a version that never becomes ready
 * is aborted at its deadline with the old version serving; and `kill -9` of Turnout
 * mid-rollout followed by `turnout up` resumes at the same step with no orphan and no
 * duplicate port.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { api, freePort, pidsWith, ROOT, startUp, tempDir, type Up, waitFor } from "../helpers.js";
import { type Load, type LoadStats, startLoad } from "../load.js";

const PER_PHASE = 2_000;

function service(
  port: number,
  marker: string,
  version: string,
  strategy: Record<string, unknown>,
  extra: { env?: Record<string, string>; replicas?: number } = {},
) {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: "web" },
    spec: {
      listen: { port },
      runtime: {
        process: {
          command: [process.execPath, join(ROOT, "examples/model/server.mjs"), marker],
          env: { MODEL_VERSION: "${version}", ...(extra.env ?? {}) },
          replicas: extra.replicas ?? 4,
          readiness: { path: "/healthz", periodSeconds: 0.2 },
          drainSeconds: 0.5,
          terminationGracePeriodSeconds: 3,
        },
      },
      version,
      strategy,
    },
  };
}

async function status(up: Up) {
  return (await api(up, "GET", "/api/v1/services/web/status")).json;
}

/** Runs a phase under load: at least PER_PHASE requests, and none of them may fail. */
async function phase(load: Load, name: string, body: () => Promise<void>): Promise<LoadStats> {
  const before = load.stats();
  await body();
  const mid = load.stats();
  const done = mid.ok + mid.failed - (before.ok + before.failed);
  if (done < PER_PHASE) await load.waitFor(PER_PHASE - done);
  const end = load.stats();
  const failed = end.failed - before.failed;
  assert.equal(failed, 0, `${name}: ${failed} failed requests: ${end.failures.join(" | ")}`);
  const ka = end.keepAlive - before.keepAlive;
  const fresh = end.fresh - before.fresh;
  assert.ok(ka > 0 && fresh > 0, `${name}: both keep-alive (${ka}) and fresh (${fresh}) requests`);
  return end;
}

describe("zero downtime on the process runtime (issue #4)", () => {
  const dir = tempDir();
  const marker = `turnout-zdt-${process.pid}-${Date.now()}`;
  after(() => {
    for (const pid of pidsWith(marker)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("rolling, blue-green switch, blue-green rollback and abort midway lose no request", async () => {
    const up = await startUp(dir);
    const port = await freePort();
    const previewPort = await freePort();
    const rolling = { rolling: { maxSurge: 1, maxUnavailable: 0 } };
    const blueGreen = {
      blueGreen: {
        preview: { port: previewPort, match: { header: { name: "x-preview", equals: "1" } } },
        scaleDownDelaySeconds: 120,
      },
    };
    let load: Load | null = null;
    try {
      let r = await api(up, "POST", "/api/v1/apply", service(port, marker, "v1", rolling));
      assert.equal(r.status, 200, JSON.stringify(r.json));
      await waitFor("v1 ready", async () => {
        const s = await status(up);
        return s.routeTable?.backends?.[0]?.endpoints?.length === 4;
      });
      load = startLoad(port, { keepAlive: 4, fresh: 2 });
      await load.waitFor(100);

      // 1. A rolling update of 4 instances.
      const afterRolling = await phase(load, "rolling v1 -> v2", async () => {
        r = await api(up, "POST", "/api/v1/apply", service(port, marker, "v2", rolling));
        assert.equal(r.status, 200, JSON.stringify(r.json));
        await waitFor(
          "rolling update completed",
          async () => {
            const s = await status(up);
            return s.status?.phase === "Completed" && s.status?.stableVersion === "v2";
          },
          60_000,
        );
      });
      assert.ok((afterRolling.byVersion.v2 ?? 0) > 0);
      const history = (await api(up, "GET", "/api/v1/services/web/history?limit=1000")).json;
      const batches = history.events.filter((e: { type: string }) => e.type === "BatchScaled");
      assert.ok(batches.length >= 4, `batch by batch: ${batches.length} BatchScaled events`);

      // 2. A blue-green switch, with the preview reachable before it.
      await phase(load, "blue-green switch v2 -> v3", async () => {
        r = await api(up, "POST", "/api/v1/apply", service(port, marker, "v3", blueGreen));
        assert.equal(r.status, 200, JSON.stringify(r.json));
        await waitFor(
          "green ready, waiting for promotion",
          async () => (await status(up)).status?.phase === "Paused",
          60_000,
        );
        const preview = await fetch(`http://127.0.0.1:${previewPort}/predict`, {
          method: "POST",
          body: "{}",
        });
        assert.equal(preview.headers.get("x-turnout-version"), "v3");
        await preview.arrayBuffer();
        const byHeader = await fetch(`http://127.0.0.1:${port}/predict`, {
          method: "POST",
          headers: { "x-preview": "1" },
          body: "{}",
        });
        assert.equal(byHeader.headers.get("x-turnout-version"), "v3");
        await byHeader.arrayBuffer();
        const before = load?.stats().byVersion.v3 ?? 0;
        await load?.waitFor(200);
        assert.equal(load?.stats().byVersion.v3 ?? 0, before, "no user reaches green before");
        r = await api(up, "POST", "/api/v1/services/web/promote", {});
        assert.equal(r.status, 200, JSON.stringify(r.json));
        await waitFor("switched", async () => (await status(up)).status?.stableVersion === "v3");
      });

      // 3. A blue-green rollback: blue is warm, so going back is a switch.
      await phase(load, "blue-green rollback v3 -> v2", async () => {
        r = await api(up, "POST", "/api/v1/services/web/undo", {});
        assert.equal(r.status, 200, JSON.stringify(r.json));
        await waitFor("switched back", async () => {
          const s = await status(up);
          return s.status?.stableVersion === "v2" && s.status?.phase === "Completed";
        });
      });

      // 4. An abort midway through a rolling update.
      await phase(load, "rolling v2 -> v4 aborted midway", async () => {
        const slow = { rolling: { maxSurge: 1, maxUnavailable: 0, minReadySeconds: 1 } };
        r = await api(up, "POST", "/api/v1/apply", service(port, marker, "v4", slow));
        assert.equal(r.status, 200, JSON.stringify(r.json));
        await waitFor(
          "midway",
          async () => ((await status(up)).status?.rolling?.available ?? 0) >= 2,
          60_000,
        );
        r = await api(up, "POST", "/api/v1/services/web/abort", { reason: "e2e" });
        assert.equal(r.status, 200, JSON.stringify(r.json));
        const s = await status(up);
        assert.equal(s.status.phase, "Degraded");
        await waitFor(
          "old version back at full size",
          async () => {
            const t = (await status(up)).routeTable;
            return (
              t?.backends?.length === 1 &&
              t.backends[0].version === "v2" &&
              t.backends[0].endpoints.length === 4
            );
          },
          60_000,
        );
      });

      // 5. A version that never becomes ready is aborted at its deadline; v2 serves throughout.
      await phase(load, "never-ready v5 aborted at its deadline", async () => {
        const strict = { rolling: { maxSurge: 1, maxUnavailable: 0, progressDeadlineSeconds: 3 } };
        r = await api(
          up,
          "POST",
          "/api/v1/apply",
          service(port, marker, "v5", strict, { env: { READY_AFTER_MS: "3600000" } }),
        );
        assert.equal(r.status, 200, JSON.stringify(r.json));
        await waitFor(
          "deadline abort",
          async () => (await status(up)).status?.phase === "Degraded",
          60_000,
        );
        const s = await status(up);
        assert.match(s.status.message, /no progress/);
        assert.equal(s.status.stableVersion, "v2");
      });
      const final = await load.stop();
      load = null;
      assert.equal(final.failed, 0, final.failures.join(" | "));
    } finally {
      await load?.stop();
      await up.stop();
    }
    await waitFor("no orphan processes", async () => pidsWith(marker).length === 0, 20_000);
  });

  it("kill -9 mid-rollout, then up again: resumes at the same step, no orphans, no duplicate ports", async () => {
    const dir2 = tempDir();
    const marker2 = `${marker}-k9`;
    try {
      const port = await freePort();
      const canary = { canary: { steps: [{ setWeight: 50 }, { pause: {} }, { setWeight: 80 }] } };
      let up = await startUp(dir2);
      let r = await api(
        up,
        "POST",
        "/api/v1/apply",
        service(port, marker2, "v1", canary, { replicas: 2 }),
      );
      assert.equal(r.status, 200, JSON.stringify(r.json));
      await waitFor(
        "v1 ready",
        async () => (await status(up)).routeTable?.backends?.[0]?.endpoints?.length === 2,
      );
      r = await api(
        up,
        "POST",
        "/api/v1/apply",
        service(port, marker2, "v2", canary, { replicas: 2 }),
      );
      await waitFor(
        "paused at step 2",
        async () => {
          const s = await status(up);
          return s.status?.phase === "Paused" && s.status?.stepIndex === 1;
        },
        60_000,
      );
      const pidsBefore = pidsWith(marker2).sort();
      assert.equal(pidsBefore.length, 4);

      up.proc.kill("SIGKILL");
      await up.stop();
      up = await startUp(dir2);
      try {
        await waitFor(
          "resumed with both versions serving",
          async () => {
            const s = await status(up);
            const t = s.routeTable;
            return (
              s.status?.phase === "Paused" &&
              s.status?.stepIndex === 1 &&
              t?.backends?.every((b: { endpoints: string[] }) => b.endpoints.length === 2)
            );
          },
          60_000,
        );
        const s = await status(up);
        assert.equal(s.status.canaryWeight, 50);
        const urls: string[] = s.instances.map((i: { url: string }) => i.url);
        assert.equal(new Set(urls).size, urls.length, `no duplicate ports: ${urls.join(", ")}`);
        assert.equal(pidsWith(marker2).length, 4, "no orphan, no extra instance");
        const res = await fetch(`http://127.0.0.1:${port}/predict`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ features: [0.1, 0.2, 0.3] }),
        });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
        r = await api(up, "POST", "/api/v1/services/web/promote", { full: true });
        assert.equal(r.status, 200, JSON.stringify(r.json));
        await waitFor(
          "completed",
          async () => (await status(up)).status?.phase === "Completed",
          60_000,
        );
        const history = (await api(up, "GET", "/api/v1/services/web/history?limit=1000")).json;
        const types = history.events.map((e: { type: string }) => e.type);
        assert.ok(
          types.includes("ControllerStarted"),
          `history shows the restart: ${types.join(", ")}`,
        );
      } finally {
        await up.stop();
      }
      await waitFor("no orphan processes", async () => pidsWith(marker2).length === 0, 20_000);
    } finally {
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});

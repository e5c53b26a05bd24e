/**
 * A service whose data plane does not serve its route table, through a real `turnout up`: a
 * listen port someone else holds (the built-in router cannot bind it), and an attached HAProxy
 * whose runtime API socket does not exist. Each is Degraded with "not serving: <why>" in
 * `status` (text and JSON) and `get services`, a new version's rollout does not start until
 * the table is served, and it starts by itself once it is (the port freed, the socket up).
 * `apply` refuses a Service on the API's own port and on another Service's, naming both.
 */
import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { RuntimeApi } from "../../src/traffic/haproxy/runtime-api.js";
import {
  needsHaproxy,
  operatorConfig,
  runHaproxy,
  tempDir,
} from "../../src/traffic/haproxy/testing.js";
import {
  api,
  cli,
  freePort,
  sendMany,
  serviceStatusWhen,
  startBackend,
  startUp,
  staticService,
  waitFor,
} from "../helpers.js";

/** Applies `resource` and answers the service's status view once that generation is observed. */
async function applySeen(up: { url: string; token: string }, resource: any): Promise<any> {
  const r = await api(up, "POST", "/api/v1/apply", resource);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const generation = r.json.results[0].generation;
  return serviceStatusWhen(
    up,
    resource.metadata.name,
    `generation ${generation} observed`,
    (v) => v.status?.observedGeneration >= generation,
  );
}

describe("a data plane that does not serve, through turnout up", () => {
  // Short paths: an attached HAProxy's unix socket path is limited to 107 bytes.
  const tmp = tempDir("turnout-dp-");
  after(() => tmp.remove());

  it("a listen port already taken: Degraded, no rollout until the port is free; apply refuses the API's port", async () => {
    const v1 = await startBackend("v1");
    const v2 = await startBackend("v2");
    // Someone else holds the service's port.
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
    const port = (holder.address() as { port: number }).port;
    const dir = join(tmp.path, "port");
    const up = await startUp(dir);
    // A person subscribed to the data plane's events gets both, as webhooks.
    const hooks: string[] = [];
    const receiver = createHttpServer((req, res) => {
      hooks.push(String(req.headers["x-turnout-event"]));
      req.resume();
      req.on("end", () => res.writeHead(200).end());
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    try {
      const hookPort = (receiver.address() as { port: number }).port;
      const notifier = await api(up, "POST", "/api/v1/apply", {
        apiVersion: "turnout.dev/v1",
        kind: "Notifier",
        metadata: { name: "ops" },
        spec: {
          webhook: {
            url: `http://127.0.0.1:${hookPort}/hook`,
            secret: "a-long-enough-test-secret",
          },
          events: ["dataPlane"],
        },
      });
      assert.equal(notifier.status, 200, JSON.stringify(notifier.json));
      const shop = (version: string) =>
        staticService(port, { v1: [v1.url], v2: [v2.url] }, version);
      await applySeen(up, shop("v1"));
      const down = await serviceStatusWhen(
        up,
        "shop",
        "Degraded",
        (v) => v.status?.phase === "Degraded",
      );
      const why = `cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`;
      assert.ok(
        down.status.message.startsWith(`not serving: ${why} (router `),
        down.status.message,
      );
      assert.equal(down.status.dataPlane.serving, false);
      assert.ok(down.status.dataPlane.reason.startsWith(why));
      assert.equal(down.status.dataPlane.underlying.phase, "Healthy");

      const text = await cli(["status", "shop", "--data-dir", dir]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(`^Phase: +Degraded  not serving: ${esc(why)}`, "m"));
      const list = await cli(["get", "services", "--data-dir", dir]);
      assert.match(list.stdout, /^shop +Degraded +v1 .* not serving: cannot listen on/m);

      // A new version: seen, but its rollout holds until the table is served.
      const held = await applySeen(up, shop("v2"));
      assert.equal(held.status.canaryVersion, null);
      assert.match(held.status.message, /; the rollout to v2 starts once it is served$/);
      assert.deepEqual(
        held.routeTable.backends.map((b: { version: string }) => b.version),
        ["v1"],
      );
      const promote = await api(up, "POST", "/api/v1/services/shop/promote", {});
      assert.equal(promote.status, 409, JSON.stringify(promote.json));

      // apply refuses the API's own port (the router would never bind it), naming both.
      const apiPort = Number(new URL(up.url).port);
      let r = await api(up, "POST", "/api/v1/apply", {
        ...staticService(apiPort, { v1: [v1.url] }, "v1"),
        metadata: { name: "clash" },
      });
      assert.equal(r.status, 400, JSON.stringify(r.json));
      assert.match(
        JSON.stringify(r.json),
        new RegExp(
          `Service/clash.*spec\\.listen\\.port.*port ${apiPort} on 127\\.0\\.0\\.1 is taken by the Turnout API \\(listening on 127\\.0\\.0\\.1:${apiPort}\\)`,
        ),
      );
      // And another Service's port, as before.
      r = await api(up, "POST", "/api/v1/apply", {
        ...staticService(port, { v1: [v1.url] }, "v1"),
        metadata: { name: "twin" },
      });
      assert.equal(r.status, 400, JSON.stringify(r.json));
      assert.match(JSON.stringify(r.json), /already taken by Service \\"shop\\"/);

      // The port is freed: the router binds it, the rollout starts, both versions answer.
      await new Promise<void>((res) => holder.close(() => res()));
      const serving = await serviceStatusWhen(
        up,
        "shop",
        "the rollout at 50%",
        (v) => v.status?.phase === "Paused" && v.status?.canaryWeight === 50,
      );
      assert.equal(serving.status.dataPlane, null);
      const counts = await sendMany(port, 200, 4);
      assert.equal(
        (counts.get("v1") ?? 0) + (counts.get("v2") ?? 0),
        200,
        JSON.stringify([...counts]),
      );
      assert.ok((counts.get("v2") ?? 0) > 50, JSON.stringify([...counts]));
      const history = (await api(up, "GET", "/api/v1/services/shop/history")).json;
      const types = history.events.map((e: { type: string }) => e.type);
      assert.ok(
        types.includes("DataPlaneNotServing") && types.includes("DataPlaneServing"),
        types.join(" "),
      );
      await waitFor("both notified", async () => hooks.length >= 2);
      assert.deepEqual(hooks, ["DataPlaneNotServing", "DataPlaneServing"]);
    } finally {
      receiver.close();
      holder.close();
      await up.stop();
      await Promise.all([v1.close(), v2.close()]);
    }
  });

  it(
    "an attached HAProxy whose socket does not exist, or goes away later: Degraded, no log figures, the rollout goes on once it answers",
    needsHaproxy(),
    async () => {
      const data = join(tmp.path, "attach");
      const v1 = await startBackend("v1");
      const v2 = await startBackend("v2");
      const sock = join(tmp.path, "admin.sock");
      const front = await freePort();
      const listen = await freePort();
      const up = await startUp(data);
      let owner: Awaited<ReturnType<typeof runHaproxy>> | null = null;
      try {
        const att = (version: string) => ({
          apiVersion: "turnout.dev/v1",
          kind: "Service",
          metadata: { name: "att" },
          spec: {
            listen: { port: listen },
            traffic: { haproxy: { runtimeApi: `unix:${sock}`, backend: "app" } },
            runtime: {
              static: { versions: { v1: { upstreams: [v1.url] }, v2: { upstreams: [v2.url] } } },
            },
            version,
            strategy: { canary: { steps: [{ setWeight: 30 }, { pause: {} }] } },
          },
        });
        await applySeen(up, att("v1"));
        const down = await serviceStatusWhen(
          up,
          "att",
          "Degraded",
          (v) => v.status?.phase === "Degraded",
        );
        assert.match(
          down.status.message,
          /^not serving: haproxy refused route table revision \d+: HAProxy runtime API .*admin\.sock: .*the socket does not exist; no table of this service is in force \(router .*:haproxy\)$/,
        );
        assert.equal(down.dataPlane.mode, "attach");
        assert.equal(down.dataPlane.intake, undefined, "an attached HAProxy sends no log");

        const text = await cli(["status", "att", "--data-dir", data]);
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, /^Phase: +Degraded {2}not serving: haproxy refused/m);
        assert.match(text.stdout, /^Data plane: +haproxy \(attach\)$/m);
        assert.doesNotMatch(text.stdout, /log lines/);

        const held = await applySeen(up, att("v2"));
        assert.equal(held.status.canaryVersion, null);
        assert.equal(held.status.phase, "Degraded");

        // The operator's HAProxy comes up: the refused table is applied again by itself.
        const cfg = operatorConfig({
          socket: sock,
          port: front,
          frontend: ["  default_backend app"],
          backends: ["backend app", "  balance roundrobin"],
        });
        const admin = new RuntimeApi(sock);
        owner = await runHaproxy(tmp.path, cfg, () => admin.answers());
        const serving = await serviceStatusWhen(
          up,
          "att",
          "the rollout at 30% in force",
          (v) => v.status?.phase === "Paused" && v.status?.canaryWeight === 30,
        );
        assert.equal(serving.status.dataPlane, null);
        const bothAnswer = async () => {
          const counts = await sendMany(front, 100, 4).catch(() => null);
          return (
            counts !== null &&
            (counts.get("v1") ?? 0) + (counts.get("v2") ?? 0) === 100 &&
            (counts.get("v2") ?? 0) > 0
          );
        };
        await waitFor("both versions answer through the operator's HAProxy", bothAnswer);

        // The operator's HAProxy goes away after the table was in force: noticed without an
        // apply (Degraded, the rollout holds), and put back by itself once it is restarted
        // (without Turnout's servers: its config has none).
        await owner.stop();
        owner = null;
        const lost = await serviceStatusWhen(
          up,
          "att",
          "Degraded after the socket went away",
          (v) => v.status?.phase === "Degraded",
        );
        assert.match(lost.status.message, /stopped answering after revision \d+ was put in force/);
        owner = await runHaproxy(tmp.path, cfg, () => admin.answers());
        await serviceStatusWhen(
          up,
          "att",
          "the rollout at 30% in force again",
          (v) => v.status?.phase === "Paused" && v.status?.canaryWeight === 30,
        );
        await waitFor("both versions answer again", bothAnswer);
      } finally {
        await up.stop();
        await owner?.stop();
        await Promise.all([v1.close(), v2.close()]);
      }
    },
  );
});

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

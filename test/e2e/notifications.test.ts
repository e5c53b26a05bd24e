/**
 * Notifications end to end: in-process Turnout on port 0, a real receiver on port 0, Notifiers
 * applied over the API. A rollout that starts, stops at an indefinite pause (paused for a
 * person) and is aborted, and a person's kill switch, each reach the receiver as a signed
 * webhook, in order, and `turnout get notifiers` shows the deliveries.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { verifySignature } from "../../src/notify/render.js";
import { type RunningTurnout, startTurnout } from "../../src/server.js";
import { api, cli, freePort, startBackend, tempDir, waitFor } from "../helpers.js";

const SECRET = "e2e-secret-0123456789abcdef";

interface Got {
  signature: string;
  key: string;
  body: string;
  json: {
    subscription: string;
    service: string | null;
    idempotencyKey: string;
    event: { type: string; message: string };
  };
}

describe("notifications from a running Turnout", () => {
  let dir: string;
  let t: RunningTurnout;
  let receiver: Server;
  let hookUrl: string;
  const got: Got[] = [];
  const backends: { close(): Promise<void> }[] = [];
  let port: number;

  const apply = async (yaml: string) => {
    const r = await api(t, "POST", "/api/v1/apply", yaml, { contentType: "application/yaml" });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  };
  const service = (v1: string, v2: string, version: string) => `apiVersion: turnout.dev/v1
kind: Service
metadata: { name: shop }
spec:
  listen: { port: ${port} }
  runtime:
    static:
      versions:
        v1: { upstreams: ["${v1}"] }
        v2: { upstreams: ["${v2}"] }
  version: ${version}
  strategy:
    canary:
      steps:
        - setWeight: 20
        - pause: {}
`;

  before(async () => {
    dir = tempDir();
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        got.push({
          signature: String(req.headers["x-turnout-signature"]),
          key: String(req.headers["idempotency-key"]),
          body,
          json: JSON.parse(body),
        });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
    const a = receiver.address();
    hookUrl = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}/turnout`;
    process.env.E2E_NOTIFY_SECRET = SECRET;
    port = await freePort();
    t = await startTurnout({
      dataDir: dir,
      port: 0,
      pollIntervalMs: 200,
      logger: pino({ level: "warn" }, pino.destination(2)),
    });
  });

  after(async () => {
    await t?.stop();
    for (const b of backends) await b.close();
    receiver?.close();
    delete process.env.E2E_NOTIFY_SECRET;
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends a rollout's start, its wait for a person and its abort, signed and in order", async () => {
    const v1 = await startBackend("v1");
    const v2 = await startBackend("v2");
    backends.push(v1, v2);
    await apply(`apiVersion: turnout.dev/v1
kind: Notifier
metadata: { name: ops }
spec:
  webhook:
    url: ${hookUrl}
    secretRef: { env: E2E_NOTIFY_SECRET }
  events: [rolloutStarted, paused, rolloutAborted, flagKilled]
---
apiVersion: turnout.dev/v1
kind: Flag
metadata: { name: new-checkout }
spec:
  type: boolean
  variants: { on: true, off: false }
  defaultVariant: on
---
${service(v1.url, v2.url, "v1")}`);
    await waitFor("v1 stable", async () => (await t.store.getStatus("shop"))?.phase === "Healthy");
    await apply(service(v1.url, v2.url, "v2"));
    await waitFor("paused for a person", async () => got.length >= 2);
    const abort = await api(t, "POST", "/api/v1/services/shop/abort", { reason: "looks wrong" });
    assert.equal(abort.status, 200, JSON.stringify(abort.json));
    await waitFor("abort notified", async () => got.length >= 3);
    assert.deepEqual(
      got.map((g) => [g.json.subscription, g.json.event.type, g.json.service]),
      [
        ["rolloutStarted", "RolloutStarted", "shop"],
        ["paused", "AwaitingPromotion", "shop"],
        ["rolloutAborted", "RolloutAborted", "shop"],
      ],
    );
    assert.match(got[2]!.json.event.message, /looks wrong/);
    for (const g of got) {
      assert.ok(verifySignature(SECRET, g.body, g.signature), "signed with the env secret");
      assert.equal(g.key, g.json.idempotencyKey);
    }
  });

  it("sends the kill switch, and `turnout get notifiers` shows the deliveries", async () => {
    const kill = await api(t, "POST", "/api/v1/flags/new-checkout/disable", { reason: "errors" });
    assert.equal(kill.status, 200, JSON.stringify(kill.json));
    await waitFor("kill notified", async () => got.length >= 4);
    assert.equal(got[3]?.json.subscription, "flagKilled");
    assert.equal(got[3]?.json.service, null);

    const list = await api(t, "GET", "/api/v1/notifiers");
    assert.equal(list.status, 200);
    const [ops] = list.json.items;
    assert.equal(ops.name, "ops");
    assert.equal(ops.secret, "env E2E_NOTIFY_SECRET");
    assert.equal(ops.url, hookUrl);
    assert.deepEqual(
      [ops.delivery.pending, ops.delivery.delivered, ops.delivery.failed],
      [0, 4, 0],
    );
    const missing = await api(t, "GET", "/api/v1/notifiers/nope");
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error.code, "TURNOUT_ERR_RESOURCE_NOT_FOUND");

    const out = await cli(["get", "notifiers", "--server", t.url, "--token", t.token]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /NAME\s+TARGET\s+EVENTS\s+SERVICES\s+PENDING\s+DELIVERED\s+FAILED/);
    assert.match(
      out.stdout,
      /ops\s+webhook\s+rolloutStarted,paused,rolloutAborted,flagKilled\s+all\s+0\s+4\s+0\s+-/,
    );
    const one = await cli([
      "get",
      "notifiers",
      "ops",
      "-o",
      "json",
      "--server",
      t.url,
      "--token",
      t.token,
    ]);
    assert.equal(one.code, 0, one.stderr);
    const j = JSON.parse(one.stdout);
    assert.deepEqual(
      j.recent.map((r: { event: string; state: string }) => `${r.event}:${r.state}`).reverse(),
      [
        "RolloutStarted:delivered",
        "AwaitingPromotion:delivered",
        "RolloutAborted:delivered",
        "FlagKilled:delivered",
      ],
    );
  });
});

/**
 * Delivery against real local receivers (HTTP servers on port 0): signatures, idempotency keys,
 * order per service, back-off with an injected clock and seeded jitter, a receiver that is
 * down and comes back, one that is slow, one that answers 500 then 200, one that answers 400.
 * No test sleeps: each waits for a condition (a request arrived, an attempt settled).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, test } from "node:test";
import { Controller } from "../controller/controller.js";
import { FakeClock } from "../core/clock.js";
import { eventDraft } from "../core/events.js";
import type { ServiceResource } from "../core/model.js";
import type { NotifierResource } from "../core/notify.js";
import { mulberry32 } from "../core/stats/random.js";
import { StaticRuntime } from "../runtime/static/static-runtime.js";
import { SqlOutboxStore } from "../store/outbox-store.js";
import type { SqlStore } from "../store/sql-store.js";
import { openSqliteStore } from "../store/sqlite/sqlite-store.js";
import { backoffDelay, isPermanent, NotificationDeliverer } from "./deliverer.js";
import { verifySignature } from "./render.js";

const SECRET = "test-secret-0123456789";

interface Received {
  headers: IncomingMessage["headers"];
  body: string;
  json: Record<string, unknown>;
}

type Answer = { status: number; body?: string };

/** A real HTTP receiver; `answer` decides each response (it may wait). */
class Receiver {
  readonly got: Received[] = [];
  #server: Server;
  #waiters: { n: number; resolve: () => void }[] = [];
  port = 0;

  constructor(private answer: (r: Received, i: number) => Answer | Promise<Answer>) {
    this.#server = this.#make();
  }

  #make(): Server {
    return createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks).toString("utf8");
      const r: Received = { headers: req.headers, body, json: JSON.parse(body) };
      this.got.push(r);
      for (const w of this.#waiters.filter((w) => this.got.length >= w.n)) w.resolve();
      const a = await this.answer(r, this.got.length - 1);
      res.writeHead(a.status, { "content-type": "text/plain" }).end(a.body ?? "");
    });
  }

  async listen(port = 0): Promise<this> {
    this.#server.listen(port, "127.0.0.1");
    await once(this.#server, "listening");
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  /** Stops listening: connections are refused until `listen(this.port)` again. */
  async down(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
    this.#server = this.#make();
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** Resolves once `n` requests have arrived. */
  received(n: number): Promise<void> {
    if (this.got.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  keys(): string[] {
    return this.got.map((g) => String(g.headers["idempotency-key"]));
  }
}

function notifier(name: string, url: string, spec: Partial<NotifierResource["spec"]> = {}) {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Notifier",
    metadata: { name },
    spec: {
      webhook: { url, secret: SECRET, headers: { "X-Team": "payments" } },
      events: ["rolloutStarted", "rolloutAborted", "rolloutCompleted"],
      ...spec,
    },
  } satisfies NotifierResource;
}

const T0 = 1_700_000_000_000;

async function setup(notifiers: NotifierResource[], opts: { giveUpAfterMs?: number } = {}) {
  const store: SqlStore = await openSqliteStore({ path: ":memory:" });
  const clock = new FakeClock(T0);
  const outbox = new SqlOutboxStore(store);
  await store.applyResources(notifiers, { actor: "test", now: clock.now() });
  const epoch = await store.acquireWriterEpoch("test", clock.now());
  let n = 0;
  /** Commits a RolloutStarted of `service`, as the controller would; returns its number. */
  const emit = async (service: string) => {
    n += 1;
    await store.commit({
      service,
      epoch,
      now: clock.now(),
      events: [
        eventDraft({
          service,
          type: "RolloutStarted",
          actor: "controller",
          message: `rollout ${n} started`,
          time: clock.now(),
          data: {
            rollout: n,
            from: "v1",
            to: "v2",
            replaced: null,
            steps: 1,
            rollbackWindow: false,
            generation: 1,
          },
        }),
      ],
    });
    return n;
  };
  const deliverer = new NotificationDeliverer({
    outbox,
    notifiers: async () => (await store.listResources("Notifier")).map((r) => r.resource),
    clock,
    random: mulberry32(7),
    backoff: { initialMs: 1_000, maxMs: 60_000 },
    timeoutMs: 5_000,
    ...opts,
  });
  // As `turnout up` wires it: a committed change wakes the loop (the poll covers the rest).
  const unsubscribe = store.onChange(() => deliverer.wake());
  const close = async () => {
    unsubscribe();
    await deliverer.stop();
    await store.close();
  };
  return { store, clock, outbox, emit, deliverer, close };
}

/** Advances the clock to the next due head and runs a pass; returns what the attempts did. */
async function nextPass(s: Awaited<ReturnType<typeof setup>>) {
  const due = await s.outbox.nextDueAt();
  if (due !== null && due > s.clock.now()) s.clock.advance(due - s.clock.now());
  return s.deliverer.runOnce();
}

describe("NotificationDeliverer", () => {
  const receivers: Receiver[] = [];
  const receiver = async (answer: (r: Received, i: number) => Answer | Promise<Answer>) => {
    const r = await new Receiver(answer).listen();
    receivers.push(r);
    return r;
  };
  after(async () => {
    for (const r of receivers) await r.down();
  });

  test("a signed JSON webhook with an idempotency key in a header and in the body", async () => {
    const rx = await receiver(() => ({ status: 204 }));
    const s = await setup([notifier("ops", rx.url)]);
    try {
      await s.emit("pay");
      assert.deepEqual(await s.deliverer.runOnce(), ["delivered"]);
      assert.equal(rx.got.length, 1);
      const [r] = rx.got;
      assert.ok(r);
      assert.ok(verifySignature(SECRET, r.body, r.headers["x-turnout-signature"] as string));
      assert.match(String(r.headers["x-turnout-signature"]), /^sha256=[0-9a-f]{64}$/);
      assert.ok(
        !verifySignature("another-secret-0123", r.body, String(r.headers["x-turnout-signature"])),
      );
      assert.equal(r.headers["content-type"], "application/json");
      assert.equal(r.headers["x-team"], "payments");
      assert.equal(r.headers["x-turnout-event"], "RolloutStarted");
      assert.equal(r.json.idempotencyKey, r.headers["idempotency-key"]);
      assert.match(String(r.json.idempotencyKey), /^[0-9a-f-]{36}$/);
      assert.equal(r.json.schema, "turnout.dev/notification/v1");
      assert.equal(r.json.subscription, "rolloutStarted");
      assert.equal(r.json.service, "pay");
      assert.equal(r.json.summary, "rollout 1 started");
      assert.equal((r.json.event as { type: string }).type, "RolloutStarted");
      const [e] = await s.outbox.list();
      assert.equal(e?.state, "delivered");
      assert.equal(e?.attempts, 1);
      assert.equal(e?.lastStatus, 204);
      assert.deepEqual(await s.deliverer.runOnce(), [], "nothing sent twice once acknowledged");
      assert.equal(rx.got.length, 1);
    } finally {
      await s.close();
    }
  });

  test("a receiver that answers 500 then 200 gets it again after the back-off, same key", async () => {
    const rx = await receiver((_r, i) =>
      i === 0 ? { status: 500, body: "database is down" } : { status: 200 },
    );
    const s = await setup([notifier("ops", rx.url)]);
    try {
      await s.emit("pay");
      assert.deepEqual(await s.deliverer.runOnce(), ["retry"]);
      const [e] = await s.outbox.list();
      assert.equal(e?.state, "pending");
      assert.equal(e?.lastStatus, 500);
      assert.equal(e?.lastError, "HTTP 500: database is down");
      // The first back-off is initialMs with equal jitter: [500, 1000) ms after the attempt.
      const wait = (e?.nextAttemptAt ?? 0) - s.clock.now();
      assert.ok(wait >= 500 && wait < 1000, `waits ${wait} ms`);
      assert.equal(wait, backoffDelay(1, { initialMs: 1_000, maxMs: 60_000 }, mulberry32(7)));
      s.clock.advance(wait - 1);
      assert.deepEqual(await s.deliverer.runOnce(), [], "not before the back-off is over");
      s.clock.advance(1);
      assert.deepEqual(await s.deliverer.runOnce(), ["delivered"]);
      assert.equal(rx.got.length, 2);
      assert.equal(rx.keys()[0], rx.keys()[1], "the retry carries the same idempotency key");
      assert.equal(rx.got[0]?.body, rx.got[1]?.body, "and the same body");
      assert.deepEqual(await s.deliverer.runOnce(), []);
      s.clock.advance(3_600_000);
      assert.deepEqual(await s.deliverer.runOnce(), [], "no duplicate once acknowledged");
    } finally {
      await s.close();
    }
  });

  test("a receiver that answers 400 is reported and given up; the queue goes on", async () => {
    const rx = await receiver((r) =>
      (r.json.event as { data: { rollout: number } }).data.rollout === 1
        ? { status: 400, body: '{"error":"unknown field"}' }
        : { status: 200 },
    );
    const s = await setup([notifier("ops", rx.url)]);
    try {
      await s.emit("pay");
      await s.emit("pay");
      assert.deepEqual(await s.deliverer.runOnce(), ["failed"]);
      assert.deepEqual(await s.deliverer.runOnce(), ["delivered"], "the next one is not blocked");
      assert.deepEqual(await nextPass(s), [], "the refused one is never sent again");
      assert.equal(rx.got.length, 2);
      const failed = (await s.store.listEvents("pay")).filter(
        (e) => e.type === "NotificationFailed",
      );
      assert.equal(failed.length, 1);
      assert.equal(failed[0]?.data.status, 400);
      assert.equal(failed[0]?.data.error, 'HTTP 400: {"error":"unknown field"}');
      assert.equal(failed[0]?.data.idempotencyKey, rx.keys()[0]);
      const [sum] = await s.outbox.summary();
      assert.deepEqual([sum?.pending, sum?.delivered, sum?.failed], [0, 1, 1]);
      assert.equal(sum?.lastError?.status, 400);
    } finally {
      await s.close();
    }
  });

  test("which statuses are retried: 5xx, 408 and 429; other 4xx are final", () => {
    for (const st of [400, 401, 403, 404, 410, 413, 422])
      assert.equal(isPermanent(st), true, `${st}`);
    for (const st of [408, 429, 500, 502, 503, 504]) assert.equal(isPermanent(st), false, `${st}`);
  });

  test("back-off doubles up to its cap, with jitter in [0.5, 1) of each step", () => {
    const b = { initialMs: 1_000, maxMs: 60_000 };
    const rnd = mulberry32(42);
    const delays = Array.from({ length: 10 }, (_, i) => backoffDelay(i + 1, b, rnd));
    delays.forEach((d, i) => {
      const base = Math.min(60_000, 1_000 * 2 ** i);
      assert.ok(d >= base * 0.5 && d < base, `attempt ${i + 1}: ${d} vs base ${base}`);
    });
    assert.equal(
      backoffDelay(1, b, () => 0),
      500,
    );
    assert.equal(
      backoffDelay(50, b, () => 0.999999),
      60_000,
    );
  });

  test("a receiver down for minutes gets every notification once back, in order per service", async () => {
    const rx = await receiver(() => ({ status: 200 }));
    const port = rx.port;
    await rx.down(); // connections to its port are refused from now on
    const s = await setup([notifier("ops", `http://127.0.0.1:${port}/hook`)]);
    try {
      for (const svc of ["pay", "search", "pay", "pay", "search"]) await s.emit(svc);
      // Ten minutes of refused connections: every attempt is a retry, the gaps grow.
      const start = s.clock.now();
      const gaps: number[] = [];
      let last = start;
      while (s.clock.now() - start < 10 * 60_000) {
        const outcomes = await nextPass(s);
        assert.ok(
          outcomes.every((o) => o === "retry"),
          `all retried: ${outcomes}`,
        );
        if (outcomes.length > 0 && s.clock.now() > last) {
          gaps.push(s.clock.now() - last);
          last = s.clock.now();
        }
      }
      const [head] = (await s.outbox.list({ service: "pay" })).slice(-1);
      assert.ok((head?.attempts ?? 0) >= 5, `attempts ${head?.attempts}`);
      assert.match(head?.lastError ?? "", /ECONNREFUSED/);
      assert.equal(head?.lastStatus, null);
      assert.ok(gaps.at(-1)! > gaps[0]!, `back-off grows: ${gaps.join(", ")}`);
      assert.equal(rx.got.length, 0);

      await rx.listen(port); // back
      while ((await s.outbox.list({ state: "pending" })).length > 0) await nextPass(s);
      const order = (svc: string) =>
        rx.got
          .filter((g) => g.json.service === svc)
          .map((g) => (g.json.event as { data: { rollout: number } }).data.rollout);
      assert.deepEqual(order("pay"), [1, 3, 4], "pay's notifications in order");
      assert.deepEqual(order("search"), [2, 5], "search's in order");
      assert.equal(new Set(rx.keys()).size, 5, "each exactly once");
      assert.equal((await s.outbox.summary())[0]?.delivered, 5);
    } finally {
      await s.close();
    }
  });

  test("one that stays down past giveUpAfterMs is given up and reported", async () => {
    const rx = await receiver(() => ({ status: 200 }));
    const port = rx.port;
    await rx.down();
    const s = await setup([notifier("ops", `http://127.0.0.1:${port}/hook`)], {
      giveUpAfterMs: 5 * 60_000,
    });
    try {
      await s.emit("pay");
      let outcomes: string[] = [];
      while (!outcomes.includes("failed")) outcomes = await nextPass(s);
      assert.ok(s.clock.now() - T0 >= 5 * 60_000);
      const [e] = await s.outbox.list();
      assert.equal(e?.state, "failed");
      assert.match(e?.lastError ?? "", /ECONNREFUSED.*given up/);
      const failed = (await s.store.listEvents("pay")).filter(
        (x) => x.type === "NotificationFailed",
      );
      assert.equal(failed.length, 1);
    } finally {
      await s.close();
    }
  });

  test("a slow receiver holds back only its own queue, and never the controller's tick", async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const slow = await receiver(async () => {
      await released;
      return { status: 200 };
    });
    const fast = await receiver(() => ({ status: 200 }));
    const s = await setup([
      notifier("slow", slow.url, { services: ["web"] }),
      notifier("fast", fast.url, { services: ["web"] }),
    ]);
    const runtime = new StaticRuntime();
    const controller = new Controller({ store: s.store, runtime, clock: s.clock });
    try {
      const web = (version: string): ServiceResource => ({
        apiVersion: "turnout.dev/v1",
        kind: "Service",
        metadata: { name: "web" },
        spec: {
          listen: { host: "127.0.0.1", port: 18081 },
          runtime: {
            static: {
              versions: {
                v1: { upstreams: ["http://127.0.0.1:9001"] },
                v2: { upstreams: ["http://127.0.0.1:9002"] },
                v3: { upstreams: ["http://127.0.0.1:9003"] },
              },
            },
          },
          version,
          strategy: { canary: { steps: [{ setWeight: 50 }, { pause: {} }] } },
        },
      });
      await s.store.applyResources([web("v1")], { actor: "test", now: s.clock.now() });
      await controller.tick();
      await controller.tick();
      await s.store.applyResources([web("v2")], { actor: "test", now: s.clock.now() });
      await controller.tick(); // RolloutStarted v2: one entry per notifier

      s.deliverer.start();
      await slow.received(1); // the slow receiver holds this request open
      await fast.received(1);

      // The controller goes on while the request hangs: its ticks commit more events.
      await s.store.applyResources([web("v3")], { actor: "test", now: s.clock.now() });
      await controller.tick();
      await controller.tick();
      assert.equal(slow.got.length, 1, "the slow receiver still has only the first request");
      const types = (await s.store.listEvents("web")).map((e) => e.type);
      assert.ok(types.filter((t) => t === "RolloutStarted").length === 2, types.join(", "));
      // The fast receiver got the later notifications meanwhile (its own queue).
      const fastWants = (await s.outbox.list({ notifier: "fast" })).length;
      assert.ok(fastWants >= 2);
      await fast.received(fastWants);
      assert.deepEqual(fast.got.map((g) => (g.json.event as { type: string }).type).slice(0, 2), [
        "RolloutStarted",
        "RolloutStarted",
      ]);
      assert.equal(slow.got.length, 1, "slow's later entries wait behind its head");

      release();
      const slowWants = (await s.outbox.list({ notifier: "slow" })).length;
      await slow.received(slowWants);
      assert.deepEqual(
        slow.keys().slice(0, slowWants),
        (await s.outbox.list({ notifier: "slow" })).map((e) => e.idempotencyKey).reverse(),
      );
    } finally {
      release();
      await controller.stop();
      await s.close();
    }
  });

  test("Slack gets its incoming-webhook format: text and blocks", async () => {
    const rx = await receiver(() => ({ status: 200, body: "ok" }));
    const s = await setup([
      {
        apiVersion: "turnout.dev/v1",
        kind: "Notifier",
        metadata: { name: "chat" },
        spec: { slack: { url: rx.url }, events: ["rolloutStarted"] },
      },
    ]);
    try {
      await s.emit("pay");
      assert.deepEqual(await s.deliverer.runOnce(), ["delivered"]);
      const j = rx.got[0]?.json as {
        text: string;
        blocks: { type: string; text?: { text: string } }[];
      };
      assert.equal(j.text, "Rollout started pay: rollout 1 started");
      assert.deepEqual(
        j.blocks.map((b) => b.type),
        ["section", "context"],
      );
      assert.match(j.blocks[0]?.text?.text ?? "", /\*Rollout started pay\*\nrollout 1 started/);
      assert.equal(rx.got[0]?.headers["x-turnout-signature"], undefined);
    } finally {
      await s.close();
    }
  });

  test("secretRef: a missing variable is retried with the reason; once set, signed with it", async () => {
    const rx = await receiver(() => ({ status: 200 }));
    const env: Record<string, string | undefined> = {};
    const n = notifier("ops", rx.url);
    const s = await setup([
      { ...n, spec: { ...n.spec, webhook: { url: rx.url, secretRef: { env: "HOOK_SECRET" } } } },
    ]);
    const d = new NotificationDeliverer({
      outbox: s.outbox,
      notifiers: async () => (await s.store.listResources("Notifier")).map((r) => r.resource),
      clock: s.clock,
      random: () => 0,
      env,
    });
    try {
      await s.emit("pay");
      assert.deepEqual(await d.runOnce(), ["retry"]);
      assert.match(
        (await s.outbox.list())[0]?.lastError ?? "",
        /environment variable HOOK_SECRET is not set/,
      );
      env.HOOK_SECRET = "from-the-environment-0123";
      s.clock.advance(500);
      assert.deepEqual(await d.runOnce(), ["delivered"]);
      const r = rx.got[0]!;
      assert.ok(
        verifySignature(
          "from-the-environment-0123",
          r.body,
          String(r.headers["x-turnout-signature"]),
        ),
      );
    } finally {
      await d.stop();
      await s.close();
    }
  });

  test("an attempt whose result cannot be recorded stays pending, never an unhandled rejection", async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const rx = await receiver(async () => {
      await released;
      return { status: 200 };
    });
    const s = await setup([notifier("ops", rx.url)]);
    try {
      await s.emit("pay");
      const run = s.deliverer.runOnce();
      await rx.received(1);
      await s.store.close(); // the store goes away while the receiver is answering
      release();
      assert.deepEqual(await run, ["retry"]);
    } finally {
      release();
      await s.deliverer.stop();
    }
  });

  test("a deleted Notifier's entries are given up, not sent", async () => {
    const rx = await receiver(() => ({ status: 200 }));
    const s = await setup([notifier("ops", rx.url)]);
    try {
      await s.emit("pay");
      await s.store.deleteResource("Notifier", "ops", { actor: "test", now: s.clock.now() });
      assert.deepEqual(await s.deliverer.runOnce(), ["failed"]);
      assert.equal(rx.got.length, 0);
      assert.equal((await s.outbox.list())[0]?.lastError, "Notifier ops was deleted");
    } finally {
      await s.close();
    }
  });
});

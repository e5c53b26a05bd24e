import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import { type TestContext, test } from "node:test";
import { request } from "undici";
import { reportOf } from "../core/shadow/aggregate.js";
import { DEFAULT_MIRROR_LIMITS, type RouteMirror } from "../core/shadow/types.js";
import type { ShadowAggregateRow } from "./mirror.js";
import type { Router } from "./router.js";
import { portOf, refusedUrl, startRouter, until } from "./testing/harness.js";
import { MemoryRouteTableSource } from "./testing.js";

interface Upstream {
  url: string;
  /** Requests received: method, url, headers, body. */
  seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
}

/** An upstream answering JSON from `answer(n, body)`; `hold: true` never answers (a 5 s sleeper). */
async function upstream(
  t: TestContext,
  answer: (n: number, body: string) => unknown,
  opts: { hold?: boolean } = {},
): Promise<Upstream> {
  const u: Upstream = { url: "", seen: [] };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      u.seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      if (opts.hold) return; // like a shadow that sleeps 5 s: the test ends before it would answer
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(answer(u.seen.length, body)));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  u.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return u;
}

function mirror(id: string, endpoints: string[], patch: Partial<RouteMirror> = {}): RouteMirror {
  return {
    id,
    version: "v2",
    endpoints,
    percent: 100,
    methods: ["GET", "HEAD"],
    stripHeaders: [],
    limits: { ...DEFAULT_MIRROR_LIMITS },
    compare: {},
    ...patch,
  };
}

async function routerWith(
  t: TestContext,
  primary: string,
  m: RouteMirror,
  sink?: ShadowAggregateRow[],
) {
  const source = new MemoryRouteTableSource();
  source.set({
    service: "svc",
    listen: { host: "127.0.0.1", port: 0 },
    backends: [{ version: "v1", weight: 100, endpoints: [primary] }],
    mirror: m,
  });
  const router = await startRouter(t, source, {
    ...(sink
      ? { shadowSink: { saveShadowAggregates: async (rows) => void sink.push(...rows) } }
      : {}),
  });
  return { router, port: portOf(router, "svc") };
}

async function send(
  port: number,
  path: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
) {
  const res = await request(`http://127.0.0.1:${port}${path}`, {
    method: (init.method ?? "GET") as "GET",
    headers: init.headers ?? {},
    body: init.body ?? null,
  });
  return {
    status: res.statusCode,
    version: res.headers["x-turnout-version"],
    text: await res.body.text(),
  };
}

const compared = (r: Router) => r.mirrorStats("svc")?.compared ?? 0;

test("mirrors POSTs declared free of side effects, strips headers, marks copies, compares labels", async (t) => {
  const v1 = await upstream(t, (_n, body) => ({ label: "a", input: JSON.parse(body).x }));
  const v2 = await upstream(t, (_n, body) => {
    const x = JSON.parse(body).x as number;
    return { label: x % 4 === 0 ? "b" : "a", input: x };
  });
  const { router, port } = await routerWith(
    t,
    v1.url,
    mirror("p1", [v2.url], {
      methods: ["POST"],
      stripHeaders: ["authorization"],
      compare: { classification: { field: "label" } },
    }),
  );
  for (let x = 0; x < 40; x++) {
    const r = await send(port, "/predict", {
      method: "POST",
      body: JSON.stringify({ x }),
      headers: { "content-type": "application/json", authorization: "Bearer secret" },
    });
    assert.equal(r.status, 200);
    assert.equal(r.version, "v1");
    assert.equal(JSON.parse(r.text).label, "a", "users only get the primary's answer");
  }
  await until(() => compared(router) === 40);
  assert.equal(v2.seen.length, 40);
  for (const s of v2.seen) {
    assert.equal(s.headers["x-turnout-shadow"], "1");
    assert.equal(s.headers.authorization, undefined);
    assert.equal(s.method, "POST");
  }
  assert.deepEqual(
    v2.seen.map((s) => JSON.parse(s.body).x),
    [...Array(40).keys()],
  );
  assert.equal(v1.seen[0]!.headers.authorization, "Bearer secret");
  const rep = router.mirrors.report("svc")!;
  assert.equal(rep.id, "p1");
  assert.equal(rep.report.samples, 40);
  assert.equal(rep.report.agreement, 0.75);
  assert.equal(rep.report.mismatchRate, 0.25);
  assert.deepEqual(rep.report.classification!.disagreements, [{ from: "a", to: "b", count: 10 }]);
  assert.equal(rep.report.byField[0]!.field, "$.label");
  assert.ok(rep.report.latency !== null);
});

test("samples exactly the percent asked for, and only the allowed methods", async (t) => {
  const v1 = await upstream(t, () => ({ y: 1 }));
  const v2 = await upstream(t, () => ({ y: 1 }));
  const { router, port } = await routerWith(t, v1.url, mirror("p2", [v2.url], { percent: 25 }));
  for (let i = 0; i < 100; i++) assert.equal((await send(port, `/q?i=${i}`)).status, 200);
  for (let i = 0; i < 10; i++)
    assert.equal((await send(port, "/post", { method: "POST", body: "{}" })).status, 200);
  await until(() => compared(router) === 25);
  const st = router.mirrorStats("svc")!;
  assert.equal(st.mirrored, 25);
  assert.equal(v2.seen.length, 25);
  assert.ok(v2.seen.every((s) => s.method === "GET"));
  assert.equal(router.mirrors.report("svc")!.report.mismatchRate, 0);
});

test("a shadow that never answers: copies drop (queue full), no primary error", async (t) => {
  const v1 = await upstream(t, () => ({ ok: true }));
  const slow = await upstream(t, () => ({}), { hold: true });
  const { router, port } = await routerWith(
    t,
    v1.url,
    mirror("p3", [slow.url], {
      limits: { ...DEFAULT_MIRROR_LIMITS, maxConcurrency: 2, maxQueue: 2 },
    }),
  );
  let errors = 0;
  for (let i = 0; i < 50; i++) if ((await send(port, "/")).status !== 200) errors++;
  assert.equal(errors, 0);
  await until(() => slow.seen.length === 2);
  const st = router.mirrorStats("svc")!;
  assert.equal(st.mirrored, 50);
  assert.equal(st.inFlight, 2);
  assert.equal(st.queued, 2);
  assert.equal(st.drops.queue_full, 46);
});

test("a shadow that times out: copies drop as shadow_timeout and count as shadow errors", async (t) => {
  const v1 = await upstream(t, () => ({ ok: true }));
  const slow = await upstream(t, () => ({}), { hold: true });
  const { router, port } = await routerWith(
    t,
    v1.url,
    mirror("p3b", [slow.url], { limits: { ...DEFAULT_MIRROR_LIMITS, timeoutSeconds: 0.2 } }),
  );
  for (let i = 0; i < 5; i++) assert.equal((await send(port, "/")).status, 200);
  await until(() => compared(router) === 5);
  assert.equal(router.mirrorStats("svc")!.drops.shadow_timeout, 5);
  assert.equal(router.mirrors.report("svc")!.report.shadowErrors, 5);
});

test("a shadow that refuses connections: copies fail, then pause (breaker), no primary error", async (t) => {
  const v1 = await upstream(t, () => ({ ok: true }));
  const { router, port } = await routerWith(t, v1.url, mirror("p4", [await refusedUrl()]));
  let errors = 0;
  for (let i = 0; i < 20; i++) if ((await send(port, "/")).status !== 200) errors++;
  assert.equal(errors, 0);
  const failed = () => router.mirrorStats("svc")?.drops.shadow_error ?? 0;
  const paused = () => router.mirrorStats("svc")?.drops.shadow_unavailable ?? 0;
  // Every copy either failed or was not made while the breaker was open (after 5 failures).
  await until(() => failed() + paused() === 20 && compared(router) === failed());
  assert.ok(failed() >= 5, `failed ${failed()}`);
  const r = router.mirrors.report("svc")!.report;
  assert.equal(r.shadowErrors, failed());
  assert.equal(r.mismatchRate, 1);
});

test("learns noise from a second stable copy (Diffy)", async (t) => {
  let clock = 0;
  const stable = await upstream(t, () => ({ y: 1, ts: ++clock }));
  const v2 = await upstream(t, (n) => ({ y: n % 10 === 0 ? 2 : 1, ts: ++clock }));
  const { router, port } = await routerWith(
    t,
    stable.url,
    mirror("p5", [v2.url], { noiseEndpoints: [stable.url] }),
  );
  for (let i = 0; i < 50; i++) assert.equal((await send(port, "/")).status, 200);
  await until(() => compared(router) === 50);
  const r = router.mirrors.report("svc")!.report;
  assert.deepEqual(r.noise, { pairs: 50, fields: ["$.ts"] });
  assert.equal(r.mismatches, 5);
  assert.equal(stable.seen.filter((s) => s.headers["x-turnout-shadow"] === "1").length, 50);
});

test("bodies over the limit are not mirrored; aggregates are flushed to the sink", async (t) => {
  const v1 = await upstream(t, () => ({ ok: true }));
  const v2 = await upstream(t, () => ({ ok: true }));
  const rows: ShadowAggregateRow[] = [];
  const { router, port } = await routerWith(
    t,
    v1.url,
    mirror("p6", [v2.url], {
      methods: ["POST"],
      limits: { ...DEFAULT_MIRROR_LIMITS, maxBodyBytes: 10 },
    }),
    rows,
  );
  assert.equal((await send(port, "/", { method: "POST", body: "x".repeat(100) })).status, 200);
  assert.equal((await send(port, "/", { method: "POST", body: "small" })).status, 200);
  await until(() => compared(router) === 1);
  assert.equal(router.mirrorStats("svc")!.drops.body_too_large, 1);
  await router.mirrors.flush();
  const last = rows.filter((r) => r.id === "p6").at(-1)!;
  assert.equal(last.service, "svc");
  assert.equal(last.version, "v2");
  const rep = reportOf(last.state);
  assert.equal(rep.samples, 1);
  assert.deepEqual(rep.drops, { body_too_large: 1 });
});

test("when the table drops the mirror, queued copies are not sent", async (t) => {
  const v1 = await upstream(t, () => ({ ok: true }));
  const slow = await upstream(t, () => ({}), { hold: true });
  const source = new MemoryRouteTableSource();
  const base = {
    service: "svc",
    listen: { host: "127.0.0.1", port: 0 },
    backends: [{ version: "v1", weight: 100, endpoints: [v1.url] }],
  };
  source.set({
    ...base,
    mirror: mirror("p7", [slow.url], { limits: { ...DEFAULT_MIRROR_LIMITS, maxConcurrency: 1 } }),
  });
  const router = await startRouter(t, source);
  const port = portOf(router, "svc");
  for (let i = 0; i < 5; i++) assert.equal((await send(port, "/")).status, 200);
  await until(() => slow.seen.length === 1 && router.mirrorStats("svc")?.queued === 4);
  source.set({ ...base });
  await until(() => router.mirrorStats("svc")?.queued === 0);
  assert.equal((await send(port, "/")).status, 200);
  assert.equal(router.mirrorStats("svc")!.mirrored, 5);
  assert.equal(slow.seen.length, 1);
});

test("a mirrored request of an experiment: both features observe the one exchange", async (t) => {
  // The primary answers a header the experiment records; the shadow answers the same body.
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json", "x-conf": "0.75" });
    res.end(JSON.stringify({ ok: true }));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const v1 = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const shadow = await upstream(t, () => ({ ok: true }));
  const events: { unit: string; metric: string; value: number }[] = [];
  const source = new MemoryRouteTableSource();
  source.set({
    service: "svc",
    listen: { host: "127.0.0.1", port: 0 },
    backends: [{ version: "v1", weight: 100, endpoints: [v1] }],
    mirror: mirror("p-xp", [shadow.url]),
    experiment: {
      name: "exp",
      arms: [{ name: "A", version: "v1", weight: 100 }],
      key: { header: "x-user" },
      salt: "s",
      responseHeaders: ["x-conf"],
    },
  });
  const router = await startRouter(t, source, {
    exposures: {
      recordExposures: async () => {},
      recordEvents: async (e) => void events.push(...e),
    },
  });
  const port = portOf(router, "svc");
  for (let i = 0; i < 10; i++) {
    const r = await send(port, "/", { headers: { "x-user": `u${i}` } });
    assert.equal(r.status, 200);
  }
  // The mirror compared every pair, and the experiment recorded every response's header.
  await until(() => compared(router) === 10);
  assert.equal(router.mirrors.report("svc")!.report.mismatches, 0);
  await router.stop();
  assert.equal(events.length, 10);
  assert.deepEqual(
    events.map((e) => e.value),
    Array.from({ length: 10 }, () => 0.75),
  );
});

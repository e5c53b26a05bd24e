import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import { Readable } from "node:stream";
import { type TestContext, test } from "node:test";
import { Pool, request } from "undici";
import type { RouteBackend } from "../core/model.js";
import { type ReloadEvent, Router, type RouterLogger } from "./router.js";
import * as h from "./testing/harness.js";
import { MemoryRouteTableSource } from "./testing.js";

// ---------------------------------------------------------------------------------------
// Helpers: real upstreams on 127.0.0.1:0, a router per test, waits driven by reload events.
// ---------------------------------------------------------------------------------------

interface Backend {
  name: string;
  url: string;
  /** Requests whose connection closed before the backend answered (aborted by the router). */
  aborted: number;
  /** Resolves the next time a request reaches the backend. */
  nextRequest(): Promise<http.IncomingMessage>;
  /** Lets /stream send the rest of its body. */
  release(): void;
}

/**
 * An upstream that answers with its own name, plus a few paths for the tests:
 * /echo streams the body back; /headers returns the request headers as JSON; /hang never
 * answers; /slow answers after 100 ms; /stream sends "first", then the rest on `release()`;
 * /hop answers with hop-by-hop headers.
 */
async function startBackend(t: TestContext, name: string): Promise<Backend> {
  let waiters: ((req: http.IncomingMessage) => void)[] = [];
  let releaseStream: (() => void) | null = null;
  const b: Backend = {
    name,
    url: "",
    aborted: 0,
    nextRequest: () => new Promise((resolve) => waiters.push(resolve)),
    release: () => releaseStream?.(),
  };
  const server = http.createServer((req, res) => {
    const ws = waiters;
    waiters = [];
    for (const w of ws) w(req);
    res.on("close", () => {
      if (!res.writableFinished) b.aborted++;
    });
    const path = req.url ?? "/";
    if (path.startsWith("/echo")) {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      req.pipe(res);
    } else if (path.startsWith("/headers")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(req.headers));
    } else if (path.startsWith("/hang")) {
      // never answers
    } else if (path.startsWith("/slow")) {
      setTimeout(() => res.end(name), 100);
    } else if (path.startsWith("/stream")) {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first;");
      releaseStream = () => res.end("second");
    } else if (path.startsWith("/hop")) {
      res.setHeader("connection", "keep-alive, x-resp-hop");
      res.setHeader("x-resp-hop", "1");
      res.setHeader("keep-alive", "timeout=99");
      res.setHeader("proxy-connection", "keep-alive");
      res.setHeader("x-kept", "yes");
      res.end(name);
    } else {
      req.resume();
      res.end(name);
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  b.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return b;
}

interface Logs {
  warn: string[];
  info: string[];
  error: string[];
}

function recordingLogger(): { logger: RouterLogger; logs: Logs } {
  const logs: Logs = { warn: [], info: [], error: [] };
  const msg = (a: unknown, b?: unknown) => String(typeof a === "string" ? a : b);
  const logger = {
    debug: () => {},
    info: (a: unknown, b?: unknown) => logs.info.push(msg(a, b)),
    warn: (a: unknown, b?: unknown) => logs.warn.push(msg(a, b)),
    error: (a: unknown, b?: unknown) => logs.error.push(msg(a, b)),
  } as unknown as RouterLogger;
  return { logger, logs };
}

/**
 * A router with a fast poll. The upstream timeout is generous by default: everything (client,
 * router, upstreams) shares one event loop here, and under the load tests its lag alone can
 * exceed a short timeout. The 504 test passes a short one.
 */
async function startRouter(
  t: TestContext,
  source: MemoryRouteTableSource,
  opts: { upstreamTimeoutMs?: number } = {},
) {
  const { logger, logs } = recordingLogger();
  const router = new Router({
    source,
    logger,
    pollIntervalMs: 20,
    upstreamTimeoutMs: opts.upstreamTimeoutMs ?? 5000,
    drainTimeoutMs: 2000,
  });
  await router.start();
  t.after(() => router.stop());
  return { router, logs };
}

function table(service: string, backends: RouteBackend[], port = 0) {
  return { service, listen: { host: "127.0.0.1", port }, backends };
}

function portOf(router: Router, service: string): number {
  const l = router.listeners().find((x) => x.service === service);
  assert.ok(l, `no listener for ${service}`);
  return l.port;
}

/** The next reload event, or a rejection after `ms` (so a missing event fails, not hangs). */
function nextReload(router: Router, ms = 3000): { promise: Promise<ReloadEvent>; cancel(): void } {
  let off = () => {};
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<ReloadEvent>((resolve, reject) => {
    timer = setTimeout(() => {
      off();
      reject(new Error(`no router reload within ${ms} ms`));
    }, ms);
    off = router.onReload((e) => {
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
  return {
    promise,
    cancel: () => {
      clearTimeout(timer);
      off();
    },
  };
}

/** Waits, reload by reload, until `cond` holds (at most `maxReloads` reloads). */
async function waitFor(router: Router, cond: () => boolean | Promise<boolean>, maxReloads = 50) {
  for (let i = 0; i < maxReloads; i++) {
    const next = nextReload(router);
    if (await cond()) {
      next.cancel();
      return;
    }
    await next.promise;
  }
  assert.fail(`condition not met after ${maxReloads} reloads`);
}

async function get(port: number, path = "/", headers: Record<string, string> = {}) {
  const res = await request(`http://127.0.0.1:${port}${path}`, { headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

/**
 * Sends `n` GETs (and more while `more()` holds) over a keep-alive pool, `concurrency` at a
 * time; counts responses by version and by body.
 */
async function load(
  port: number,
  n: number,
  concurrency: number,
  more: () => boolean = () => false,
) {
  const path = "/";
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: concurrency });
  const versions = new Map<string, number>();
  const bodies = new Map<string, number>();
  const failures: string[] = [];
  let next = 0;
  async function worker() {
    while (next < n || more()) {
      next++;
      try {
        const res = await pool.request({ path, method: "GET" });
        const body = await res.body.text();
        if (res.statusCode !== 200) failures.push(`${res.statusCode} ${body}`);
        const v = String(res.headers["x-turnout-version"]);
        versions.set(v, (versions.get(v) ?? 0) + 1);
        bodies.set(body, (bodies.get(body) ?? 0) + 1);
      } catch (err) {
        failures.push(String(err));
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  await pool.close();
  return { versions, bodies, failures };
}

/** Resolves when the upstream's request closes (`events.once` would reject on its 'aborted' error). */
function closed(req: http.IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    req.on("error", () => {});
    if (req.destroyed) resolve();
    else req.on("close", () => resolve());
  });
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

// ---------------------------------------------------------------------------------------
// Balancing
// ---------------------------------------------------------------------------------------

test("90/10 over 2,000 requests is exact (SWRR), and stats count it", async (t) => {
  const [a, b] = await Promise.all([startBackend(t, "a"), startBackend(t, "b")]);
  const source = new MemoryRouteTableSource();
  source.set(
    table("svc", [
      { version: "v1", weight: 90, endpoints: [a.url] },
      { version: "v2", weight: 10, endpoints: [b.url] },
    ]),
  );
  const { router } = await startRouter(t, source);
  const r = await load(portOf(router, "svc"), 2000, 50);
  assert.deepEqual(r.failures, []);
  const v2share = (r.versions.get("v2") ?? 0) / 2000;
  assert.ok(Math.abs(v2share - 0.1) <= 0.005, `v2 got ${v2share * 100}%`);
  assert.equal(r.versions.get("v1"), 1800);
  assert.equal(r.bodies.get("b"), 200);

  const stats = router.stats("svc");
  const v1 = stats.find((s) => s.version === "v1");
  const v2 = stats.find((s) => s.version === "v2");
  assert.equal(v1?.requests, 1800);
  assert.equal(v2?.requests, 200);
  assert.equal(v1?.status["2xx"], 1800);
  assert.equal(v2?.status["2xx"], 200);
  assert.equal(v2?.upstreamErrors, 0);
  assert.equal(v2?.latencyCount, 200);
  assert.ok((v2?.latencyMsSum ?? 0) > 0 && (v2?.latencyMsMax ?? 0) > 0);
});

test("0.01% gets exactly one request in 10,000", async (t) => {
  const [a, b] = await Promise.all([startBackend(t, "a"), startBackend(t, "b")]);
  const source = new MemoryRouteTableSource();
  source.set(
    table("svc", [
      { version: "v1", weight: 99.99, endpoints: [a.url] },
      { version: "v2", weight: 0.01, endpoints: [b.url] },
    ]),
  );
  const { router } = await startRouter(t, source);
  const r = await load(portOf(router, "svc"), 10_000, 100);
  assert.deepEqual(r.failures, []);
  assert.equal(r.versions.get("v2"), 1);
  assert.equal(r.versions.get("v1"), 9999);
});

test("endpoints of a version take turns; a version without endpoints gets no traffic", async (t) => {
  const bs = await Promise.all([
    startBackend(t, "e1"),
    startBackend(t, "e2"),
    startBackend(t, "e3"),
  ]);
  const source = new MemoryRouteTableSource();
  source.set(
    table("svc", [
      { version: "v1", weight: 90, endpoints: bs.map((b) => b.url) },
      { version: "v2", weight: 10, endpoints: [] },
    ]),
  );
  const { router } = await startRouter(t, source);
  const port = portOf(router, "svc");
  const seen: string[] = [];
  for (let i = 0; i < 6; i++) seen.push((await get(port)).text);
  assert.deepEqual(seen, ["e1", "e2", "e3", "e1", "e2", "e3"]);
  const r = await load(port, 300, 10);
  assert.deepEqual(r.failures, []);
  assert.deepEqual([...r.bodies.values()], [100, 100, 100]);
});

// ---------------------------------------------------------------------------------------
// Table changes
// ---------------------------------------------------------------------------------------

test("50 table swaps under 200 concurrent keep-alive requests fail none", async (t) => {
  const bs = await Promise.all(["a", "b", "c", "d"].map((n) => startBackend(t, n)));
  const source = new MemoryRouteTableSource();
  const variant = (i: number) =>
    table("svc", [
      // Alternate both weights and endpoints, so pools get retired while requests use them.
      { version: "v1", weight: i % 2 === 0 ? 80 : 20, endpoints: [bs[i % 2]!.url] },
      { version: "v2", weight: i % 2 === 0 ? 20 : 80, endpoints: [bs[2 + (i % 2)]!.url] },
    ]);
  source.set(variant(0));
  const { router } = await startRouter(t, source);
  const port = portOf(router, "svc");

  // 50 swaps, each awaited until applied, while requests run 200 at a time until the last.
  let swapping = true;
  const swaps = (async () => {
    try {
      for (let i = 1; i <= 50; i++) {
        const next = nextReload(router);
        source.set(variant(i));
        await next.promise;
        // Let requests run under this table for a moment.
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      swapping = false;
    }
  })();
  const r = await load(port, 2000, 200, () => swapping);
  await swaps;
  assert.deepEqual(r.failures, []);
  const total = [...r.versions.values()].reduce((x, y) => x + y, 0);
  assert.ok(total >= 2000, `only ${total} requests`);
  // The split actually changed along the way (all four backends answered), and every answer
  // came from an endpoint of the version it was labelled with (one table per request).
  assert.equal(r.bodies.size, 4);
  const count = (m: Map<string, number>, k: string) => m.get(k) ?? 0;
  assert.equal(count(r.bodies, "a") + count(r.bodies, "b"), count(r.versions, "v1"));
  assert.equal(count(r.bodies, "c") + count(r.bodies, "d"), count(r.versions, "v2"));
});

test("a table change is picked up through onChange and through polling", async (t) => {
  const [a, b, c] = await Promise.all([
    startBackend(t, "a"),
    startBackend(t, "b"),
    startBackend(t, "c"),
  ]);
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router } = await startRouter(t, source);
  const port = portOf(router, "svc");
  assert.equal((await get(port)).text, "a");

  // Same process: onChange triggers the reload.
  const viaChange = nextReload(router);
  source.set(table("svc", [{ version: "v2", weight: 100, endpoints: [b.url] }]));
  assert.deepEqual((await viaChange.promise).changed, ["svc"]);
  assert.equal((await get(port)).headers["x-turnout-version"], "v2");

  // Another process: only the fingerprint changes; the poll finds it.
  source.set(table("svc", [{ version: "v3", weight: 100, endpoints: [c.url] }]), { notify: false });
  await waitFor(router, async () => (await get(port)).text === "c");
  assert.equal(portOf(router, "svc"), port, "same listener");
});

test("when the source fails, the last tables keep serving; one warning per outage", async (t) => {
  const [a, b] = await Promise.all([startBackend(t, "a"), startBackend(t, "b")]);
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router, logs } = await startRouter(t, source);
  const port = portOf(router, "svc");

  source.failWith = new Error("store unreachable");
  source.set(table("svc", [{ version: "v2", weight: 100, endpoints: [b.url] }]), { notify: false });
  for (let failed = 0; failed < 3; ) {
    if (!(await nextReload(router).promise).ok) failed++;
  }
  assert.equal((await get(port)).text, "a");
  assert.equal(logs.warn.filter((m) => m.includes("cannot read route tables")).length, 1);

  source.failWith = null;
  await waitFor(router, async () => (await get(port)).text === "b");
  assert.ok(logs.info.some((m) => m.includes("reachable again")));
});

test("a removed table closes its listener after in-flight requests finish", async (t) => {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set(table("gone", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  source.set(table("kept", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router } = await startRouter(t, source);
  const port = portOf(router, "gone");

  const inFlight = get(port, "/slow");
  await a.nextRequest();
  const removed = nextReload(router);
  source.delete("gone");
  assert.deepEqual((await removed.promise).changed, ["gone"]);
  assert.deepEqual(
    router.listeners().map((l) => l.service),
    ["kept"],
  );
  assert.deepEqual(router.stats("gone"), []);
  const r = await inFlight;
  assert.equal(r.status, 200);
  assert.equal(r.text, "a");
  await assert.rejects(get(port), /ECONNREFUSED/);
  assert.equal((await get(portOf(router, "kept"))).text, "a");
});

test("a changed listen address moves the listener", async (t) => {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router } = await startRouter(t, source);
  const oldPort = portOf(router, "svc");
  const newPort = await freePort();
  const moved = nextReload(router);
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }], newPort));
  await moved.promise;
  assert.equal(portOf(router, "svc"), newPort);
  assert.equal((await get(newPort)).text, "a");
  await waitFor(router, async () => {
    try {
      await get(oldPort);
      return false;
    } catch {
      return true;
    }
  });
});

test("EADDRINUSE is reported in listeners() and retried; other services still serve", async (t) => {
  const a = await startBackend(t, "a");
  const blocker = net.createServer().listen(0, "127.0.0.1");
  await once(blocker, "listening");
  const busyPort = (blocker.address() as net.AddressInfo).port;
  const source = new MemoryRouteTableSource();
  source.set(table("busy", [{ version: "v1", weight: 100, endpoints: [a.url] }], busyPort));
  source.set(table("free", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router, logs } = await startRouter(t, source);

  const busy = router.listeners().find((l) => l.service === "busy");
  assert.match(busy?.error ?? "", /EADDRINUSE/);
  assert.equal(busy?.port, busyPort);
  assert.equal((await get(portOf(router, "free"))).text, "a");
  assert.equal(logs.error.filter((m) => m.includes("cannot listen")).length, 1);

  await new Promise((r) => blocker.close(r));
  await waitFor(
    router,
    () => router.listeners().find((l) => l.service === "busy")?.error === undefined,
  );
  assert.equal((await get(busyPort)).text, "a");
});

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

test("502 with a JSON body when the upstream refuses connections", async (t) => {
  const source = new MemoryRouteTableSource();
  source.set(
    table("svc", [
      { version: "v1", weight: 100, endpoints: [`http://127.0.0.1:${await freePort()}`] },
    ]),
  );
  const { router } = await startRouter(t, source);
  const r = await get(portOf(router, "svc"));
  assert.equal(r.status, 502);
  assert.match(String(r.headers["content-type"]), /application\/json/);
  assert.equal(r.headers["x-turnout-version"], "v1");
  const body = JSON.parse(r.text);
  assert.equal(body.error.code, "TURNOUT_ERR_ROUTER_UPSTREAM");
  assert.match(body.error.message, /ECONNREFUSED/);
  const [s] = router.stats("svc");
  assert.equal(s?.upstreamErrors, 1);
  assert.equal(s?.status["5xx"], 1);
});

test("503 when no version has an endpoint", async (t) => {
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [] }]));
  const { router } = await startRouter(t, source);
  const r = await get(portOf(router, "svc"), "/", { "x-request-id": "req-503" });
  assert.equal(r.status, 503);
  assert.equal(JSON.parse(r.text).error.code, "TURNOUT_ERR_ROUTER_NO_BACKEND");
  assert.equal(r.headers["x-request-id"], "req-503");
});

test("504 when the upstream does not answer in time; the upstream request is closed", async (t) => {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router } = await startRouter(t, source, { upstreamTimeoutMs: 300 });
  const arrived = a.nextRequest();
  const r = await get(portOf(router, "svc"), "/hang");
  assert.equal(r.status, 504);
  assert.equal(JSON.parse(r.text).error.code, "TURNOUT_ERR_ROUTER_TIMEOUT");
  assert.equal(router.stats("svc")[0]?.upstreamErrors, 1);
  await closed(await arrived);
});

test("malformed requests get a 400 JSON answer and do not disturb the router", async (t) => {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router } = await startRouter(t, source);
  const port = portOf(router, "svc");
  const sock = net.connect(port, "127.0.0.1");
  sock.end("GARBAGE / HTTP/9.9\r\nno colon here\r\n\r\n");
  let raw = "";
  for await (const chunk of sock) raw += chunk;
  assert.match(raw, /^HTTP\/1\.1 400 /);
  assert.match(raw, /"code":"TURNOUT_ERR_ROUTER_BAD_REQUEST"/);
  assert.equal((await get(port)).text, "a");
});

// ---------------------------------------------------------------------------------------
// Proxying
// ---------------------------------------------------------------------------------------

test("a 5 MB request body streams through and back intact (fixed length and chunked)", async (t) => {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router } = await startRouter(t, source);
  const port = portOf(router, "svc");
  const payload = randomBytes(5 * 1024 * 1024);
  const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

  const fixed = await request(`http://127.0.0.1:${port}/echo`, { method: "POST", body: payload });
  assert.equal(fixed.statusCode, 200);
  assert.equal(digest(Buffer.from(await fixed.body.arrayBuffer())), digest(payload));

  // No length: the client sends chunks, the router forwards a stream of unknown length.
  const chunks = Array.from({ length: 80 }, (_, i) => payload.subarray(i * 65536, (i + 1) * 65536));
  const chunked = await request(`http://127.0.0.1:${port}/echo`, {
    method: "POST",
    body: Readable.from(chunks),
  });
  assert.equal(chunked.statusCode, 200);
  assert.equal(digest(Buffer.from(await chunked.body.arrayBuffer())), digest(payload));
});

test("a response streams: the first chunk arrives before the upstream ends", async (t) => {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router } = await startRouter(t, source);
  const res = await request(`http://127.0.0.1:${portOf(router, "svc")}/stream`);
  const it = res.body[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(String(first.value), "first;");
  a.release();
  let rest = "";
  for (let r = await it.next(); !r.done; r = await it.next()) rest += String(r.value);
  assert.equal(rest, "second");
});

test("hop-by-hop headers are stripped both ways; x-forwarded-* and x-request-id are set", async (t) => {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router } = await startRouter(t, source);
  const port = portOf(router, "svc");

  // node:http lets the test send headers that fetch and undici refuse.
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port,
      path: "/headers",
      headers: {
        host: "shop.example:8080",
        connection: "keep-alive, X-Hop-Custom",
        "x-hop-custom": "secret",
        "keep-alive": "timeout=99",
        "proxy-connection": "keep-alive",
        te: "trailers",
        "x-forwarded-for": "10.0.0.1",
        "x-forwarded-proto": "https",
        "x-request-id": "req-123",
        "x-app": "kept",
      },
    });
    req.on("response", resolve).on("error", reject).end();
  });
  let text = "";
  for await (const chunk of res) text += chunk;
  const seen = JSON.parse(text) as Record<string, string>;
  for (const h of ["x-hop-custom", "keep-alive", "proxy-connection", "te", "trailer"]) {
    assert.equal(seen[h], undefined, `${h} reached the upstream`);
  }
  assert.doesNotMatch(seen.connection ?? "", /x-hop-custom/i);
  assert.equal(seen["x-app"], "kept");
  assert.equal(seen["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
  assert.equal(seen["x-forwarded-proto"], "http");
  assert.equal(seen["x-forwarded-host"], "shop.example:8080");
  assert.equal(seen.host, new URL(a.url).host);
  assert.equal(seen["x-request-id"], "req-123");
  assert.equal(res.headers["x-request-id"], "req-123");
  assert.equal(res.headers["x-turnout-version"], "v1");

  // Without an id, one is made and given to both sides.
  const made = await get(port, "/headers");
  const id = JSON.parse(made.text)["x-request-id"];
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.equal(made.headers["x-request-id"], id);

  // Response side.
  const hop = await get(port, "/hop");
  assert.equal(hop.text, "a");
  assert.equal(hop.headers["x-resp-hop"], undefined);
  assert.equal(hop.headers["proxy-connection"], undefined);
  assert.notEqual(hop.headers["keep-alive"], "timeout=99");
  assert.equal(hop.headers["x-kept"], "yes");
});

test("a client that goes away aborts the upstream request and breaks nothing", async (t) => {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router } = await startRouter(t, source);
  const port = portOf(router, "svc");

  const arrived = a.nextRequest();
  const req = http.request({ host: "127.0.0.1", port, path: "/hang" });
  req.on("error", () => {});
  req.end();
  const upstreamReq = await arrived;
  req.destroy();
  await closed(upstreamReq);

  // Mid-upload abort: the client announces 1 MB and leaves after 1 KB.
  const arrived2 = a.nextRequest();
  const upload = http.request({
    host: "127.0.0.1",
    port,
    path: "/echo",
    method: "POST",
    headers: { "content-length": String(1024 * 1024) },
  });
  upload.on("error", () => {});
  upload.write(Buffer.alloc(1024));
  const upstreamUpload = await arrived2;
  upload.destroy();
  await closed(upstreamUpload);

  assert.equal((await get(port)).text, "a");
  const [s] = router.stats("svc");
  assert.equal(s?.upstreamErrors, 0);
  assert.equal(s?.requests, 3);
});

test("a client that gives up before the response head is recorded as abandoned: 499, the time it waited", async (t) => {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router } = await startRouter(t, source);
  const port = portOf(router, "svc");
  const v1 = () => router.stats("svc").find((s) => s.version === "v1")!;

  // The version never answers; the client waits, then gives up (as a client timeout does).
  const arrived = a.nextRequest();
  const sentAt = performance.now();
  const req = http.request({ host: "127.0.0.1", port, path: "/hang", agent: false });
  req.on("error", () => {});
  req.end();
  const upstreamReq = await arrived;
  const arrivedAt = performance.now();
  // The client's patience: long enough that the recorded latency is clearly its wait.
  await new Promise((r) => setTimeout(r, 300));
  const leftAt = performance.now();
  req.destroy();
  await h.until(() => v1().abandoned === 1, 3000, "the abandoned request to be recorded");
  const recordedAt = performance.now();
  await closed(upstreamReq); // and the upstream's request is cut, as before
  let s = v1();
  assert.equal(s.requests, 1);
  assert.deepEqual(s.status, { "2xx": 0, "3xx": 0, "4xx": 1, "5xx": 0 });
  assert.equal(s.upstreamErrors, 0, "the upstream is not blamed for the client's leaving");
  assert.equal(s.latencyCount, 1);
  assert.ok(
    s.latencyMsMax >= leftAt - arrivedAt && s.latencyMsMax <= recordedAt - sentAt,
    `latency ${s.latencyMsMax} ms: waited ${leftAt - arrivedAt}..${recordedAt - sentAt} ms`,
  );
  const w = router.measurements.window("svc", Date.now() - 60_000, Date.now() + 1000).get("v1");
  assert.equal(w?.abandoned, 1, "in the window analysis reads");

  // After the response head was relayed, a client that leaves mid-body is not abandoned.
  const arrived2 = a.nextRequest();
  const streaming = http.request({ host: "127.0.0.1", port, path: "/stream", agent: false });
  streaming.on("error", () => {});
  streaming.end();
  const [res] = (await once(streaming, "response")) as [http.IncomingMessage];
  res.on("error", () => {});
  assert.equal(res.statusCode, 200);
  await once(res, "data"); // "first;": the head and the first bytes are through
  streaming.destroy();
  await closed(await arrived2);
  await h.until(
    () => router.endpoints("svc").every((e) => e.outstanding === 0),
    3000,
    "the router to end the cut exchange",
  );
  s = v1();
  assert.equal(s.requests, 2);
  assert.equal(s.abandoned, 1);
  assert.equal(s.status["4xx"], 1);
});

test("a request that never got a version is not counted as abandoned, whatever its client does", async (t) => {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [] }]));
  const { router } = await startRouter(t, source);
  const port = portOf(router, "svc");

  // The client announces a body and leaves once the 503 came, with the body half sent.
  const upload = http.request({
    host: "127.0.0.1",
    port,
    path: "/",
    method: "POST",
    agent: false,
    headers: { "content-length": String(1024 * 1024) },
  });
  upload.on("error", () => {});
  upload.write(Buffer.alloc(1024));
  const [res] = (await once(upload, "response")) as [http.IncomingMessage];
  assert.equal(res.statusCode, 503);
  upload.destroy();
  await once(upload, "close");

  // The version gets an instance: its first request is the only one it has.
  const applied = nextReload(router);
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  await applied.promise;
  assert.equal((await get(port)).text, "a");
  const [s] = router.stats("svc");
  assert.equal(s?.requests, 1);
  assert.equal(s?.abandoned, 0);
  assert.deepEqual(s?.status, { "2xx": 1, "3xx": 0, "4xx": 0, "5xx": 0 });
});

test("requests sent to a version and its response heads are counted as they happen: a version that hangs shows before anything ends, a stream once its head came", async (t) => {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]));
  const { router } = await startRouter(t, source);
  const port = portOf(router, "svc");
  const window = () =>
    router.measurements.window("svc", Date.now() - 60_000, Date.now() + 1000).get("v1");

  // Two requests the version never answers, their clients still waiting.
  const hung: http.ClientRequest[] = [];
  for (let i = 0; i < 2; i++) {
    const arrived = a.nextRequest();
    const req = http.request({ host: "127.0.0.1", port, path: "/hang", agent: false });
    req.on("error", () => {});
    req.end();
    hung.push(req);
    await arrived;
  }
  let w = window();
  assert.equal(w?.requests, 0, "nothing ended");
  assert.equal(w?.starts?.started, 2);
  assert.equal(w?.starts?.responded, 0);
  assert.ok(w?.starts?.firstStartedSec !== null);

  // A streamed answer: its head counts at once, its end only when the body ends.
  const arrived = a.nextRequest();
  const streaming = http.request({ host: "127.0.0.1", port, path: "/stream", agent: false });
  streaming.on("error", () => {});
  streaming.end();
  await arrived;
  const [res] = (await once(streaming, "response")) as [http.IncomingMessage];
  assert.equal(res.statusCode, 200);
  w = window();
  assert.equal(w?.starts?.started, 3);
  assert.equal(w?.starts?.responded, 1, "answered: the head came");
  assert.equal(w?.requests, 0, "and not ended yet");
  const body = (async () => {
    let text = "";
    for await (const chunk of res) text += chunk;
    return text;
  })();
  a.release();
  assert.equal(await body, "first;second");
  await h.until(() => window()?.requests === 1, 3000, "the stream to end");
  assert.equal(window()?.starts?.responded, 1);
  for (const req of hung) req.destroy();
});

// ---------------------------------------------------------------------------------------
// Instances: balancing, passive ejection, active health checks, retries
// ---------------------------------------------------------------------------------------

/** Sends `n` sequential GETs; returns the bodies (backend names) or "status:body". */
async function sequence(port: number, n: number, path = "/"): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await h.get(port, path);
    out.push(r.status === 200 ? r.text : `${r.status}:${r.text.slice(0, 40)}`);
  }
  return out;
}

test("least request avoids an instance with requests in flight; the count survives a table swap", async (t) => {
  const [a, b] = await Promise.all([h.startBackend(t, "a"), h.startBackend(t, "b")]);
  const source = new MemoryRouteTableSource();
  const endpoints = [a.url, b.url];
  source.set(h.table("svc", [{ version: "v1", weight: 100, endpoints }], h.policy()));
  const router = await h.startRouter(t, source);
  const port = h.portOf(router, "svc");

  // One request held on a.
  const held = http.request({ host: "127.0.0.1", port, path: "/hang", agent: false });
  held.on("error", () => {});
  held.end();
  await h.until(() => a.seen.length === 1, 3000, "the held request");
  assert.deepEqual(await sequence(port, 6), ["b", "b", "b", "b", "b", "b"]);
  const info = () => router.endpoints("svc").find((e) => e.url === a.url)!;
  assert.equal(info().outstanding, 1);

  // A swap that keeps the URL keeps what is known about it.
  const applied = h.nextReload(router);
  source.set(
    h.table(
      "svc",
      [
        { version: "v1", weight: 50, endpoints },
        { version: "v2", weight: 50, endpoints },
      ],
      h.policy(),
    ),
  );
  await applied;
  assert.equal(info().outstanding, 1);
  assert.deepEqual(await sequence(port, 4), ["b", "b", "b", "b"]);

  held.destroy();
  await h.until(() => info().outstanding === 0, 3000, "the held request to end");
  assert.deepEqual((await sequence(port, 4)).sort(), ["a", "a", "b", "b"]);
});

test("round robin takes turns whatever the load", async (t) => {
  const [a, b] = await Promise.all([h.startBackend(t, "a"), h.startBackend(t, "b")]);
  const source = new MemoryRouteTableSource();
  source.set(
    h.table(
      "svc",
      [{ version: "v1", weight: 100, endpoints: [a.url, b.url] }],
      h.policy({ loadBalancing: "roundRobin" }),
    ),
  );
  const router = await h.startRouter(t, source);
  const port = h.portOf(router, "svc");
  const held = http.request({ host: "127.0.0.1", port, path: "/hang", agent: false });
  held.on("error", () => {});
  held.end();
  await h.until(() => a.seen.length === 1, 3000, "the held request");
  assert.deepEqual(await sequence(port, 4), ["b", "a", "b", "a"]);
  held.destroy();
});

test("passive ejection: consecutive 5xx eject an instance; it returns after the ejection time", async (t) => {
  const [good, bad] = await Promise.all([h.startBackend(t, "good"), h.startBackend(t, "bad")]);
  bad.status = 500;
  const source = new MemoryRouteTableSource();
  source.set(
    h.table(
      "svc",
      [{ version: "v1", weight: 100, endpoints: [good.url, bad.url] }],
      h.policy({
        outlierDetection: { consecutiveFailures: 3, ejectionSeconds: 0.3, maxEjectionPercent: 50 },
      }),
    ),
  );
  const router = await h.startRouter(t, source);
  const port = h.portOf(router, "svc");
  const badInfo = () => router.endpoints("svc").find((e) => e.url === bad.url)!;

  const first = await sequence(port, 6);
  assert.deepEqual(first.filter((x) => x.startsWith("500")).length, 3);
  assert.equal(badInfo().ejected, true);
  assert.equal(badInfo().available, false);
  const during = await sequence(port, 10);
  assert.deepEqual(new Set(during), new Set(["good"]));
  const sawBad = bad.seen.length;

  // Recovery after the ejection time: the instance is tried again (and, still failing, ejected
  // again for twice as long).
  bad.status = 200;
  await h.until(() => !badInfo().ejected, 3000, "the ejection to end");
  const after = await sequence(port, 4);
  assert.deepEqual(after.sort(), ["bad", "bad", "good", "good"]);
  assert.ok(bad.seen.length > sawBad);
});

test("a version whose every instance fails is still tried: ejection never turns into 503s", async (t) => {
  const [x, y] = await Promise.all([h.startBackend(t, "x"), h.startBackend(t, "y")]);
  x.status = 500;
  y.status = 503;
  const source = new MemoryRouteTableSource();
  source.set(
    h.table(
      "svc",
      [{ version: "v1", weight: 100, endpoints: [x.url, y.url] }],
      h.policy({
        outlierDetection: { consecutiveFailures: 1, ejectionSeconds: 30, maxEjectionPercent: 100 },
      }),
    ),
  );
  const router = await h.startRouter(t, source);
  const out = await sequence(h.portOf(router, "svc"), 10);
  // The instances' own answers, never the router's "no backend".
  assert.ok(
    out.every((r) => r === "500:x" || r === "503:y"),
    out.join(" "),
  );
  assert.ok(x.seen.length > 1 && y.seen.length > 1);
  assert.ok(router.endpoints("svc").every((e) => e.ejected));
});

test("active health checks take a failing instance out and put it back", async (t) => {
  const [a, b] = await Promise.all([h.startBackend(t, "a"), h.startBackend(t, "b")]);
  const source = new MemoryRouteTableSource();
  source.set(
    h.table(
      "svc",
      [{ version: "v1", weight: 100, endpoints: [a.url, b.url] }],
      h.policy({
        healthCheck: {
          path: "/healthz",
          intervalSeconds: 0.02,
          timeoutSeconds: 1,
          healthyThreshold: 2,
          unhealthyThreshold: 2,
        },
      }),
    ),
  );
  const router = await h.startRouter(t, source);
  const port = h.portOf(router, "svc");
  const info = () => router.endpoints("svc").find((e) => e.url === b.url)!;
  await h.until(() => b.seen.includes("GET /healthz"), 3000, "a first check");

  b.status = 503;
  await h.until(() => !info().activeHealthy, 3000, "b marked unhealthy");
  const before = b.seen.filter((s) => s === "GET /").length;
  assert.deepEqual(new Set(await sequence(port, 6)), new Set(["a"]));
  assert.equal(b.seen.filter((s) => s === "GET /").length, before);

  b.status = 200;
  await h.until(() => info().available, 3000, "b healthy again");
  assert.deepEqual((await sequence(port, 4)).sort(), ["a", "a", "b", "b"]);

  // Checks stop when no table names the endpoint.
  const applied = h.nextReload(router);
  source.set(h.table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }], h.policy()));
  await applied;
  const checks = b.seen.length;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(b.seen.length, checks, "b is still being checked");
});

/** An upstream that accepts connections and resets each one when a request arrives. */
async function startResetter(t: TestContext): Promise<{ url: string; arrivals: string[] }> {
  const arrivals: string[] = [];
  const server = net.createServer((sock) => {
    sock.on("error", () => {});
    let buf = "";
    sock.on("data", (c: Buffer) => {
      buf += c.toString("latin1");
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      arrivals.push(buf.slice(0, buf.indexOf(" ")));
      sock.resetAndDestroy();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => new Promise((r) => server.close(r)));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, arrivals };
}

test("retries: an idempotent request moves to another instance on a connect error", async (t) => {
  const good = await h.startBackend(t, "good");
  const refused = await h.refusedUrl();
  const source = new MemoryRouteTableSource();
  source.set(
    h.table("svc", [{ version: "v1", weight: 100, endpoints: [refused, good.url] }], h.policy()),
  );
  const router = await h.startRouter(t, source);
  const port = h.portOf(router, "svc");
  // Every request gets an answer from the good instance, including the ones first sent to the
  // refusing one.
  for (const method of ["GET", "HEAD", "OPTIONS", "DELETE", "PUT"]) {
    for (let i = 0; i < 4; i++) {
      const res = await request(`http://127.0.0.1:${port}/`, { method });
      await res.body.text();
      assert.equal(res.statusCode, 200, `${method} #${i}`);
    }
  }
  assert.equal(good.seen.length, 20);
  const [s] = router.stats("svc");
  assert.equal(s?.status["2xx"], 20);
  assert.equal(s?.upstreamErrors, 0);
});

test("retries: POST, PATCH and requests with a body are never re-sent", async (t) => {
  const good = await h.startBackend(t, "good");
  const resetter = await startResetter(t);
  const source = new MemoryRouteTableSource();
  source.set(
    h.table(
      "svc",
      [{ version: "v1", weight: 100, endpoints: [resetter.url, good.url] }],
      h.policy({ loadBalancing: "roundRobin" }),
    ),
  );
  const router = await h.startRouter(t, source);
  const port = h.portOf(router, "svc");
  const statuses: number[] = [];
  const send = async (method: string, body?: string) => {
    const res = await request(`http://127.0.0.1:${port}/`, {
      method,
      ...(body !== undefined ? { body } : {}),
    });
    await res.body.text();
    statuses.push(res.statusCode);
  };
  // Round robin: the first of each pair goes to the resetter.
  await send("POST");
  await send("POST");
  await send("PATCH", "x");
  await send("PATCH", "x");
  await send("PUT", "with a body");
  await send("PUT", "with a body");
  assert.deepEqual(statuses, [502, 200, 502, 200, 502, 200]);
  assert.deepEqual(resetter.arrivals, ["POST", "PATCH", "PUT"]);
  // Each request reached exactly one instance once: the failed ones were not re-sent.
  assert.deepEqual(good.seen, ["POST /", "PATCH /", "PUT /"]);

  // The same GET is retried: one arrival at each.
  statuses.length = 0;
  await send("GET");
  assert.deepEqual(statuses, [200]);
  assert.deepEqual(resetter.arrivals, ["POST", "PATCH", "PUT", "GET"]);
  assert.equal(good.seen.at(-1), "GET /");
});

test("retries: attempts 0 turns retrying off", async (t) => {
  const good = await h.startBackend(t, "good");
  const source = new MemoryRouteTableSource();
  source.set(
    h.table(
      "svc",
      [{ version: "v1", weight: 100, endpoints: [await h.refusedUrl(), good.url] }],
      h.policy({ retries: { attempts: 0 }, loadBalancing: "roundRobin" }),
    ),
  );
  const router = await h.startRouter(t, source);
  const r = await sequence(h.portOf(router, "svc"), 2);
  assert.match(r[0]!, /^502:/);
  assert.equal(r[1], "good");
});

/**
 * Protocol hygiene of the router: headers to and from upstreams, request ids, timeouts, the
 * body limit, JSON errors, WebSocket pass-through and request smuggling. Raw sockets wherever
 * an HTTP client would refuse to send what the test needs.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import { test } from "node:test";
import {
  get,
  jsonOf,
  nextReload,
  policy,
  portOf,
  rawExchange,
  refusedUrl,
  startBackend,
  startRouter,
  statusOf,
  table,
  until,
} from "./testing/harness.js";
import { MemoryRouteTableSource } from "./testing.js";

async function oneBackendRouter(
  t: test.TestContext,
  p = policy(),
  opts: Parameters<typeof startRouter>[2] = {},
) {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }], p));
  const router = await startRouter(t, source, opts);
  return { a, source, router, port: portOf(router, "svc") };
}

/** Sends a request with node:http, which lets a test set headers fetch and undici refuse. */
async function nodeGet(port: number, path: string, headers: http.OutgoingHttpHeaders) {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http
      .request({ host: "127.0.0.1", port, path, headers, agent: false })
      .on("response", resolve)
      .on("error", reject)
      .end();
  });
  let text = "";
  for await (const chunk of res) text += chunk;
  return { res, text };
}

// ---------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------

test("hop-by-hop headers are stripped both ways; X-Forwarded-* and Forwarded are set or appended", async (t) => {
  const { a, port } = await oneBackendRouter(t);
  const { res, text } = await nodeGet(port, "/headers", {
    host: "shop.example:8080",
    connection: "keep-alive, X-Hop-Custom",
    "x-hop-custom": "secret",
    "keep-alive": "timeout=99",
    "proxy-connection": "keep-alive",
    te: "trailers",
    upgrade: "h2c",
    "x-forwarded-for": "10.0.0.1",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "evil.example",
    forwarded: 'for=10.0.0.1;proto=https, for="[2001:db8::1]"',
    "x-app": "kept",
  });
  assert.equal(res.statusCode, 200);
  const seen = (JSON.parse(text) as { headers: Record<string, string> }).headers;
  for (const h of ["x-hop-custom", "keep-alive", "proxy-connection", "te", "upgrade"]) {
    assert.equal(seen[h], undefined, `${h} reached the upstream`);
  }
  assert.doesNotMatch(seen.connection ?? "", /x-hop-custom/i);
  assert.equal(seen["x-app"], "kept");
  assert.equal(seen.host, new URL(a.url).host);
  assert.equal(seen["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
  assert.equal(seen["x-forwarded-proto"], "http", "the client does not choose the scheme");
  assert.equal(seen["x-forwarded-host"], "shop.example:8080");
  assert.equal(
    seen.forwarded,
    'for=10.0.0.1;proto=https, for="[2001:db8::1]", for=127.0.0.1;host="shop.example:8080";proto=http',
  );

  // Without earlier hops: one element; a token host is not quoted.
  const plain = await nodeGet(port, "/headers", { host: "shop.example" });
  const h2 = (JSON.parse(plain.text) as { headers: Record<string, string> }).headers;
  assert.equal(h2.forwarded, "for=127.0.0.1;host=shop.example;proto=http");
  assert.equal(h2["x-forwarded-for"], "127.0.0.1");

  // Response side.
  const hop = await get(port, "/hop");
  assert.equal(hop.text, "a");
  for (const h of ["x-resp-hop", "proxy-connection", "trailer", "upgrade"]) {
    assert.equal(hop.headers[h], undefined, `${h} reached the client`);
  }
  assert.notEqual(hop.headers["keep-alive"], "timeout=99");
  assert.equal(hop.headers["x-kept"], "yes");
});

test("Forwarded quotes an IPv6 client address", async (t) => {
  const a = await startBackend(t, "a");
  const source = new MemoryRouteTableSource();
  source.set({
    ...table("svc", [{ version: "v1", weight: 100, endpoints: [a.url] }]),
    listen: { host: "::1", port: 0 },
  });
  const router = await startRouter(t, source);
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http
      .request({ host: "::1", port: portOf(router, "svc"), path: "/headers", agent: false })
      .on("response", resolve)
      .on("error", reject)
      .end();
  });
  let text = "";
  for await (const c of res) text += c;
  const seen = (JSON.parse(text) as { headers: Record<string, string> }).headers;
  assert.match(seen.forwarded ?? "", /^for="\[::1\]";host="\[::1\]:\d+";proto=http$/);
  assert.equal(seen["x-forwarded-for"], "::1");
});

test("x-request-id is propagated, or made, and returned to the client", async (t) => {
  const { port } = await oneBackendRouter(t);
  const given = await get(port, "/headers", { "x-request-id": "req-123" });
  assert.equal(JSON.parse(given.text).headers["x-request-id"], "req-123");
  assert.equal(given.headers["x-request-id"], "req-123");

  const made = await get(port, "/headers");
  const id = JSON.parse(made.text).headers["x-request-id"];
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.equal(made.headers["x-request-id"], id);

  const long = await get(port, "/headers", { "x-request-id": "x".repeat(300) });
  const replaced = JSON.parse(long.text).headers["x-request-id"];
  assert.match(replaced, /^[0-9a-f-]{36}$/, "an overlong id is replaced");
  assert.equal(long.headers["x-request-id"], replaced);

  // Errors carry it too.
  const source = new MemoryRouteTableSource();
  source.set(table("none", [{ version: "v1", weight: 100, endpoints: [] }]));
  const r2 = await startRouter(t, source);
  const e = await get(portOf(r2, "none"), "/", { "x-request-id": "req-503" });
  assert.equal(e.status, 503);
  assert.equal(e.headers["x-request-id"], "req-503");
});

// ---------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------

test("a client too slow with its headers gets a 408 JSON answer and is disconnected", async (t) => {
  const { a, port } = await oneBackendRouter(
    t,
    policy({ timeouts: { requestHeadersSeconds: 0.3 } }),
  );
  const started = Date.now();
  const r = await rawExchange(port, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", 5000);
  assert.ok(r.closed, "the connection was not closed");
  assert.equal(statusOf(r.text), 408);
  assert.equal(jsonOf(r.text).error.code, "TURNOUT_ERR_ROUTER_CLIENT_TIMEOUT");
  assert.ok(Date.now() - started >= 250, "closed before the timeout");
  assert.deepEqual(a.seen, []);
});

/** Writes `head`, then `chunk` every `everyMs` until `chunks` are sent or the router closes. */
async function trickle(port: number, head: string, chunk: string, everyMs: number, chunks: number) {
  const started = Date.now();
  const sock = net.connect(port, "127.0.0.1");
  sock.on("error", () => {});
  let text = "";
  sock.on("data", (c: Buffer) => (text += c.toString("latin1")));
  sock.write(head);
  let sent = 0;
  const timer = setInterval(() => {
    if (sent === chunks || !sock.writable) return clearInterval(timer);
    sock.write(chunk);
    sent++;
  }, everyMs);
  const settled = new Promise<void>((resolve) => {
    sock.on("close", () => resolve());
    sock.on("data", () => {
      if (sent === chunks && /\r\n\r\n\d+$/.test(text)) resolve();
    });
  });
  await settled;
  clearInterval(timer);
  sock.destroy();
  return { text, sent, ms: Date.now() - started };
}

test("a body that trickles forever gets a 408 once the whole request is over its time", async (t) => {
  // The request's time is never below the headers' (Node's rule): 0.3 s here.
  const { a, router, port } = await oneBackendRouter(
    t,
    policy({ timeouts: { requestHeadersSeconds: 0.3 } }),
    { requestTimeoutMs: 1_500 },
  );
  // A byte every 100 ms, never the 1,000 announced: no idle or header timeout ever fires.
  const r = await trickle(
    port,
    "POST /hang HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
    "x",
    100,
    1000,
  );
  assert.ok(r.ms >= 1_500, `closed after ${r.ms} ms, before the request timeout`);
  assert.ok(r.sent >= 10, `only ${r.sent} bytes were sent`);
  assert.equal(statusOf(r.text), 408, r.text);
  assert.equal(jsonOf(r.text).error.code, "TURNOUT_ERR_ROUTER_CLIENT_TIMEOUT");
  assert.match(jsonOf(r.text).error.message, /whole request within 1\.5 s/);
  assert.deepEqual(a.seen, ["POST /hang"]);
  assert.equal(router.stats("svc")[0]?.status["4xx"], 1);
});

test("a slow but steady upload outlasts the header, idle and upstream timeouts", async (t) => {
  const { port } = await oneBackendRouter(
    t,
    policy({ timeouts: { requestHeadersSeconds: 0.3, idleSeconds: 0.2, upstreamSeconds: 0.3 } }),
  );
  // 20 chunks 100 ms apart: 2 s of upload, then the upstream answers once it has it all.
  const chunk = "y".repeat(1000);
  const r = await trickle(
    port,
    "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\nConnection: close\r\n\r\n",
    chunk,
    100,
    20,
  );
  assert.equal(r.sent, 20);
  assert.equal(statusOf(r.text), 200, r.text);
  assert.match(r.text, /\r\n\r\n20000$/);
  assert.ok(r.ms >= 1_900, `answered after ${r.ms} ms`);
});

test("idle keep-alive connections close after idleSeconds; a policy change applies to the running listener", async (t) => {
  const { source, router, port } = await oneBackendRouter(t, policy());
  const idleClose = async (waitMs: number) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await once(sock, "data");
    const answeredAt = Date.now();
    const closed = await Promise.race([
      once(sock, "close").then(() => Date.now() - answeredAt),
      new Promise<number>((r) => setTimeout(() => r(-1), waitMs)),
    ]);
    sock.destroy();
    return closed;
  };
  assert.equal(await idleClose(600), -1, "the default idle time is 60 s");
  const applied = nextReload(router);
  source.set(
    table(
      "svc",
      [{ version: "v1", weight: 100, endpoints: router.endpoints("svc").map((e) => e.url) }],
      policy({ timeouts: { idleSeconds: 0.2 } }),
    ),
  );
  await applied;
  assert.equal(portOf(router, "svc"), port, "same listener");
  // Far below the default's 60 s; the margin is for a busy machine's event loop.
  const after = await idleClose(5000);
  assert.ok(after >= 150 && after < 5000, `closed after ${after} ms`);
});

test("an upstream that does not answer in upstreamSeconds gives a 504 JSON answer", async (t) => {
  const { port } = await oneBackendRouter(t, policy({ timeouts: { upstreamSeconds: 0.2 } }));
  const r = await get(port, "/hang");
  assert.equal(r.status, 504);
  assert.match(String(r.headers["content-type"]), /application\/json/);
  assert.equal(JSON.parse(r.text).error.code, "TURNOUT_ERR_ROUTER_TIMEOUT");
});

test("502 and 503 are JSON with their codes", async (t) => {
  const source = new MemoryRouteTableSource();
  source.set(table("refused", [{ version: "v1", weight: 100, endpoints: [await refusedUrl()] }]));
  source.set(table("empty", [{ version: "v1", weight: 100, endpoints: [] }]));
  const router = await startRouter(t, source);
  const r502 = await get(portOf(router, "refused"));
  assert.equal(r502.status, 502);
  assert.match(String(r502.headers["content-type"]), /application\/json/);
  assert.equal(JSON.parse(r502.text).error.code, "TURNOUT_ERR_ROUTER_UPSTREAM");
  const r503 = await get(portOf(router, "empty"));
  assert.equal(r503.status, 503);
  assert.equal(JSON.parse(r503.text).error.code, "TURNOUT_ERR_ROUTER_NO_BACKEND");
});

// ---------------------------------------------------------------------------------------
// Body size limit
// ---------------------------------------------------------------------------------------

test("a Content-Length over maxRequestBodyBytes gets 413 before anything is sent upstream", async (t) => {
  const { a, port } = await oneBackendRouter(t, policy({ maxRequestBodyBytes: 1000 }));
  const r = await rawExchange(
    port,
    `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n${"x".repeat(1001)}`,
  );
  assert.equal(statusOf(r.text), 413);
  assert.equal(jsonOf(r.text).error.code, "TURNOUT_ERR_ROUTER_BODY_TOO_LARGE");
  assert.match(r.text, /\r\nconnection: close\r\n/i);
  assert.ok(r.closed);
  assert.deepEqual(a.seen, []);

  // At the limit it passes.
  const ok = await rawExchange(
    port,
    `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n${"y".repeat(1000)}`,
  );
  assert.equal(statusOf(ok.text), 200);
  assert.ok(ok.text.includes("y".repeat(1000)));
});

test("a chunked body is cut when it crosses maxRequestBodyBytes", async (t) => {
  const { a, port } = await oneBackendRouter(t, policy({ maxRequestBodyBytes: 1000 }));
  const chunk = (s: string) => `${s.length.toString(16)}\r\n${s}\r\n`;
  const sock = net.connect(port, "127.0.0.1");
  sock.on("error", () => {});
  let text = "";
  sock.on("data", (c: Buffer) => {
    text += c.toString("latin1");
  });
  const closed = once(sock, "close");
  sock.write("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  sock.write(chunk("a".repeat(600)));
  // The upstream starts answering (it echoes); the limit is crossed by the next chunk.
  await until(() => text.includes("a".repeat(600)), 3000, "the first chunk echoed");
  sock.write(chunk("b".repeat(600)));
  await closed;
  // The response had started (status 200 with the echo), so the only honest signal left is a
  // cut connection: the client never sees a complete body.
  assert.equal(statusOf(text), 200);
  assert.ok(!text.includes("b".repeat(600)), "the over-limit chunk reached the upstream");
  assert.equal(a.seen.length, 1);

  // Before any response: a 413.
  const b = await startBackend(t, "b");
  const source = new MemoryRouteTableSource();
  source.set(
    table(
      "svc",
      [{ version: "v1", weight: 100, endpoints: [b.url] }],
      policy({ maxRequestBodyBytes: 1000 }),
    ),
  );
  const router = await startRouter(t, source);
  const r = await rawExchange(
    portOf(router, "svc"),
    `POST /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk("c".repeat(700))}${chunk("d".repeat(700))}0\r\n\r\n`,
  );
  // /headers answers once the body ended, which it never does: the limit comes first.
  assert.ok(statusOf(r.text) === 413 || (r.text === "" && r.closed), r.text.slice(0, 200));
  if (r.text !== "") assert.equal(jsonOf(r.text).error.code, "TURNOUT_ERR_ROUTER_BODY_TOO_LARGE");
  assert.ok(r.closed);
});

test("a chunked body under the limit streams through", async (t) => {
  const { port } = await oneBackendRouter(t, policy({ maxRequestBodyBytes: 1000 }));
  const r = await rawExchange(
    port,
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
      `3e8\r\n${"z".repeat(1000)}\r\n0\r\n\r\n`,
  );
  assert.equal(statusOf(r.text), 200);
  assert.ok(r.text.includes("z".repeat(1000)));
});

// ---------------------------------------------------------------------------------------
// Request smuggling and malformed requests
// ---------------------------------------------------------------------------------------

const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
const ATTACKS: [name: string, raw: string, status: number][] = [
  [
    "Content-Length with Transfer-Encoding (CL.TE)",
    `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    400,
  ],
  [
    "Transfer-Encoding with Content-Length (TE.CL)",
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    400,
  ],
  [
    "two differing Content-Length",
    `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 38\r\n\r\n${SMUGGLED}`,
    400,
  ],
  [
    "Content-Length list",
    `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 38\r\n\r\n${SMUGGLED}`,
    400,
  ],
  ["obs-fold in a header", `GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n`, 400],
  [
    "obs-fold hiding Transfer-Encoding",
    `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: a\r\n\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding: xchunked",
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    400,
  ],
  [
    "Transfer-Encoding: chunked, identity",
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding: gzip, chunked",
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding twice",
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    400,
  ],
  [
    "space before the colon",
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
    400,
  ],
  [
    "vertical tab in Transfer-Encoding",
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding on HTTP/1.0",
    `POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    400,
  ],
  [
    "bad chunk size",
    `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n`,
    400,
  ],
  ["bare LF line endings", "GET / HTTP/1.1\nHost: x\n\n", 400],
  ["two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400],
  ["no Host on HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400],
  ["oversized headers", `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`, 431],
];

for (const [name, raw, status] of ATTACKS) {
  test(`smuggling / malformed: ${name} is refused and reaches no upstream`, async (t) => {
    const { a, port } = await oneBackendRouter(t);
    const r = await rawExchange(port, raw);
    assert.equal(statusOf(r.text), status, r.text.slice(0, 300));
    const body = jsonOf(r.text);
    assert.equal(
      body.error.code,
      status === 431 ? "TURNOUT_ERR_ROUTER_HEADERS_TOO_LARGE" : "TURNOUT_ERR_ROUTER_BAD_REQUEST",
    );
    assert.match(r.text, /\r\nconnection: close\r\n/i);
    assert.ok(r.closed, "the connection stays open after a framing error");
    // Exactly one response: nothing smuggled behind it was answered.
    assert.equal(r.text.match(/HTTP\/1\.1 \d{3}/g)?.length, 1);
    assert.deepEqual(a.seen, []);
    assert.equal(a.bytes(), "");
  });
}

test("a smuggling attempt behind a valid keep-alive request: the first is served, the rest refused", async (t) => {
  const { a, port } = await oneBackendRouter(t);
  const r = await rawExchange(
    port,
    "GET /first HTTP/1.1\r\nHost: x\r\n\r\n" +
      `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
  );
  const statuses = [...r.text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
  assert.deepEqual(statuses, [200, 400]);
  assert.deepEqual(a.seen, ["GET /first"]);
  assert.ok(r.closed);
});

// ---------------------------------------------------------------------------------------
// WebSocket pass-through
// ---------------------------------------------------------------------------------------

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** A WebSocket echo server in a few lines: node:http's upgrade event and raw frames. */
async function startWsEcho(
  t: test.TestContext,
): Promise<{ url: string; headers: http.IncomingHttpHeaders[] }> {
  const headers: http.IncomingHttpHeaders[] = [];
  const upgraded = new Set<net.Socket>();
  const server = http.createServer((_req, res) => res.end("plain"));
  server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket) => {
    headers.push(req.headers);
    upgraded.add(socket);
    if (req.headers.upgrade?.toLowerCase() !== "websocket") {
      socket.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno");
      return;
    }
    const accept = createHash("sha1")
      .update(`${req.headers["sec-websocket-key"]}${WS_GUID}`)
      .digest("base64");
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    let buf = Buffer.alloc(0);
    socket.on("data", (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      // Small masked frames only: FIN+opcode, MASK+len (< 126), 4-byte mask, payload.
      while (buf.length >= 2 && buf.length >= 6 + (buf[1]! & 0x7f)) {
        const len = buf[1]! & 0x7f;
        const mask = buf.subarray(2, 6);
        const payload = Buffer.from(buf.subarray(6, 6 + len).map((b, i) => b ^ mask[i % 4]!));
        buf = buf.subarray(6 + len);
        socket.write(Buffer.concat([Buffer.from([0x81, len]), payload]));
      }
    });
    socket.on("error", () => {});
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(async () => {
    // Upgraded sockets are not the server's any more: closeAllConnections misses them.
    for (const s of upgraded) s.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, headers };
}

function maskedFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  return Buffer.concat([
    Buffer.from([0x81, 0x80 | payload.length]),
    mask,
    Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!)),
  ]);
}

test("WebSocket upgrades pass through: handshake, frames both ways, headers hygiene", async (t) => {
  const ws = await startWsEcho(t);
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [ws.url] }]));
  const router = await startRouter(t, source);
  const sock = net.connect(portOf(router, "svc"), "127.0.0.1");
  t.after(() => sock.destroy());
  let got = Buffer.alloc(0);
  sock.on("data", (c: Buffer) => {
    got = Buffer.concat([got, c]);
  });
  sock.write(
    "GET /chat HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
      "X-Request-Id: ws-1\r\nKeep-Alive: 5\r\n\r\n",
  );
  await until(() => got.includes("\r\n\r\n"), 3000, "the handshake answer");
  const head = got.toString("latin1");
  assert.match(head, /^HTTP\/1\.1 101 /);
  assert.match(head, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
  assert.match(head, /\r\nx-turnout-version: v1\r\n/);
  assert.match(head, /\r\nx-request-id: ws-1\r\n/);
  const upstreamSaw = ws.headers[0]!;
  assert.equal(upstreamSaw["x-forwarded-for"], "127.0.0.1");
  assert.equal(upstreamSaw["x-forwarded-host"], "chat.example");
  assert.equal(upstreamSaw["keep-alive"], undefined);
  assert.equal(upstreamSaw.upgrade, "websocket");

  got = Buffer.alloc(0);
  sock.write(maskedFrame("hello"));
  await until(() => got.length >= 7, 3000, "the echo");
  assert.deepEqual([...got.subarray(0, 2)], [0x81, 5]);
  assert.equal(got.subarray(2, 7).toString(), "hello");
  got = Buffer.alloc(0);
  sock.write(maskedFrame("second"));
  await until(() => got.length >= 8, 3000, "the second echo");
  assert.equal(got.subarray(2, 8).toString(), "second");

  const [s] = router.stats("svc");
  assert.equal(s?.requests, 1);
});

test("an upgrade the upstream declines is relayed; a refused upstream gives 502 JSON", async (t) => {
  const ws = await startWsEcho(t);
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [ws.url] }]));
  source.set(table("down", [{ version: "v1", weight: 100, endpoints: [await refusedUrl()] }]));
  const router = await startRouter(t, source);
  const declined = await rawExchange(
    portOf(router, "svc"),
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
  );
  assert.equal(statusOf(declined.text), 400);
  assert.ok(declined.text.endsWith("\r\n\r\nno"));
  assert.ok(declined.closed);

  const down = await rawExchange(
    portOf(router, "down"),
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
  );
  assert.equal(statusOf(down.text), 502);
  assert.equal(jsonOf(down.text).error.code, "TURNOUT_ERR_ROUTER_UPSTREAM");
});

test("an upgrade with cookie stickiness and no cookie gets its cookie in the 101 head", async (t) => {
  const ws = await startWsEcho(t);
  const source = new MemoryRouteTableSource();
  source.set({
    ...table("svc", [{ version: "v1", weight: 100, endpoints: [ws.url] }]),
    stickiness: { cookie: "uid", salt: "svc" },
  });
  const router = await startRouter(t, source);
  const sock = net.connect(portOf(router, "svc"), "127.0.0.1");
  t.after(() => sock.destroy());
  let head = "";
  sock.on("data", (c: Buffer) => {
    head += c.toString("latin1");
  });
  sock.write(
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  );
  await until(() => head.includes("\r\n\r\n"), 3000, "the handshake answer");
  assert.match(head, /^HTTP\/1\.1 101 /);
  assert.match(head, /\r\nset-cookie: uid=[^;\r]+;/i);
});

test("a listener that closes cuts its WebSocket connections after the drain time", async (t) => {
  const ws = await startWsEcho(t);
  const source = new MemoryRouteTableSource();
  source.set(table("svc", [{ version: "v1", weight: 100, endpoints: [ws.url] }]));
  const router = await startRouter(t, source, { drainTimeoutMs: 200 });
  const sock = net.connect(portOf(router, "svc"), "127.0.0.1");
  sock.on("error", () => {});
  sock.write(
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  );
  await once(sock, "data");
  const closed = once(sock, "close");
  source.delete("svc");
  await closed;
});

// ---------------------------------------------------------------------------------------
// What Node would answer by itself: HTTP versions, CONNECT, Expect
// ---------------------------------------------------------------------------------------

test("HTTP/0.9 gets 400 and HTTP/2.0 in HTTP/1 framing gets 505, JSON, never proxied", async (t) => {
  const { a, port } = await oneBackendRouter(t);
  const v09 = await rawExchange(port, "GET /\r\n\r\n");
  assert.equal(statusOf(v09.text), 400);
  assert.equal(jsonOf(v09.text).error.code, "TURNOUT_ERR_ROUTER_BAD_REQUEST");
  assert.match(jsonOf(v09.text).error.message, /HTTP\/0\.9/);
  const v2 = await rawExchange(port, "GET / HTTP/2.0\r\nHost: x\r\n\r\n");
  assert.equal(statusOf(v2.text), 505);
  assert.equal(jsonOf(v2.text).error.code, "TURNOUT_ERR_ROUTER_HTTP_VERSION");
  assert.ok(v09.closed && v2.closed);
  assert.deepEqual(a.seen, []);
});

test("CONNECT gets 405 with the JSON body", async (t) => {
  const { a, port } = await oneBackendRouter(t);
  const r = await rawExchange(
    port,
    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
  );
  assert.equal(statusOf(r.text), 405);
  assert.equal(jsonOf(r.text).error.code, "TURNOUT_ERR_ROUTER_METHOD_NOT_ALLOWED");
  assert.ok(r.closed);
  assert.deepEqual(a.seen, []);
});

test("Expect: 100-continue over the body limit gets 413 at once, with no 100; under it, 100 then the answer", async (t) => {
  const { a, port } = await oneBackendRouter(t, policy({ maxRequestBodyBytes: 1000 }));
  const over = await rawExchange(
    port,
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
  );
  assert.doesNotMatch(over.text, /100 Continue/);
  assert.equal(statusOf(over.text), 413);
  assert.equal(jsonOf(over.text).error.code, "TURNOUT_ERR_ROUTER_BODY_TOO_LARGE");
  assert.deepEqual(a.seen, []);

  const sock = net.connect(port, "127.0.0.1");
  let text = "";
  sock.on("data", (c: Buffer) => {
    text += c.toString("latin1");
  });
  sock.write(
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
  );
  await until(() => text.startsWith("HTTP/1.1 100 Continue\r\n\r\n"), 3000, "100 Continue");
  sock.write("hello");
  await once(sock, "close");
  assert.match(text, /\r\n\r\nHTTP\/1\.1 200 /);
  // The echo may come chunked: the body is in the answer, framed or not.
  assert.match(text.slice(text.indexOf("HTTP/1.1 200 ")), /hello/);
});

test("an unknown Expect gets 417 with the JSON body", async (t) => {
  const { a, port } = await oneBackendRouter(t);
  const r = await rawExchange(port, "GET / HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n");
  assert.equal(statusOf(r.text), 417);
  assert.equal(jsonOf(r.text).error.code, "TURNOUT_ERR_ROUTER_EXPECTATION_FAILED");
  assert.deepEqual(a.seen, []);
});

/**
 * Running out of file descriptors is the router's fault, not the upstream's (issue 12): a real
 * router in a child process with `ulimit -n 256` (testing/fd-router.ts) and a real upstream
 * here. The test holds requests open until the router has exactly one descriptor left, so the
 * next client connection is accepted and its upstream connection cannot be made (EMFILE):
 * first for a plain request, then for a WebSocket upgrade. Each gets a 503 with the JSON
 * error, `turnout_router_fd_exhausted_total` counts both, and the upstream, which ejects after
 * a single failure in this table, is still in service afterwards.
 *
 * How "exactly one left" is reached without guessing: each held request costs the router two
 * descriptors (client and upstream connections). A connection the router cannot accept is
 * closed by libuv at once (its EMFILE reserve), which tells that none is left; then one held
 * response is answered with `Connection: close` and its upstream socket is seen to close,
 * which frees exactly one of the router's descriptors.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter, once } from "node:events";
import { createServer, type ServerResponse } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import type { Duplex } from "node:stream";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { until } from "./testing/harness.js";

const CHILD = join(dirname(fileURLToPath(import.meta.url)), "testing", "fd-router.ts");
const LIMIT = 256;

type Outcome =
  | { kind: "arrived" }
  | { kind: "closed" }
  | { kind: "response"; status: number; headers: string; body: string };

/** A complete HTTP response at the start of `buf` (Content-Length framed), or null. */
function parseResponse(buf: string): Extract<Outcome, { kind: "response" }> | null {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const head = buf.slice(0, end);
  const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? "0");
  if (buf.length < end + 4 + length) return null;
  return {
    kind: "response",
    status: Number(head.split(" ")[1]),
    headers: head,
    body: buf.slice(end + 4, end + 4 + length),
  };
}

test("out of file descriptors: 503 with the JSON error, counted, upstream not ejected (HTTP and upgrade)", async (t) => {
  // The upstream: requests to /hang and upgrades are held until the test answers them.
  const arrivals = new EventEmitter();
  const held: ServerResponse[] = [];
  const heldUpgrades: Duplex[] = [];
  const upstream = createServer((req, res) => {
    if (req.url === "/hang") {
      held.push(res);
      arrivals.emit("arrival");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  });
  upstream.on("upgrade", (_req, socket: Duplex) => {
    socket.on("error", () => {});
    heldUpgrades.push(socket);
    arrivals.emit("arrival");
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

  const child: ChildProcess = spawn(
    "sh",
    [
      "-c",
      `ulimit -n ${LIMIT} && exec "$0" "$@"`,
      process.execPath,
      "--import",
      "tsx",
      CHILD,
      upstreamUrl,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const clients: Socket[] = [];
  t.after(async () => {
    for (const s of clients) s.destroy();
    for (const r of held) r.destroy();
    for (const s of heldUpgrades) s.destroy();
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });
  const [line] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
  const ports = JSON.parse(line) as { router: number; control: number };

  /** Sends `request` on a new connection: held upstream, answered, or closed unaccepted. */
  const attempt = async (request: string): Promise<Outcome> => {
    const socket = connect(ports.router, "127.0.0.1");
    socket.on("error", () => {});
    socket.setEncoding("utf8");
    clients.push(socket);
    let buf = "";
    let onData: (d: string) => void = () => {};
    let onClose: () => void = () => {};
    let onArrival: () => void = () => {};
    const outcome = await new Promise<Outcome>((resolve) => {
      onData = (d) => {
        buf += d;
        const r = parseResponse(buf);
        if (r !== null) resolve(r);
      };
      onClose = () => resolve(parseResponse(buf) ?? { kind: "closed" });
      onArrival = () => resolve({ kind: "arrived" });
      socket.on("data", onData);
      socket.on("close", onClose);
      arrivals.on("arrival", onArrival);
      socket.write(request);
    });
    socket.off("data", onData);
    socket.off("close", onClose);
    arrivals.off("arrival", onArrival);
    return outcome;
  };

  /** Frees exactly one of the router's descriptors: the upstream side of a held request. */
  const freeOne = async (): Promise<void> => {
    const res = held.pop();
    assert.ok(res !== undefined, "a held request to answer");
    const closed = once(res.socket!, "close");
    // The whole body but no end: the router closes the connection (Connection: close), and
    // the upstream socket's close shows that its descriptor is free.
    res.writeHead(200, { connection: "close", "content-length": "2" });
    res.write("ok");
    await closed;
  };

  /** Attempts until one is answered; holds those that reach the upstream. */
  const exhaust = async (request: string): Promise<Extract<Outcome, { kind: "response" }>> => {
    for (let i = 0; i < LIMIT * 2; i++) {
      const o = await attempt(request);
      if (o.kind === "response") return o;
      if (o.kind === "closed") await freeOne();
    }
    assert.fail(`no answer after ${LIMIT * 2} attempts`);
  };

  const expect503 = (o: Extract<Outcome, { kind: "response" }>, what: string) => {
    assert.equal(o.status, 503, `${what}: ${o.headers}\n${o.body}`);
    assert.match(o.headers, /content-type: application\/json/i);
    assert.match(o.headers, /x-turnout-version: v1/i);
    const body = JSON.parse(o.body) as { error: { code: string; message: string } };
    assert.equal(body.error.code, "TURNOUT_ERR_ROUTER_OUT_OF_FILE_DESCRIPTORS");
    assert.match(body.error.message, /file descriptors \(E[MN]FILE\).*version v1.*ulimit -n/);
  };

  // 1. A plain request, the router one descriptor short of its upstream connection.
  expect503(await exhaust("GET /hang HTTP/1.1\r\nHost: svc\r\n\r\n"), "plain request");
  // 2. The same for a WebSocket upgrade: one descriptor freed, taken by the accept.
  await freeOne();
  expect503(
    await exhaust(
      "GET /ws HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ),
    "upgrade",
  );
  assert.ok(held.length > 10, `held ${held.length} requests before running out`);

  // Everything let go: the router has descriptors again.
  for (const r of held.splice(0)) r.end();
  for (const s of heldUpgrades.splice(0)) s.destroy();
  for (const s of clients.splice(0)) s.destroy();
  const control = async (path: string): Promise<string | null> => {
    try {
      const res = await fetch(`http://127.0.0.1:${ports.control}${path}`);
      return await res.text();
    } catch {
      return null; // not accepted yet: descriptors are still being closed
    }
  };
  let metrics: string | null = null;
  await until(
    async () => {
      metrics = await control("/metrics");
      return metrics !== null;
    },
    10_000,
    "/metrics",
  );
  assert.match(
    metrics!,
    /^turnout_router_fd_exhausted_total\{service="svc",version="v1"\} 2$/m,
    "both 503s counted",
  );
  const endpoints = JSON.parse((await control("/endpoints"))!) as {
    url: string;
    ejected: boolean;
    available: boolean;
  }[];
  assert.deepEqual(
    endpoints.map((e) => ({ url: e.url, ejected: e.ejected, available: e.available })),
    [{ url: upstreamUrl, ejected: false, available: true }],
  );
  // And it serves: the upstream answers through the router.
  const ok = await fetch(`http://127.0.0.1:${ports.router}/`);
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), "ok");
});

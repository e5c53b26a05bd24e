/**
 * Shared helpers of the router's protocol tests (hygiene, swap): real upstreams and a router
 * on 127.0.0.1 port 0, raw-socket requests, and waits on conditions with a deadline. Not part
 * of the package (the build skips `testing/` folders).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import type { TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { request } from "undici";
import {
  DEFAULT_TRAFFIC_POLICY,
  type RouteBackend,
  type TrafficPolicySpec,
} from "../../core/model.js";
import { type ReloadEvent, Router, type RouterOptions } from "../router.js";
import type { MemoryRouteTableSource } from "../testing.js";

export interface Backend {
  name: string;
  url: string;
  port: number;
  server: http.Server;
  /** Requests that reached this backend, as "METHOD path". */
  seen: string[];
  /** Raw bytes received on every connection (for smuggling tests). */
  bytes(): string;
  /** Sets the status of answers to "/" (default 200). */
  status: number;
}

/**
 * An upstream that answers "/" with its name (status `status`), "/headers" with the request's
 * headers as JSON ({ headers, raw }), "/hang" never, "/echo" with the request body, "/count"
 * with the number of body bytes once the body has ended, and "/hop" with hop-by-hop response
 * headers.
 */
export async function startBackend(t: TestContext, name: string): Promise<Backend> {
  const chunks: Buffer[] = [];
  const b: Backend = {
    name,
    url: "",
    port: 0,
    server: null as unknown as http.Server,
    seen: [],
    bytes: () => Buffer.concat(chunks).toString("latin1"),
    status: 200,
  };
  const server = http.createServer((req, res) => {
    b.seen.push(`${req.method} ${req.url}`);
    const path = req.url ?? "/";
    if (path.startsWith("/headers")) {
      req.resume();
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ headers: req.headers, raw: req.rawHeaders }));
    } else if (path.startsWith("/hang")) {
      req.resume();
    } else if (path.startsWith("/count")) {
      let n = 0;
      req.on("data", (c: Buffer) => (n += c.length));
      req.on("end", () => res.end(String(n)));
    } else if (path.startsWith("/echo")) {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      req.pipe(res);
    } else if (path.startsWith("/hop")) {
      res.setHeader("connection", "keep-alive, x-resp-hop");
      res.setHeader("x-resp-hop", "1");
      res.setHeader("keep-alive", "timeout=99");
      res.setHeader("proxy-connection", "keep-alive");
      res.setHeader("trailer", "x-t");
      res.setHeader("upgrade", "h2c");
      res.setHeader("x-kept", "yes");
      res.end(name);
    } else {
      req.resume();
      res.statusCode = b.status;
      res.end(name);
    }
  });
  server.on("connection", (s: net.Socket) => s.on("data", (c: Buffer) => chunks.push(c)));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  b.port = (server.address() as net.AddressInfo).port;
  b.url = `http://127.0.0.1:${b.port}`;
  b.server = server;
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return b;
}

/** A router with a fast poll and a quiet logger. */
export async function startRouter(
  t: TestContext,
  source: MemoryRouteTableSource,
  opts: Partial<RouterOptions> = {},
): Promise<Router> {
  const router = new Router({ source, pollIntervalMs: 20, drainTimeoutMs: 2000, ...opts });
  await router.start();
  t.after(() => router.stop());
  return router;
}

interface PolicyPatch {
  loadBalancing?: TrafficPolicySpec["loadBalancing"];
  healthCheck?: Partial<NonNullable<TrafficPolicySpec["healthCheck"]>>;
  outlierDetection?: Partial<TrafficPolicySpec["outlierDetection"]>;
  retries?: Partial<TrafficPolicySpec["retries"]>;
  timeouts?: Partial<TrafficPolicySpec["timeouts"]>;
  maxRequestBodyBytes?: number;
}

/** The default policy with some fields changed (nested objects merged). */
export function policy(patch: PolicyPatch = {}): TrafficPolicySpec {
  const d = DEFAULT_TRAFFIC_POLICY;
  const p: TrafficPolicySpec = {
    ...d,
    loadBalancing: patch.loadBalancing ?? d.loadBalancing,
    maxRequestBodyBytes: patch.maxRequestBodyBytes ?? d.maxRequestBodyBytes,
    outlierDetection: { ...d.outlierDetection, ...patch.outlierDetection },
    retries: { ...d.retries, ...patch.retries },
    timeouts: { ...d.timeouts, ...patch.timeouts },
  };
  if (patch.healthCheck)
    p.healthCheck = {
      path: "/healthz",
      intervalSeconds: 5,
      timeoutSeconds: 1,
      healthyThreshold: 2,
      unhealthyThreshold: 3,
      ...patch.healthCheck,
    };
  return p;
}

export function table(service: string, backends: RouteBackend[], p?: TrafficPolicySpec) {
  return {
    service,
    listen: { host: "127.0.0.1", port: 0 },
    backends,
    ...(p ? { policy: p } : {}),
  };
}

export function portOf(router: Router, service: string): number {
  const l = router.listeners().find((x) => x.service === service);
  assert.ok(l, `no listener for ${service}`);
  return l.port;
}

export async function get(port: number, path = "/", headers: Record<string, string> = {}) {
  const res = await request(`http://127.0.0.1:${port}${path}`, { headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

/** A URL on which nothing listens (connections are refused). */
export async function refusedUrl(): Promise<string> {
  const s = net.createServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

/**
 * Sends raw bytes and collects what comes back until the server closes the connection or
 * `ms` pass (then `closed` is false).
 */
export async function rawExchange(
  port: number,
  data: string | Buffer,
  ms = 3000,
): Promise<{ text: string; closed: boolean }> {
  const sock = net.connect(port, "127.0.0.1");
  sock.on("error", () => {});
  let text = "";
  sock.on("data", (c: Buffer) => {
    text += c.toString("latin1");
  });
  sock.write(data);
  const closed = await Promise.race([
    once(sock, "close").then(() => true),
    sleep(ms).then(() => false),
  ]);
  sock.destroy();
  return { text, closed };
}

/** Status code of the first response in a raw reply, or 0. */
export function statusOf(raw: string): number {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(raw);
  return m ? Number(m[1]) : 0;
}

/** The JSON body of the first response in a raw reply. */
export function jsonOf(raw: string): { error: { code: string; message: string } } {
  const start = raw.indexOf("\r\n\r\n");
  return JSON.parse(raw.slice(start + 4));
}

/** Polls `cond` every few ms until it holds; fails after `ms`. */
export async function until(
  cond: () => boolean | Promise<boolean>,
  ms = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`${what} not met within ${ms} ms`);
    await sleep(5);
  }
}

/** The next reload event, or a rejection after `ms`. */
export function nextReload(router: Router, ms = 3000): Promise<ReloadEvent> {
  return new Promise<ReloadEvent>((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no router reload within ${ms} ms`));
    }, ms);
    const off = router.onReload((e) => {
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

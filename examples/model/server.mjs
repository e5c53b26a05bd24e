#!/usr/bin/env node
// A stand-in for a real ML model server (TorchServe, Triton, a FastAPI app...), small enough
// to start in tens of milliseconds and with no dependencies, so that the demo and the tests
// can run several versions side by side on one laptop. The "model" is a fixed logistic
// function whose weights shift a little with the version name: two versions agree on most
// inputs and disagree near the decision boundary, which is what shadow comparisons and A/B
// tests need to find something to show.
//
// Environment:
//   PORT            port to listen on (Turnout's process runtime sets it); HOST defaults to 127.0.0.1
//   MODEL_VERSION   version reported and mixed into the weights (falls back to VERSION)
//   ERROR_RATE      0..1: that fraction of non-health requests answer 500, spread evenly by a
//                   counter (deterministic, so a demo of a bad version behaves the same each run)
//   LATENCY_MS      extra delay before every non-health response
//   READY_AFTER_MS  GET /healthz answers 503 until this long after start (a slow model load)
//   LOG_REQUESTS    1: print one line per non-health request as it arrives (tests wait on it)
//   GRACE_MS        on SIGTERM, exit after this long even if a request never ends (default 30000)
//
// Routes: GET /healthz, GET /, POST /predict {"features":[numbers]}.
import http from "node:http";

const version = process.env.MODEL_VERSION ?? process.env.VERSION ?? "unknown";
const port = Number(process.env.PORT ?? 8000);
const host = process.env.HOST ?? "127.0.0.1";
const errorRate = clamp01(Number(process.env.ERROR_RATE ?? 0));
const latencyMs = Math.max(0, Number(process.env.LATENCY_MS ?? 0) || 0);
const readyAfterMs = Math.max(0, Number(process.env.READY_AFTER_MS ?? 0) || 0);
const logRequests = process.env.LOG_REQUESTS === "1";
const startedAt = Date.now();
const MAX_BODY = 1 << 20;

// Weights of the "model". The version perturbs them by up to +-0.25 each (FNV-1a of the
// name), so the same features can get a different label from another version.
const BASE_WEIGHTS = [0.9, -0.6, 0.4, 1.1, -0.3, 0.7, -0.8, 0.5];
const BIAS = -0.4;
const weights = BASE_WEIGHTS.map((w, i) => w + (unitHash(`${version}#${i}`) - 0.5) * 0.5);

let served = 0;
let closing = false;

function clamp01(x) {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}

/** FNV-1a 32-bit, mapped to [0, 1). Deterministic across runs and machines. */
function unitHash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h / 2 ** 32;
}

function predict(features) {
  let z = BIAS;
  features.forEach((x, i) => {
    z += x * weights[i % weights.length];
  });
  const score = 1 / (1 + Math.exp(-z));
  return { version, label: score >= 0.5 ? "fraud" : "legit", score: Math.round(score * 1e4) / 1e4 };
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "x-model-version": version,
    // While shutting down, every answer closes its connection, so a keep-alive client (a
    // router's pool) opens its next request elsewhere instead of on a socket about to close.
    ...(closing ? { connection: "close" } : {}),
  });
  res.end(text);
}

/** The n-th request fails when it crosses a multiple of 1/ERROR_RATE: exactly that fraction fails. */
function shouldFail() {
  served++;
  return Math.floor(served * errorRate) > Math.floor((served - 1) * errorRate);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error("body too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8") || "null"));
      } catch {
        reject(new Error("body is not JSON"));
      }
    });
    req.on("error", reject);
  });
}

async function handle(req, res) {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname === "/healthz") {
    if (Date.now() - startedAt < readyAfterMs) return send(res, 503, { ok: false, loading: true });
    return send(res, 200, { ok: true });
  }
  if (logRequests) console.log(`request ${req.method} ${url.pathname}`);
  if (latencyMs > 0) await new Promise((r) => setTimeout(r, latencyMs));
  if (shouldFail()) return send(res, 500, { error: "injected failure (ERROR_RATE)", version });
  if (url.pathname === "/" && req.method === "GET") {
    return send(res, 200, { version, port, pid: process.pid });
  }
  if (url.pathname === "/predict" && req.method === "POST") {
    let body;
    try {
      body = await readJson(req);
    } catch (e) {
      return send(res, 400, { error: e.message });
    }
    const features = body?.features;
    if (
      !Array.isArray(features) ||
      !features.every((x) => typeof x === "number" && Number.isFinite(x))
    ) {
      return send(res, 400, { error: 'expected {"features": [numbers]}' });
    }
    return send(res, 200, predict(features));
  }
  return send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
}

const server = http.createServer((req, res) => {
  // While closing, a keep-alive socket is closed as soon as its answer is out, not at its timeout.
  res.on("finish", () => {
    if (closing) server.closeIdleConnections();
  });
  handle(req, res).catch((e) => {
    if (!res.headersSent) send(res, 500, { error: String(e?.message ?? e) });
    else res.destroy();
  });
});

server.listen(port, host, () => {
  console.log(
    `model server version=${version} listening on http://${host}:${port} pid=${process.pid}`,
  );
});

// Graceful stop, as Turnout's process runtime expects (it has already taken this instance out
// of the routers' tables and waited drainSeconds): stop accepting new connections, let requests
// in flight finish (their answers say "connection: close"), close idle keep-alive sockets at
// once and each busy one as soon as its answer is out, then exit 0. The runtime SIGKILLs the
// group after terminationGracePeriodSeconds if a request never ends; GRACE_MS (default 30 s)
// is this server's own safety net when run by hand. Unref'd: it never delays an exit.
const graceMs = Math.max(0, Number(process.env.GRACE_MS ?? 30_000) || 0);
function shutdown(signal) {
  if (closing) return;
  closing = true;
  console.log(`model server version=${version} got ${signal}, closing`);
  server.close(() => {
    console.log(`model server version=${version} closed, exiting`);
    process.exit(0);
  });
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), graceMs).unref();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

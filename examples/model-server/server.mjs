#!/usr/bin/env node
// A small model server to copy, or to put your own model in place of: the guide
// docs/guides/your-own-model.md rolls it out with each of Turnout's six strategies.
// Node.js only, no dependencies. It serves a logistic-regression classifier loaded from a
// JSON file (one file per version, as a training pipeline would produce), and has switches
// that make a version deliberately bad, so that every strategy has something to decide on.
//
//   node examples/model-server/server.mjs --port 9001 --model examples/model-server/models/v1.json
//   curl -s localhost:9001/predict -d '{"features": [0.2, 0.7, 0.1, 0.9]}'
//   {"prediction":"negative","score":0.0911,"version":"v1"}
//
// Routes:
//   POST /predict  {"features": [4 numbers]} -> {"prediction", "score", "version"}; with the
//                  feature flag `explanations` on (header `x-turnout-flags: explanations=on`,
//                  which Turnout's router sends), also "explanation": the two features that
//                  weighed most
//   GET  /healthz  200 {"ok": true, "version"} once the model is loaded (readiness probes)
//   GET  /         {"version", "model", "pid"}
// Every answer carries `x-model-version`.
//
// Options: a flag, or the environment variable beside it (a flag wins).
//   --port N               PORT             port to listen on (Turnout sets PORT); default 8000
//   --host H               HOST             default 127.0.0.1
//   --model FILE           MODEL            {"weights": [4 numbers], "bias": n}; default models/v1.json
//   --version V            MODEL_VERSION    the version it reports; default the model file's name
//   --error-rate R         ERROR_RATE       0..1: that share of predictions answer 500
//   --flip-rate R          FLIP_RATE        0..1: that share of inputs get the other label (and
//                                           score), with a 200: wrong answers no error rate sees
//   --latency-ms N         LATENCY_MS       extra delay before every prediction
//   --explain-error-rate R EXPLAIN_ERROR_RATE  0..1: that share of predictions with
//                                           `explanations` on answer 500 (a buggy new feature)
// Faults are deterministic, so a bad version behaves the same on every run: errors fall on
// every (1/R)-th request, flips on the inputs whose hash falls below R (the same input always
// gets the same answer).
import { readFileSync } from "node:fs";
import http from "node:http";
import { basename } from "node:path";
import { parseArgs } from "node:util";

const OPTIONS = {
  port: "PORT",
  host: "HOST",
  model: "MODEL",
  version: "MODEL_VERSION",
  "error-rate": "ERROR_RATE",
  "flip-rate": "FLIP_RATE",
  "latency-ms": "LATENCY_MS",
  "explain-error-rate": "EXPLAIN_ERROR_RATE",
};
const { values: flags } = parseArgs({
  options: Object.fromEntries(Object.keys(OPTIONS).map((k) => [k, { type: "string" }])),
});
const opt = (name, fallback) => flags[name] ?? process.env[OPTIONS[name]] ?? fallback;
const rate = (name) => {
  const r = Number(opt(name, 0));
  if (!(r >= 0 && r <= 1)) fail(`--${name} must be a number from 0 to 1, got ${opt(name)}`);
  return r;
};
function fail(message) {
  console.error(`model server: ${message}`);
  process.exit(2);
}

const modelFile = opt("model", new URL("models/v1.json", import.meta.url).pathname);
let model;
try {
  model = JSON.parse(readFileSync(modelFile, "utf8"));
} catch (e) {
  fail(`cannot load the model ${modelFile}: ${e.message}`);
}
if (!Array.isArray(model.weights) || !model.weights.every(Number.isFinite))
  fail(`${modelFile}: "weights" must be a list of numbers`);
const version = opt("version", basename(modelFile, ".json"));
const port = Number(opt("port", 8000));
const host = opt("host", "127.0.0.1");
const errorRate = rate("error-rate");
const flipRate = rate("flip-rate");
const explainErrorRate = rate("explain-error-rate");
const latencyMs = Math.max(0, Number(opt("latency-ms", 0)) || 0);

/** True for every (1/r)-th call of `counter`: exactly that share, evenly spread. */
function every(r, counter) {
  counter.n++;
  return Math.floor(counter.n * r) > Math.floor((counter.n - 1) * r);
}
const predictions = { n: 0 };
const explained = { n: 0 };

/** FNV-1a of the input, in [0, 1): which inputs FLIP_RATE flips. */
function inputHash(features) {
  let h = 0x811c9dc5;
  for (const c of features.join(",")) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h / 2 ** 32;
}

function predict(features, explain) {
  const contributions = model.weights.map((w, i) => w * (features[i] ?? 0));
  const z = contributions.reduce((a, b) => a + b, model.bias ?? 0);
  let score = 1 / (1 + Math.exp(-z));
  // A flipped input gets the other label, with the score that goes with it.
  if (flipRate > 0 && inputHash(features) < flipRate) score = 1 - score;
  const answer = {
    prediction: score > 0.5 ? "positive" : "negative",
    score: Math.round(score * 1e4) / 1e4,
    version,
  };
  if (explain) {
    answer.explanation = contributions
      .map((c, feature) => ({ feature, contribution: Math.round(c * 1e4) / 1e4 }))
      .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution))
      .slice(0, 2);
  }
  return answer;
}

let closing = false;
function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "x-model-version": version,
    // While stopping, each answer closes its connection, so the router's next request goes to
    // another instance instead of a socket about to close.
    ...(closing ? { connection: "close" } : {}),
  });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 1 << 20) throw new Error("body over 1 MiB");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

async function handle(req, res) {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  if (path === "/healthz") return send(res, 200, { ok: true, version });
  if (path === "/" && req.method === "GET")
    return send(res, 200, { version, model: modelFile, pid: process.pid });
  if (path !== "/predict" || req.method !== "POST")
    return send(res, 404, { error: `no route ${req.method} ${path}` });

  let features;
  try {
    features = JSON.parse(await readBody(req)).features;
  } catch (e) {
    return send(res, 400, { error: `expected {"features": [numbers]}: ${e.message}` });
  }
  if (!Array.isArray(features) || !features.every(Number.isFinite))
    return send(res, 400, { error: 'expected {"features": [numbers]}' });
  // Turnout's router evaluates the service's flags per user and passes them on.
  const explain = /(?:^|;)\s*explanations=on\b/.test(String(req.headers["x-turnout-flags"] ?? ""));
  if (latencyMs > 0) await new Promise((r) => setTimeout(r, latencyMs));
  if (every(errorRate, predictions))
    return send(res, 500, { error: "injected failure (--error-rate)", version });
  if (explain && every(explainErrorRate, explained))
    return send(res, 500, { error: "injected failure (--explain-error-rate)", version });
  return send(res, 200, predict(features, explain));
}

const server = http.createServer((req, res) => {
  res.on("finish", () => {
    if (closing) server.closeIdleConnections();
  });
  handle(req, res).catch((e) => send(res, 500, { error: String(e?.message ?? e) }));
});
server.on("error", (e) => fail(e.message));
server.listen(port, host, () => {
  const faults = Object.entries({ errorRate, flipRate, explainErrorRate, latencyMs })
    .filter(([, v]) => v > 0)
    .map(([k, v]) => ` ${k}=${v}`)
    .join("");
  console.log(`model ${version} (${modelFile}) on http://${host}:${port}${faults}`);
});

// Stop gracefully (Turnout has already taken this instance out of traffic): finish the
// requests in flight, close idle keep-alive sockets, exit 0.
function stop() {
  closing = true;
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 10_000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

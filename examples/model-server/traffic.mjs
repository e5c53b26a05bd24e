#!/usr/bin/env node
// Users for the guide docs/guides/your-own-model.md: sends POST /predict requests to a
// Turnout router at a steady rate, each from a user id (header x-user-id), and prints once a
// second which versions answered, how many failed, and how often each version was right.
// The inputs come from a seeded generator whose true labels this script knows, so it can
// tell a right answer from a wrong one, as an application learns later whether a
// prediction held. Node.js only, no dependencies.
//
//   node examples/model-server/traffic.mjs --url http://127.0.0.1:8081           # until Ctrl-C
//   node examples/model-server/traffic.mjs --url http://127.0.0.1:8085 --count 1000 \
//     --outcomes outcomes.json     # then: turnout events post -f outcomes.json
//
// Options:
//   --url URL          the service's router address (default http://127.0.0.1:8080)
//   --rate N           requests per second (default 50)
//   --count N          stop after N requests (default: run until Ctrl-C or --duration)
//   --duration S       stop after S seconds
//   --users N          request i comes from user-(i mod N) (default 1000): with --count N
//                      and --users N each user asks once
//   --seed N           seed of the inputs (default 1): the same seed sends the same inputs
//   --outcomes FILE    at the end, write {"events": [...]}: one `correct` event per user
//                      whose answer was right, for an A/B test's goal metric
//   --quiet            only the summary at the end
import { writeFileSync } from "node:fs";
import http from "node:http";
import { parseArgs } from "node:util";

const { values: o } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8080" },
    rate: { type: "string", default: "50" },
    count: { type: "string" },
    duration: { type: "string" },
    users: { type: "string", default: "1000" },
    seed: { type: "string", default: "1" },
    outcomes: { type: "string" },
    quiet: { type: "boolean", default: false },
  },
});
const number = (name, min) => {
  const n = Number(o[name]);
  if (!Number.isFinite(n) || n < min) {
    console.error(`traffic: --${name} must be a number >= ${min}, got ${o[name]}`);
    process.exit(2);
  }
  return n;
};
const rate = number("rate", 0.1);
const users = Math.floor(number("users", 1));
const count = o.count === undefined ? Number.POSITIVE_INFINITY : Math.floor(number("count", 1));
const durationMs =
  o.duration === undefined ? Number.POSITIVE_INFINITY : number("duration", 0) * 1000;
// One `turnout events post` sends at most 1,000 events.
if (o.outcomes !== undefined && !(count <= 1000)) {
  console.error(
    "traffic: --outcomes needs --count 1000 or fewer (one `turnout events post` takes 1,000 events)",
  );
  process.exit(2);
}

// The world the model tries to learn: the true label of an input. models/v2.json is closer to
// it than models/v1.json (right about 98% of the time against 90%).
const TRUTH = { weights: [3, -2, 2.5, -1.5], bias: -0.9 };
const truth = (x) => TRUTH.weights.reduce((z, w, i) => z + w * x[i], TRUTH.bias) > 0;

// mulberry32: a small seeded generator, the same inputs on every run.
let state = Number(o.seed) >>> 0;
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
}

const second = new Map(); // version -> {answers, right}; reset every second
const total = new Map();
let errors = 0;
let lastError = ""; // the latest 5xx, shown beside the count
let failed = 0;
let explained = 0;
let sent = 0;
const outcomes = [];

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function tally(map, version, right) {
  const s = map.get(version) ?? { answers: 0, right: 0 };
  s.answers++;
  if (right) s.right++;
  map.set(version, s);
}

function describe(map) {
  return [...map]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([v, s]) => `${v} ${s.answers} (${((100 * s.right) / s.answers).toFixed(0)}% right)`)
    .join(", ");
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const target = new URL("/predict", o.url);

/** One POST /predict; resolves with the status, the version that answered and the body. */
function post(user, features) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      target,
      {
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "x-user-id": user },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (text += c));
        res.on("end", () => {
          let body = {};
          try {
            body = JSON.parse(text);
          } catch {}
          // Turnout's router names the version that answered.
          const version = res.headers["x-turnout-version"] ?? body.version ?? "?";
          resolve({ status: res.statusCode, version, body });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify({ features }));
  });
}

async function ask(i) {
  const features = [random(), random(), random(), random()].map((x) => Math.round(x * 1e3) / 1e3);
  const user = `user-${i % users}`;
  let res;
  try {
    res = await post(user, features);
  } catch {
    failed++; // refused or reset: the router is not listening (yet), or went away
    return;
  }
  if (res.status >= 500) {
    errors++;
    // What failed: the model server's {"error": "..."} or the router's {"error": {"message"}}.
    const why = typeof res.body.error === "string" ? res.body.error : res.body.error?.message;
    lastError = `${res.status} from ${res.version}${why ? `: ${why}` : ""}`;
    return;
  }
  const right = (res.body.prediction === "positive") === truth(features);
  if (res.body.explanation) explained++;
  tally(second, res.version, right);
  tally(total, res.version, right);
  if (right && o.outcomes !== undefined)
    outcomes.push({
      idempotencyKey: `${user}-${i}`,
      unit: user,
      metric: "correct",
      timestamp: Date.now(),
    });
}

const started = Date.now();
const elapsed = () => ((Date.now() - started) / 1000).toFixed(0).padStart(3);
let lastErrors = 0;
let lastFailed = 0;
let lastExplained = 0;
const ticker = setInterval(() => {
  if (!o.quiet) {
    const parts = [describe(second) || "no answers"];
    if (errors > lastErrors)
      parts.push(`${plural(errors - lastErrors, "error")} (5xx; last: ${lastError.slice(0, 80)})`);
    if (failed > lastFailed) parts.push(`${failed - lastFailed} not connected`);
    if (explained > lastExplained) parts.push(`${explained - lastExplained} with explanations`);
    console.log(`[${elapsed()}s] ${parts.join("; ")}`);
  }
  second.clear();
  lastErrors = errors;
  lastFailed = failed;
  lastExplained = explained;
}, 1000);

let stopping = false;
process.on("SIGINT", () => (stopping = true));
process.on("SIGTERM", () => (stopping = true));

// Requests leave on a fixed schedule (i / rate seconds after the start), whatever the answers'
// latency, with at most 64 in flight.
const inFlight = new Set();
while (!stopping && sent < count && Date.now() - started < durationMs) {
  const wait = started + (sent * 1000) / rate - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  if (inFlight.size >= 64) await Promise.race(inFlight);
  const p = ask(sent++).finally(() => inFlight.delete(p));
  inFlight.add(p);
}
await Promise.all(inFlight);
clearInterval(ticker);
agent.destroy();
console.log(
  `sent ${plural(sent, "request")} in ${elapsed().trim()}s: ${describe(total) || "no answers"}; ${plural(errors, "error")} (5xx); ${failed} not connected; ${explained} with explanations`,
);
if (o.outcomes !== undefined) {
  writeFileSync(o.outcomes, `${JSON.stringify({ events: outcomes })}\n`);
  console.log(
    `wrote ${outcomes.length} outcome events to ${o.outcomes}: turnout events post -f ${o.outcomes}`,
  );
}

// A reference point, not a contender (`--bare`): the barest node:http + undici proxy, with no
// features at all (no header hygiene, no request id, no counters, no stickiness), a 90/10 wheel
// and `Pool.stream` into the ServerResponse. Whatever Turnout does beyond this is the cost of
// its features; whatever this does not reach is the cost of Node itself on this machine.
//
//   node bench/lib/bare-proxy.mjs '{"port":8084,"backends":[{"weight":90,"url":"..."},...]}'
import { createServer } from "node:http";
import { Pool } from "undici";

const cfg = JSON.parse(process.argv[2] ?? "{}");
const pools = cfg.backends.map((b) => new Pool(b.url, { pipelining: 1 }));
const total = cfg.backends.reduce((s, b) => s + b.weight, 0);
const wheel = [];
const current = cfg.backends.map(() => 0);
for (let n = 0; n < 100; n++) {
  let best = 0;
  for (let i = 0; i < cfg.backends.length; i++) {
    current[i] += cfg.backends[i].weight;
    if (current[i] > current[best]) best = i;
  }
  current[best] -= total;
  wheel.push(pools[best]);
}
let cursor = 0;

// The response is passed as `opaque`, so neither function is allocated per request.
function factory({ statusCode, headers, opaque }) {
  opaque.writeHead(statusCode, headers);
  return opaque;
}
function done(err, { opaque }) {
  if (err && !opaque.headersSent) {
    opaque.statusCode = 502;
    opaque.end();
  }
}

createServer((req, res) => {
  const pool = wheel[cursor];
  cursor = cursor === 99 ? 0 : cursor + 1;
  pool.stream(
    { path: req.url, method: req.method, headers: req.headers, body: null, opaque: res },
    factory,
    done,
  );
}).listen(cfg.port, "127.0.0.1", () => {
  console.log(JSON.stringify({ ready: true, pid: process.pid, port: cfg.port }));
});

function stop() {
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

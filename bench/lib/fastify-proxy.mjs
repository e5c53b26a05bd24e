// The fastify + @fastify/reply-from baseline: the same 90/10 split, picked per request by a
// deterministic counter (as exact as nginx's and HAProxy's weighted round robin), over
// reply-from's undici pools with keep-alive. Started by bench/router.mjs.
//
//   node bench/lib/fastify-proxy.mjs '{"port":8082,"backends":[{"weight":90,"url":"..."},...]}'
import replyFrom from "@fastify/reply-from";
import Fastify from "fastify";

const cfg = JSON.parse(process.argv[2] ?? "{}");

// A wheel of 100 slots filled by smooth weighted round robin, so the split is exact and the
// per-request pick is one array read.
const wheel = [];
{
  const current = cfg.backends.map(() => 0);
  const total = cfg.backends.reduce((s, b) => s + b.weight, 0);
  for (let n = 0; n < 100; n++) {
    let best = 0;
    for (let i = 0; i < cfg.backends.length; i++) {
      current[i] += cfg.backends[i].weight;
      if (current[i] > current[best]) best = i;
    }
    current[best] -= total;
    wheel.push(cfg.backends[best].url);
  }
}
let cursor = 0;

const app = Fastify({ logger: false });
await app.register(replyFrom, {
  undici: { connections: 1024, pipelining: 1, keepAliveTimeout: 60_000 },
});
// Pass request bodies through untouched instead of parsing them.
app.removeAllContentTypeParsers();
app.addContentTypeParser("*", (_req, _payload, done) => done(null));
app.all("/*", (request, reply) => {
  const base = wheel[cursor];
  cursor = cursor === 99 ? 0 : cursor + 1;
  return reply.from(base + request.url);
});
await app.listen({ host: "127.0.0.1", port: cfg.port });
console.log(JSON.stringify({ ready: true, pid: process.pid, port: cfg.port }));

async function stop() {
  await app.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

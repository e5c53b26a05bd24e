// The floor of any fastify-based OFREP server on this machine: a fastify app whose POST route
// parses the JSON body and answers a constant OFREP success body, nothing else. Run in the
// same conditions as Turnout's OFREP server, it tells what share of the time is fastify's.
import Fastify from "fastify";

const app = Fastify({ logger: false });
app.post("/ofrep/v1/evaluate/flags/:key", async (req) => ({
  key: req.params.key,
  value: true,
  reason: "SPLIT",
  variant: "on",
  metadata: {},
}));
await app.listen({ port: 0, host: "127.0.0.1" });
console.log(JSON.stringify({ ready: true, port: app.server.address().port }));

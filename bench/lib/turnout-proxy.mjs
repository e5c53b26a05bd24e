// Turnout's router as the benchmark runs it: the built code in dist/ (plain node, so no
// TypeScript loader is measured), fed its route table through the real SQLite store, exactly
// as `turnout up` would be. Started by bench/router.mjs; not a public entry point.
//
//   node bench/lib/turnout-proxy.mjs '{"db":"/tmp/x/turnout.db","port":8080,
//     "backends":[{"version":"v1","weight":90,"url":"http://127.0.0.1:9001"}, ...],
//     "stickiness":{"header":"x-user-id","salt":"bench"}}'
//
// Prints one JSON line `{"ready":true,...}` once the listener is bound. On SIGTERM/SIGINT it
// stops the router gracefully, prints `{"stats":[...]}` (the router's own per-version counters)
// and exits with code 0, which is also what lets `--cpu-prof` write its profile.
import { API_VERSION, DEFAULT_TRAFFIC_POLICY } from "../../dist/core/model.js";
import { HASH_VERSION } from "../../dist/core/routes.js";
import { Router } from "../../dist/router/router.js";
import { openSqliteStore } from "../../dist/store/sqlite/sqlite-store.js";

const SERVICE = "bench";
const cfg = JSON.parse(process.argv[2] ?? "{}");
const listen = { host: "127.0.0.1", port: cfg.port };

const store = await openSqliteStore({ path: cfg.db });
const now = Date.now();
// The store only takes a route table for a Service that exists, as in production.
await store.applyResources(
  [
    {
      apiVersion: API_VERSION,
      kind: "Service",
      metadata: { name: SERVICE },
      spec: {
        listen,
        ...(cfg.stickiness ? { stickiness: { header: cfg.stickiness.header } } : {}),
        runtime: {
          static: {
            versions: Object.fromEntries(
              cfg.backends.map((b) => [b.version, { upstreams: [b.url] }]),
            ),
          },
        },
        version: cfg.backends[cfg.backends.length - 1].version,
      },
    },
  ],
  { actor: "bench", now },
);
await store.commit({
  service: SERVICE,
  now,
  routeTable: {
    service: SERVICE,
    listen,
    ...(cfg.stickiness ? { stickiness: cfg.stickiness } : {}),
    hashVersion: HASH_VERSION,
    // Canary first, as the controller orders them (see RouteTable.backends).
    backends: cfg.backends.map((b) => ({
      version: b.version,
      weight: b.weight,
      endpoints: [b.url],
    })),
    policy: DEFAULT_TRAFFIC_POLICY,
    updatedAt: now,
  },
});

const router = new Router({ source: store });
await router.start();
const info = router.listeners().find((l) => l.service === SERVICE);
if (info === undefined || info.error !== undefined) {
  console.error(`turnout-proxy: cannot listen: ${info?.error ?? "no listener"}`);
  process.exit(1);
}
console.log(JSON.stringify({ ready: true, pid: process.pid, port: info.port }));

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try {
    const stats = router.stats(SERVICE);
    await router.stop();
    await store.close();
    console.log(JSON.stringify({ stats }));
  } finally {
    process.exit(0);
  }
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

/**
 * A real router in a process of its own, for the file descriptor test (fd-exhaustion.test.ts):
 * run under a low `ulimit -n`, it serves service `svc` (one version, v1, at the upstream URL in
 * argv[2]; an upstream is ejected after one failure, so that a failure wrongly blamed on it
 * shows) and a control listener: `GET /metrics` (the router's /metrics families) and
 * `GET /endpoints` (`Router.endpoints("svc")`). Prints `{"router":port,"control":port}` once
 * both listen.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Registry } from "prom-client";
import { registerRouterMetrics } from "../../api/metrics.js";
import { DEFAULT_TRAFFIC_POLICY } from "../../core/model.js";
import { Router } from "../router.js";
import { MemoryRouteTableSource } from "../testing.js";

const upstream = process.argv[2];
if (upstream === undefined) throw new Error("usage: fd-router.ts <upstream URL>");

const source = new MemoryRouteTableSource();
source.set({
  service: "svc",
  listen: { host: "127.0.0.1", port: 0 },
  backends: [{ version: "v1", weight: 100, endpoints: [upstream] }],
  policy: {
    ...DEFAULT_TRAFFIC_POLICY,
    outlierDetection: { consecutiveFailures: 1, ejectionSeconds: 300, maxEjectionPercent: 100 },
    retries: { attempts: 0 },
  },
});
const router = new Router({ source });
const registry = new Registry();
registerRouterMetrics(registry, router.measurements);

const control = createServer((req, res) => {
  void (async () => {
    const body =
      req.url === "/metrics"
        ? await registry.metrics()
        : JSON.stringify(router.endpoints("svc"), null, 0);
    res.writeHead(200, { "content-type": "text/plain", connection: "close" });
    res.end(body);
  })();
});

await router.start();
await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", resolve));
const routerPort = router.listeners()[0]?.port;
process.stdout.write(
  `${JSON.stringify({ router: routerPort, control: (control.address() as AddressInfo).port })}\n`,
);
process.on("SIGTERM", () => {
  control.close();
  void router.stop().then(() => process.exit(0));
});

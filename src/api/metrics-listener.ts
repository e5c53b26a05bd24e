/**
 * `turnout up --metrics-address HOST:PORT`: a listener of its own for `GET /metrics` and
 * `GET /healthz`, whatever the process's roles, so that Prometheus scrapes every process of a
 * fleet, a router without the API included (as Envoy's and Linkerd's proxies have their admin
 * port, and Kubernetes controllers their `--metrics-bind-address`).
 *
 * Plain HTTP and no token, like `/metrics` and `/healthz` on the API: what it serves is counts,
 * latencies, weights and phases, never a secret, and no admin route is there to protect. The
 * registry is the process's one (`server.ts`): the API's listener, when there is one, serves the
 * same text.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import Fastify, { type FastifyInstance } from "fastify";
import { DEFAULT_TRAFFIC_POLICY } from "../core/model.js";
import { MAX_REQUEST_HEAD_BYTES } from "../defaults.js";
import { TurnoutError } from "../errors.js";
import { type MetricsRegistry, registerMetricsRoute } from "./metrics.js";

export interface MetricsListenerOptions {
  registry: MetricsRegistry;
  /** Turnout's package version, reported by `/healthz`. */
  version: string;
  /** The roles this process runs, reported by `/healthz` (a scrape target says what it is). */
  roles: readonly string[];
}

/** The metrics listener's app: `GET /metrics`, `GET /healthz`, and a 404 for anything else. */
export function buildMetricsListener(opts: MetricsListenerOptions): FastifyInstance {
  const headersMs = DEFAULT_TRAFFIC_POLICY.timeouts.requestHeadersSeconds * 1000;
  const app = Fastify({
    logger: false,
    // Nothing here takes a body.
    bodyLimit: 1024,
    return503OnClosing: true,
    serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) => {
      const server = createServer({ maxHeaderSize: MAX_REQUEST_HEAD_BYTES }, handler);
      // A scraper that opens connections and sends nothing does not keep them.
      server.headersTimeout = headersMs;
      server.requestTimeout = 60_000;
      server.keepAliveTimeout = DEFAULT_TRAFFIC_POLICY.timeouts.idleSeconds * 1000;
      return server;
    },
  });
  app.setNotFoundHandler((req, reply) => {
    const err = new TurnoutError(
      "TURNOUT_ERR_API_NOT_FOUND",
      `no route ${req.method} ${req.url}: the metrics listener serves GET /metrics and GET /healthz`,
    );
    return reply.code(err.status).type("application/json").send(err.toJSON());
  });
  app.get("/healthz", async () => ({ ok: true, version: opts.version, roles: opts.roles }));
  registerMetricsRoute(app, opts.registry);
  return app;
}

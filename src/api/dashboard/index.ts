/**
 * The dashboard's side of the API, wired into `buildApi` by one call:
 * - the built page at `/` (static.ts),
 * - sign-in with sessions and one-time codes, CSRF defence (sessions.ts),
 * - the event stream (stream.ts) and the measurement series the charts draw (series.ts).
 *
 * `allows(req, reply)` runs first in the API's auth hook: true lets a request through without
 * a bearer token (the page's shell, the sign-in call, or a live session with, for a change,
 * its CSRF header); false leaves the request to the bearer check, which answers 401.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Store } from "../../store/store.js";
import { registerSeriesRoute } from "./series.js";
import { authenticateSession, registerSessionRoutes, Sessions } from "./sessions.js";
import { isDashboardAssetPath, registerStaticRoutes } from "./static.js";
import { registerStreamRoute } from "./stream.js";

export interface DashboardOptions {
  store: Store;
  token: string;
  /** Wall clock for sessions and the series' "now" (default Date.now). */
  now?: () => number;
  /** The clock routers stamp measurements with (the API's clock), for the series. */
  clockNow?: () => number;
  /** Where the built page is (default the package's dist/web/). */
  webDir?: string;
}

export interface Dashboard {
  sessions: Sessions;
  allows(req: FastifyRequest, reply: FastifyReply): boolean;
}

export function registerDashboard(app: FastifyInstance, opts: DashboardOptions): Dashboard {
  const now = opts.now ?? Date.now;
  const sessions = new Sessions({ token: opts.token, now });
  registerStaticRoutes(app, opts.webDir);
  registerSessionRoutes(app, sessions);
  registerStreamRoute(app, { store: opts.store, token: opts.token });
  registerSeriesRoute(app, { store: opts.store, nowMs: opts.clockNow ?? now });
  return {
    sessions,
    allows(req, reply) {
      const q = req.url.indexOf("?");
      const path = q < 0 ? req.url : req.url.slice(0, q);
      if (isDashboardAssetPath(req.method, path)) return true;
      // Signing in proves itself with the token or a code in the body.
      if (req.method === "POST" && path === "/api/v1/sessions") return true;
      // Sessions are for the admin API only; OFREP, /metrics and /healthz keep their own rules.
      if (!path.startsWith("/api/")) return false;
      return authenticateSession(sessions, req, reply);
    },
  };
}

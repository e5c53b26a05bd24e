/**
 * `GET /api/v1/routers`: the router registry (`turnout get routers`). Every router of a fleet,
 * built-in or HAProxy agent, reports itself with a heartbeat and the route-table revision of
 * each service it serves; the controller stops an instance only once every live one serves a
 * table without it.
 */
import type { FastifyInstance } from "fastify";
import { ROUTER_LIVE_MS, type Store } from "../store/store.js";

export function registerRouterRoutes(app: FastifyInstance, store: Store): void {
  app.get("/api/v1/routers", async () => {
    // Heartbeats are stamped with the routers' wall clocks, so their age is read on one too.
    const now = Date.now();
    const items = (await store.listRouters()).map((r) => {
      const heartbeatAgeMs = Math.max(0, now - r.heartbeatAt);
      return { ...r, heartbeatAgeMs, live: heartbeatAgeMs < ROUTER_LIVE_MS };
    });
    return { items, liveAfterMs: ROUTER_LIVE_MS };
  });
}

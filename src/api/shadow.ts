/**
 * The shadow API:
 *
 *   GET /api/v1/services/:name/shadow[?phase=ID]
 *
 * The mirror in force (`active`: the status a shadow or setMirrorRoute step wrote), the report
 * of the current phase (or of `phase`, or else the latest one) merged over every router, the
 * phases the service has reports for, and this process's router counters (copies, drops by
 * reason). Read-only; an unknown service is a 404.
 */
import type { FastifyInstance } from "fastify";
import { TurnoutError } from "../errors.js";
import type { MirrorStats } from "../router/mirror.js";
import type { ShadowStore } from "../store/shadow-store.js";
import type { Store } from "../store/store.js";

export interface ShadowApiOptions {
  store: Pick<Store, "getResource" | "getStatus">;
  shadow: ShadowStore;
  /** The local router's live counters for the service's mirror. */
  mirrorStats?: (service: string) => MirrorStats | null | Promise<MirrorStats | null>;
}

/** The body of `GET /api/v1/services/:name/shadow`, also read by `turnout status`. */
export async function shadowView(opts: ShadowApiOptions, name: string, phase?: string) {
  const status = await opts.store.getStatus(name);
  const active = status?.shadow ?? null;
  const id = phase ?? active?.id;
  const report = await opts.shadow.report(name, id);
  return {
    service: name,
    active,
    report,
    phases: await opts.shadow.phases(name),
    // A router that cannot answer (its thread restarting) shows as null.
    router: (await Promise.resolve(opts.mirrorStats?.(name)).catch(() => null)) ?? null,
  };
}

export function registerShadowRoutes(app: FastifyInstance, opts: ShadowApiOptions): void {
  app.get<{ Params: { name: string }; Querystring: { phase?: string } }>(
    "/api/v1/services/:name/shadow",
    async (req) => {
      const name = req.params.name;
      const svc = await opts.store.getResource("Service", name);
      if (svc === null || svc === undefined) {
        throw new TurnoutError(
          "TURNOUT_ERR_SERVICE_NOT_FOUND",
          `no service named ${JSON.stringify(name)}`,
          {
            path: "name",
          },
        );
      }
      const phase =
        typeof req.query.phase === "string" && req.query.phase !== "" ? req.query.phase : undefined;
      return shadowView(opts, name, phase);
    },
  );
}

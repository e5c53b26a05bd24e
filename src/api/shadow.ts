/**
 * The shadow API:
 *
 *   GET /api/v1/services/:name/shadow[?phase=ID]
 *   GET /api/v1/services/:name/shadow/history[?phase=ID&since=MS&limit=N]
 *
 * The mirror in force (`active`: the status a shadow or setMirrorRoute step wrote), the report
 * of the current phase (or of `phase`, or else the latest one) merged over every router, the
 * phases the service has reports for, and this process's router counters (copies, drops by
 * reason). `history` is the same phase's comparison over time (one point per routers' flush,
 * oldest first, `ShadowStore.history`): what the dashboard's agreement chart starts from.
 * Read-only; an unknown service is a 404, a malformed `since` or `limit` a 400.
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

/** Points a history answer holds at most (and by default). */
export const SHADOW_HISTORY_LIMIT = 10_000;

/**
 * The body of `GET /api/v1/services/:name/shadow/history`: the points of `phase`, else of the
 * phase in force, else of the latest phase with a report (the phase `shadowView` shows);
 * `phase` is null and `points` empty when there is none.
 */
export async function shadowHistoryView(
  opts: ShadowApiOptions,
  name: string,
  query: { phase?: string; since?: number; limit?: number } = {},
) {
  let phase = query.phase ?? (await opts.store.getStatus(name))?.shadow?.id;
  if (phase === undefined) phase = (await opts.shadow.phases(name))[0]?.id;
  if (phase === undefined) return { service: name, phase: null, points: [] };
  const points = await opts.shadow.history(name, phase, {
    ...(query.since !== undefined ? { since: query.since } : {}),
    limit: query.limit ?? SHADOW_HISTORY_LIMIT,
  });
  return { service: name, phase, points };
}

/** A query parameter that must be a whole number in [min, max] when present. */
function intParam(v: unknown, path: string, min: number, max: number): number | undefined {
  if (v === undefined || v === "") return undefined;
  const n = typeof v === "string" && /^-?\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new TurnoutError(
      "TURNOUT_ERR_API_BAD_REQUEST",
      `${path} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`,
      { path },
    );
  return n;
}

export function registerShadowRoutes(app: FastifyInstance, opts: ShadowApiOptions): void {
  const mustService = async (name: string) => {
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
  };
  const phaseParam = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);

  app.get<{ Params: { name: string }; Querystring: { phase?: string } }>(
    "/api/v1/services/:name/shadow",
    async (req) => {
      const name = req.params.name;
      await mustService(name);
      return shadowView(opts, name, phaseParam(req.query.phase));
    },
  );

  app.get<{
    Params: { name: string };
    Querystring: { phase?: string; since?: string; limit?: string };
  }>("/api/v1/services/:name/shadow/history", async (req) => {
    const name = req.params.name;
    // Parameters first: a malformed one is a 400 whether or not the service exists.
    const since = intParam(req.query.since, "since", 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(req.query.limit, "limit", 1, SHADOW_HISTORY_LIMIT);
    await mustService(name);
    const phase = phaseParam(req.query.phase);
    return shadowHistoryView(opts, name, {
      ...(phase !== undefined ? { phase } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(limit !== undefined ? { limit } : {}),
    });
  });
}

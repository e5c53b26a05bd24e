/**
 * The HTTP API: `/api/v1/` mirrors the CLI one to one, `/healthz` answers without a token.
 *
 * The API writes only what people ask for (resources and commands) and reads the rest; the
 * controller does the work and is the only writer of status and route tables. A command
 * call waits until the controller has taken the command up, so `turnout abort` returns once
 * all traffic is back on stable, and says so.
 */
import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Duplex } from "node:stream";
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from "fastify";
import type { Clock } from "../core/clock.js";
import {
  type CommandType,
  DEFAULT_TRAFFIC_POLICY,
  type Resource,
  type ServiceResource,
} from "../core/model.js";
import { plural } from "../core/plural.js";
import { stepsOf } from "../core/rollout.js";
import { compileStrategy } from "../core/strategies/index.js";
import { MAX_REQUEST_HEAD_BYTES } from "../defaults.js";
import { type ErrorCode, TurnoutError } from "../errors.js";
import { type NotifierApiOptions, registerNotifierRoutes } from "../notify/api.js";
import { checkJson, INPUT_LIMITS } from "../resources/input-limits.js";
import {
  checkReservedListeners,
  crossCheck,
  parseResources,
  type ReservedListener,
} from "../resources/load.js";
import { analysisRefsOf, checkAnalysisRefs } from "../resources/refs.js";
import { checkTraffic, trafficUnsupportedError } from "../resources/traffic.js";
import type { ExperimentStore } from "../store/experiment-store.js";
import type { Store, StoredCommand } from "../store/store.js";
import { versionChangeNotes } from "./apply-notes.js";
import { registerDashboard } from "./dashboard/index.js";
import { registerExperimentRoutes } from "./experiments.js";
import { checkFlagRefs, type FlagsApiOptions, registerFlagsApi } from "./flags.js";
import { registerLogsRoutes } from "./logs.js";
import { isMetricsPath, type MetricsRegistry, registerMetricsRoute } from "./metrics.js";
import {
  isClientKeyPath,
  type OfrepOptions,
  ofrepFastPath,
  ofrepTooLarge,
  registerOfrep,
} from "./ofrep.js";
import { registerRouterRoutes } from "./routers.js";
import { registerShadowRoutes, type ShadowApiOptions, shadowView } from "./shadow.js";

export interface ApiOptions {
  store: Store;
  clock: Clock;
  /** The admin bearer token; every route but /healthz requires it. */
  token: string;
  /** Turnout's package version, reported by /healthz and /api/v1/info. */
  version: string;
  /** Per-version live counters from `turnout up`'s router, shown by `status`. */
  routerStats?: (service: string) => unknown;
  /**
   * The data plane that carries a service when it is not the built-in router (`spec.traffic`):
   * provider, process state, log lines lost (null for the built-in router).
   */
  dataPlane?: (service: string) => Promise<unknown>;
  /** Where `turnout up`'s router listens for a service, and why it cannot (port taken...). */
  routerListener?: (
    service: string,
  ) =>
    | { host: string; port: number; error?: string }
    | undefined
    | Promise<{ host: string; port: number; error?: string } | undefined>;
  /**
   * Resolves true once `turnout up`'s router serves this revision of the service's table (false
   * after its deadline). Commands answer only then, so `abort` returns with traffic on stable.
   */
  routeInForce?: (service: string, revision: number) => Promise<boolean>;
  /** Nudges an in-process controller so a command is taken up at once. */
  wakeController?: () => void;
  /**
   * Listeners of this process that no Service may take (the API's own address when a router
   * runs beside it): `apply` and `validate` refuse such a Service, naming both. `routerHost`:
   * the address that router binds Services on instead of their spec's (`--router-address`).
   */
  reservedListeners?: { list: () => readonly ReservedListener[]; routerHost?: string };
  /** How long a command call waits for the controller before answering 504. */
  commandTimeoutMs?: number;
  /** Request body limit in bytes (default: the input limit, 4 MiB). */
  bodyLimit?: number;
  /**
   * Client-side timeouts: the request headers must arrive within `headersMs` and an idle
   * keep-alive connection is closed after `idleMs` (by default the router's,
   * `DEFAULT_TRAFFIC_POLICY.timeouts`); the whole request, body included, within `requestMs`
   * (default `API_REQUEST_TIMEOUT_MS`).
   */
  timeouts?: { headersMs?: number; idleMs?: number; requestMs?: number };
  logger?: boolean | object;
  /** Served at `GET /metrics` without a token (`createMetricsRegistry`); no route without it. */
  metrics?: MetricsRegistry;
  /** A/B experiments: events, experiment list and results (api/experiments.ts); no routes without. */
  experiments?: ExperimentStore;
  /** Feature flags: OFREP and provider sync (client keys) and the admin flag routes. */
  flags?: { ofrep: OfrepOptions; admin: FlagsApiOptions };
  /** The data dir whose instance logs `GET /api/v1/services/:name/logs` serves; no route without it. */
  logsDir?: string;
  /** A service's runtime instances (state, restarts, last exit), shown by `status`. */
  runtimeInstances?: (service: string) => unknown;
  /** Shadow reports (`GET /api/v1/services/:name/shadow`, api/shadow.ts); no route without. */
  shadow?: Omit<ShadowApiOptions, "store">;
  /** Notifiers and their deliveries (`GET /api/v1/notifiers`, notify/api.ts); no route without. */
  notifiers?: Omit<NotifierApiOptions, "store">;
  /** Serve HTTPS only, with this certificate and key (PEM); plain HTTP when absent. */
  https?: { cert: string | Buffer; key: string | Buffer };
}

const COMMANDS: readonly CommandType[] = ["promote", "abort", "pause", "resume", "retry"];

/** The kinds `DELETE /api/v1/PLURAL/NAME` deletes besides services, by their URL segment. */
const DELETABLE_KINDS = [
  ["analysistemplates", "AnalysisTemplate"],
  ["flags", "Flag"],
  ["segments", "Segment"],
  ["notifiers", "Notifier"],
] as const;

interface CommandBody {
  full?: boolean;
  reason?: string;
  actor?: string;
}

/** The API's largest request head: the router's default, and Node's. */
export const API_MAX_HEADER_BYTES = MAX_REQUEST_HEAD_BYTES;

/**
 * The time a client has to send a whole request, head and body. The API's bodies are small
 * (4 MiB at most, most under a few KiB), so 30 s is ample even on a slow link; Node's default
 * (300 s) let a client that sends a byte now and then hold a connection, and its memory, for
 * five minutes without a token, since authentication waits for the body.
 */
export const API_REQUEST_TIMEOUT_MS = 30_000;

export function buildApi(opts: ApiOptions): FastifyInstance {
  const { store, clock } = opts;
  // OFREP's single evaluations skip fastify's routing (ofrep.ts explains why and what it keeps).
  const fast = opts.flags ? ofrepFastPath(opts.flags.ofrep) : null;
  const bodyLimit = opts.bodyLimit ?? INPUT_LIMITS.maxBytes;
  const headersMs =
    opts.timeouts?.headersMs ?? DEFAULT_TRAFFIC_POLICY.timeouts.requestHeadersSeconds * 1000;
  const idleMs = opts.timeouts?.idleMs ?? DEFAULT_TRAFFIC_POLICY.timeouts.idleSeconds * 1000;
  // Never shorter than the headers' time: Node requires it.
  const requestMs = Math.max(headersMs, opts.timeouts?.requestMs ?? API_REQUEST_TIMEOUT_MS);
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit,
    // Error bodies are ours; fastify's default would leak its own codes.
    return503OnClosing: true,
    clientErrorHandler: (err: Error & { code?: string }, socket: Duplex) =>
      answerClientError(err, socket, { headersMs, requestMs }),
    serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) => {
      const dispatch = fast
        ? (req: IncomingMessage, res: ServerResponse) => {
            if (!fast(req, res)) handler(req, res);
          }
        : handler;
      const serverOptions = {
        maxHeaderSize: API_MAX_HEADER_BYTES,
        // Often enough that a short header timeout is enforced close to its value.
        connectionsCheckingInterval: Math.max(100, Math.min(1000, headersMs / 4)),
      };
      const server = opts.https
        ? createHttpsServer({ ...opts.https, ...serverOptions }, dispatch)
        : createServer(serverOptions, dispatch);
      server.headersTimeout = headersMs;
      server.requestTimeout = requestMs;
      server.keepAliveTimeout = idleMs;
      // Node answers `Expect: 100-continue` with 100 before anyone has looked at the request;
      // a body that is too large must be refused before the client sends it.
      server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
        const length = Number(req.headers["content-length"]);
        if (Number.isFinite(length) && length > bodyLimit) {
          const err = new TurnoutError(
            "TURNOUT_ERR_API_PAYLOAD_TOO_LARGE",
            `the request body (${length} bytes) is larger than the API accepts (${bodyLimit} bytes)`,
          );
          // OFREP clients read OFREP's error shape, not Turnout's.
          if (opts.flags !== undefined && isClientKeyPath(req.url ?? ""))
            return writeJson(res, err.status, ofrepTooLarge(req.url, err.message));
          return writeError(res, err);
        }
        res.writeContinue();
        dispatch(req, res);
      });
      server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) =>
        writeError(
          res,
          new TurnoutError(
            "TURNOUT_ERR_API_EXPECTATION_FAILED",
            `unsupported Expect: ${JSON.stringify(req.headers.expect)}; only 100-continue is supported`,
          ),
        ),
      );
      return server;
    },
  });
  const tokenBuf = Buffer.from(opts.token);

  // YAML (and plain text holding YAML or JSON) arrives as a string and is bounded where it is
  // parsed (resources/load.ts). JSON is bounded before fastify's parser (which keeps its
  // prototype-poisoning checks) sees it: input-limits.ts explains why.
  app.addContentTypeParser(
    ["application/yaml", "application/x-yaml", "text/yaml", "text/plain"],
    { parseAs: "string" },
    (_req, body, done) => done(null, body),
  );
  const jsonParser = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    try {
      checkJson(body as string, { ...INPUT_LIMITS, maxBytes: bodyLimit }, "the request body");
    } catch (err) {
      return done(err as Error, undefined);
    }
    jsonParser(req, body as string, done);
  });

  app.setNotFoundHandler((req, reply) => {
    sendError(
      reply,
      new TurnoutError("TURNOUT_ERR_API_NOT_FOUND", `no route ${req.method} ${req.url}`),
    );
  });

  app.setErrorHandler((err: FastifyError | TurnoutError, _req, reply) => {
    if (err instanceof TurnoutError) return sendError(reply, err);
    const code = (err as FastifyError).code;
    if (code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
      return sendError(
        reply,
        new TurnoutError(
          "TURNOUT_ERR_API_UNSUPPORTED_MEDIA_TYPE",
          `unsupported content type; send application/json or application/yaml`,
        ),
      );
    }
    if (code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return sendError(reply, new TurnoutError("TURNOUT_ERR_API_PAYLOAD_TOO_LARGE", err.message));
    }
    const status = (err as FastifyError).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      return sendError(reply, new TurnoutError("TURNOUT_ERR_API_BAD_REQUEST", err.message));
    }
    app.log.error(err);
    return sendError(
      reply,
      new TurnoutError("TURNOUT_ERR_INTERNAL_BUG", `internal error: ${err.message}`),
    );
  });

  const dashboard = registerDashboard(app, {
    store,
    token: opts.token,
    clockNow: () => clock.now(),
  });
  app.addHook("onRequest", async (req, reply) => {
    if (dashboard.allows(req, reply)) return;
    if (req.url === "/healthz" || req.url.startsWith("/healthz?")) return;
    if (opts.metrics !== undefined && isMetricsPath(req.url)) return;
    // OFREP and flag sync take client keys (checked in ofrep.ts), never the admin token.
    if (opts.flags !== undefined && isClientKeyPath(req.url)) return;
    const h = req.headers.authorization ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(h);
    const given = Buffer.from(m?.[1]?.trim() ?? "");
    if (!m || given.length !== tokenBuf.length || !timingSafeEqual(given, tokenBuf)) {
      throw new TurnoutError(
        "TURNOUT_ERR_AUTH_UNAUTHORIZED",
        m
          ? "wrong bearer token"
          : // Where the token is, not this server's path (the caller may be anyone): the CLI,
            // which knows its data dir, names it.
            "missing bearer token: send Authorization: Bearer <token>, the token in <data dir>/token on Turnout's machine (or the fleet's --token-file)",
      );
    }
  });

  app.get("/healthz", async () => ({ ok: true, version: opts.version }));
  if (opts.metrics !== undefined) registerMetricsRoute(app, opts.metrics);
  if (opts.experiments) registerExperimentRoutes(app, { experiments: opts.experiments, clock });
  if (opts.logsDir !== undefined) registerLogsRoutes(app, { store, dataDir: opts.logsDir });
  if (opts.shadow !== undefined) registerShadowRoutes(app, { ...opts.shadow, store });
  if (opts.notifiers !== undefined) registerNotifierRoutes(app, { ...opts.notifiers, store });
  registerRouterRoutes(app, store);
  if (opts.flags !== undefined) {
    registerOfrep(app, opts.flags.ofrep);
    registerFlagsApi(app, opts.flags.admin);
  }
  app.get("/api/v1/info", async () => ({ version: opts.version, now: clock.now() }));

  // ---- resources ------------------------------------------------------------------------

  const validateBody = async (req: FastifyRequest): Promise<Resource[]> => {
    const resources = bodyToResources(req.body);
    const existing = (await store.listResources("Service")).map((s) => s.resource);
    const templates = (await store.listResources("AnalysisTemplate")).map((t) => t.resource);
    const errors = [
      ...crossCheck(resources, existing),
      ...checkAnalysisRefs(resources, templates, {
        requireKnownTemplates: true,
        storedServices: existing,
      }),
    ];
    // References to flags (Service.flags, setFlag steps, segments), when flags are served.
    if (opts.flags !== undefined) {
      const flags = (await store.listResources("Flag")).map((f) => f.resource);
      const segments = (await store.listResources("Segment")).map((s) => s.name);
      errors.push(...checkFlagRefs(resources, { flags, segments }));
    }
    // No Service may take a port this process listens on itself (its router would not bind it).
    const reserved = opts.reservedListeners;
    if (reserved !== undefined) {
      errors.push(
        ...checkReservedListeners(resources, reserved.list(), {
          ...(reserved.routerHost !== undefined ? { routerHost: reserved.routerHost } : {}),
        }),
      );
    }
    // What each Service's data plane carries (spec.traffic): its own code when alone.
    errors.push(...checkTraffic(resources));
    if (errors.length > 0) throw trafficUnsupportedError(errors) ?? invalid(errors);
    return resources;
  };

  app.post("/api/v1/validate", async (req) => {
    const resources = await validateBody(req);
    return {
      valid: true,
      resources: resources.map((r) => ({ kind: r.kind, name: r.metadata.name })),
    };
  });

  app.post("/api/v1/apply", async (req) => {
    const resources = await validateBody(req);
    const notes = await versionChangeNotes(store, resources);
    const results = await store.applyResources(resources, {
      actor: actorOf(req),
      now: clock.now(),
    });
    opts.wakeController?.();
    return {
      results: results.map((r) => {
        const note = r.kind === "Service" ? notes.get(r.name) : undefined;
        return note !== undefined ? { ...r, note } : r;
      }),
    };
  });

  app.get("/api/v1/services", async () => {
    const services = await store.listResources("Service");
    return {
      items: await Promise.all(
        services.map(async (s) => ({
          name: s.name,
          generation: s.generation,
          resource: s.resource,
          status: await store.getStatus(s.name),
        })),
      ),
    };
  });

  app.get<{ Params: { name: string } }>("/api/v1/services/:name", async (req) => {
    const s = await mustService(req.params.name);
    return {
      name: s.name,
      generation: s.generation,
      resource: s.resource,
      status: await store.getStatus(s.name),
      routeTable: await store.getRouteTable(s.name),
    };
  });

  app.delete<{ Params: { name: string } }>("/api/v1/services/:name", async (req) => {
    await mustService(req.params.name);
    await store.deleteResource("Service", req.params.name, {
      actor: actorOf(req),
      now: clock.now(),
    });
    opts.wakeController?.();
    return { deleted: true, name: req.params.name };
  });

  // Deleting the other kinds: refused while another resource refers to the one named, so that
  // no Service or Flag is left pointing at nothing (a dangling reference would fail only later,
  // at the next rollout or evaluation). A deleted resource keeps its revisions' history.
  for (const [plural, kind] of DELETABLE_KINDS) {
    app.delete<{ Params: { name: string } }>(`/api/v1/${plural}/:name`, async (req) => {
      const name = req.params.name;
      if ((await store.getResource(kind, name)) === null)
        throw new TurnoutError("TURNOUT_ERR_RESOURCE_NOT_FOUND", `no ${kind} named ${name}`, {
          path: "name",
        });
      const users = await referencesTo(kind, name);
      if (users.length > 0)
        throw new TurnoutError(
          "TURNOUT_ERR_RESOURCE_IN_USE",
          `${kind} ${name} is used by ${users.join(", ")}: apply ${users.length === 1 ? "it" : "them"} without it first; nothing was deleted`,
          { kind, name, usedBy: users },
        );
      await store.deleteResource(kind, name, { actor: actorOf(req), now: clock.now() });
      return { deleted: true, kind, name };
    });
  }

  /** "Service/shop (spec.flags)": who refers to the resource, and where. */
  async function referencesTo(kind: string, name: string): Promise<string[]> {
    const users: string[] = [];
    if (kind === "AnalysisTemplate" || kind === "Flag") {
      for (const s of await store.listResources("Service")) {
        const spec = s.resource.spec;
        if (kind === "AnalysisTemplate") {
          const at = analysisRefsOf(spec.strategy)
            .filter((u) => u.ref.templates.includes(name))
            .map((u) => u.path);
          if (at.length > 0) users.push(`Service/${s.name} (${at.join(", ")})`);
        } else {
          const at: string[] = [];
          if (spec.flags?.includes(name)) at.push("spec.flags");
          const steps = compileStrategy(spec).steps;
          if (steps.some((st) => "setFlag" in st && st.setFlag.flag === name))
            at.push("setFlag steps");
          if (at.length > 0) users.push(`Service/${s.name} (${at.join(", ")})`);
        }
      }
    }
    if (kind === "Segment") {
      for (const f of await store.listResources("Flag")) {
        const rules = (f.resource.spec.rules ?? []) as { segments?: string[] }[];
        if (rules.some((r) => r.segments?.includes(name)))
          users.push(`Flag/${f.name} (spec.rules)`);
      }
    }
    return users;
  }

  app.get<{ Params: { name: string } }>("/api/v1/services/:name/status", async (req) =>
    statusView(req.params.name),
  );

  app.get<{ Params: { name: string }; Querystring: { afterId?: string; limit?: string } }>(
    "/api/v1/services/:name/history",
    async (req) => {
      // A deleted service keeps its history.
      const known =
        (await store.getResource("Service", req.params.name)) !== null ||
        (await store.listEvents(req.params.name, { limit: 1 })).length > 0;
      if (!known) throw notFound(req.params.name);
      const afterId = intParam(req.query.afterId, "afterId");
      const limit = intParam(req.query.limit, "limit");
      const events = await store.listEvents(req.params.name, {
        ...(afterId !== undefined ? { afterId } : {}),
        ...(limit !== undefined ? { limit } : {}),
      });
      return { service: req.params.name, events };
    },
  );

  app.get("/api/v1/analysistemplates", async () => {
    const items = await store.listResources("AnalysisTemplate");
    return {
      items: items.map((t) => ({ name: t.name, generation: t.generation, resource: t.resource })),
    };
  });

  // ---- commands -------------------------------------------------------------------------

  for (const type of COMMANDS) {
    app.post<{ Params: { name: string }; Body: CommandBody | undefined }>(
      `/api/v1/services/:name/${type}`,
      async (req, reply) => {
        await mustService(req.params.name);
        const body = commandBody(req.body);
        const cmd = await store.enqueueCommand(
          {
            service: req.params.name,
            type,
            args: type === "promote" ? { full: body.full === true } : {},
            actor: body.actor ?? actorOf(req),
            ...(body.reason ? { reason: body.reason } : {}),
          },
          clock.now(),
        );
        opts.wakeController?.();
        const done = await waitForCommand(cmd.id);
        if (done.result?.outcome === "rejected") {
          throw new TurnoutError("TURNOUT_ERR_ROLLOUT_CONFLICT", done.result.message, {
            command: done.id,
          });
        }
        const inForce = await routerInForce(req.params.name);
        reply.code(200);
        return {
          command: {
            id: done.id,
            type,
            outcome: done.result?.outcome,
            message: `${done.result?.message ?? ""}${inForce?.note ?? ""}`,
          },
          ...(inForce ? { routerInForce: inForce.ok } : {}),
          ...(await statusView(req.params.name)),
        };
      },
    );
  }

  app.post<{ Params: { name: string }; Body: CommandBody | undefined }>(
    "/api/v1/services/:name/undo",
    async (req) => {
      const svc = await mustService(req.params.name);
      const body = commandBody(req.body);
      const status = await store.getStatus(svc.name);
      // During a rollout "previous stable" is the version still serving; after one, the last.
      const target = status?.canaryVersion
        ? status.stableVersion
        : (status?.previousStableVersions[0] ?? null);
      if (!target) {
        throw new TurnoutError(
          "TURNOUT_ERR_ROLLOUT_CONFLICT",
          `${svc.name} has no previous stable version to go back to`,
        );
      }
      if (target === svc.resource.spec.version) {
        throw new TurnoutError(
          "TURNOUT_ERR_ROLLOUT_CONFLICT",
          `${svc.name} already wants ${target}`,
        );
      }
      const next: ServiceResource = structuredClone(svc.resource);
      next.spec.version = target;
      const errors = crossCheck([next], []);
      if (errors.length > 0) throw invalid(errors);
      const actor = body.actor ?? actorOf(req);
      const now = clock.now();
      const [applied] = await store.applyResources([next], { actor, now });
      await store.appendEvents([
        {
          service: svc.name,
          type: "Undo",
          actor,
          message: `undo by ${actor}${body.reason ? ` (${body.reason})` : ""}: desired version ${svc.resource.spec.version} -> ${target}`,
          data: {
            from: svc.resource.spec.version,
            to: target,
            generation: applied?.generation ?? null,
          },
          time: now,
        },
      ]);
      opts.wakeController?.();
      const generation = applied?.generation ?? svc.generation;
      await waitFor(
        async () => ((await store.getStatus(svc.name))?.observedGeneration ?? 0) >= generation,
      );
      const inForce = await routerInForce(svc.name);
      return {
        undo: { from: svc.resource.spec.version, to: target, generation },
        ...(inForce ? { routerInForce: inForce.ok } : {}),
        ...(await statusView(svc.name)),
      };
    },
  );

  // ---- helpers --------------------------------------------------------------------------

  function notFound(name: string): TurnoutError {
    return new TurnoutError(
      "TURNOUT_ERR_SERVICE_NOT_FOUND",
      `no service named ${JSON.stringify(name)}`,
      {
        path: "name",
      },
    );
  }

  async function mustService(name: string) {
    const s = await store.getResource("Service", name);
    if (!s) throw notFound(name);
    return s;
  }

  async function statusView(name: string) {
    const s = await mustService(name);
    const spec = s.resource.spec;
    return {
      service: name,
      generation: s.generation,
      desiredVersion: spec.version,
      strategy: compileStrategy(spec).name,
      steps: stepsOf(spec),
      status: await store.getStatus(name),
      routeTable: await store.getRouteTable(name),
      ...(opts.routerStats ? { traffic: await routerAnswer(() => opts.routerStats?.(name)) } : {}),
      ...(opts.dataPlane ? { dataPlane: (await opts.dataPlane(name)) ?? null } : {}),
      ...(opts.routerListener
        ? { listener: (await routerAnswer(() => opts.routerListener?.(name))) ?? null }
        : {}),
      ...(opts.runtimeInstances ? { instances: opts.runtimeInstances(name) } : {}),
      ...(opts.shadow ? { shadow: await shadowView({ ...opts.shadow, store }, name) } : {}),
      // Which controller leads (several on a shared store) and since when (issue #14).
      controller: await controllerView(),
      now: clock.now(),
    };
  }

  /** The controller lease as stored: who leads, since when, with which epoch. */
  async function controllerView() {
    const l = await store.controllerLease();
    if (l === null) return null;
    return {
      leader: l.released ? null : l.holder,
      epoch: l.epoch,
      since: l.acquiredAt,
      renewedAt: l.renewedAt,
      leaseMs: l.leaseMs,
      released: l.released,
    };
  }

  /**
   * After a command: waits until the router serves the route table the controller wrote for
   * it. On timeout the command has still happened; the answer says the router lags.
   */
  async function routerInForce(name: string): Promise<{ ok: boolean; note: string } | null> {
    if (opts.routeInForce === undefined) return null;
    const table = await store.getRouteTable(name);
    if (table === null) return null;
    const ok = await opts.routeInForce(name, table.revision).catch(() => false);
    return {
      ok,
      note: ok
        ? ""
        : ` (the router has not confirmed route table revision ${table.revision} yet; it applies it when it can)`,
    };
  }

  async function waitForCommand(id: number): Promise<StoredCommand> {
    let cmd: StoredCommand | null = null;
    await waitFor(async () => {
      cmd = await store.getCommand(id);
      return cmd?.handledAt != null;
    });
    return cmd as unknown as StoredCommand;
  }

  /** Waits on store changes (same process) with a short poll as the fallback (other processes). */
  async function waitFor(done: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + (opts.commandTimeoutMs ?? 15_000);
    if (await done()) return;
    await new Promise<void>((resolve, reject) => {
      let busy = false;
      const check = async () => {
        if (busy) return;
        busy = true;
        try {
          if (await done()) return finish();
          if (Date.now() > deadline) {
            return finish(
              new TurnoutError(
                "TURNOUT_ERR_COMMAND_TIMEOUT",
                "the controller did not take the request up in time; it stays queued (is `turnout up` running?)",
              ),
            );
          }
        } catch (err) {
          return finish(err as Error);
        } finally {
          busy = false;
        }
      };
      const timer = setInterval(check, 50);
      const off = store.onChange(() => void check());
      const finish = (err?: Error) => {
        clearInterval(timer);
        off();
        if (err) reject(err);
        else resolve();
      };
    });
  }

  return app;
}

/** A router question for `status`: a router that cannot answer (restarting) shows as null. */
async function routerAnswer<T>(ask: () => T | Promise<T>): Promise<Awaited<T> | null> {
  try {
    return await ask();
  } catch {
    return null;
  }
}

function sendError(reply: FastifyReply, err: TurnoutError) {
  return reply.code(err.status).type("application/json").send(err.toJSON());
}

/** An error answered on node:http before fastify: the body unread, so the connection closes. */
function writeError(res: ServerResponse, err: TurnoutError): void {
  writeJson(res, err.status, err.toJSON());
}

/** A JSON answer written on the raw response, and the connection closed (before any body). */
function writeJson(res: ServerResponse, status: number, json: object): void {
  const body = JSON.stringify(json);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    connection: "close",
  });
  res.end(body);
}

/**
 * Malformed requests, request heads over `API_MAX_HEADER_BYTES` and clients too slow to send
 * their headers or their body, answered in Turnout's error format (fastify's and Node's have
 * their own).
 */
function answerClientError(
  err: Error & { code?: string },
  socket: Duplex,
  timeouts: { headersMs: number; requestMs: number },
): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  // A response already under way on this connection cannot be followed by another.
  const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (!socket.writable || (inFlight?.headersSent ?? false)) {
    socket.destroy();
    return;
  }
  let status = 400;
  let code: ErrorCode = "TURNOUT_ERR_API_BAD_REQUEST";
  let message = `malformed HTTP request (${err.code ?? err.message})`;
  if (err.code === "HPE_HEADER_OVERFLOW") {
    status = 431;
    code = "TURNOUT_ERR_API_HEADERS_TOO_LARGE";
    message = `the request headers are larger than the API accepts (${API_MAX_HEADER_BYTES} bytes)`;
  } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    // Node says the same for both timeouts; a request under way had its headers in time.
    status = 408;
    code = "TURNOUT_ERR_API_CLIENT_TIMEOUT";
    message =
      inFlight != null
        ? `the client did not send the whole request within ${timeouts.requestMs / 1000} s`
        : `the client did not send its request headers within ${timeouts.headersMs / 1000} s`;
  }
  const body = JSON.stringify(new TurnoutError(code, message).toJSON());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      "content-type: application/json; charset=utf-8\r\n" +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `connection: close\r\n\r\n${body}`,
  );
}

function invalid(errors: ReturnType<typeof crossCheck>): TurnoutError {
  const first = errors[0];
  return new TurnoutError(
    "TURNOUT_ERR_RESOURCE_INVALID",
    `${plural(errors.length, "problem")} in the resources${first ? `; first: ${first.path}: ${first.message}` : ""}`,
    { ...(first ? { path: first.path } : {}), errors },
  );
}

/** Body: a YAML/JSON string, a resource object, an array of them, or `{ resources: [...] }`. */
function bodyToResources(body: unknown): Resource[] {
  let text: string;
  if (typeof body === "string") text = body;
  else if (body === undefined || body === null) {
    throw new TurnoutError(
      "TURNOUT_ERR_API_BAD_REQUEST",
      "empty body: send resources as YAML or JSON",
    );
  } else if (typeof body === "object" && !Array.isArray(body) && "resources" in body) {
    text = JSON.stringify((body as { resources: unknown }).resources);
  } else text = JSON.stringify(body);
  if (text.trim() === "")
    throw new TurnoutError(
      "TURNOUT_ERR_API_BAD_REQUEST",
      "empty body: send resources as YAML or JSON",
    );
  const { resources, errors } = parseResources(text, { format: "auto" });
  // An input limit is the whole answer: nothing behind it was parsed.
  const limit = errors.find((e) => e.code !== undefined);
  if (limit?.code !== undefined) {
    throw new TurnoutError(limit.code, `the body ${limit.message.replace(/^the document /, "")}`, {
      path: limit.path,
      ...(limit.line !== undefined ? { line: limit.line, column: limit.column } : {}),
    });
  }
  if (errors.length > 0) {
    const parse = errors.some((e) => /^(YAML|JSON) syntax error/.test(e.message));
    if (parse) {
      throw new TurnoutError(
        "TURNOUT_ERR_RESOURCE_PARSE",
        `cannot parse the body: ${errors[0]?.message}`,
        {
          path: "",
          errors,
        },
      );
    }
    throw invalid(errors);
  }
  if (resources.length === 0)
    throw new TurnoutError("TURNOUT_ERR_API_BAD_REQUEST", "the body holds no resources");
  return resources;
}

function commandBody(body: unknown): CommandBody {
  if (body === undefined || body === null || body === "") return {};
  if (typeof body !== "object" || Array.isArray(body)) {
    throw new TurnoutError(
      "TURNOUT_ERR_API_BAD_REQUEST",
      'the body must be a JSON object like {"reason": "..."}',
    );
  }
  const b = body as Record<string, unknown>;
  const allowed = new Set(["full", "reason", "actor"]);
  for (const k of Object.keys(b)) {
    if (!allowed.has(k)) {
      throw new TurnoutError(
        "TURNOUT_ERR_API_BAD_REQUEST",
        `unknown field ${JSON.stringify(k)}; allowed: full, reason, actor`,
        {
          path: k,
        },
      );
    }
  }
  if (b.full !== undefined && typeof b.full !== "boolean") {
    throw new TurnoutError("TURNOUT_ERR_API_BAD_REQUEST", "full: must be a boolean", {
      path: "full",
    });
  }
  for (const k of ["reason", "actor"] as const) {
    if (b[k] !== undefined && (typeof b[k] !== "string" || (b[k] as string).length > 500)) {
      throw new TurnoutError(
        "TURNOUT_ERR_API_BAD_REQUEST",
        `${k}: must be a string of at most 500 characters`,
        {
          path: k,
        },
      );
    }
  }
  return b as CommandBody;
}

function actorOf(req: FastifyRequest): string {
  const h = req.headers["x-turnout-actor"];
  const v = Array.isArray(h) ? h[0] : h;
  return v && v.length <= 200 ? v : "api";
}

function intParam(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,15}$/.test(v)) {
    throw new TurnoutError(
      "TURNOUT_ERR_API_BAD_REQUEST",
      `${name}: must be a non-negative integer, got ${JSON.stringify(v)}`,
      {
        path: name,
      },
    );
  }
  return Number(v);
}

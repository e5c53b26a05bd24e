/**
 * The composition root: wires store, runtime, router, controller and API by hand (no DI
 * container). `turnout up` and `turnout demo` both start Turnout through `startTurnout`.
 *
 * The parts talk only through the store (routers watch route tables; the controller watches
 * resources and commands), so they split into processes sharing PostgreSQL (DESIGN invariant
 * 6): `startFleetMember` with `roles` (`turnout up --store postgres://... --roles ...`) runs
 * only some of them; `startTurnout` runs all three. The router already
 * runs on its own thread with its own store connection (src/router/worker/), so admin work in
 * this thread never delays a proxied request (invariant 8).
 */
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { type AddressInfo, createServer as createNetServer, isIP } from "node:net";
import { dirname, join, resolve } from "node:path";
import { createSecureContext } from "node:tls";
import pino, { type Logger } from "pino";
import { Registry } from "prom-client";
import {
  createMetricsRegistry,
  mergeMetricFamilies,
  recorderMetricFamilies,
  registerForwardedMetrics,
} from "./api/metrics.js";
import { buildMetricsListener } from "./api/metrics-listener.js";
import { ClientKeys } from "./api/ofrep.js";
import { buildApi } from "./api/server.js";
import { Controller } from "./controller/controller.js";
import { type Clock, systemClock } from "./core/clock.js";
import { trafficKindOf, trafficModeOf } from "./core/traffic.js";
import { lockDataDir, readOnlyError, SERVER_FILE, type ServerRecord } from "./data-dir.js";
import { DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT } from "./defaults.js";
import { TurnoutError } from "./errors.js";
import { StoreMeasurementSource } from "./metrics/measurements.js";
import { NotificationDeliverer } from "./notify/deliverer.js";
import { BUFFER_METRIC_NAMES, withBufferMetrics } from "./router/buffer-metrics.js";
import { MIRROR_METRIC_NAMES } from "./router/mirror-metrics.js";
import { LocalRouterHandle, type RouterHandle } from "./router/worker/handle.js";
import { buildRouterNode } from "./router/worker/node.js";
import { ThreadRouterHandle } from "./router/worker/thread.js";
import { MultiRuntime } from "./runtime/index.js";
import { processStartTicks } from "./runtime/process/proc.js";
import { ProcessRuntime } from "./runtime/process/process-runtime.js";
import { StaticRuntime } from "./runtime/static/static-runtime.js";
import { sqlFeatureStores } from "./store/features.js";
import { FlagSnapshotCache } from "./store/flag-store.js";
import { SqlOutboxStore } from "./store/outbox-store.js";
import { openPostgresStore } from "./store/postgres/postgres-store.js";
import type { SqlStore } from "./store/sql-store.js";
import { openSqliteStore } from "./store/sqlite/sqlite-store.js";
import { ROUTER_LIVE_MS, type Store } from "./store/store.js";
import { TrafficAgent } from "./traffic/agent.js";
import { HaproxyProvider } from "./traffic/haproxy/provider.js";
import { packageVersion } from "./version.js";

export interface TurnoutOptions {
  /** Where the database, token and logs live. Default ./.turnout */
  dataDir?: string;
  /** API host and port. Default 127.0.0.1:4040; port 0 picks a free one. */
  host?: string;
  port?: number;
  clock?: Clock;
  logger?: Logger;
  /** Milliseconds between store polls by the router and controller resyncs. */
  pollIntervalMs?: number;
  /** Serve the API over HTTPS with this certificate and key (PEM files). */
  tls?: { certFile: string; keyFile: string };
  /**
   * Where the built-in router runs: `thread` (default), a worker thread with its own store
   * connection, so no API request or controller tick delays a proxied request (DESIGN
   * invariant 8); or `inline`, this thread. An injected `clock` implies `inline`: the router
   * stamps measurements with it, and a clock object cannot be shared with a thread.
   */
  router?: "thread" | "inline";
  /**
   * The store: a `postgres://USER@HOST:PORT/DB` URL (a fleet's shared store), or undefined for
   * SQLite in the data dir.
   */
  storeUrl?: string;
  /**
   * The admin token the API accepts (a fleet shares one); written to the data dir's token file
   * so that the CLI on this machine finds it. Default: the data dir's token, made on first start.
   */
  token?: string;
  /** A file of flag client keys (one per line) shared by a fleet; default `<dataDir>/flag-keys`. */
  flagKeysFile?: string;
}

/** The parts one `turnout up` process runs (`--roles`). */
export type Role = "api" | "controller" | "router";
export const ROLES: readonly Role[] = ["api", "controller", "router"];

export interface FleetMemberOptions extends TurnoutOptions {
  /** Default all three. Fewer than three need a PostgreSQL store (`parseRoles`). */
  roles?: readonly Role[];
  /** Bind every service's listener on this address instead of the one its spec names. */
  routerAddress?: string;
  /**
   * The controller lease on a shared store (`--lease`): a standby leads at most about this
   * long after the leader's last renewal. Default 5 s (src/controller/lease.ts).
   */
  leaseMs?: number;
  /**
   * Serve `/metrics` and `/healthz` on a listener of their own, at this host and port (port 0
   * picks a free one): `--metrics-address`, whatever the roles, so that a router without the
   * API can be scraped (src/api/metrics-listener.ts).
   */
  metricsAddress?: { host: string; port: number };
}

/** A process of a fleet: what `startTurnout` returns, without the parts its roles leave out. */
export interface RunningFleetMember
  extends Omit<RunningTurnout, "router" | "controller" | "url" | "listen" | "token" | "flags"> {
  roles: readonly Role[];
  /** Null without the `api` role. */
  url: string | null;
  listen: ApiListen | null;
  /** The admin token; null without the `api` role, which alone checks it. */
  token: string | null;
  /** The flag snapshot; a client key for OFREP only with the `api` role (null without). */
  flags: { cache: FlagSnapshotCache; clientKey: string | null };
  router: RouterHandle | null;
  controller: Controller | null;
}

/**
 * Checks `--roles` (a comma-separated list) against the store: an unknown role, or a split of
 * the roles over processes on SQLite, is a usage error (exit 2) saying what is allowed.
 */
export function parseRoles(text: string | undefined, storeUrl: string | undefined): Role[] {
  if (text === undefined) return [...ROLES];
  const given = text
    .split(",")
    .map((r) => r.trim())
    .filter((r) => r !== "");
  const unknown = given.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (given.length === 0 || unknown.length > 0)
    throw new TurnoutError(
      "TURNOUT_ERR_CLI_USAGE",
      `${given.length === 0 ? "--roles is empty" : `unknown role ${unknown.map((r) => JSON.stringify(r)).join(", ")} in --roles`}; the roles are api, controller and router (comma-separated, default all three)`,
      { path: "roles" },
    );
  const roles = ROLES.filter((r) => given.includes(r));
  if (roles.length < ROLES.length && storeUrl === undefined)
    throw new TurnoutError(
      "TURNOUT_ERR_CLI_USAGE",
      `--roles ${roles.join(",")} needs a shared store: with the default SQLite store one process runs all three roles (the data dir's lock admits one process, and routers elsewhere could not reach its file); give --store postgres://USER@HOST:PORT/DB, or leave out --roles`,
      { path: "roles" },
    );
  return roles;
}

/** Where the API listens, as bound (for 0.0.0.0 / :: that is every interface). */
export interface ApiListen {
  protocol: "http" | "https";
  /** The bound address, e.g. "127.0.0.1", "0.0.0.0", "::". */
  address: string;
  port: number;
  /** Bound to 0.0.0.0 or ::: reachable on every interface of the machine. */
  allInterfaces: boolean;
  /** Reachable from other machines (bound beyond loopback). */
  exposed: boolean;
}

export interface RunningTurnout {
  /** The URL for clients on this machine (recorded in server.json). */
  url: string;
  listen: ApiListen;
  /** Where `metricsAddress`'s listener is bound (`http://HOST:PORT`); null without one. */
  metricsUrl: string | null;
  token: string;
  dataDir: string;
  store: Store;
  /** The built-in router (on its own thread unless `router: "inline"`). */
  router: RouterHandle;
  controller: Controller;
  logger: Logger;
  /** Feature flags: the snapshot evaluators use, and a client key for OFREP (`flag-keys`). */
  flags: { cache: FlagSnapshotCache; clientKey: string };
  stop(): Promise<void>;
}

export function createLogger(): Logger {
  const level = process.env.TURNOUT_LOG_LEVEL ?? "info";
  return pino({ level, base: undefined }, pino.destination(2));
}

interface RouterWiring {
  mode: "thread" | "inline";
  store: SqlStore;
  dbPath: string;
  /** A PostgreSQL URL: the router thread opens its own store on it instead of `dbPath`. */
  storeUrl?: string;
  /** Binds every listener on this address instead of the table's (`--router-address`). */
  listenAddress?: string;
  flagCache: FlagSnapshotCache;
  logger: Logger;
  clock: Clock;
  pollIntervalMs: number;
}

/**
 * The built-in router and what it writes to (measurements, exposures, shadow comparisons, edge
 * flags), on its own thread or this one; either way the rest of Turnout only holds the handle.
 */
function routerHandle(w: RouterWiring): RouterHandle {
  if (w.mode === "thread") {
    return new ThreadRouterHandle({
      dbPath: w.dbPath,
      ...(w.storeUrl !== undefined ? { storeUrl: w.storeUrl } : {}),
      ...(w.listenAddress !== undefined ? { listenAddress: w.listenAddress } : {}),
      store: w.store,
      flags: w.flagCache,
      logger: w.logger,
      pollIntervalMs: w.pollIntervalMs,
    });
  }
  const node = buildRouterNode({
    store: w.store,
    flags: w.flagCache,
    logger: w.logger.child({ part: "router" }),
    pollIntervalMs: w.pollIntervalMs,
    ...(w.listenAddress !== undefined ? { listenAddress: w.listenAddress } : {}),
    // Seconds stamped by the same clock the controller (and so analysis) reads windows with;
    // the router's own (cheaper) reading of the system clock when that is the clock.
    // With an injected clock (tests, the simulator) a second ends when the clock says so, not
    // after a real one: flush at the poll interval, so that whoever advances the clock does
    // not wait a real second per simulated one for the measurements.
    ...(w.clock === systemClock
      ? {}
      : { now: () => w.clock.now(), flushIntervalMs: w.pollIntervalMs }),
  });
  return new LocalRouterHandle(node.router, node.source, node.collect);
}

/**
 * `/metrics`: the router's families come from the router (its thread), the rest from here; the
 * services HAProxy carries join the same families from HAProxy's measurements, and what HAProxy's
 * data plane holds for the store joins the router's buffer families. The store's gauges only
 * with `store` (see `MetricsOptions.store`).
 */
function routerMetrics(
  store: Store | undefined,
  router: RouterHandle,
  haproxy: HaproxyProvider | null,
) {
  const haproxyFamilies = haproxy !== null ? recorderMetricFamilies(haproxy.measurements) : null;
  const haproxyBuffers = haproxy !== null ? withBufferMetrics(new Registry(), haproxy) : null;
  const collect =
    haproxyFamilies === null || haproxyBuffers === null
      ? () => router.metrics()
      : async () =>
          mergeMetricFamilies(
            // A router thread that does not answer leaves HAProxy's services still counted.
            await router.metrics().catch(() => []),
            await haproxyFamilies(),
            await haproxyBuffers.getMetricsAsJSON(),
          );
  const registry = createMetricsRegistry({
    ...(store !== undefined ? { store } : {}),
    routerMetrics: collect,
  });
  // After the process metrics, where they have always been printed.
  registerForwardedMetrics(registry, [...MIRROR_METRIC_NAMES, ...BUFFER_METRIC_NAMES], collect);
  return registry;
}

/** Reads the admin token, or makes one (mode 0600) on first start. */
export function ensureToken(dataDir: string): string {
  const file = join(dataDir, "token");
  if (existsSync(file)) {
    const t = readFileSync(file, "utf8").trim();
    if (t.length > 0) return t;
  }
  const token = randomBytes(24).toString("base64url");
  try {
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  } catch (err) {
    throw readOnlyError(dataDir, err, file) ?? err;
  }
  return token;
}

/**
 * Starts Turnout on a data dir. The data dir's lock comes first, before anything reads or
 * writes its contents: a second Turnout on the same data dir fails with
 * TURNOUT_ERR_DATA_DIR_LOCKED and touches nothing (see data-dir.ts). A start that fails
 * leaves the data dir as it found it: the API's port is tried before anything is written, and
 * whatever this start created (the data dir itself, a token, a database) is removed.
 */
export async function startTurnout(opts: TurnoutOptions = {}): Promise<RunningTurnout> {
  // All three roles: the router, the controller and the API are all there.
  return (await startFleetMember(opts)) as RunningTurnout;
}

/** `startTurnout` with `--roles` and `--router-address`: one process of a fleet. */
export async function startFleetMember(opts: FleetMemberOptions = {}): Promise<RunningFleetMember> {
  if (opts.router === "thread" && opts.clock !== undefined && opts.clock !== systemClock) {
    throw new Error(
      'startTurnout: router "thread" stamps measurements with the system clock; an injected clock needs router "inline"',
    );
  }
  const dataDir = resolve(opts.dataDir ?? process.env.TURNOUT_DATA_DIR ?? DEFAULT_DATA_DIR);
  const logger = opts.logger ?? createLogger();
  const tls = opts.tls ? loadTls(opts.tls) : undefined;
  // The usual failure (another program on a port) is found before the data dir is written,
  // a database migrated or instances left by a killed Turnout adopted.
  const port = opts.port ?? DEFAULT_PORT;
  if ((opts.roles ?? ROLES).includes("api") && port !== 0)
    await checkPortFree(opts.host ?? DEFAULT_HOST, port);
  if (opts.metricsAddress !== undefined && opts.metricsAddress.port !== 0)
    await checkPortFree(opts.metricsAddress.host, opts.metricsAddress.port);
  const created = firstMissing(dataDir);
  const lock = lockDataDir(dataDir, logger);
  const found = new Set(readdirSync(dataDir));
  try {
    const t = await startLocked(opts, dataDir, logger, tls);
    const stop = t.stop;
    return { ...t, stop: () => stop().finally(() => lock.release()) };
  } catch (err) {
    lock.release();
    removeCreated(dataDir, found, created);
    throw err;
  }
}

/** Binds and closes `host:port`, so that a taken port fails with the listen error at once. */
async function checkPortFree(host: string, port: number): Promise<void> {
  const probe = createNetServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", reject);
    probe.listen({ host, port, exclusive: true }, () => resolve());
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

/** The first of `dir` and its ancestors that does not exist, top-most; undefined if it does. */
function firstMissing(dir: string): string | undefined {
  let missing: string | undefined;
  for (let d = dir; !existsSync(d); d = dirname(d)) {
    missing = d;
    if (dirname(d) === d) break;
  }
  return missing;
}

/**
 * After a failed start, with the lock released: removes the data dir's entries that were not
 * there when the lock was taken, then the directories this start created, if they are empty.
 * Best effort: the start's own error is what the caller reports.
 */
function removeCreated(dataDir: string, found: Set<string>, created: string | undefined): void {
  try {
    for (const name of readdirSync(dataDir))
      if (!found.has(name)) rmSync(join(dataDir, name), { recursive: true, force: true });
    if (created === undefined) return;
    for (let d = dataDir; ; d = dirname(d)) {
      rmdirSync(d);
      if (d === created) break;
    }
  } catch {
    // Left as it is: not empty (someone else's file), or not ours to remove.
  }
}

async function startLocked(
  opts: FleetMemberOptions,
  dataDir: string,
  logger: Logger,
  tls: LoadedTls | undefined,
): Promise<RunningFleetMember> {
  const clock = opts.clock ?? systemClock;
  const roles = opts.roles ?? ROLES;
  const has = (r: Role) => roles.includes(r);
  // A shared flag keys file is read before the store opens: a bad one fails at once. Only the
  // API checks the token and serves OFREP: a process without it has neither, and writes none.
  const sharedKeys =
    has("api") && opts.flagKeysFile !== undefined ? sharedClientKeys(opts.flagKeysFile) : undefined;
  const dbFile = join(dataDir, "turnout.db");
  const store: SqlStore =
    opts.storeUrl !== undefined
      ? await openPostgresStore({
          url: opts.storeUrl,
          applicationName: `turnout ${roles.join(",")}`,
        })
      : await openSqliteStore({ path: dbFile }).catch((err: unknown) => {
          throw readOnlyError(dataDir, err, dbFile) ?? err;
        });
  // The token and keys are written once the store is open: a store that cannot be reached,
  // refuses the credentials or has a newer schema leaves the data dir as it was.
  let credentials: { token: string; clientKeys: ClientKeys } | null = null;
  try {
    if (has("api"))
      credentials = {
        token: opts.token !== undefined ? writeToken(dataDir, opts.token) : ensureToken(dataDir),
        clientKeys: sharedKeys ?? ClientKeys.ensure(dataDir),
      };
  } catch (err) {
    await store.close();
    throw err;
  }
  // The feature stores share the core store's database and transactions (src/store/features.ts).
  const { experiments, shadow, flags: flagStore } = sqlFeatureStores(store);
  // Instances are the controller's: a process without it starts and adopts none.
  const runtime = has("controller")
    ? new MultiRuntime({
        static: new StaticRuntime(),
        process: new ProcessRuntime({ logger: logger.child({ part: "runtime" }), dataDir }),
      })
    : null;
  // Flags: one snapshot for OFREP, the flag API and the router's edge evaluation.
  const flagCache = new FlagSnapshotCache(flagStore, { pollMs: opts.pollIntervalMs ?? 1000 });
  await flagCache.start();
  const router = has("router")
    ? routerHandle({
        mode: opts.router ?? (clock === systemClock ? "thread" : "inline"),
        store,
        dbPath: dbFile,
        ...(opts.storeUrl !== undefined ? { storeUrl: opts.storeUrl } : {}),
        ...(opts.routerAddress !== undefined ? { listenAddress: opts.routerAddress } : {}),
        flagCache,
        logger,
        clock,
        pollIntervalMs: opts.pollIntervalMs ?? 500,
      })
    : null;
  // Services with `spec.traffic: {haproxy}` are carried by HAProxy: an agent hands it their
  // tables and reports what is in force to the router registry, like the built-in router. It is
  // a router: it runs with the `router` role only.
  const haproxy = has("router")
    ? new HaproxyProvider({
        dataDir,
        logger: logger.child({ part: "haproxy" }),
        measurements: { sink: store, ...(clock === systemClock ? {} : { now: () => clock.now() }) },
        exposures: experiments,
      })
    : null;
  const traffic =
    haproxy !== null
      ? new TrafficAgent({
          source: store,
          provider: haproxy,
          select: (t) => trafficKindOf(t.traffic) === "haproxy",
          logger: logger.child({ part: "traffic" }),
          pollIntervalMs: opts.pollIntervalMs ?? 500,
        })
      : null;
  const carriedByHaproxy = async (service: string) =>
    trafficKindOf((await store.getRouteTable(service))?.traffic) === "haproxy";
  const controller =
    runtime !== null
      ? new Controller({
          store,
          runtime,
          clock,
          logger: logger.child({ part: "controller" }),
          resyncMs: opts.pollIntervalMs ?? 1000,
          // Analysis reads what routers flushed to the store, as it would with routers elsewhere.
          providers: { measurements: new StoreMeasurementSource(store) },
          experiments,
          shadowReports: async (service, id) => (await shadow.report(service, id))?.report ?? null,
          // On a shared store any number of controllers may run: one leads by a lease, the
          // others stand by (src/controller/lease.ts). SQLite's data dir lock admits one.
          ...(opts.storeUrl !== undefined
            ? {
                lease: { ...(opts.leaseMs !== undefined ? { leaseMs: opts.leaseMs } : {}) },
                onLeadership: (leading: boolean) => {
                  // Only the leader delivers notifications (each outbox row once).
                  if (leading) deliverer?.start();
                  else void deliverer?.pause();
                },
              }
            : {}),
        })
      : null;
  // Notifications go out beside the controller, never inside its tick (src/notify/).
  const outbox = new SqlOutboxStore(store);
  const deliverer =
    controller !== null
      ? new NotificationDeliverer({
          outbox,
          notifiers: async () => (await store.listResources("Notifier")).map((r) => r.resource),
          clock,
          logger: logger.child({ part: "notify" }),
          pollMs: opts.pollIntervalMs ?? 1000,
        })
      : null;
  // One registry for the process, served by the API and by the metrics listener. The store's
  // gauges (weights, phases) come with the API: a fleet reports them once, from its API
  // processes, and scraping a router never reads the store.
  const storeGauges = has("api") ? store : undefined;
  const metrics =
    router !== null
      ? routerMetrics(storeGauges, router, haproxy)
      : createMetricsRegistry(storeGauges !== undefined ? { store: storeGauges } : {});
  const metricsListener =
    opts.metricsAddress !== undefined
      ? buildMetricsListener({ registry: metrics, version: packageVersion(), roles })
      : null;
  // Known once the API (and the metrics listener) listen; `apply` reads them to refuse a
  // Service on their ports.
  let listen: ApiListen | null = null;
  let metricsListen: ApiListen | null = null;
  const api = credentials
    ? buildApi({
        store,
        notifiers: { outbox },
        clock,
        token: credentials.token,
        version: packageVersion(),
        ...(router !== null && haproxy !== null && traffic !== null
          ? {
              routerStats: async (service: string) =>
                (await carriedByHaproxy(service))
                  ? haproxy.measurements.stats(service)
                  : router.stats(service),
              routerListener: async (service: string) =>
                (await router.listeners()).find((l) => l.service === service),
              dataPlane: async (service: string) => {
                const mode = trafficModeOf((await store.getRouteTable(service))?.traffic);
                if (mode === "builtin") return null;
                const process = haproxy.status().find((x) => x.service === service) ?? null;
                const refused = traffic.outcomes().find((o) => o.service === service && !o.ok);
                return {
                  provider: "haproxy",
                  // Known from the spec too, before (or without) a table in force.
                  mode: process?.mode ?? (mode === "haproxyAttach" ? "attach" : "managed"),
                  ...(process ? { revision: process.revision } : {}),
                  process: process?.process ?? null,
                  draining: process?.draining ?? 0,
                  // HAProxy's log intake is shared by the services it carries: lost lines are
                  // never silent, and analysis reads missing data as inconclusive, never a pass.
                  // An attached HAProxy sends Turnout no log: nothing to count there.
                  ...(mode === "haproxy" ? { intake: haproxy.intakeStats() } : {}),
                  refused: refused && !refused.ok ? refused.error.message : null,
                };
              },
              routeInForce: async (service: string, revision: number) =>
                (await carriedByHaproxy(service))
                  ? traffic.inForce(service, revision)
                  : router.inForce(service, revision),
            }
          : // Routers elsewhere: a command answers once every live router in the registry serves it.
            {
              routeInForce: (service: string, revision: number) =>
                fleetInForce(store, service, revision),
            }),
        logsDir: dataDir,
        // The API's and metrics listener's ports, when this process's router binds Services too.
        ...(router !== null
          ? {
              reservedListeners: {
                list: () => [
                  ...(listen === null
                    ? []
                    : [{ host: listen.address, port: listen.port, what: "the Turnout API" }]),
                  ...(metricsListen === null
                    ? []
                    : [
                        {
                          host: metricsListen.address,
                          port: metricsListen.port,
                          what: "Turnout's metrics listener (--metrics-address)",
                        },
                      ]),
                ],
                ...(opts.routerAddress !== undefined ? { routerHost: opts.routerAddress } : {}),
              },
            }
          : {}),
        ...(runtime !== null
          ? { runtimeInstances: (service: string) => runtime.instances(service) }
          : {}),
        ...(controller !== null
          ? { wakeController: () => void controller.tick().catch(() => undefined) }
          : {}),
        experiments,
        shadow: {
          shadow,
          mirrorStats: async (service) => (router !== null ? router.mirrorStats(service) : null),
        },
        metrics,
        flags: {
          ofrep: { flags: flagCache, clientKeys: credentials.clientKeys },
          admin: {
            flags: flagStore,
            // A flag change answers once the router's edge evaluates it too.
            cache: {
              get current() {
                return flagCache.current;
              },
              refresh: async () => {
                const s = await flagCache.refresh();
                await router?.flagsInForce();
                return s;
              },
            },
            clock,
          },
        },
        ...(tls ? { https: { cert: tls.cert, key: tls.key } } : {}),
      })
    : null;

  const wakeDeliverer = deliverer !== null ? store.onChange(() => deliverer.wake()) : () => {};
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      await api?.close().catch(() => undefined);
      await metricsListener?.close().catch(() => undefined);
      flagCache.stop();
      wakeDeliverer();
      await deliverer?.stop();
      await controller?.stop();
      await traffic?.stop();
      await router?.stop();
      await runtime?.shutdown();
      await store.close();
      rmSync(join(dataDir, SERVER_FILE), { force: true });
    })();
    return stopping;
  };

  let url: string | null = null;
  let metricsUrl: string | null = null;
  try {
    // Instances left by a Turnout that was killed are adopted and probed once before the
    // controller's first tick, so its first route table already has them.
    await runtime?.adopted();
    await router?.start();
    await traffic?.start();
    controller?.start();
    if (controller?.elector == null) deliverer?.start();
    if (api !== null) {
      const host = opts.host ?? DEFAULT_HOST;
      const port = opts.port ?? DEFAULT_PORT;
      await api.listen({ host, port });
      listen = boundAddress(api.server.address() as AddressInfo, tls !== undefined);
      url = localUrl(listen, host);
    }
    if (metricsListener !== null && opts.metricsAddress !== undefined) {
      const { host } = opts.metricsAddress;
      await metricsListener.listen(opts.metricsAddress);
      metricsListen = boundAddress(metricsListener.server.address() as AddressInfo, false);
      metricsUrl = localUrl(metricsListen, host);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  if (url !== null && listen !== null) {
    const startTicks = processStartTicks(process.pid);
    const record: ServerRecord = {
      url,
      pid: process.pid,
      ...(startTicks !== undefined ? { startTicks } : {}),
      ...(tls ? { tlsCert: tls.certFile } : {}),
    };
    writeFileSync(join(dataDir, SERVER_FILE), `${JSON.stringify(record, null, 2)}\n`);
  }
  logger.info({ url, metricsUrl, dataDir, listen, roles }, "turnout is up");
  if (listen?.exposed && !tls) {
    logger.warn(
      { listen },
      "the API and /metrics are reachable from the network in plain HTTP (the admin token and all traffic unencrypted); serve HTTPS with --tls-cert FILE --tls-key FILE, or keep --host 127.0.0.1",
    );
  }

  const flags = {
    cache: flagCache,
    clientKey: credentials !== null ? (credentials.clientKeys.first() ?? "") : null,
  };
  const token = credentials?.token ?? null;
  return {
    roles,
    url,
    listen,
    metricsUrl,
    token,
    dataDir,
    store,
    router,
    controller,
    logger,
    flags,
    stop,
  };
}

/**
 * A route table revision is in force in a fleet once every live router in the registry serves
 * it or a later one (the API of a process without a router answers commands then). Polled,
 * since the registry changes by heartbeats; false after 5 s, like a local router's `inForce`.
 */
async function fleetInForce(store: Store, service: string, revision: number): Promise<boolean> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const now = Date.now();
    const live = (await store.listRouters()).filter((r) => now - r.heartbeatAt < ROUTER_LIVE_MS);
    if (live.every((r) => (r.revisions[service] ?? revision) >= revision)) return true;
    if (now > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Writes a fleet's token to the data dir's token file (mode 0600), for this machine's CLI. */
function writeToken(dataDir: string, token: string): string {
  const file = join(dataDir, "token");
  try {
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  } catch (err) {
    throw readOnlyError(dataDir, err, file) ?? err;
  }
  return token;
}

/** A fleet's flag client keys file: read now, so a missing or empty one fails at start. */
function sharedClientKeys(file: string): ClientKeys {
  const path = resolve(file);
  let keys: string[];
  try {
    keys = readFileSync(path, "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
  } catch (err) {
    throw new TurnoutError(
      "TURNOUT_ERR_CLI_USAGE",
      `cannot read --flag-keys-file ${path}: ${(err as Error).message}`,
      { path: "flag-keys-file" },
    );
  }
  if (keys.length === 0)
    throw new TurnoutError(
      "TURNOUT_ERR_CLI_USAGE",
      `--flag-keys-file ${path} has no key (one key a line; # starts a comment)`,
      { path: "flag-keys-file" },
    );
  return new ClientKeys(path);
}

interface LoadedTls {
  certFile: string;
  cert: Buffer;
  key: Buffer;
}

/** Reads and checks the API's certificate and key up front, so a bad pair fails at once. */
function loadTls(files: { certFile: string; keyFile: string }): LoadedTls {
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new TurnoutError(
        "TURNOUT_ERR_TLS_CONFIG",
        `cannot read the TLS ${what} ${file}: ${(err as Error).message}`,
        { path: file },
      );
    }
  };
  const certFile = resolve(files.certFile);
  const cert = read(certFile, "certificate (--tls-cert)");
  const key = read(resolve(files.keyFile), "key (--tls-key)");
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new TurnoutError(
      "TURNOUT_ERR_TLS_CONFIG",
      `the TLS certificate ${certFile} and key ${files.keyFile} cannot be used together: ${(err as Error).message}`,
    );
  }
  return { certFile, cert, key };
}

function boundAddress(a: AddressInfo, tls: boolean): ApiListen {
  const allInterfaces = a.address === "0.0.0.0" || a.address === "::";
  const loopback =
    /^127\./.test(a.address) || a.address === "::1" || a.address === "::ffff:127.0.0.1";
  return {
    protocol: tls ? "https" : "http",
    address: a.address,
    port: a.port,
    allInterfaces,
    exposed: !loopback,
  };
}

/**
 * The URL a client on this machine uses: loopback for every-interface binds and "localhost"
 * (which fastify binds on all its loopback addresses), the name itself when the API was told
 * a host name (a TLS certificate names hosts, not the address they resolve to).
 */
function localUrl(l: ApiListen, host: string): string {
  let h: string;
  if (l.allInterfaces || host === "localhost") h = "127.0.0.1";
  else if (isIP(host) === 0) h = host;
  else h = l.address.includes(":") ? `[${l.address}]` : l.address;
  return `${l.protocol}://${h}:${l.port}`;
}

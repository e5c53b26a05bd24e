/**
 * The composition root: wires store, runtime, router, controller and API by hand (no DI
 * container). `turnout up` and `turnout demo` both start Turnout through `startTurnout`.
 *
 * Everything runs in one process today, but the parts talk only through the store (routers
 * watch route tables; the controller watches resources and commands), so they can be split
 * into separate processes sharing PostgreSQL later (DESIGN invariant 6). The router already
 * runs on its own thread with its own store connection (src/router/worker/), so admin work in
 * this thread never delays a proxied request (invariant 8).
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, isIP } from "node:net";
import { join, resolve } from "node:path";
import { createSecureContext } from "node:tls";
import pino, { type Logger } from "pino";
import { createMetricsRegistry, registerForwardedMetrics } from "./api/metrics.js";
import { ClientKeys } from "./api/ofrep.js";
import { buildApi } from "./api/server.js";
import { Controller } from "./controller/controller.js";
import { type Clock, systemClock } from "./core/clock.js";
import { trafficKindOf } from "./core/traffic.js";
import { lockDataDir, readOnlyError, SERVER_FILE, type ServerRecord } from "./data-dir.js";
import { DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT } from "./defaults.js";
import { TurnoutError } from "./errors.js";
import { StoreMeasurementSource } from "./metrics/measurements.js";
import { NotificationDeliverer } from "./notify/deliverer.js";
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
import type { SqlStore } from "./store/sql-store.js";
import { openSqliteStore } from "./store/sqlite/sqlite-store.js";
import type { Store } from "./store/store.js";
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
    // Seconds stamped by the same clock the controller (and so analysis) reads windows with;
    // the router's own (cheaper) reading of the system clock when that is the clock.
    ...(w.clock === systemClock ? {} : { now: () => w.clock.now() }),
  });
  return new LocalRouterHandle(node.router, node.source, node.collect);
}

/** `/metrics`: the router's families come from the router (its thread), the rest from here. */
function routerMetrics(store: Store, router: RouterHandle) {
  const collect = () => router.metrics();
  const registry = createMetricsRegistry({ store, routerMetrics: collect });
  // After the process metrics, where they have always been printed.
  registerForwardedMetrics(registry, MIRROR_METRIC_NAMES, collect);
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
 * TURNOUT_ERR_DATA_DIR_LOCKED and touches nothing (see data-dir.ts).
 */
export async function startTurnout(opts: TurnoutOptions = {}): Promise<RunningTurnout> {
  if (opts.router === "thread" && opts.clock !== undefined && opts.clock !== systemClock) {
    throw new Error(
      'startTurnout: router "thread" stamps measurements with the system clock; an injected clock needs router "inline"',
    );
  }
  const dataDir = resolve(opts.dataDir ?? process.env.TURNOUT_DATA_DIR ?? DEFAULT_DATA_DIR);
  const logger = opts.logger ?? createLogger();
  const tls = opts.tls ? loadTls(opts.tls) : undefined;
  const lock = lockDataDir(dataDir, logger);
  try {
    const t = await startLocked(opts, dataDir, logger, tls);
    const stop = t.stop;
    return { ...t, stop: () => stop().finally(() => lock.release()) };
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function startLocked(
  opts: TurnoutOptions,
  dataDir: string,
  logger: Logger,
  tls: LoadedTls | undefined,
): Promise<RunningTurnout> {
  const clock = opts.clock ?? systemClock;
  const token = ensureToken(dataDir);
  const dbFile = join(dataDir, "turnout.db");
  const store = await openSqliteStore({ path: dbFile }).catch((err: unknown) => {
    throw readOnlyError(dataDir, err, dbFile) ?? err;
  });
  // The feature stores share the core store's database and transactions (src/store/features.ts).
  const { experiments, shadow, flags: flagStore } = sqlFeatureStores(store);
  const runtime = new MultiRuntime({
    static: new StaticRuntime(),
    process: new ProcessRuntime({ logger: logger.child({ part: "runtime" }), dataDir }),
  });
  // Flags: one snapshot for OFREP, the flag API and the router's edge evaluation.
  const flagCache = new FlagSnapshotCache(flagStore, { pollMs: opts.pollIntervalMs ?? 1000 });
  await flagCache.start();
  const clientKeys = ClientKeys.ensure(dataDir);
  const router = routerHandle({
    mode: opts.router ?? (clock === systemClock ? "thread" : "inline"),
    store,
    dbPath: join(dataDir, "turnout.db"),
    flagCache,
    logger,
    clock,
    pollIntervalMs: opts.pollIntervalMs ?? 500,
  });
  // Services with `spec.traffic: {haproxy}` are carried by HAProxy: an agent hands it their
  // tables and reports what is in force to the router registry, like the built-in router.
  const haproxy = new HaproxyProvider({
    dataDir,
    logger: logger.child({ part: "haproxy" }),
    measurements: { sink: store, ...(clock === systemClock ? {} : { now: () => clock.now() }) },
    exposures: experiments,
  });
  const traffic = new TrafficAgent({
    source: store,
    provider: haproxy,
    select: (t) => trafficKindOf(t.traffic) === "haproxy",
    logger: logger.child({ part: "traffic" }),
    pollIntervalMs: opts.pollIntervalMs ?? 500,
  });
  const carriedByHaproxy = async (service: string) =>
    trafficKindOf((await store.getRouteTable(service))?.traffic) === "haproxy";
  const controller = new Controller({
    store,
    runtime,
    clock,
    logger: logger.child({ part: "controller" }),
    resyncMs: opts.pollIntervalMs ?? 1000,
    // Analysis reads what routers flushed to the store, as it would with routers elsewhere.
    providers: { measurements: new StoreMeasurementSource(store) },
    experiments,
    shadowReports: async (service, id) => (await shadow.report(service, id))?.report ?? null,
  });
  // Notifications go out beside the controller, never inside its tick (src/notify/).
  const outbox = new SqlOutboxStore(store);
  const deliverer = new NotificationDeliverer({
    outbox,
    notifiers: async () => (await store.listResources("Notifier")).map((r) => r.resource),
    clock,
    logger: logger.child({ part: "notify" }),
    pollMs: opts.pollIntervalMs ?? 1000,
  });
  const api = buildApi({
    store,
    notifiers: { outbox },
    clock,
    token,
    version: packageVersion(),
    routerStats: async (service) =>
      (await carriedByHaproxy(service))
        ? haproxy.measurements.stats(service)
        : router.stats(service),
    routerListener: async (service) =>
      (await router.listeners()).find((l) => l.service === service),
    dataPlane: async (service) => {
      if (!(await carriedByHaproxy(service))) return null;
      const process = haproxy.status().find((x) => x.service === service) ?? null;
      const refused = traffic.outcomes().find((o) => o.service === service && !o.ok);
      return {
        provider: "haproxy",
        ...(process ? { mode: process.mode, revision: process.revision } : {}),
        process: process?.process ?? null,
        draining: process?.draining ?? 0,
        // HAProxy's log intake is shared by the services it carries: lost lines are never
        // silent, and analysis reads missing data as inconclusive, never as a pass.
        intake: haproxy.intakeStats(),
        refused: refused && !refused.ok ? refused.error.message : null,
      };
    },
    routeInForce: async (service, revision) =>
      (await carriedByHaproxy(service))
        ? traffic.inForce(service, revision)
        : router.inForce(service, revision),
    logsDir: dataDir,
    runtimeInstances: (service) => runtime.instances(service),
    wakeController: () => void controller.tick().catch(() => undefined),
    experiments,
    shadow: { shadow, mirrorStats: (service) => router.mirrorStats(service) },
    metrics: routerMetrics(store, router),
    flags: {
      ofrep: { flags: flagCache, clientKeys },
      admin: {
        flags: flagStore,
        // A flag change answers once the router's edge evaluates it too.
        cache: {
          get current() {
            return flagCache.current;
          },
          refresh: async () => {
            const s = await flagCache.refresh();
            await router.flagsInForce();
            return s;
          },
        },
        clock,
      },
    },
    ...(tls ? { https: { cert: tls.cert, key: tls.key } } : {}),
  });

  // Instances left by a Turnout that was killed are adopted and probed once before the
  // controller's first tick, so its first route table already has them.
  await runtime.adopted();
  await router.start();
  await traffic.start();
  controller.start();
  deliverer.start();
  const wakeDeliverer = store.onChange(() => deliverer.wake());
  const host = opts.host ?? DEFAULT_HOST;
  const port = opts.port ?? DEFAULT_PORT;
  try {
    await api.listen({ host, port });
  } catch (err) {
    flagCache.stop();
    wakeDeliverer();
    await deliverer.stop();
    await controller.stop();
    await traffic.stop();
    await router.stop();
    await runtime.shutdown();
    await store.close();
    throw err;
  }
  const listen = boundAddress(api.server.address() as AddressInfo, tls !== undefined);
  const url = localUrl(listen, host);
  const startTicks = processStartTicks(process.pid);
  const record: ServerRecord = {
    url,
    pid: process.pid,
    ...(startTicks !== undefined ? { startTicks } : {}),
    ...(tls ? { tlsCert: tls.certFile } : {}),
  };
  writeFileSync(join(dataDir, SERVER_FILE), `${JSON.stringify(record, null, 2)}\n`);
  logger.info({ url, dataDir, listen }, "turnout is up");
  if (listen.exposed && !tls) {
    logger.warn(
      { listen },
      "the API and /metrics are reachable from the network in plain HTTP; give --tls-cert and --tls-key, or listen on 127.0.0.1",
    );
  }

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      await api.close().catch(() => undefined);
      flagCache.stop();
      wakeDeliverer();
      await deliverer.stop();
      await controller.stop();
      await traffic.stop();
      await router.stop();
      await runtime.shutdown();
      await store.close();
      rmSync(join(dataDir, SERVER_FILE), { force: true });
    })();
    return stopping;
  };
  const flags = { cache: flagCache, clientKey: clientKeys.first() ?? "" };
  return { url, listen, token, dataDir, store, router, controller, logger, flags, stop };
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

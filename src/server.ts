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
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import pino, { type Logger } from "pino";
import { createMetricsRegistry, registerForwardedMetrics } from "./api/metrics.js";
import { ClientKeys } from "./api/ofrep.js";
import { buildApi } from "./api/server.js";
import { Controller } from "./controller/controller.js";
import { type Clock, systemClock } from "./core/clock.js";
import { DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT } from "./defaults.js";
import { StoreMeasurementSource } from "./metrics/measurements.js";
import { MIRROR_METRIC_NAMES } from "./router/mirror-metrics.js";
import { LocalRouterHandle, type RouterHandle } from "./router/worker/handle.js";
import { buildRouterNode } from "./router/worker/node.js";
import { ThreadRouterHandle } from "./router/worker/thread.js";
import { MultiRuntime } from "./runtime/index.js";
import { ProcessRuntime } from "./runtime/process/process-runtime.js";
import { StaticRuntime } from "./runtime/static/static-runtime.js";
import { ExperimentStore, experimentControllerSource } from "./store/experiment-store.js";
import { FlagSnapshotCache, FlagStore } from "./store/flag-store.js";
import { ShadowStore } from "./store/shadow-store.js";
import type { SqlStore } from "./store/sql-store.js";
import { openSqliteStore } from "./store/sqlite/sqlite-store.js";
import type { Store } from "./store/store.js";
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
  /**
   * Where the built-in router runs: `thread` (default), a worker thread with its own store
   * connection, so no API request or controller tick delays a proxied request (DESIGN
   * invariant 8); or `inline`, this thread. An injected `clock` implies `inline`: the router
   * stamps measurements with it, and a clock object cannot be shared with a thread.
   */
  router?: "thread" | "inline";
}

export interface RunningTurnout {
  url: string;
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
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return token;
}

export async function startTurnout(opts: TurnoutOptions = {}): Promise<RunningTurnout> {
  if (opts.router === "thread" && opts.clock !== undefined && opts.clock !== systemClock) {
    throw new Error(
      'startTurnout: router "thread" stamps measurements with the system clock; an injected clock needs router "inline"',
    );
  }
  const dataDir = resolve(opts.dataDir ?? process.env.TURNOUT_DATA_DIR ?? DEFAULT_DATA_DIR);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (!statSync(dataDir).isDirectory()) throw new Error(`${dataDir} is not a directory`);
  const logger = opts.logger ?? createLogger();
  const clock = opts.clock ?? systemClock;
  const token = ensureToken(dataDir);
  const store = await openSqliteStore({ path: join(dataDir, "turnout.db") });
  const experiments = new ExperimentStore(store);
  const shadow = new ShadowStore(store);
  const runtime = new MultiRuntime({
    static: new StaticRuntime(),
    process: new ProcessRuntime({ logger: logger.child({ part: "runtime" }), dataDir }),
  });
  // Flags: one snapshot for OFREP, the flag API and the router's edge evaluation.
  const flagStore = new FlagStore(store);
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
  const controller = new Controller({
    store,
    runtime,
    clock,
    logger: logger.child({ part: "controller" }),
    resyncMs: opts.pollIntervalMs ?? 1000,
    // Analysis reads what routers flushed to the store, as it would with routers elsewhere.
    providers: { measurements: new StoreMeasurementSource(store) },
    experiments: experimentControllerSource(experiments),
    shadowReports: async (service, id) => (await shadow.report(service, id))?.report ?? null,
  });
  const api = buildApi({
    store,
    clock,
    token,
    version: packageVersion(),
    routerStats: (service) => router.stats(service),
    routerListener: async (service) =>
      (await router.listeners()).find((l) => l.service === service),
    routeInForce: (service, revision) => router.inForce(service, revision),
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
  });

  // Instances left by a Turnout that was killed are adopted and probed once before the
  // controller's first tick, so its first route table already has them.
  await runtime.adopted();
  await router.start();
  controller.start();
  const host = opts.host ?? DEFAULT_HOST;
  const port = opts.port ?? DEFAULT_PORT;
  let address: string;
  try {
    address = await api.listen({ host, port });
  } catch (err) {
    flagCache.stop();
    await controller.stop();
    await router.stop();
    await runtime.shutdown();
    await store.close();
    throw err;
  }
  const url = address.replace("[::1]", "127.0.0.1");
  writeFileSync(
    join(dataDir, "server.json"),
    `${JSON.stringify({ url, pid: process.pid }, null, 2)}\n`,
  );
  logger.info({ url, dataDir }, "turnout is up");

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      await api.close().catch(() => undefined);
      flagCache.stop();
      await controller.stop();
      await router.stop();
      await runtime.shutdown();
      await store.close();
      rmSync(join(dataDir, "server.json"), { force: true });
    })();
    return stopping;
  };
  const flags = { cache: flagCache, clientKey: clientKeys.first() ?? "" };
  return { url, token, dataDir, store, router, controller, logger, flags, stop };
}

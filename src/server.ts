/**
 * The composition root: wires store, runtime, router, controller and API by hand (no DI
 * container). `turnout up` and `turnout demo` both start Turnout through `startTurnout`.
 *
 * Everything runs in one process today, but the parts talk only through the store (routers
 * watch route tables; the controller watches resources and commands), so they can be split
 * into separate processes sharing PostgreSQL later (DESIGN invariant 6).
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
import { createMetricsRegistry } from "./api/metrics.js";
import { ClientKeys } from "./api/ofrep.js";
import { buildApi } from "./api/server.js";
import { Controller } from "./controller/controller.js";
import { type Clock, systemClock } from "./core/clock.js";
import { DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT } from "./defaults.js";
import { StoreMeasurementSource } from "./metrics/measurements.js";
import { EdgeFlags } from "./router/flags-edge.js";
import { withMirrorMetrics } from "./router/mirror-metrics.js";
import { Router } from "./router/router.js";
import { MultiRuntime } from "./runtime/index.js";
import { ProcessRuntime } from "./runtime/process/process-runtime.js";
import { StaticRuntime } from "./runtime/static/static-runtime.js";
import { ExperimentStore, experimentControllerSource } from "./store/experiment-store.js";
import { FlagSnapshotCache, FlagStore } from "./store/flag-store.js";
import { ShadowStore } from "./store/shadow-store.js";
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
}

export interface RunningTurnout {
  url: string;
  token: string;
  dataDir: string;
  store: Store;
  router: Router;
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
  const router = new Router({
    source: store,
    exposures: experiments,
    edgeFlags: new EdgeFlags(flagCache),
    shadowSink: shadow,
    logger: logger.child({ part: "router" }),
    pollIntervalMs: opts.pollIntervalMs ?? 500,
    // Seconds stamped by the same clock the controller (and so analysis) reads windows with;
    // the router's own (cheaper) reading of the system clock when that is the clock.
    measurements: { sink: store, ...(clock === systemClock ? {} : { now: () => clock.now() }) },
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
    routerListener: (service) => router.listeners().find((l) => l.service === service),
    logsDir: dataDir,
    runtimeInstances: (service) => runtime.instances(service),
    wakeController: () => void controller.tick().catch(() => undefined),
    experiments,
    shadow: { shadow, mirrorStats: (service) => router.mirrorStats(service) },
    metrics: withMirrorMetrics(
      createMetricsRegistry({ store, recorder: router.measurements }),
      router.mirrors,
    ),
    flags: {
      ofrep: { flags: flagCache, clientKeys },
      admin: { flags: flagStore, cache: flagCache, clock },
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

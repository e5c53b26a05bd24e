/**
 * The composition root: wires store, runtime, router, controller and API by hand (no DI
 * container). `turnout up` and `turnout demo` both start Turnout through `startTurnout`.
 *
 * Everything runs in one process today, but the parts talk only through the store (routers
 * watch route tables; the controller watches resources and commands), so they can be split
 * into separate processes sharing PostgreSQL later (DESIGN invariant 6).
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, isIP } from "node:net";
import { join, resolve } from "node:path";
import { createSecureContext } from "node:tls";
import pino, { type Logger } from "pino";
import { createMetricsRegistry } from "./api/metrics.js";
import { ClientKeys } from "./api/ofrep.js";
import { buildApi } from "./api/server.js";
import { Controller } from "./controller/controller.js";
import { type Clock, systemClock } from "./core/clock.js";
import { lockDataDir, readOnlyError, SERVER_FILE, type ServerRecord } from "./data-dir.js";
import { DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT } from "./defaults.js";
import { TurnoutError } from "./errors.js";
import { StoreMeasurementSource } from "./metrics/measurements.js";
import { EdgeFlags } from "./router/flags-edge.js";
import { withMirrorMetrics } from "./router/mirror-metrics.js";
import { Router } from "./router/router.js";
import { MultiRuntime } from "./runtime/index.js";
import { processStartTicks } from "./runtime/process/proc.js";
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
  /** Serve the API over HTTPS with this certificate and key (PEM files). */
  tls?: { certFile: string; keyFile: string };
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
    ...(tls ? { https: { cert: tls.cert, key: tls.key } } : {}),
  });

  // Instances left by a Turnout that was killed are adopted and probed once before the
  // controller's first tick, so its first route table already has them.
  await runtime.adopted();
  await router.start();
  controller.start();
  const host = opts.host ?? DEFAULT_HOST;
  const port = opts.port ?? DEFAULT_PORT;
  try {
    await api.listen({ host, port });
  } catch (err) {
    flagCache.stop();
    await controller.stop();
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
      await controller.stop();
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

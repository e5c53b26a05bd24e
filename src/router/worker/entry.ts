/**
 * The router thread of `turnout up` (DESIGN invariant 8: the data plane never waits on admin
 * work). It opens its own connection to the store file and runs the built-in router there, so a
 * long API request or a controller tick in the main thread cannot hold up a proxied request:
 * the two event loops share nothing but the file (WAL: readers never wait for the writer).
 *
 * It learns of new route tables as a router in another process would, by polling the store's
 * fingerprint, and at once when the main thread forwards its own writes (`changed`). Flags for
 * edge evaluation come from the main thread's snapshot (`flags`), so OFREP and the edge agree on
 * one snapshot and a kill switch is in force here before the API answers.
 *
 * Started by `thread.ts`; not a module to import.
 */
import { parentPort, workerData } from "node:worker_threads";
import { compileFlags, type FlagSet } from "../../core/flags/evaluate.js";
import { openPostgresStore } from "../../store/postgres/postgres-store.js";
import type { SqlStore } from "../../store/sql-store.js";
import { openSqliteStore } from "../../store/sqlite/sqlite-store.js";
import type { StoreChange } from "../../store/store.js";
import type { RouterLogger, RouteTableSource } from "../router.js";
import { noBusyWait, retryingBusy } from "./busy.js";
import { buildRouterNode } from "./node.js";
import {
  cloneableFields,
  type FlagsMessage,
  type FromRouterThread,
  LEVEL_VALUES,
  type LogLevel,
  type RouterThreadConfig,
  type ToRouterThread,
  toWireError,
} from "./protocol.js";

const port = parentPort;
if (port === null) throw new Error("src/router/worker/entry.ts runs only as a worker thread");
const config = workerData as RouterThreadConfig;
const send = (m: FromRouterThread): void => port.postMessage(m);

/** pino's call shapes (`log(obj, msg)`, `log(msg)`), forwarded to the main thread's logger. */
function forwardingLogger(minLevel: number): RouterLogger {
  const at =
    (level: LogLevel) =>
    (a: unknown, b?: unknown): void => {
      if (LEVEL_VALUES[level] < minLevel) return;
      const [obj, msg] =
        typeof a === "string" ? [{}, a] : [(a ?? {}) as Record<string, unknown>, String(b ?? "")];
      send({ type: "log", level, obj: cloneableFields(obj), msg });
    };
  const logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return logger as unknown as RouterLogger;
}

const logger = forwardingLogger(config.logLevel);

// Compiled when a snapshot arrives; a request reads `current` once, as from FlagSnapshotCache.
const flags: { current: { flags: FlagSet } } = { current: { flags: new Map() } };
const takeFlags = (m: FlagsMessage): void => {
  flags.current = { flags: compileFlags(m.definitions, m.segments) };
};
takeFlags(config.flags);

const forwarded = new Set<(what: StoreChange) => void>();

try {
  let store: SqlStore;
  if (config.storeUrl !== undefined) {
    // PostgreSQL: a pool of its own; writers wait on the server, never on this event loop. Its
    // LISTEN hears route tables committed by controllers in other processes.
    store = await openPostgresStore({
      url: config.storeUrl,
      poolSize: 4,
      applicationName: "turnout router",
    });
  } else {
    // Writes never wait synchronously for the main thread's lock (busy.ts explains why).
    const opened = await openSqliteStore({ path: config.dbPath });
    await noBusyWait(opened);
    store = retryingBusy(opened);
  }
  const own = config.storeUrl !== undefined;
  const source: RouteTableSource = {
    routeTablesFingerprint: () => store.routeTablesFingerprint(),
    listRouteTables: () => store.listRouteTables(),
    // The router registry: the controller's stop gate waits for this router's revisions.
    reportRouter: (report) => store.reportRouter(report),
    removeRouter: (id) => store.removeRouter(id),
    onChange: (listener) => {
      forwarded.add(listener);
      // On PostgreSQL the thread's own LISTEN also hears other processes' writes.
      const off = own ? store.onChange(listener) : () => {};
      return () => {
        forwarded.delete(listener);
        off();
      };
    },
  };
  const node = buildRouterNode({
    store,
    source,
    flags,
    logger,
    pollIntervalMs: config.pollIntervalMs,
    ...(config.listenAddress !== undefined ? { listenAddress: config.listenAddress } : {}),
  });
  const { router } = node;
  router.onReload((e) =>
    send({
      type: "reload",
      ok: e.ok,
      changed: e.changed,
      ...(e.error !== undefined ? { error: toWireError(e.error) } : {}),
      ...(e.ok ? { revisions: [...node.source.listed] } : {}),
    }),
  );

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await router.stop();
      await store.close();
    })();
    return stopping;
  };

  const call = async (method: string, args: string[]): Promise<unknown> => {
    const service = args[0] ?? "";
    switch (method) {
      case "stats":
        return router.stats(service);
      case "listeners":
        return router.listeners();
      case "mirrorStats":
        return router.mirrorStats(service);
      case "endpoints":
        return router.endpoints(service);
      case "metrics":
        return node.collect();
      case "ping":
        return null;
      case "stop":
        return stop();
      default:
        throw new Error(`unknown router thread call ${JSON.stringify(method)}`);
    }
  };

  port.on("message", (m: ToRouterThread) => {
    switch (m.type) {
      case "changed":
        for (const l of forwarded) l(m.what);
        return;
      case "flags":
        takeFlags(m);
        return;
      case "call":
        call(m.method, m.args).then(
          (value) => {
            send({ type: "result", id: m.id, ok: true, value: value ?? null });
            // After the answer to `stop`, nothing is left to keep the thread alive.
            if (m.method === "stop") port.close();
          },
          (err: unknown) => send({ type: "result", id: m.id, ok: false, error: toWireError(err) }),
        );
        return;
    }
  });

  await router.start();
  send({ type: "ready" });
} catch (err) {
  send({ type: "failed", error: toWireError(err) });
  port.close();
}

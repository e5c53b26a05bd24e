/**
 * The main thread's side of the router thread (`entry.ts`): starts it, forwards what the router
 * must hear at once (this thread's store writes, the flag snapshot), answers the API's questions
 * through it, and restarts it when it dies.
 *
 * Costs: a question is one message each way (tens of microseconds); a store write costs one
 * message. Nothing on a proxied request's path crosses threads.
 *
 * A thread that dies (an uncaught error, out of memory) is logged and started again after a
 * back-off that doubles from 250 ms to 10 s while it keeps dying young; its listeners died with
 * it, and the new one binds them again from the store. While none runs, questions wait for the
 * next one (up to 5 s) and `inForce` waits for the new thread's first reload.
 */
import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import type { MetricFamily } from "../../api/metrics.js";
import type { FlagSnapshot } from "../../store/flag-store.js";
import type { Store } from "../../store/store.js";
import type { MirrorStats } from "../mirror.js";
import type { EndpointInfo, ListenerInfo, ReloadEvent, VersionStats } from "../router.js";
import { AppliedRevisions, type RouterHandle } from "./handle.js";
import type {
  CallMethod,
  FlagsMessage,
  FromRouterThread,
  RouterThreadConfig,
  ToRouterThread,
  WireError,
} from "./protocol.js";

/**
 * From dist/ the entry is the .js beside this file. From src/ under tsx it is the .ts, and a
 * worker does not get tsx's hooks from the inherited `--import tsx` (Node 20), so a one-line
 * module registers them in the thread before importing the entry.
 */
function entryUrl(): URL {
  if (!import.meta.url.endsWith(".ts")) return new URL("./entry.js", import.meta.url);
  const tsx = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  const entry = JSON.stringify(new URL("./entry.ts", import.meta.url).href);
  const boot = `import { register } from ${tsx}; register(); await import(${entry});`;
  return new URL(`data:text/javascript,${encodeURIComponent(boot)}`);
}

export interface ThreadRouterOptions {
  /** The SQLite file the thread opens for itself. */
  dbPath: string;
  /** A PostgreSQL store URL: the thread opens that instead of `dbPath`. */
  storeUrl?: string;
  /** Bind every listener on this address instead of its table's host (`--router-address`). */
  listenAddress?: string;
  /** This thread's store: its writes are forwarded so the router reloads at once. */
  store: Pick<Store, "onChange">;
  /** The flag snapshot OFREP and the API serve; the router evaluates the same one at the edge. */
  flags: { readonly current: FlagSnapshot; onUpdate(fn: (s: FlagSnapshot) => void): () => void };
  logger: Logger;
  pollIntervalMs: number;
  /** How long questions wait for a thread that is (re)starting. Default 5 s. */
  callTimeoutMs?: number;
  /** Back-off between restarts: first and longest delay in ms. Default 250 and 10,000. */
  restartDelayMs?: { min: number; max: number };
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/** A thread that lived at least this long before dying resets the back-off. */
const HEALTHY_LIFETIME_MS = 10_000;
/** `stop()` waits this long for the thread to drain and close before terminating it. */
const STOP_TIMEOUT_MS = 15_000;

export class ThreadRouterHandle implements RouterHandle {
  readonly #opts: ThreadRouterOptions;
  readonly #logger: Logger;
  readonly #applied = new AppliedRevisions();
  readonly #reloadListeners = new Set<(e: ReloadEvent) => void>();
  readonly #pending = new Map<number, Pending>();
  /** Callers waiting for a thread that is ready. */
  readonly #readyWaiters = new Set<{ resolve(w: Worker): void; reject(e: Error): void }>();
  readonly #unsubscribe: (() => void)[] = [];
  #nextId = 1;
  #worker: Worker | null = null;
  #ready = false;
  #startedAt = 0;
  #failures = 0;
  #everReady = false;
  #restartTimer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(opts: ThreadRouterOptions) {
    this.#opts = opts;
    this.#logger = opts.logger.child({ part: "router" });
  }

  /** Starts the thread; rejects if the first one cannot start (bad store file...). */
  async start(): Promise<void> {
    this.#unsubscribe.push(
      this.#opts.store.onChange((what) => this.#post({ type: "changed", what })),
      this.#opts.flags.onUpdate((s) => this.#post(flagsMessage(s))),
    );
    await this.#spawn();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const off of this.#unsubscribe.splice(0)) off();
    if (this.#restartTimer !== null) clearTimeout(this.#restartTimer);
    this.#restartTimer = null;
    this.#applied.cancelAll();
    for (const w of this.#readyWaiters) w.reject(new Error("the router is stopping"));
    this.#readyWaiters.clear();
    const worker = this.#worker;
    if (worker === null) return;
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    if (this.#ready) {
      const timeout = setTimeout(() => void worker.terminate(), STOP_TIMEOUT_MS);
      await this.#send(worker, "stop", []).catch((err: unknown) =>
        this.#logger.warn({ err }, "router: the thread did not stop cleanly; terminating it"),
      );
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000).unref())]);
      clearTimeout(timeout);
    }
    await worker.terminate();
    await exited;
  }

  stats(service: string): Promise<VersionStats[]> {
    return this.#call("stats", [service]) as Promise<VersionStats[]>;
  }

  listeners(): Promise<ListenerInfo[]> {
    return this.#call("listeners", []) as Promise<ListenerInfo[]>;
  }

  mirrorStats(service: string): Promise<MirrorStats | null> {
    return this.#call("mirrorStats", [service]) as Promise<MirrorStats | null>;
  }

  endpoints(service: string): Promise<EndpointInfo[]> {
    return this.#call("endpoints", [service]) as Promise<EndpointInfo[]>;
  }

  metrics(): Promise<MetricFamily[]> {
    return this.#call("metrics", []) as Promise<MetricFamily[]>;
  }

  /**
   * The snapshot is posted to the thread as soon as the cache takes it; messages arrive in
   * order, so the answer to a ping sent after it means the thread has compiled it.
   */
  async flagsInForce(): Promise<void> {
    await this.#call("ping", []);
  }

  inForce(service: string, revision: number, timeoutMs?: number): Promise<boolean> {
    return this.#applied.wait(service, revision, timeoutMs);
  }

  onReload(listener: (e: ReloadEvent) => void): () => void {
    this.#reloadListeners.add(listener);
    return () => this.#reloadListeners.delete(listener);
  }

  /** Ends the thread abruptly, as a crash would; it is restarted as after one (for tests). */
  async simulateCrash(): Promise<void> {
    await this.#worker?.terminate();
  }

  // -------------------------------------------------------------------------------------

  #spawn(): Promise<void> {
    const config: RouterThreadConfig = {
      dbPath: this.#opts.dbPath,
      ...(this.#opts.storeUrl !== undefined ? { storeUrl: this.#opts.storeUrl } : {}),
      ...(this.#opts.listenAddress !== undefined
        ? { listenAddress: this.#opts.listenAddress }
        : {}),
      pollIntervalMs: this.#opts.pollIntervalMs,
      logLevel: this.#opts.logger.levelVal,
      flags: flagsMessage(this.#opts.flags.current),
    };
    const worker = new Worker(entryUrl(), { workerData: config });
    this.#worker = worker;
    this.#ready = false;
    this.#startedAt = Date.now();
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        if (err === undefined) resolve();
        else reject(err);
      };
      worker.on("message", (m: FromRouterThread) => {
        switch (m.type) {
          case "ready":
            this.#ready = true;
            this.#everReady = true;
            for (const w of this.#readyWaiters) w.resolve(worker);
            this.#readyWaiters.clear();
            settle();
            return;
          case "failed":
            settle(fromWire(m.error, "the router thread could not start"));
            return;
          default:
            this.#onMessage(m);
        }
      });
      worker.on("error", (err) => {
        this.#logger.error({ err }, "router: the router thread failed");
        settle(err);
      });
      worker.on("exit", (code) => {
        settle(new Error(`the router thread exited (code ${code}) before it was ready`));
        this.#onExit(worker, code);
      });
    });
  }

  #onMessage(m: FromRouterThread): void {
    switch (m.type) {
      case "reload": {
        if (m.ok && m.revisions !== undefined) this.#applied.set(new Map(m.revisions));
        const e: ReloadEvent = {
          ok: m.ok,
          changed: m.changed,
          ...(m.error !== undefined ? { error: fromWire(m.error, "reload failed") } : {}),
        };
        for (const l of this.#reloadListeners) {
          try {
            l(e);
          } catch (err) {
            this.#logger.error({ err }, "router: reload listener threw");
          }
        }
        return;
      }
      case "log":
        this.#logger[m.level](m.obj, m.msg);
        return;
      case "result": {
        const p = this.#pending.get(m.id);
        if (p === undefined) return;
        this.#pending.delete(m.id);
        if (m.ok) p.resolve(m.value);
        else p.reject(fromWire(m.error, "router thread call failed"));
        return;
      }
    }
  }

  #onExit(worker: Worker, code: number): void {
    if (this.#worker !== worker) return;
    this.#worker = null;
    this.#ready = false;
    for (const p of this.#pending.values()) p.reject(new Error("the router thread exited"));
    this.#pending.clear();
    // Its listeners are gone: nothing is in force until the next thread reports.
    this.#applied.set(new Map());
    if (this.#stopped) return;
    // The first thread failing to start fails `start()`; after one was up, it is retried.
    if (!this.#everReady) return;
    if (Date.now() - this.#startedAt >= HEALTHY_LIFETIME_MS) this.#failures = 0;
    const { min, max } = this.#opts.restartDelayMs ?? { min: 250, max: 10_000 };
    const delay = Math.min(max, min * 2 ** this.#failures);
    this.#failures++;
    this.#logger.error(
      { code, restartInMs: delay },
      "router: the router thread exited; restarting it (its listeners are closed until then)",
    );
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      if (this.#stopped) return;
      this.#spawn().catch((err: unknown) =>
        this.#logger.error({ err }, "router: the router thread did not start again"),
      );
    }, delay);
  }

  #post(m: ToRouterThread): void {
    this.#worker?.postMessage(m);
  }

  async #call(method: CallMethod, args: string[]): Promise<unknown> {
    return this.#send(await this.#whenReady(), method, args);
  }

  #send(worker: Worker, method: CallMethod, args: string[]): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ type: "call", id, method, args } satisfies ToRouterThread);
    });
  }

  #whenReady(): Promise<Worker> {
    if (this.#stopped) return Promise.reject(new Error("the router is stopped"));
    if (this.#ready && this.#worker !== null) return Promise.resolve(this.#worker);
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (worker: Worker) => {
          clearTimeout(timer);
          resolve(worker);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        this.#readyWaiters.delete(w);
        reject(new Error("the router thread is not running (restarting?)"));
      }, this.#opts.callTimeoutMs ?? 5000);
      timer.unref();
      this.#readyWaiters.add(w);
    });
  }
}

function flagsMessage(s: FlagSnapshot): FlagsMessage {
  return { type: "flags", etag: s.etag, definitions: s.definitions, segments: s.segments };
}

function fromWire(e: WireError, fallback: string): Error {
  const err = new Error(e.message || fallback) as Error & { code?: string };
  if (e.code !== undefined) err.code = e.code;
  return err;
}

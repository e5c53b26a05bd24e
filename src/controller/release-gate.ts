/**
 * The stop gate (DESIGN invariant 9: an instance is stopped only after every live router
 * serves a table without it). A runtime about to signal an instance that served asks the gate
 * (`gate(instance)`) and waits; the gate resolves once
 *   1. the service's route table in the store no longer names the instance (the runtime marks
 *      it "stopping" first, so the controller's next tick writes that table), at revision R
 *      (the first such revision the gate sees; later tables leave it out too), and
 *   2. every live router (heartbeat within `liveMs`) reports revision >= R in force for the
 *      service, or does not serve the service at all (then it sends the instance nothing);
 *   or once `timeoutMs` has passed since it was asked: then it resolves anyway, and
 *   `onTimeout` gets a `DrainTimedOut` event naming the routers that did not confirm. A router
 *   that dies mid-wait stops being live after `liveMs` and no longer holds anything up.
 *
 * Waiting costs nothing to the controller's tick: the runtime's stop awaits in the background.
 * Checks run when the store says routers or tables changed (this process) and every `pollMs`
 * while anything waits (routers in other processes); each check is one read of the routers and
 * one of each waiting service's table.
 */
import type { Clock } from "../core/clock.js";
import type { EventDraft, RouteTable } from "../core/model.js";
import type { StopGate, StoppingInstance } from "../runtime/runtime.js";
import { ROUTER_LIVE_MS, type RouterReport, type Store } from "../store/store.js";

/** How long a stop waits for routers to confirm before it proceeds anyway. */
export const DEFAULT_RELEASE_TIMEOUT_MS = 10_000;

export interface ReleaseGateOptions {
  store: Pick<Store, "listRouters" | "getRouteTable" | "onChange">;
  /** The controller's clock: deadlines and router liveness are judged with it. */
  clock: Clock;
  timeoutMs?: number;
  liveMs?: number;
  /** Real time between checks while something waits. Default 100 ms. */
  pollMs?: number;
  /** A wait that timed out: the event to record in the service's history. */
  onTimeout: (event: EventDraft) => void;
  logger?: { warn(obj: object, msg?: string): void; error(obj: object, msg?: string): void };
}

interface Waiter {
  instance: StoppingInstance;
  askedAt: number;
  /** First revision seen that leaves the instance out; Infinity once the table is gone. */
  revision: number | null;
  resolve: () => void;
}

export class ReleaseGate {
  readonly #store: ReleaseGateOptions["store"];
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #liveMs: number;
  readonly #pollMs: number;
  readonly #onTimeout: ReleaseGateOptions["onTimeout"];
  readonly #logger: ReleaseGateOptions["logger"];
  readonly #waiters = new Set<Waiter>();
  #timer: NodeJS.Timeout | null = null;
  #checking: Promise<void> | null = null;
  #again = false;
  #unsubscribe: (() => void) | null = null;
  #closed = false;

  constructor(opts: ReleaseGateOptions) {
    this.#store = opts.store;
    this.#clock = opts.clock;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_RELEASE_TIMEOUT_MS;
    this.#liveMs = opts.liveMs ?? ROUTER_LIVE_MS;
    this.#pollMs = opts.pollMs ?? 100;
    this.#onTimeout = opts.onTimeout;
    this.#logger = opts.logger;
  }

  /** The gate to install in the runtime (`Runtime.setStopGate`). */
  readonly gate: StopGate = (instance) => {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#waiters.add({ instance, askedAt: this.#clock.now(), revision: null, resolve });
      this.#ensureWatching();
      void this.check();
    });
  };

  /** Instances waiting now (for status and tests). */
  waiting(): StoppingInstance[] {
    return [...this.#waiters].map((w) => w.instance);
  }

  /**
   * Looks at the store once and releases every waiter whose routers all confirmed, or whose
   * time is up. Checks never overlap; one asked for during another runs right after it.
   */
  check(): Promise<void> {
    if (this.#checking !== null) {
      this.#again = true;
      return this.#checking;
    }
    this.#checking = (async () => {
      try {
        do {
          this.#again = false;
          await this.#checkOnce();
        } while (this.#again && this.#waiters.size > 0);
      } catch (err) {
        // The store is unreachable: the next poll tries again; the deadline still holds.
        this.#logger?.warn({ err }, "stop gate: cannot read the router registry");
      } finally {
        this.#checking = null;
      }
    })();
    return this.#checking;
  }

  /** Releases everything and stops watching (the controller stops: so do its routers). */
  close(): void {
    this.#closed = true;
    for (const w of this.#waiters) w.resolve();
    this.#waiters.clear();
    this.#stopWatching();
  }

  async #checkOnce(): Promise<void> {
    if (this.#waiters.size === 0) return;
    const services = new Set([...this.#waiters].map((w) => w.instance.service));
    const tables = new Map<string, RouteTable | null>();
    for (const s of services) tables.set(s, await this.#store.getRouteTable(s));
    const routers = await this.#store.listRouters();
    const now = this.#clock.now();
    const live = routers.filter((r) => now - r.heartbeatAt < this.#liveMs);
    for (const w of [...this.#waiters]) {
      const { service, url } = w.instance;
      const table = tables.get(service) ?? null;
      if (w.revision === null && !names(table, url))
        w.revision = table === null ? Number.POSITIVE_INFINITY : table.revision;
      const rev = w.revision;
      const lagging = rev === null ? live : live.filter((r) => lags(r, service, rev));
      if (lagging.length === 0) {
        this.#release(w);
        continue;
      }
      if (now - w.askedAt >= this.#timeoutMs) {
        this.#release(w);
        this.#timedOut(w, lagging, table, now);
      }
    }
    if (this.#waiters.size === 0) this.#stopWatching();
  }

  #release(w: Waiter): void {
    this.#waiters.delete(w);
    w.resolve();
  }

  #timedOut(w: Waiter, lagging: RouterReport[], table: RouteTable | null, now: number): void {
    const { service, id, url, version } = w.instance;
    const waitedMs = now - w.askedAt;
    const routers = lagging.map((r) => ({
      id: r.id,
      address: r.address,
      revision: r.revisions[service] ?? null,
    }));
    const wanted =
      w.revision === null
        ? `a route table without it (table ${table?.revision ?? "none"} still names it)`
        : w.revision === Number.POSITIVE_INFINITY
          ? "no table of the service"
          : `table ${w.revision}`;
    const message = `instance ${id} stopped after waiting ${waitedMs / 1000}s for ${routers.length} router(s) to put in force ${wanted}: ${routers.map((r) => `${r.id} at ${r.revision ?? "none"}`).join(", ")}`;
    this.#logger?.warn({ service, instance: id, routers }, message);
    this.#onTimeout({
      service,
      type: "DrainTimedOut",
      actor: "controller",
      message,
      data: {
        instance: id,
        version,
        url,
        revision: w.revision === null || !Number.isFinite(w.revision) ? null : w.revision,
        waitedMs,
        routers,
      },
      time: now,
    });
  }

  #ensureWatching(): void {
    if (this.#unsubscribe === null) {
      this.#unsubscribe = this.#store.onChange((what) => {
        if (what === "routers" || what === "routeTables") void this.check();
      });
    }
    if (this.#timer === null) {
      this.#timer = setInterval(() => void this.check(), this.#pollMs);
      this.#timer.unref();
    }
  }

  #stopWatching(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}

/** Whether a table can send a request to `url`: as a backend's endpoint or as a mirror's. */
function names(table: RouteTable | null, url: string): boolean {
  if (table === null) return false;
  for (const b of table.backends) if (b.endpoints.includes(url)) return true;
  const m = table.mirror;
  return m !== undefined && (m.endpoints.includes(url) || (m.noiseEndpoints ?? []).includes(url));
}

/** The router still serves the service from a table older than `revision`. */
function lags(r: RouterReport, service: string, revision: number): boolean {
  const served = r.revisions[service];
  return served !== undefined && served < revision;
}

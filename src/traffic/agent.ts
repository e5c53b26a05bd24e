/**
 * The router role for a `TrafficProvider` other than the built-in router (which watches the
 * store itself, src/router/router.ts): watch the store's route tables, hand the provider the
 * tables of the services it carries, report what is in force to the router registry.
 *
 * How tables arrive is the built-in router's way (DESIGN invariant 6): `onChange` for writes in
 * this process, a cheap fingerprint polled for writes from other processes; either way the
 * whole set is read and handed over, and the provider works out what changed. Applies run one
 * at a time; a change seen while one runs triggers one more afterwards, so the last apply
 * always carries the latest tables.
 *
 * What the registry learns: this agent is a router of its own (id `<hostname>:<pid>:<kind>`)
 * that serves exactly the services the provider has in force, so the controller's stop gate
 * (invariant 9) waits for the provider's data plane as it waits for the built-in router. An
 * agent with nothing to report (no table in force or refused, nothing held for the store) is
 * not listed: every router process runs one, and a row per router for an HAProxy no service
 * uses is noise in `turnout get routers` (the stop gate counts a router without a service's
 * revision as serving it, so the gate is the same).
 *
 * When the store is unreachable the provider keeps what it has in force (invariant 4): nothing
 * is applied until a read succeeds again. The outage is told as the built-in router tells it
 * (src/router/outage.ts): failed reads and heartbeats go to the provider's own account
 * (`storeUse`, which also counts what it holds for the store, sent with every heartbeat as
 * `buffers`), so one warning starts it and one info line with the counts ends it.
 *
 * A table the provider refused (an attached HAProxy whose runtime API does not answer, a
 * managed one that cannot start) is reported to the registry as `notServing`, with the
 * provider's reason, and applied again after 1 s, then at doubling intervals up to 30 s, until
 * it is in force: the controller holds the service's rollout meanwhile and writes no new table
 * that would trigger an apply, so without the retry a socket that comes back would never be
 * noticed.
 */
import { hostname } from "node:os";
import type { RouteTable } from "../core/model.js";
import { PREVIEW_SUFFIX } from "../core/routes.js";
import { StoreOutage, type StoreUseReporter } from "../router/outage.js";
import type { RouterNotServing, RouterReport, Store } from "../store/store.js";
import { AppliedRevisions } from "./applied-revisions.js";
import type { TableOutcome, TrafficProvider } from "./provider.js";

export type TrafficAgentSource = Pick<
  Store,
  "listRouteTables" | "routeTablesFingerprint" | "onChange"
> &
  Partial<Pick<Store, "reportRouter" | "removeRouter">>;

export interface TrafficAgentLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface TrafficAgentOptions {
  source: TrafficAgentSource;
  provider: TrafficProvider;
  /** Which tables this provider carries (e.g. those whose `traffic` names it). */
  select: (t: RouteTable) => boolean;
  logger?: TrafficAgentLogger;
  /** Fingerprint poll interval. Default 500 ms. */
  pollIntervalMs?: number;
  /** Registry heartbeat. Default 1000 ms. */
  heartbeatMs?: number;
  /** Registry id; default `<hostname>:<pid>:<provider kind>`. */
  id?: string;
  /** First wait before a refused table is applied again (doubling up to 30 s). Default 1000 ms. */
  retryMs?: number;
}

/** The longest wait between two applies of a table the provider refused. */
const MAX_RETRY_MS = 30_000;

export class TrafficAgent {
  readonly id: string;
  readonly #o: TrafficAgentOptions;
  readonly #startedAt = Date.now();
  #fingerprint: string | null = null;
  #applying: Promise<void> | null = null;
  #again = false;
  #stopped = false;
  /** Store outages: the provider's account, or one of the agent's own. */
  readonly #health: StoreUseReporter;
  #poll: NodeJS.Timeout | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #off: (() => void) | null = null;
  /** Services this agent's provider carries per the last read, with their revisions. */
  #carried = new Map<string, number>();
  #last: TableOutcome[] = [];
  /** While a table is refused: the wait before the next apply, and when that apply is due. */
  #retry: { delayMs: number; at: number } | null = null;
  /** Reports run one after another, so that a removal never lands before an earlier upsert. */
  #reporting: Promise<void> = Promise.resolve();
  /** Whether the registry has (or is being sent) this agent's row. */
  #listed = false;
  /** Callers waiting for a revision: answered after each apply (not unref'd: see there). */
  readonly #revisions = new AppliedRevisions({ unref: false });

  constructor(o: TrafficAgentOptions) {
    this.#o = o;
    this.id = o.id ?? `${hostname()}:${process.pid}:${o.provider.kind}`;
    this.#health =
      o.provider.storeUse ??
      new StoreOutage({
        logger: o.logger ?? { info() {}, warn() {} },
        name: o.provider.kind,
        now: Date.now,
      });
  }

  async start(): Promise<void> {
    await this.#o.provider.start();
    this.#off = this.#o.source.onChange((what) => {
      if (what === "routeTables") void this.refresh();
    });
    await this.refresh();
    this.#schedulePoll();
    this.#scheduleHeartbeat();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#off?.();
    if (this.#poll) clearTimeout(this.#poll);
    if (this.#heartbeat) clearTimeout(this.#heartbeat);
    this.#revisions.cancelAll();
    await this.#applying?.catch(() => undefined);
    await this.#o.provider.stop();
    await this.#o.source.removeRouter?.(this.id).catch(() => false);
  }

  /** Whether the last read gave this provider the service. */
  carries(service: string): boolean {
    return this.#carried.has(service);
  }

  /** The outcome of the last apply per service (errors of refused tables included). */
  outcomes(): readonly TableOutcome[] {
    return this.#last;
  }

  /** Resolves true once `revision` (or later) of the service is in force; false after the timeout. */
  inForce(service: string, revision: number, timeoutMs = 5000): Promise<boolean> {
    // What the provider has in force now, not only at the last apply (as before a first one).
    this.#revisions.set(this.#o.provider.inForce());
    return this.#revisions.wait(service, revision, timeoutMs);
  }

  /** Reads the tables and applies them; resolves when the provider has answered. */
  refresh(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#applying !== null) {
      this.#again = true;
      return this.#applying;
    }
    this.#applying = (async () => {
      do {
        this.#again = false;
        await this.#applyOnce();
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#applying = null;
    });
    return this.#applying;
  }

  async #applyOnce(): Promise<void> {
    let fingerprint: string;
    let tables: RouteTable[];
    try {
      // Fingerprint first: a write between the two reads changes it, so the next poll rereads.
      fingerprint = await this.#o.source.routeTablesFingerprint();
      tables = (await this.#o.source.listRouteTables()).filter(this.#o.select);
    } catch (err) {
      this.#health.failed("routeTables", err);
      return;
    }
    this.#health.succeeded("routeTables");
    this.#carried = new Map(tables.map((t) => [t.service, t.revision]));
    const outcomes = await this.#o.provider.apply(tables);
    this.#last = outcomes;
    this.#fingerprint = fingerprint;
    for (const o of outcomes) {
      if (!o.ok)
        this.#o.logger?.warn(
          {
            service: o.service,
            revision: o.revision,
            err: o.error,
            provider: this.#o.provider.kind,
          },
          "traffic: the data plane refused a route table; it keeps serving the previous one",
        );
    }
    this.#revisions.set(this.#o.provider.inForce());
    this.#scheduleRetry(outcomes);
    void this.#report();
  }

  /** Refused tables are applied again at doubling intervals; all in force: no retry. */
  #scheduleRetry(outcomes: readonly TableOutcome[]): void {
    if (outcomes.every((o) => o.ok)) {
      this.#retry = null;
      return;
    }
    const first = this.#o.retryMs ?? 1000;
    const delayMs = this.#retry === null ? first : Math.min(this.#retry.delayMs * 2, MAX_RETRY_MS);
    this.#retry = { delayMs, at: Date.now() + delayMs };
  }

  /** The services the provider refused at the last apply, with its reason (the registry's). */
  notServing(): RouterNotServing {
    const inForce = this.#o.provider.inForce();
    const out: RouterNotServing = {};
    for (const o of this.#last) {
      if (o.ok) continue;
      // A preview table shares its service's outcome (`expandPreviews`): reported once.
      const service = o.service.endsWith(PREVIEW_SUFFIX)
        ? o.service.slice(0, -PREVIEW_SUFFIX.length)
        : o.service;
      if (out[service] !== undefined) continue;
      const serves = inForce.get(service);
      out[service] = {
        revision: o.revision,
        reason: `${this.#o.provider.kind} refused route table revision ${o.revision}: ${o.error.message}; ${
          serves === undefined
            ? "no table of this service is in force"
            : `revision ${serves} is still in force`
        }`,
      };
    }
    return out;
  }

  #schedulePoll(): void {
    if (this.#stopped) return;
    this.#poll = setTimeout(() => {
      void this.#pollOnce().finally(() => this.#schedulePoll());
    }, this.#o.pollIntervalMs ?? 500);
    this.#poll.unref();
  }

  /** Rereads the tables when their fingerprint changed. Never rejects. */
  async #pollOnce(): Promise<void> {
    let fp: string;
    try {
      fp = await this.#o.source.routeTablesFingerprint();
    } catch (err) {
      // The provider keeps its tables.
      this.#health.failed("routeTables", err);
      return;
    }
    // A table the provider lost since (an attached HAProxy gone): reported now, applied again.
    const lost = this.#o.provider.lost?.() ?? [];
    if (lost.length > 0) {
      const gone = new Set(lost.map((o) => o.service));
      this.#last = [...this.#last.filter((o) => !gone.has(o.service)), ...lost];
      for (const o of lost) {
        this.#o.logger?.warn(
          {
            service: o.service,
            revision: o.revision,
            err: o.ok ? undefined : o.error,
            provider: this.#o.provider.kind,
          },
          "traffic: a route table in force was lost by the data plane; applying it again",
        );
      }
      this.#revisions.set(this.#o.provider.inForce());
      this.#scheduleRetry(this.#last);
      void this.#report();
    }
    // Unchanged tables after an outage: nothing to apply, but the store is back. A refused
    // table is applied again when its retry is due (see the module comment).
    const retry = this.#retry !== null && Date.now() >= this.#retry.at;
    if (fp === this.#fingerprint) this.#health.succeeded("routeTables");
    if (fp !== this.#fingerprint || retry) await this.refresh().catch(() => undefined);
  }

  #scheduleHeartbeat(): void {
    if (this.#stopped || this.#o.source.reportRouter === undefined) return;
    this.#heartbeat = setTimeout(() => {
      void this.#report().finally(() => this.#scheduleHeartbeat());
    }, this.#o.heartbeatMs ?? 1000);
    this.#heartbeat.unref();
  }

  #report(): Promise<void> {
    this.#reporting = this.#reporting.then(() => this.#reportNow());
    return this.#reporting;
  }

  async #reportNow(): Promise<void> {
    const report = this.#o.source.reportRouter?.bind(this.#o.source);
    if (report === undefined || this.#stopped) return;
    const revisions = Object.fromEntries(this.#o.provider.inForce());
    const notServing = this.notServing();
    const buffers = this.#o.provider.buffers?.();
    const holds =
      buffers !== undefined && Object.values(buffers).some((b) => b.buffered > 0 || b.dropped > 0);
    // Nothing in force, nothing refused, nothing held for the store: an idle agent, not listed.
    if (Object.keys(revisions).length === 0 && Object.keys(notServing).length === 0 && !holds) {
      if (!this.#listed) return;
      this.#listed = false;
      try {
        await this.#o.source.removeRouter?.(this.id);
        this.#health.succeeded("registry");
      } catch (err) {
        this.#listed = true; // tried again at the next heartbeat
        this.#health.failed("registry", err);
      }
      return;
    }
    this.#listed = true;
    const r: RouterReport = {
      id: this.id,
      address: `${hostname()} (${this.#o.provider.kind}: ${Object.keys(revisions).join(", ")})`,
      pid: process.pid,
      startedAt: this.#startedAt,
      heartbeatAt: Date.now(),
      revisions,
      ...(Object.keys(notServing).length > 0 ? { notServing } : {}),
      ...(buffers !== undefined ? { buffers } : {}),
    };
    try {
      await report(r);
      this.#health.succeeded("registry");
    } catch (err) {
      this.#health.failed("registry", err);
    }
  }
}

/**
 * HAProxy as Turnout's data plane (`spec.traffic: {haproxy: {...}}`): the `TrafficProvider` that
 * puts route tables in force in HAProxy, and takes HAProxy's request log back in as the same
 * measurement rows the built-in router writes.
 *
 * Two modes, chosen per table by its `traffic.haproxy`, each a `Carrier` (carrier.ts) per service:
 *
 * - **Managed** (`{haproxy: {}}`, optionally `binary`, `protocol`; managed.ts): Turnout runs one
 *   HAProxy per service, with its config, maps and Lua in `<dataDir>/haproxy/<service>/`. The
 *   first table starts it; later ones change it live over the runtime API (live.ts), and only a
 *   structural change is a hitless reload. A config HAProxy refuses leaves the previous one in
 *   force, and the table's outcome is `ok: false` with the TURNOUT_ERR_HAPROXY_* error.
 * - **Attach** (`{haproxy: {runtimeApi: "unix:/path.sock", backend: NAME}}`; attach.ts): someone
 *   else runs HAProxy; Turnout changes only the servers and weights of that backend. Split only,
 *   and no measurements (the owner's log is not Turnout's): the analysis sees no data and says
 *   inconclusive.
 *
 * Here: one writer of HAProxy's state at a time (applies, the reaper of drained servers and stop
 * run in turn), a fresh carrier when a service's spec changes (the old one comes back if the new
 * one cannot start), and preview tables sharing their service's outcome. `ok: true` only once
 * HAProxy reads back what was asked.
 *
 * Measurements (measurements.ts): every managed HAProxy logs to one `LogIntake` (intake.ts) whose
 * recorder flushes through the router's `MeasurementFlusher` into the same rows, so judges,
 * experiments' metrics and `/metrics` read HAProxy's traffic unchanged. `intakeStats()` counts
 * lines lost. While the store is unreachable they are held and counted as the router's are
 * (`buffers()`, `storeReachable`, one warning and one info line per outage: src/router/outage.ts).
 *
 * A/B experiments (managed mode): HAProxy assigns arms in the router's order (forced arm, unit
 * key, the arms' bucket ranges with the experiment's salt) with its own hash (hash.ts,
 * `haproxy-xxh32-v1`, as for sticky keys) and logs the arm a request exposed; the provider
 * turns those lines into first exposures (`ExposureLog`, the router's) for `exposures`.
 *
 * Not carried (refused at apply with TURNOUT_ERR_TRAFFIC_UNSUPPORTED naming the feature):
 * `mirror` (shadow comparison), `edgeFlags`, and `experimentResponseHeaders` (A/B metrics read
 * from response headers: the log carries no per-unit header values).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { RouteTable } from "../../core/model.js";
import { TurnoutError } from "../../errors.js";
import type { ExposureSink } from "../../router/exposures.js";
import type { StoreUseReporter } from "../../router/outage.js";
import type { MeasurementRecorder, RouterMeasurementOptions } from "../../router/stats.js";
import type { RouterBuffers } from "../../store/store.js";
import type { TableOutcome, TrafficProvider } from "../provider.js";
import { AttachedService } from "./attach.js";
import {
  type Carrier,
  HAPROXY_MANAGED_FEATURES,
  type HaproxyServiceStatus,
  refuseUnsupported,
} from "./carrier.js";
import { isPreviewTable } from "./config.js";
import type { IntakeStats } from "./intake.js";
import { type ManagedOptions, ManagedService } from "./managed.js";
import { HaproxyMeasurements } from "./measurements.js";
import type { RuntimeApi } from "./runtime-api.js";
import type { SupervisorLogger } from "./supervisor.js";

export { attachWeights } from "./attach.js";
export {
  HAPROXY_ATTACH_FEATURES,
  HAPROXY_MANAGED_FEATURES,
  type HaproxyServiceStatus,
  haproxyFeatures,
} from "./carrier.js";

export interface HaproxyProviderOptions {
  /** Turnout's data dir: managed services get `<dataDir>/haproxy/<service>/`. */
  dataDir: string;
  logger?: SupervisorLogger;
  /**
   * Where HAProxy's measurements go: the same options as the built-in router's `measurements`
   * (the store as `sink`, flush interval, retention, window). `routerId` defaults to
   * `haproxy@<hostname>:<pid>` so its rows never overwrite the built-in router's.
   */
  /** Where measurements go; `lossTimeoutMs` as intake.ts's (tests shorten it). */
  measurements?: RouterMeasurementOptions & { lossTimeoutMs?: number };
  /**
   * Where A/B exposures go (the experiment store, as the router's `exposures`): each unit's
   * first exposure per experiment, from the arm HAProxy logged. Without one, none are kept.
   */
  exposures?: ExposureSink;
  /**
   * Exposures held while the store is down, beyond which new ones are dropped and counted
   * (as the router's `maxBufferedRows`). Default 200,000.
   */
  maxBufferedRows?: number;
  /** HAProxy threads per managed service (default 1). */
  threads?: number;
  /** Restart back-off of a managed HAProxy that died (supervisor.ts defaults). */
  restartInitialMs?: number;
  restartMaxMs?: number;
  /** How often drained servers without connections are deleted (default 1000 ms). */
  reapIntervalMs?: number;
}

/** A preview listener's series is its service's name and this suffix (config.ts frontendName). */
const PREVIEW_SERIES = /:preview$/;

const quietLogger: SupervisorLogger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * The HAProxy traffic provider. See the module comment.
 *
 * @example
 * const hx = new HaproxyProvider({ dataDir, logger, measurements: { sink: store } });
 * await hx.start();
 * const outcomes = await hx.apply(tables.filter((t) => t.traffic && "haproxy" in t.traffic));
 * await hx.stop();
 */
export class HaproxyProvider implements TrafficProvider {
  readonly kind = "haproxy" as const;
  readonly features = HAPROXY_MANAGED_FEATURES;
  readonly #o: HaproxyProviderOptions;
  readonly #logger: SupervisorLogger;
  readonly #measurements: HaproxyMeasurements;
  readonly #carriers = new Map<string, Carrier>();
  readonly #inForce = new Map<string, number>();
  /** Tables found no longer in force between applies (`lost`). */
  #lost: TableOutcome[] = [];
  /** The table in force per service (to bring a previous carrier back). */
  readonly #tables = new Map<string, RouteTable>();
  #intakeAddr: { host: string; port: number } | null = null;
  #chain: Promise<unknown> = Promise.resolve();
  #reapTimer: NodeJS.Timeout | null = null;
  #started = false;

  constructor(opts: HaproxyProviderOptions) {
    this.#o = opts;
    this.#logger = opts.logger ?? quietLogger;
    this.#measurements = new HaproxyMeasurements({
      measurements: opts.measurements,
      exposures: opts.exposures,
      maxBufferedRows: opts.maxBufferedRows,
      logger: this.#logger,
      experimentOf: (series) => this.#tables.get(series)?.experiment?.name,
      // The preview frontend's slots are its service's.
      slotVersion: (series, slot) =>
        this.#carriers.get(series.replace(PREVIEW_SERIES, ""))?.slotVersion?.(slot) ?? null,
    });
  }

  /** The recorder HAProxy's measurements go to (windows, totals for /metrics). */
  get measurements(): MeasurementRecorder {
    return this.#measurements.recorder;
  }

  /** The log intake's counts: lines measured, lost, late, unparsable, unrouted. */
  intakeStats(): IntakeStats {
    return this.#measurements.stats();
  }

  /** Rows held for the store per kind, and rows dropped since start (the router's `buffers()`). */
  buffers(): RouterBuffers {
    return this.#measurements.buffers();
  }

  /** Whether the store is reachable as far as HAProxy's data plane can tell. */
  get storeReachable(): boolean {
    return this.#measurements.storeReachable;
  }

  /** The store outage account the router role driving this provider reports its own uses to. */
  get storeUse(): StoreUseReporter {
    return this.#measurements.health;
  }

  /** Writes every measured second and buffered exposure now (tests, shutdown). */
  async flushMeasurements(): Promise<void> {
    await this.#measurements.flush();
  }

  /** The runtime API Turnout drives for a service (its own HAProxy's, or the attached one). */
  runtimeApi(service: string): RuntimeApi | undefined {
    return this.#carriers.get(service)?.api;
  }

  status(): HaproxyServiceStatus[] {
    return [...this.#carriers.entries()].map(([service, c]) => ({
      service,
      revision: this.#inForce.get(service) ?? null,
      ...c.status(),
    }));
  }

  async start(): Promise<void> {
    if (this.#started) return;
    mkdirSync(join(this.#o.dataDir, "haproxy"), { recursive: true });
    this.#intakeAddr = await this.#measurements.start();
    this.#reapTimer = setInterval(() => void this.#reapAll(), this.#o.reapIntervalMs ?? 1000);
    this.#reapTimer.unref();
    this.#started = true;
  }

  async stop(): Promise<void> {
    await this.#serial(async () => {
      if (this.#reapTimer !== null) clearInterval(this.#reapTimer);
      this.#reapTimer = null;
      await Promise.all([...this.#carriers.values()].map((c) => c.stop()));
      this.#carriers.clear();
      this.#inForce.clear();
      this.#tables.clear();
      if (this.#started) await this.#measurements.stop();
      this.#started = false;
    });
  }

  inForce(): ReadonlyMap<string, number> {
    return new Map(this.#inForce);
  }

  apply(tables: readonly RouteTable[]): Promise<TableOutcome[]> {
    return this.#serial(() => this.#apply(tables));
  }

  /** Runs `fn` after every earlier apply, reap or stop: one writer of HAProxy's state at a time. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn, fn);
    this.#chain = run.catch(() => {});
    return run;
  }

  async #apply(tables: readonly RouteTable[]): Promise<TableOutcome[]> {
    if (!this.#started) await this.start();
    const main = tables.filter((t) => !isPreviewTable(t));
    const wanted = new Set(main.map((t) => t.service));
    // Services gone: stop their HAProxy (managed); an attached backend is left as it is.
    for (const [service, c] of this.#carriers) {
      if (wanted.has(service)) continue;
      await c.stop();
      this.#carriers.delete(service);
      this.#inForce.delete(service);
      this.#tables.delete(service);
      this.#measurements.retire(service);
    }
    const outcomes = await Promise.all(main.map((t) => this.#applyOne(t)));
    // A preview table handed in beside its service (`expandPreviews`) shares its outcome.
    const byService = new Map(outcomes.map((o) => [o.service, o]));
    const out: TableOutcome[] = [];
    for (const t of tables) {
      if (!isPreviewTable(t)) {
        out.push(byService.get(t.service)!);
        continue;
      }
      const base = byService.get(t.service.slice(0, -":preview".length));
      out.push(
        base === undefined
          ? {
              service: t.service,
              revision: t.revision,
              ok: false,
              error: new TurnoutError(
                "TURNOUT_ERR_HAPROXY_UNSUPPORTED",
                `preview table ${t.service} without its service: the haproxy provider serves previews from the service's own table`,
              ),
            }
          : base.ok
            ? { service: t.service, revision: t.revision, ok: true }
            : { service: t.service, revision: t.revision, ok: false, error: base.error },
      );
    }
    return out;
  }

  async #applyOne(table: RouteTable): Promise<TableOutcome> {
    const { service, revision } = table;
    try {
      const spec =
        table.traffic !== undefined && "haproxy" in table.traffic ? table.traffic.haproxy : {};
      refuseUnsupported(table, spec);
      const key = JSON.stringify(spec);
      const old = this.#carriers.get(service);
      if (old !== undefined && old.specKey === key) {
        // The router role hands over every table at each change of any: one already in force
        // in a running HAProxy is left alone (an attached one is re-asserted: its owner may
        // have restarted it).
        const same =
          old.mode === "managed" &&
          old.status().process?.running === true &&
          sameTable(this.#tables.get(service), table);
        if (!same) await old.apply(table);
      } else {
        // Another binary, mode or protocol: a fresh carrier. Made first, so a binary that is
        // missing or too old is refused while the old one serves; the old one then stops (a
        // managed HAProxy frees its port) and comes back if the new one cannot start.
        const next: Carrier =
          spec.runtimeApi !== undefined
            ? new AttachedService(service, spec, key)
            : new ManagedService(service, spec, key, this.#managedOptions(service));
        if (old !== undefined) await old.stop();
        try {
          await next.apply(table);
        } catch (err) {
          await next.stop().catch(() => {});
          const last = this.#tables.get(service);
          if (old !== undefined && last !== undefined) {
            await old.apply(last).catch((e) => {
              this.#logger.error(
                { service, err: e },
                "haproxy: the previous data plane did not come back",
              );
              this.#carriers.delete(service);
              this.#inForce.delete(service);
            });
          }
          throw err;
        }
        this.#carriers.set(service, next);
      }
      this.#tables.set(service, table);
      this.#inForce.set(service, revision);
      return { service, revision, ok: true };
    } catch (err) {
      const error =
        err instanceof TurnoutError
          ? err
          : new TurnoutError(
              "TURNOUT_ERR_HAPROXY_START_FAILED",
              `HAProxy for ${service}: ${(err as Error).message}`,
            );
      this.#logger.warn({ service, revision, err: error }, "haproxy: table not put in force");
      return { service, revision, ok: false, error };
    }
  }

  #managedOptions(service: string): ManagedOptions {
    return {
      dataDir: this.#o.dataDir,
      intake: this.#intakeAddr!,
      logger: this.#logger,
      threads: this.#o.threads ?? 1,
      onOldWorkerLines: (batch) => this.#measurements.ingest(batch),
      ...(this.#o.restartInitialMs !== undefined
        ? { restartInitialMs: this.#o.restartInitialMs }
        : {}),
      ...(this.#o.restartMaxMs !== undefined ? { restartMaxMs: this.#o.restartMaxMs } : {}),
      service,
    };
  }

  lost(): TableOutcome[] {
    const out = this.#lost;
    this.#lost = [];
    return out;
  }

  #reapAll(): Promise<void> {
    return this.#serial(async () => {
      for (const [service, c] of this.#carriers) {
        if (c.mode === "attach" && this.#inForce.has(service) && !(await c.api.answers())) {
          // Someone else's HAProxy went away after its table was put in force: what it serves
          // now is unknown. Not in force any more; the router role reports it and applies the
          // table again until the socket answers (managed mode's own process is supervised).
          const revision = this.#inForce.get(service)!;
          this.#inForce.delete(service);
          const error = new TurnoutError(
            "TURNOUT_ERR_HAPROXY_RUNTIME_API",
            `HAProxy runtime API ${c.api.socketPath} stopped answering after revision ${revision} was put in force`,
            { socket: c.api.socketPath },
          );
          this.#logger.warn({ service, revision, err: error }, "haproxy: attached HAProxy lost");
          this.#lost.push({ service, revision, ok: false, error });
          continue;
        }
        try {
          await c.reap();
        } catch (err) {
          this.#logger.debug({ err }, "haproxy: reaping drained servers failed; retrying later");
        }
      }
    });
  }
}

function sameTable(a: RouteTable | undefined, b: RouteTable): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
}

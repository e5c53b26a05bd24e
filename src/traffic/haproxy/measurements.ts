/**
 * HAProxy's measurements, wired as the built-in router's: every managed HAProxy logs to one
 * `LogIntake` (intake.ts), whose recorder the router's `MeasurementFlusher` writes to the store
 * as the same rows, so judges, experiments' metrics and `/metrics` read HAProxy's traffic
 * unchanged. Lines that exposed an experiment arm become first exposures through the router's
 * `ExposureLog`.
 *
 * A store outage is the router's too (src/router/outage.ts): the seconds wait in the recorder's
 * window (300 s by default; older ones are dropped and counted), exposures up to
 * `maxBufferedRows`, and one `StoreOutage` logs one warning when the outage begins and one info
 * line with the counts when it ends. `buffers()` goes with every heartbeat of the router role
 * that drives HAProxy (src/traffic/agent.ts, which reports its own store uses to `health`) and
 * into `/metrics`. HAProxy takes no header events and mirrors nothing: those kinds stay 0.
 */
import { hostname } from "node:os";
import { ExposureLog, type ExposureSink } from "../../router/exposures.js";
import { StoreOutage, type StoreUseReporter, writerBuffers } from "../../router/outage.js";
import {
  MeasurementFlusher,
  type MeasurementRecorder,
  type RouterMeasurementOptions,
} from "../../router/stats.js";
import type { RouterBuffers } from "../../store/store.js";
import { type IntakeStats, LogIntake, type SlotVersion } from "./intake.js";
import type { SupervisorLogger } from "./supervisor.js";

export interface HaproxyMeasurementsOptions {
  /** As `HaproxyProviderOptions.measurements`. */
  measurements?: (RouterMeasurementOptions & { lossTimeoutMs?: number }) | undefined;
  /** As `HaproxyProviderOptions.exposures`. */
  exposures?: ExposureSink | undefined;
  /** As `HaproxyProviderOptions.maxBufferedRows`. */
  maxBufferedRows?: number | undefined;
  logger: SupervisorLogger;
  /** The experiment a series' table runs now, if any (its exposures are logged under it). */
  experimentOf: (series: string) => string | undefined;
  /** The version a slot of a series' HAProxy serves now (lines of requests that got no server). */
  slotVersion?: SlotVersion;
}

/** The log intake, its flusher to the store, and the exposures it finds. */
export class HaproxyMeasurements {
  readonly #intake: LogIntake;
  readonly #flusher: MeasurementFlusher;
  readonly #exposures: ExposureLog;
  readonly #outage: StoreOutage;

  constructor(opts: HaproxyMeasurementsOptions) {
    const m = opts.measurements ?? {};
    const { sink, flushIntervalMs, retentionSeconds, ...recorder } = m;
    this.#intake = new LogIntake({
      ...recorder,
      routerId: recorder.routerId ?? `haproxy@${hostname()}:${process.pid}`,
    });
    this.#outage = new StoreOutage({
      logger: opts.logger,
      name: "haproxy",
      now: m.now ?? Date.now,
      buffers: () => this.buffers(),
    });
    this.#exposures = new ExposureLog({
      sink: opts.exposures,
      logger: opts.logger as never,
      health: this.#outage,
      ...(opts.maxBufferedRows !== undefined ? { maxBuffered: opts.maxBufferedRows } : {}),
    });
    if (opts.slotVersion) this.#intake.slotVersion = opts.slotVersion;
    this.#intake.onLines = (lines) => {
      for (const l of lines) {
        if (l.arm === null || l.unit === null) continue;
        const name = opts.experimentOf(l.series);
        if (name !== undefined) this.#exposures.expose(name, l.unit, l.arm);
      }
    };
    this.#flusher = new MeasurementFlusher({
      recorder: this.#intake.recorder,
      sink,
      logger: opts.logger as never,
      health: this.#outage,
      ...(flushIntervalMs !== undefined ? { intervalMs: flushIntervalMs } : {}),
      ...(retentionSeconds !== undefined ? { retentionSeconds } : {}),
    });
  }

  /** The recorder HAProxy's measurements go to (windows, totals for /metrics). */
  get recorder(): MeasurementRecorder {
    return this.#intake.recorder;
  }

  /**
   * Lines read from a worker's ring over its runtime API (managed.ts `OldWorkerLines`): the
   * same lines as the forwarding's, taken once each by their numbers.
   */
  ingest(batch: string): void {
    this.#intake.ingest(batch);
  }

  /** The log intake's counts: lines measured, lost, late, unparsable, unrouted. */
  stats(): IntakeStats {
    return this.#intake.stats();
  }

  /** The store outage account, for the router role's own store uses (tables, registry). */
  get health(): StoreUseReporter {
    return this.#outage;
  }

  /** Whether the store is reachable as far as HAProxy's data plane can tell. */
  get storeReachable(): boolean {
    return this.#outage.since === null;
  }

  /** Rows held for the store per kind, and rows dropped since start (the router's `buffers()`). */
  buffers(): RouterBuffers {
    return writerBuffers({ measurements: this.#flusher, exposures: this.#exposures });
  }

  /** Listens for HAProxy's log (returns the address its config names) and starts flushing. */
  async start(): Promise<{ host: string; port: number }> {
    const addr = await this.#intake.listen("127.0.0.1", 0);
    this.#flusher.start();
    this.#exposures.start();
    return addr;
  }

  /** Writes every measured second and buffered exposure now (tests, shutdown). */
  async flush(): Promise<void> {
    await this.#flusher.flush(true);
    await this.#exposures.flush();
  }

  /** Writes what is left and closes the intake. */
  async stop(): Promise<void> {
    await this.#flusher.stop();
    await this.#exposures.stop();
    await this.#intake.close();
    this.#outage.stopped();
  }

  /** Forgets a service that left (its series and its preview's). */
  retire(service: string): void {
    this.#intake.recorder.retire(service);
    this.#intake.recorder.retire(`${service}:preview`);
  }
}

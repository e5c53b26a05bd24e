/**
 * HAProxy's measurements, wired as the built-in router's: every managed HAProxy logs to one
 * `LogIntake` (intake.ts), whose recorder the router's `MeasurementFlusher` writes to the store
 * as the same rows, so judges, experiments' metrics and `/metrics` read HAProxy's traffic
 * unchanged. Lines that exposed an experiment arm become first exposures through the router's
 * `ExposureLog`.
 */
import { hostname } from "node:os";
import { ExposureLog, type ExposureSink } from "../../router/exposures.js";
import {
  MeasurementFlusher,
  type MeasurementRecorder,
  type RouterMeasurementOptions,
} from "../../router/stats.js";
import { type IntakeStats, LogIntake } from "./intake.js";
import type { SupervisorLogger } from "./supervisor.js";

export interface HaproxyMeasurementsOptions {
  /** As `HaproxyProviderOptions.measurements`. */
  measurements?: RouterMeasurementOptions | undefined;
  /** As `HaproxyProviderOptions.exposures`. */
  exposures?: ExposureSink | undefined;
  logger: SupervisorLogger;
  /** The experiment a series' table runs now, if any (its exposures are logged under it). */
  experimentOf: (series: string) => string | undefined;
}

/** The log intake, its flusher to the store, and the exposures it finds. */
export class HaproxyMeasurements {
  readonly #intake: LogIntake;
  readonly #flusher: MeasurementFlusher;
  readonly #exposures: ExposureLog;

  constructor(opts: HaproxyMeasurementsOptions) {
    const m = opts.measurements ?? {};
    const { sink, flushIntervalMs, retentionSeconds, ...recorder } = m;
    this.#intake = new LogIntake({
      ...recorder,
      routerId: recorder.routerId ?? `haproxy@${hostname()}:${process.pid}`,
    });
    this.#exposures = new ExposureLog({ sink: opts.exposures, logger: opts.logger as never });
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
      ...(flushIntervalMs !== undefined ? { intervalMs: flushIntervalMs } : {}),
      ...(retentionSeconds !== undefined ? { retentionSeconds } : {}),
    });
  }

  /** The recorder HAProxy's measurements go to (windows, totals for /metrics). */
  get recorder(): MeasurementRecorder {
    return this.#intake.recorder;
  }

  /** The log intake's counts: lines measured, lost, late, unparsable, unrouted. */
  stats(): IntakeStats {
    return this.#intake.stats();
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
  }

  /** Forgets a service that left (its series and its preview's). */
  retire(service: string): void {
    this.#intake.recorder.retire(service);
    this.#intake.recorder.retire(`${service}:preview`);
  }
}

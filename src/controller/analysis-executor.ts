/**
 * Takes the measurements that analysis runs ask for, outside the controller's tick: a slow
 * source (a Prometheus query, a command) must not hold up other services. Results wait in a
 * buffer until the next tick hands them to the pure core, which judges and records them.
 *
 * A measurement in flight when Turnout stops is lost, and that is fine: the run's state in the
 * store still says it is due, so it is taken again after a restart.
 */

import type { Observation } from "../core/analysis/observation.js";
import { type DueMeasurement, dueMeasurements, type RunState } from "../core/analysis/run.js";
import type { ServiceStatus } from "../core/model.js";
import type { AnalysisObservation } from "../core/rollout.js";
import { createProvider, type ProviderDeps } from "../metrics/providers/index.js";

export interface ExecutorLogger {
  warn(obj: object, msg?: string): void;
}

export class AnalysisExecutor {
  private readonly inflight = new Map<string, AbortController>();
  private readonly running = new Set<Promise<void>>();
  private readonly done = new Map<string, AnalysisObservation[]>();
  private stopped = false;

  constructor(
    private readonly deps: ProviderDeps,
    /** Called when a result is ready, so the controller ticks again. */
    private readonly onResult: () => void,
    private readonly log: ExecutorLogger = { warn() {} },
  ) {}

  /** Results gathered for a service since the last call; they are handed over once. */
  take(service: string): AnalysisObservation[] {
    const r = this.done.get(service) ?? [];
    this.done.delete(service);
    return r;
  }

  /** Starts every measurement that the service's runs have due at `now` and not yet in flight. */
  schedule(service: string, status: ServiceStatus, now: number): void {
    if (this.stopped || status.canaryVersion === null) return;
    const runs: { kind: "step" | "background"; run: RunState }[] = [];
    if (status.analysis?.step) runs.push({ kind: "step", run: status.analysis.step.run });
    if (status.analysis?.background)
      runs.push({ kind: "background", run: status.analysis.background });
    for (const { kind, run } of runs) {
      for (const due of dueMeasurements(run, now)) {
        const key = `${service}\u0000${kind}\u0000${run.startedAt}\u0000${due.metric}\u0000${due.toMs}`;
        if (this.inflight.has(key)) continue;
        this.start(key, service, status, kind, run, due, now);
      }
    }
  }

  private start(
    key: string,
    service: string,
    status: ServiceStatus,
    kind: "step" | "background",
    run: RunState,
    due: DueMeasurement,
    now: number,
  ): void {
    const abort = new AbortController();
    this.inflight.set(key, abort);
    const timeoutMs = 1000 * (timeoutSecondsOf(due.source) + 5);
    const timer = setTimeout(() => abort.abort(new Error("measurement timed out")), timeoutMs);
    timer.unref?.();
    const measure = async (): Promise<Observation> => {
      try {
        const provider = createProvider(due.source, this.deps);
        return await provider.measure(
          {
            metric: due.metric,
            source: due.source,
            args: run.args,
            service,
            candidate: status.canaryVersion as string,
            ...(status.stableVersion ? { baseline: status.stableVersion } : {}),
            fromMs: due.fromMs,
            toMs: due.toMs,
            now,
          },
          abort.signal,
        );
      } catch (err) {
        // A request the provider refuses (bad template, unknown argument) cannot get better by
        // retrying; it is an error verdict with the reason, and the run's error limit decides.
        return { error: (err as Error).message, errorKind: "failed", raw: null };
      }
    };
    const p = measure().then((observation) => {
      clearTimeout(timer);
      this.inflight.delete(key);
      if (this.stopped || observation.errorKind === "aborted") return;
      const list = this.done.get(service) ?? [];
      list.push({
        run: kind,
        runStartedAt: run.startedAt,
        metric: due.metric,
        observation,
        fromMs: due.fromMs,
        toMs: due.toMs,
      });
      this.done.set(service, list);
      // "No data yet" is normal at the start of a run; anything else is worth a warning.
      if (observation.error !== undefined && observation.errorKind !== "noData") {
        this.log.warn(
          { service, metric: due.metric, error: observation.error },
          "measurement failed",
        );
      }
      this.onResult();
    });
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  /** Resolves once every measurement started so far has finished and been buffered. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  /** Takes measurements again after `stop()` (a controller that leads again), starting afresh. */
  resume(): void {
    this.stopped = false;
    this.done.clear();
  }

  stop(): void {
    this.stopped = true;
    for (const a of this.inflight.values()) a.abort(new Error("controller stopping"));
    this.inflight.clear();
  }
}

function timeoutSecondsOf(source: DueMeasurement["source"]): number {
  if ("prometheus" in source) return source.prometheus.timeoutSeconds;
  if ("web" in source) return source.web.timeoutSeconds;
  if ("command" in source) return source.command.timeoutSeconds;
  return 10;
}

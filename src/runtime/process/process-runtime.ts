/**
 * The process runtime: Turnout starts each instance of a version as a local child process on
 * a port it picks, probes it for readiness (and, once ready, for liveness), restarts it with
 * exponential back-off when it crashes, and drains then stops it when it is no longer wanted.
 *
 * Life of an instance (a slot `service/version/index` with a fixed port; its process may be
 * restarted several times):
 *   1. spawn: its own process group (detached), stdout+stderr appended to its log file; the
 *      record (pid, start time, port...) is written to `<dataDir>/runtime/instances.json`
 *      before the first probe.
 *   2. "starting" until the readiness probe passes, then "ready"; from then on the liveness
 *      probe (if configured) runs, and `failureThreshold` misses in a row restart the process.
 *   3. A crash (the leader exits unasked) or a startup timeout schedules a restart after
 *      `initialBackoffSeconds`, doubling per crash up to `maxBackoffSeconds`, back to the first
 *      delay after a run of `resetAfterSeconds` (Kubernetes' CrashLoopBackOff). The instance is
 *      "starting" meanwhile, and "failed" once it crashed `failureThreshold` times in a row
 *      without becoming ready (or missed its startup timeout): the rollout core aborts on
 *      failed instances, so one crash during start-up must not count, but a crash loop must.
 *      Becoming ready clears "failed": it is a state, not a verdict.
 *   4. stop (scale-down, version dropped, service removed): "stopping" at once (so the
 *      controller's next route table leaves it out), then the stop gate (`setStopGate`, the
 *      controller's: until every live router serves a table without it), then `drainSeconds`
 *      for requests in flight, then SIGTERM to the group, then SIGKILL to the group after
 *      `terminationGracePeriodSeconds`. An instance that was never ready skips gate and drain;
 *      `shutdown()` skips both (Turnout's routers stop first).
 *
 * No orphans: every signal goes to the whole group, `shutdown()` stops everything, and a
 * synchronous `process.on("exit")` hook SIGKILLs any group still alive when Turnout exits for
 * another reason. When Turnout is SIGKILLed no hook runs; the next ProcessRuntime on the same
 * data dir reads the records, ADOPTS each instance whose pid still runs with the recorded start
 * time (its port stays reserved, it is probed again, and `ensure` keeps or stops it like any
 * other), SIGKILLs groups whose leader is gone, and forgets the rest.
 *
 * The decisions of that life are pure and unit-tested on their own (`instance-machine.ts`:
 * what a probe's answer, a start-up deadline, a crash or a due restart does to an instance's
 * state, how it stops, what `ensure` starts and stops). This file holds the runtime's API and
 * which instances exist (ports, records, listeners, per-service ordering); the parts act on
 * the decisions:
 *   - `lifecycle.ts`: the life of one instance (spawn, exit, crash and restart, stop);
 *   - `launch.ts`: the command, env and timings an instance runs with, from the spec;
 *   - `ports.ts`: free ports, reserved for adopted instances too;
 *   - `spawn.ts`: spawning detached; `log-capture.ts`: its log file, Turnout's lines, rotation;
 *   - `probing.ts`: start-up deadline, readiness and liveness probes (`probe.ts`: one probe);
 *   - `draining.ts`: the stop gate and the drain before SIGTERM;
 *   - `signals.ts`: SIGTERM then SIGKILL to the group, polling adopted processes, the exit hook;
 *   - `adoption.ts` (with `instances-file.ts` and `proc.ts`): records and adoption;
 *   - `instance.ts`: what is held about each instance and each run of its process.
 *
 * POSIX only: process groups and negative pids do not exist on Windows; identity checks of
 * adopted pids need Linux's /proc (elsewhere, a pid that cannot be verified is left alone).
 */
import { type Clock, systemClock } from "../../core/clock.js";
import type { ProcessRuntimeSpec, RuntimeSpec } from "../../core/model.js";
import { TurnoutError } from "../../errors.js";
import { type Logger, silentLogger } from "../../logger.js";
import type { Runtime, StopGate, VersionTarget } from "../runtime.js";
import { adoptedInstance, recordsOf, settleLeftovers } from "./adoption.js";
import {
  isLive,
  type Managed,
  newManaged,
  type ProcessInstance,
  processInstances,
  type Running,
} from "./instance.js";
import * as machine from "./instance-machine.js";
import { type InstanceRecord, InstancesFile } from "./instances-file.js";
import { launchConfig } from "./launch.js";
import { Lifecycle } from "./lifecycle.js";
import { LogRotation } from "./log-capture.js";
import { instanceLogFile } from "./logs.js";
import { defaultPortAllocator, type PortAllocator } from "./ports.js";
import { ExitHook } from "./signals.js";

export type { ProcessInstance } from "./instance.js";
export { READINESS_FAILURE_THRESHOLD } from "./instance-machine.js";
export { template } from "./launch.js";

export interface ProcessRuntimeOptions {
  logger?: Logger;
  /**
   * Instance output goes to `<dataDir>/logs/<service>/<version>-<i>.log` (discarded without it),
   * and the records that allow adoption after a SIGKILL to `<dataDir>/runtime/instances.json`.
   */
  dataDir?: string;
  /** Defaults to one allocator shared by the whole Node process. */
  ports?: PortAllocator;
  /**
   * Time for restart back-off: when to restart, and how long an instance has run. Injected so a
   * test can check the delays (1 s, 2 s, 4 s...) without waiting for them. Default: real time.
   */
  clock?: Clock;
  /** How often an adopted instance (not our child: no exit event) is checked for life. Default 500 ms. */
  watchIntervalMs?: number;
  /** How often log files are checked for rotation. Default 1 s. */
  logCheckIntervalMs?: number;
}

/** Runs versions as local processes. See the module comment for the lifecycle. */
export class ProcessRuntime implements Runtime {
  private readonly logger: Logger;
  private readonly dataDir: string | undefined;
  private readonly ports: PortAllocator;
  private readonly clock: Clock;
  private readonly file: InstancesFile | undefined;
  /** service -> instance id -> instance. */
  private readonly services = new Map<string, Map<string, Managed>>();
  private readonly listeners = new Set<() => void>();
  /** Per-service chain: ensure/remove of one service never interleave (indices, ports). */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Stops started by `ensure` that nobody awaits; `shutdown` waits for them. */
  private readonly backgroundStops = new Set<Promise<void>>();
  private readonly exitHook = new ExitHook(() => this.running());
  /** Only with a data dir: without one, output is discarded. */
  private readonly logRotation: LogRotation | undefined;
  /** The life of each instance: spawn, exit, restart, stop. */
  private readonly lifecycle: Lifecycle;
  private gate: StopGate | null = null;
  /** Resolves when `shutdown()` begins: stops waiting on the gate go ahead then. */
  private readonly closing: Promise<void>;
  private startClosing!: () => void;
  private closed = false;
  /**
   * Resolves once every instance adopted at construction has answered its first readiness probe
   * (or failed it), so a caller can start the controller with their readiness already known and
   * its first route table is not empty.
   */
  readonly adopted: Promise<void>;

  constructor(opts: ProcessRuntimeOptions = {}) {
    this.logger = opts.logger ?? silentLogger;
    this.dataDir = opts.dataDir;
    this.ports = opts.ports ?? defaultPortAllocator;
    this.clock = opts.clock ?? systemClock;
    this.file = this.dataDir !== undefined ? new InstancesFile(this.dataDir) : undefined;
    this.logRotation = this.dataDir
      ? new LogRotation(this.logger, opts.logCheckIntervalMs ?? 1000, () => this.running())
      : undefined;
    this.closing = new Promise<void>((r) => {
      this.startClosing = r;
    });
    this.lifecycle = new Lifecycle({
      logger: this.logger,
      clock: this.clock,
      watchIntervalMs: opts.watchIntervalMs ?? 500,
      closing: this.closing,
      closed: () => this.closed,
      gate: () => this.gate,
      started: () => {
        this.exitHook.install();
        this.logRotation?.start();
      },
      persist: () => this.persist(),
      emit: () => this.emit(),
      forget: (m) => this.forget(m),
    });
    this.adopted = this.adoptLeftovers();
  }

  /**
   * Starts missing instances and begins stopping unwanted ones. It returns once new processes
   * are spawned and stops are under way (their instances show "stopping" until the process has
   * exited); it does not wait for readiness nor for draining, so a controller tick never blocks.
   *
   * A failed instance counts towards the replicas and keeps being restarted with back-off.
   * Running instances keep the command and env they were started with (restarts too): a changed
   * spec applies to new instances only, as a Kubernetes pod keeps its template.
   */
  ensure(service: string, spec: RuntimeSpec, targets: VersionTarget[]): Promise<void> {
    // Checked on entry, not when the queued call runs: an ensure made before shutdown() goes
    // ahead, and shutdown() (queued behind it) stops what it starts.
    if (this.closed) {
      return Promise.reject(
        new TurnoutError("TURNOUT_ERR_INTERNAL_BUG", "process runtime: ensure after shutdown"),
      );
    }
    return this.serial(service, async () => {
      if (!("process" in spec)) {
        throw new TurnoutError(
          "TURNOUT_ERR_INTERNAL_BUG",
          `process runtime: service ${service} has no process runtime spec`,
        );
      }
      const p = spec.process;
      const wanted = new Map<string, number>();
      for (const t of targets) {
        if (wanted.has(t.version)) {
          throw new TurnoutError(
            "TURNOUT_ERR_INTERNAL_BUG",
            `process runtime: version ${t.version} of ${service} listed twice`,
          );
        }
        wanted.set(t.version, Math.max(0, Math.floor(t.replicas)));
      }
      const current = this.services.get(service) ?? new Map<string, Managed>();
      // Unwanted versions go; each wanted version scales to its replicas (`scalePlan`).
      const plan = machine.scalePlan(
        [...current.values()].map((m) => ({
          id: m.id,
          version: m.version,
          index: m.index,
          state: m.state,
          removing: m.removal !== undefined,
        })),
        wanted,
      );
      const starts: Promise<void>[] = [];
      for (const step of plan) {
        if (step.op === "stop") this.stopInBackground(current.get(step.id)!);
        else starts.push(this.create(service, step.version, step.index, p));
      }
      await Promise.all(starts);
      // New "starting" instances are a change too (as they are for the static runtime); the
      // ensuing tick's ensure starts nothing, so this cannot loop.
      if (starts.length > 0) this.emit();
    });
  }

  instances(service: string): ProcessInstance[] {
    const current = this.services.get(service);
    if (!current) return [];
    return processInstances(current.values());
  }

  /** Services with instances (adopted ones included, before any `ensure` named them). */
  serviceNames(): string[] {
    return [...this.services.keys()];
  }

  /** Stops every instance of the service (draining those that served) and waits until they are gone. */
  remove(service: string): Promise<void> {
    return this.serial(service, () => this.stopService(service, true));
  }

  /**
   * Stops everything and waits; afterwards no process, timer or exit hook is left, and the
   * instance records are empty (nothing to adopt). No drain: Turnout's routers stop first.
   */
  async shutdown(): Promise<void> {
    this.closed = true;
    this.startClosing();
    // Services with an ensure still in flight may not be in `services` yet (their instances are
    // added after a port is allocated); queuing behind that ensure catches what it starts.
    const names = new Set([...this.services.keys(), ...this.queues.keys()]);
    await Promise.all([...names].map((s) => this.serial(s, () => this.stopService(s, false))));
    await Promise.all([...this.backgroundStops]);
    this.logRotation?.stop();
    this.exitHook.remove();
  }

  /** The controller's gate: stops of instances that served wait on it before SIGTERM. */
  setStopGate(gate: StopGate | null): void {
    this.gate = gate;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  // -------------------------------------------------------------------------------------
  // Adoption after a SIGKILL of the previous Turnout (see adoption.ts)
  // -------------------------------------------------------------------------------------

  private adoptLeftovers(): Promise<void> {
    if (!this.file) return Promise.resolve();
    const { records, problem } = this.file.read();
    if (problem) this.logger.warn({ problem }, "instance records unreadable; nothing adopted");
    const firstProbes: Promise<void>[] = [];
    settleLeftovers(records, this.logger, (r) => firstProbes.push(this.adopt(r)));
    this.persist();
    return Promise.all(firstProbes).then(() => undefined);
  }

  private adopt(r: InstanceRecord): Promise<void> {
    // Held before anything else can allocate: the adopted process is listening on it.
    this.ports.reserve(r.port);
    const { m, proc } = adoptedInstance(r, this.clock.now());
    this.track(m);
    return this.lifecycle.adopt(m, proc);
  }

  // -------------------------------------------------------------------------------------
  // Which instances exist
  // -------------------------------------------------------------------------------------

  private async create(
    service: string,
    version: string,
    index: number,
    p: ProcessRuntimeSpec,
  ): Promise<void> {
    const port = await this.ports.allocate();
    const launch = launchConfig(p, version, index, port);
    const logFile = this.dataDir
      ? instanceLogFile(this.dataDir, service, version, index)
      : undefined;
    const m = newManaged(service, version, index, port, launch, logFile, false);
    // Tracked right after the await: an untracked child would be an orphan.
    this.track(m);
    this.lifecycle.start(m);
  }

  private stopInBackground(m: Managed): void {
    const p = this.lifecycle
      .stop(m, true)
      .catch((err) => this.logger.error({ instance: m.id, err: String(err) }, "stop failed"));
    this.backgroundStops.add(p);
    p.finally(() => this.backgroundStops.delete(p));
  }

  private async stopService(service: string, drain: boolean): Promise<void> {
    const current = this.services.get(service);
    if (!current) return;
    await Promise.all([...current.values()].map((m) => this.lifecycle.stop(m, drain)));
  }

  private forget(m: Managed): void {
    const current = this.services.get(m.service);
    if (!current?.delete(m.id)) return;
    if (current.size === 0) this.services.delete(m.service);
    this.ports.release(m.port);
    this.persist();
    this.emit();
  }

  // -------------------------------------------------------------------------------------
  // Helpers
  // -------------------------------------------------------------------------------------

  private track(m: Managed): void {
    let current = this.services.get(m.service);
    if (!current) {
      current = new Map();
      this.services.set(m.service, current);
    }
    current.set(m.id, m);
  }

  /** Every instance whose process runs. */
  private *running(): Generator<Running> {
    for (const current of this.services.values())
      for (const m of current.values()) if (isLive(m)) yield m;
  }

  /** Writes the records of every running process; a failure is logged (adoption is best effort). */
  private persist(): void {
    if (!this.file) return;
    try {
      this.file.write(recordsOf(this.running()));
    } catch (err) {
      this.logger.error({ err: String(err), file: this.file.file }, "cannot record instances");
    }
  }

  private emit(): void {
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch (err) {
        this.logger.error({ err: String(err) }, "runtime onChange listener threw");
      }
    }
  }

  private serial<T>(service: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(service) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.queues.set(service, tail);
    // Drop the chain once idle so the map does not grow with every service ever seen.
    tail.then(() => {
      if (this.queues.get(service) === tail) this.queues.delete(service);
    });
    return next;
  }
}

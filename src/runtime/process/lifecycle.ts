/**
 * The life of each instance of the process runtime, as `process-runtime.ts`'s header describes
 * it: spawn a run of its process (and probe it), see it exit, restart it with back-off after a
 * crash, stop it for good (stop gate, drain, SIGTERM, SIGKILL). What each event does to the
 * instance is `instance-machine.ts`'s to decide; this file acts on the decisions. Which
 * instances exist (and their ports, records and listeners) is the runtime's: it is the host.
 */
import type { ChildProcess } from "node:child_process";
import type { Clock } from "../../core/clock.js";
import type { Logger } from "../../logger.js";
import type { StopGate } from "../runtime.js";
import { releaseAndDrain } from "./draining.js";
import { type InstanceHooks, type Managed, newProc, type Proc } from "./instance.js";
import * as machine from "./instance-machine.js";
import { noteExitInLog } from "./log-capture.js";
import { clearTimers, firstProbeDone, startProbing } from "./probing.js";
import { processStartTicks } from "./proc.js";
import { reap, terminate, watch } from "./signals.js";
import { launchProblem, spawnChild } from "./spawn.js";

type State = Managed["state"];

/** What the lifecycle needs of the runtime that holds the instances. */
export interface LifecycleHost {
  readonly logger: Logger;
  /** Restart back-off: when to restart, and how long a run lasted. */
  readonly clock: Clock;
  /** How often an adopted process (not our child: no exit event) is checked for life. */
  readonly watchIntervalMs: number;
  /** Resolves when `shutdown()` begins: stops waiting on the gate go ahead then. */
  readonly closing: Promise<void>;
  /** True once `shutdown()` began: nothing restarts, and every exit is expected. */
  closed(): boolean;
  /** The controller's stop gate, if one is installed. */
  gate(): StopGate | null;
  /** A process runs now (spawned or adopted): the exit hook and log rotation must be on. */
  started(): void;
  /** Which processes run changed: rewrite the records adoption reads. */
  persist(): void;
  /** Something changed: tell the runtime's listeners. */
  emit(): void;
  /** The instance is stopped for good: drop it, and its port. */
  forget(m: Managed): void;
}

export class Lifecycle {
  /** What probing and signals call back into. */
  private readonly hooks: InstanceHooks;

  constructor(private readonly host: LifecycleHost) {
    this.hooks = {
      logger: host.logger,
      announce: (m) => this.announce(m),
      exited: (m, proc, how) => this.onProcExit(m, proc, how),
    };
  }

  /** Spawns a run of the instance's process (its first, or a restart). */
  start(m: Managed): void {
    const problem = launchProblem(m.launch);
    if (problem) {
      this.crashed(m, `could not start: ${problem}`, true);
      return;
    }
    let child: ChildProcess;
    try {
      child = spawnChild(m, this.host.logger);
    } catch (err) {
      this.crashed(m, `could not start: ${(err as Error).message}`, true);
      return;
    }
    if (child.pid === undefined) {
      // spawn failed (ENOENT...): an "error" event says why, and no "exit" follows.
      child.once("error", (err) => this.crashed(m, `could not start: ${err.message}`, true));
      return;
    }
    const proc = newProc(
      child.pid,
      processStartTicks(child.pid),
      child,
      Date.now(),
      this.host.clock.now(),
    );
    m.proc = proc;
    // `on`, not `once`: an "error" event without a listener would crash Turnout.
    child.on("error", (err) =>
      this.host.logger.warn({ instance: m.id, err: err.message }, "child process error"),
    );
    child.once("exit", (code, signal) =>
      this.onProcExit(m, proc, code !== null ? `exited with code ${code}` : `killed by ${signal}`),
    );
    // The child stays ref'd, like a server: a program that runs instances lives until it
    // stops them. (Unref'd, a script awaiting readiness would end with nothing to wait on.)
    // Recorded before the instance can be ready, so a SIGKILL of Turnout from here on leaves
    // a record to adopt it by.
    this.host.persist();
    this.host.started();
    const { argv, cwd } = m.launch;
    this.host.logger.info(
      { instance: m.id, port: m.port, pid: proc.pid, argv, cwd, restarts: m.restarts },
      "instance started",
    );
    startProbing(this.hooks, m, proc, m.launch.readiness.initialDelaySeconds * 1000);
  }

  /**
   * Takes over the running process of an instance adopted from the previous Turnout: watched by
   * polling (it is not our child) and probed at once. Resolves once its first probe has an
   * answer (or never will).
   */
  adopt(m: Managed, proc: Proc): Promise<void> {
    this.host.started();
    watch(this.hooks, m, proc, this.host.watchIntervalMs);
    this.host.logger.info({ instance: m.id, pid: proc.pid, port: m.port }, "instance adopted");
    const first = new Promise<void>((resolve) => {
      m.onFirstProbe = resolve;
    });
    startProbing(this.hooks, m, proc, 0);
    return first;
  }

  /**
   * Stops the instance for good: "stopping" at once (routers drop it at the next table), the
   * drain, SIGTERM, SIGKILL; then forgets it.
   */
  stop(m: Managed, drain: boolean): Promise<void> {
    if (m.removal) return m.removal;
    if (m.restartTimer !== undefined) this.host.clock.clearTimeout(m.restartTimer);
    m.restartTimer = undefined;
    clearTimers(m);
    firstProbeDone(m);
    const proc = m.proc;
    const installed = this.host.gate();
    const plan = machine.stopPlan(m, proc, {
      drain,
      hasGate: installed !== null,
      drainMs: m.launch.drainMs,
    });
    const gate = plan.gate ? installed : null;
    const drainMs = plan.drainMs;
    m.removal = (async () => {
      if (proc && !proc.exited) {
        this.setState(m, "stopping", plan.message);
        this.host.logger.info({ instance: m.id, pid: proc.pid, drainMs }, "stopping instance");
        // Neither gate nor drain (never ready, or shutdown): SIGTERM at once, in this same turn.
        if (gate || drainMs > 0)
          await releaseAndDrain(m, proc, gate, drainMs, this.host.closing, this.host.logger);
        await terminate(this.hooks, m, proc);
      }
      this.host.forget(m);
    })();
    return m.removal;
  }

  private onProcExit(m: Managed, proc: Proc, how: string): void {
    if (proc.exited) return;
    reap(proc);
    noteExitInLog(m, how);
    if (m.proc !== proc) return;
    clearTimers(m);
    firstProbeDone(m);
    m.proc = undefined;
    this.host.persist();
    const expected = m.removal !== undefined || this.host.closed();
    this.host.logger[expected ? "info" : "warn"](
      { instance: m.id, pid: proc.pid, how, reason: proc.killReason },
      `instance ${how}`,
    );
    if (expected) return;
    this.crashed(m, proc.killReason ?? `process ${how}`, proc.failNow, proc);
  }

  /**
   * The process is gone unasked (or never started): schedule its restart with the back-off
   * `machine.crashed` decides (and whether the instance now counts as failed).
   */
  private crashed(m: Managed, reason: string, failNow: boolean, proc?: Proc): void {
    if (m.removal || this.host.closed()) return;
    const { delaySeconds, failed } = machine.crashed(m, {
      reason,
      failNow,
      run: proc,
      now: this.host.clock.now(),
      policy: m.launch.restart,
      logFile: m.logFile,
    });
    this.host.logger.warn(
      { instance: m.id, reason, restarts: m.restarts, delaySeconds, failed },
      "instance crashed; restart scheduled",
    );
    m.restartTimer = this.host.clock.setTimeout(() => {
      m.restartTimer = undefined;
      if (m.removal || this.host.closed()) return;
      machine.restartDue(m, reason);
      this.start(m);
      this.host.emit();
    }, delaySeconds * 1000);
    // Always a change: the controller and `status` show restarts and the last exit.
    this.host.emit();
  }

  private setState(m: Managed, state: State, message: string | undefined): void {
    const changed = m.state !== state;
    m.state = state;
    m.message = message;
    if (changed) this.announce(m);
  }

  /** The instance's state changed: logged, and the listeners are told. */
  private announce(m: Managed): void {
    this.host.logger.info(
      { instance: m.id, state: m.state, message: m.message },
      `instance ${m.state}`,
    );
    this.host.emit();
  }
}

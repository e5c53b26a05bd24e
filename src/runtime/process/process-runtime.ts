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
 * state, how it stops, what `ensure` starts and stops); this file spawns, signals, probes,
 * schedules and records accordingly.
 *
 * POSIX only: process groups and negative pids do not exist on Windows; identity checks of
 * adopted pids need Linux's /proc (elsewhere, a pid that cannot be verified is left alone).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, closeSync, mkdirSync, openSync, statSync, writeSync } from "node:fs";
import path from "node:path";
import { type Clock, systemClock } from "../../core/clock.js";
import {
  DEFAULT_DRAIN_SECONDS,
  DEFAULT_PROCESS_LOGS,
  DEFAULT_RESTART_POLICY,
  type ProcessRuntimeSpec,
  type RuntimeSpec,
} from "../../core/model.js";
import { TurnoutError } from "../../errors.js";
import { type Logger, silentLogger } from "../../logger.js";
import type { Instance, Runtime, StopGate, VersionTarget } from "../runtime.js";
import * as machine from "./instance-machine.js";
import { type InstanceRecord, InstancesFile, type LaunchConfig } from "./instances-file.js";
import { instanceLogFile, rotateIfNeeded } from "./logs.js";
import { defaultPortAllocator, type PortAllocator } from "./ports.js";
import { type ProbeHandle, probeHttp } from "./probe.js";
import { groupExists, isRunning, isSameProcess, killGroup, processStartTicks } from "./proc.js";

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

/** What `instances()` returns: an Instance plus what a person debugging it wants to see. */
export interface ProcessInstance extends Instance {
  /** Index within the version (`${instance}` in templates). */
  index: number;
  port: number;
  /** Pid of the group leader while it runs. */
  pid?: number;
  logFile?: string;
  /** Taken over from a previous Turnout process that was killed. */
  adopted?: boolean;
}

type State = Instance["state"];

/** One run of an instance's process: its facts (`RunFacts`) and its handles. */
interface Proc extends machine.RunFacts {
  readonly pid: number;
  readonly startTicks: string | undefined;
  /** Epoch ms of the spawn, recorded for people. */
  readonly startedAtEpoch: number;
  /** Undefined for an adopted process: no exit event, it is watched by polling. */
  readonly child: ChildProcess | undefined;
  exited: boolean;
  readonly exitedPromise: Promise<void>;
  readonly resolveExited: () => void;
  startupTimer: NodeJS.Timeout | undefined;
  termination: Promise<void> | undefined;
  watch: NodeJS.Timeout | undefined;
}

/** Everything the runtime tracks about one instance slot: its facts and its handles. */
interface Managed extends machine.InstanceFacts {
  readonly id: string;
  readonly service: string;
  readonly version: string;
  readonly index: number;
  readonly port: number;
  readonly url: string;
  readonly logFile: string | undefined;
  readonly launch: LaunchConfig;
  readonly adopted: boolean;
  proc: Proc | undefined;
  /** Probe and startup-deadline timers of the current process. */
  readonly timers: Set<NodeJS.Timeout>;
  /** Readiness and liveness probes may be in flight together. */
  readonly probesInFlight: Set<ProbeHandle>;
  restartTimer: unknown;
  /** Called once the first probe of an adopted instance has an answer. */
  onFirstProbe: (() => void) | undefined;
  /** Set once the runtime has decided to drop the instance. */
  removal: Promise<void> | undefined;
}

/** Runs versions as local processes. See the module comment for the lifecycle. */
export class ProcessRuntime implements Runtime {
  private readonly logger: Logger;
  private readonly dataDir: string | undefined;
  private readonly ports: PortAllocator;
  private readonly clock: Clock;
  private readonly watchIntervalMs: number;
  private readonly logCheckIntervalMs: number;
  private readonly file: InstancesFile | undefined;
  /** service -> instance id -> instance. */
  private readonly services = new Map<string, Map<string, Managed>>();
  private readonly listeners = new Set<() => void>();
  /** Per-service chain: ensure/remove of one service never interleave (indices, ports). */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Stops started by `ensure` that nobody awaits; `shutdown` waits for them. */
  private readonly backgroundStops = new Set<Promise<void>>();
  private exitHook: (() => void) | undefined;
  private gate: StopGate | null = null;
  /** Resolves when `shutdown()` begins: stops waiting on the gate go ahead then. */
  private readonly closing: Promise<void>;
  private startClosing!: () => void;
  private logTimer: NodeJS.Timeout | undefined;
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
    this.watchIntervalMs = opts.watchIntervalMs ?? 500;
    this.logCheckIntervalMs = opts.logCheckIntervalMs ?? 1000;
    this.file = this.dataDir !== undefined ? new InstancesFile(this.dataDir) : undefined;
    this.closing = new Promise<void>((r) => {
      this.startClosing = r;
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
    return [...current.values()]
      .sort((a, b) =>
        a.version === b.version ? a.index - b.index : a.version < b.version ? -1 : 1,
      )
      .map((m) => ({
        id: m.id,
        version: m.version,
        url: m.url,
        state: m.state,
        ...(m.message !== undefined ? { message: m.message } : {}),
        restarts: m.restarts,
        ...(m.lastExit !== undefined ? { lastExit: m.lastExit } : {}),
        index: m.index,
        port: m.port,
        ...(m.proc && !m.proc.exited ? { pid: m.proc.pid } : {}),
        ...(m.logFile !== undefined ? { logFile: m.logFile } : {}),
        ...(m.adopted ? { adopted: true } : {}),
      }));
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
    if (this.logTimer) clearInterval(this.logTimer);
    this.logTimer = undefined;
    if (this.exitHook) {
      process.off("exit", this.exitHook);
      this.exitHook = undefined;
    }
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
  // Adoption after a SIGKILL of the previous Turnout
  // -------------------------------------------------------------------------------------

  private adoptLeftovers(): Promise<void> {
    if (!this.file) return Promise.resolve();
    const { records, problem } = this.file.read();
    if (problem) this.logger.warn({ problem }, "instance records unreadable; nothing adopted");
    const firstProbes: Promise<void>[] = [];
    for (const r of records) {
      const log = { service: r.service, version: r.version, pid: r.pid, port: r.port };
      if (r.startTicks !== undefined && isSameProcess(r.pid, r.startTicks)) {
        firstProbes.push(this.adopt(r));
        continue;
      }
      if (isRunning(r.pid)) {
        // Another start time: the pid was reused by another program (and so was its group id,
        // which Linux hands out only once the old group is empty). Without a start time (no
        // /proc) it cannot be told. Either way it is not ours to signal.
        this.logger.warn(
          log,
          "recorded pid now runs another program (or cannot be verified); left alone",
        );
        continue;
      }
      // The leader is gone. Linux never hands out a pid that is still some group's id, so a
      // group that still exists is the instance's own leftovers: they go.
      if (groupExists(r.pid)) {
        this.logger.warn(log, "leader of a recorded instance is gone; killing its group");
        killGroup(r.pid, "SIGKILL");
      } else {
        this.logger.info(log, "recorded instance no longer runs; forgotten");
      }
    }
    this.persist();
    return Promise.all(firstProbes).then(() => undefined);
  }

  private adopt(r: InstanceRecord): Promise<void> {
    // Held before anything else can allocate: the adopted process is listening on it.
    this.ports.reserve(r.port);
    const m = this.newManaged(r.service, r.version, r.index, r.port, r.launch, r.logFile, true);
    m.restarts = r.restarts;
    m.message = "adopted after a restart of Turnout; probing";
    const proc = this.newProc(r.pid, r.startTicks, undefined, r.startedAt);
    m.proc = proc;
    this.track(m);
    this.installExitHook();
    this.startLogRotation();
    this.watch(m, proc, this.watchIntervalMs);
    this.logger.info({ instance: m.id, pid: r.pid, port: r.port }, "instance adopted");
    const first = new Promise<void>((resolve) => {
      m.onFirstProbe = resolve;
    });
    proc.startupTimer = this.addTimer(m, m.launch.startupTimeoutMs, () =>
      this.onStartupTimeout(m, proc),
    );
    this.scheduleProbe(m, proc, 0);
    return first;
  }

  /**
   * An adopted process is not our child: no exit event, so its life is checked by polling.
   * The interval stays ref'd, as a spawned child does: a program that runs instances lives until
   * it stops them (and a script awaiting `adopted` is not left with an empty event loop).
   */
  private watch(m: Managed, proc: Proc, everyMs: number): void {
    if (proc.watch) clearInterval(proc.watch);
    proc.watch = setInterval(() => {
      if (proc.exited) return;
      if (proc.startTicks !== undefined && isSameProcess(proc.pid, proc.startTicks)) return;
      this.onProcExit(m, proc, "exited (adopted: exit status unknown)");
    }, everyMs);
  }

  // -------------------------------------------------------------------------------------
  // Lifecycle of one instance
  // -------------------------------------------------------------------------------------

  private async create(
    service: string,
    version: string,
    index: number,
    p: ProcessRuntimeSpec,
  ): Promise<void> {
    const port = await this.ports.allocate();
    const override =
      p.versions && Object.hasOwn(p.versions, version) ? p.versions[version] : undefined;
    const vars: Record<string, string> = { version, port: String(port), instance: String(index) };
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...p.env, ...override?.env })) env[k] = template(v, vars);
    // PORT last: the port is the runtime's to choose, or the router would send traffic elsewhere.
    env.PORT = String(port);
    const launch: LaunchConfig = {
      argv: (override?.command ?? p.command).map((a) => template(a, vars)),
      cwd: path.resolve(process.cwd(), p.cwd ?? "."),
      env,
      readiness: p.readiness,
      ...(p.liveness ? { liveness: p.liveness } : {}),
      startupTimeoutMs: p.startupTimeoutSeconds * 1000,
      graceMs: p.terminationGracePeriodSeconds * 1000,
      drainMs: (p.drainSeconds ?? DEFAULT_DRAIN_SECONDS) * 1000,
      restart: { ...DEFAULT_RESTART_POLICY, ...p.restartPolicy },
      logs: { ...DEFAULT_PROCESS_LOGS, ...p.logs },
    };
    const logFile = this.dataDir
      ? instanceLogFile(this.dataDir, service, version, index)
      : undefined;
    const m = this.newManaged(service, version, index, port, launch, logFile, false);
    // Tracked right after the await: an untracked child would be an orphan.
    this.track(m);
    this.spawnProcess(m);
  }

  private spawnProcess(m: Managed): void {
    const { argv, cwd } = m.launch;
    // Checked here because spawn reports a missing cwd as "spawn <command> ENOENT", which
    // blames the command.
    const problem =
      argv.length === 0 || argv[0] === ""
        ? "empty command"
        : !statSync(cwd, { throwIfNoEntry: false })?.isDirectory()
          ? `cwd ${cwd} is not a directory`
          : undefined;
    if (problem) {
      this.crashed(m, `could not start: ${problem}`, true);
      return;
    }

    let fd: number | undefined;
    let child: ChildProcess;
    try {
      if (m.logFile) {
        mkdirSync(path.dirname(m.logFile), { recursive: true });
        this.rotate(m);
        fd = openSync(m.logFile, "a");
        const what = m.restarts > 0 ? `restart ${m.restarts} of` : "starting";
        writeSync(
          fd,
          `--- turnout: ${new Date().toISOString()} ${what} ${m.id} on port ${m.port}: ${JSON.stringify(argv)}\n`,
        );
      }
      // Own process group (detached) so that signals reach grandchildren too; output goes
      // straight to the log file descriptor, so nothing is buffered in Turnout and the child
      // can outlive a killed Turnout (see logs.ts).
      child = spawn(argv[0]!, argv.slice(1), {
        cwd,
        env: { ...process.env, ...m.launch.env },
        detached: true,
        stdio: ["ignore", fd ?? "ignore", fd ?? "ignore"],
      });
    } catch (err) {
      this.crashed(m, `could not start: ${(err as Error).message}`, true);
      return;
    } finally {
      // The child holds its own copy of the descriptor.
      if (fd !== undefined) closeSync(fd);
    }
    if (child.pid === undefined) {
      // spawn failed (ENOENT...): an "error" event says why, and no "exit" follows.
      child.once("error", (err) => this.crashed(m, `could not start: ${err.message}`, true));
      return;
    }
    const proc = this.newProc(child.pid, processStartTicks(child.pid), child, Date.now());
    m.proc = proc;
    // `on`, not `once`: an "error" event without a listener would crash Turnout.
    child.on("error", (err) =>
      this.logger.warn({ instance: m.id, err: err.message }, "child process error"),
    );
    child.once("exit", (code, signal) =>
      this.onProcExit(m, proc, code !== null ? `exited with code ${code}` : `killed by ${signal}`),
    );
    // The child stays ref'd, like a server: a program that runs instances lives until it
    // stops them. (Unref'd, a script awaiting readiness would end with nothing to wait on.)
    // Recorded before the instance can be ready, so a SIGKILL of Turnout from here on leaves
    // a record to adopt it by.
    this.persist();
    this.installExitHook();
    this.startLogRotation();
    this.logger.info(
      { instance: m.id, port: m.port, pid: proc.pid, argv, cwd, restarts: m.restarts },
      "instance started",
    );
    proc.startupTimer = this.addTimer(m, m.launch.startupTimeoutMs, () =>
      this.onStartupTimeout(m, proc),
    );
    this.scheduleProbe(m, proc, m.launch.readiness.initialDelaySeconds * 1000);
  }

  /**
   * The readiness probe runs for the life of the process (what its answers do:
   * `machine.readinessAnswered`); until the first pass the startup timeout counts.
   */
  private scheduleProbe(m: Managed, proc: Proc, delayMs: number): void {
    const probe = m.launch.readiness;
    this.addTimer(m, delayMs, async () => {
      if (m.proc !== proc || proc.exited || m.removal || proc.killReason) return;
      const r = await this.probeOnce(m, probe.path, probe.timeoutSeconds);
      if (m.proc !== proc || proc.exited || m.removal || proc.killReason) return;
      this.firstProbeDone(m);
      const t = machine.readinessAnswered(m, proc, r);
      if (t.becameReady && proc.startupTimer) {
        clearTimeout(proc.startupTimer);
        m.timers.delete(proc.startupTimer);
        proc.startupTimer = undefined;
      }
      if (t.changed) this.announce(m);
      if (t.firstReady && m.launch.liveness)
        this.scheduleLiveness(m, proc, m.launch.liveness.periodSeconds * 1000);
      this.scheduleProbe(m, proc, probe.periodSeconds * 1000);
    });
  }

  private scheduleLiveness(m: Managed, proc: Proc, delayMs: number): void {
    const spec = m.launch.liveness;
    if (!spec) return;
    this.addTimer(m, delayMs, async () => {
      if (m.proc !== proc || proc.exited || m.removal || proc.killReason) return;
      const r = await this.probeOnce(m, spec.path, spec.timeoutSeconds);
      if (m.proc !== proc || proc.exited || m.removal || proc.killReason) return;
      const t = machine.livenessAnswered(m, proc, r, spec.failureThreshold);
      if (t.terminate) {
        // As the kubelet does: the container is killed (gracefully) and restarted.
        if (t.changed) this.announce(m);
        this.terminate(m, proc);
        return;
      }
      this.scheduleLiveness(m, proc, spec.periodSeconds * 1000);
    });
  }

  private probeOnce(m: Managed, probePath: string, timeoutSeconds: number) {
    const url = `${m.url}${probePath.startsWith("/") ? "" : "/"}${probePath}`;
    const handle = probeHttp(url, timeoutSeconds * 1000);
    m.probesInFlight.add(handle);
    return handle.result.finally(() => m.probesInFlight.delete(handle));
  }

  private firstProbeDone(m: Managed): void {
    const done = m.onFirstProbe;
    m.onFirstProbe = undefined;
    done?.();
  }

  private onStartupTimeout(m: Managed, proc: Proc): void {
    if (m.proc !== proc || proc.exited || m.removal) return;
    const t = machine.startupTimedOut(m, proc, m.launch.startupTimeoutMs);
    if (!t) return;
    this.firstProbeDone(m);
    if (t.changed) this.announce(m);
    this.terminate(m, proc);
  }

  private onProcExit(m: Managed, proc: Proc, how: string): void {
    if (proc.exited) return;
    // The leader is gone; anything left in its group (a child that ignored SIGTERM, or one
    // the leader did not wait for) is an orphan now, so it goes at once. Waiting out the grace
    // period for such leftovers instead would need to tell live members from zombies, which a
    // container whose init never reaps (Docker without --init) keeps forever. A launcher that
    // should let its child drain must wait for it (npm does; so does `exec` in a shell script).
    killGroup(proc.pid, "SIGKILL");
    proc.exited = true;
    if (proc.watch) clearInterval(proc.watch);
    proc.watch = undefined;
    proc.resolveExited();
    // Synchronous, so the line is there by the time stop() resolves; it is one short write.
    if (m.logFile) {
      try {
        appendFileSync(m.logFile, `--- turnout: ${new Date().toISOString()} ${m.id} ${how}\n`);
      } catch {
        // The log is a convenience; a full disk must not break stopping.
      }
    }
    if (m.proc !== proc) return;
    this.clearTimers(m);
    this.firstProbeDone(m);
    m.proc = undefined;
    this.persist();
    const expected = m.removal !== undefined || this.closed;
    this.logger[expected ? "info" : "warn"](
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
    if (m.removal || this.closed) return;
    const { delaySeconds, failed } = machine.crashed(m, {
      reason,
      failNow,
      run: proc,
      now: this.clock.now(),
      policy: m.launch.restart,
      logFile: m.logFile,
    });
    this.logger.warn(
      { instance: m.id, reason, restarts: m.restarts, delaySeconds, failed },
      "instance crashed; restart scheduled",
    );
    m.restartTimer = this.clock.setTimeout(() => {
      m.restartTimer = undefined;
      if (m.removal || this.closed) return;
      machine.restartDue(m, reason);
      this.spawnProcess(m);
      this.emit();
    }, delaySeconds * 1000);
    // Always a change: the controller and `status` show restarts and the last exit.
    this.emit();
  }

  /** SIGTERM to the group, SIGKILL after the grace period; resolves when the leader has exited. */
  private terminate(m: Managed, proc: Proc): Promise<void> {
    if (proc.termination) return proc.termination;
    if (proc.exited) {
      proc.termination = Promise.resolve();
      return proc.termination;
    }
    const pid = proc.pid;
    killGroup(pid, "SIGTERM");
    // An adopted process has no exit event: look for its end often now.
    if (!proc.child) this.watch(m, proc, 20);
    // Ref'd, unlike the probe timers: it is bounded, and a stop must finish.
    const kill = setTimeout(() => {
      this.logger.warn(
        { instance: m.id, pid, graceSeconds: m.launch.graceMs / 1000 },
        "instance ignored SIGTERM; SIGKILL",
      );
      killGroup(pid, "SIGKILL");
    }, m.launch.graceMs);
    proc.termination = proc.exitedPromise.then(() => clearTimeout(kill));
    return proc.termination;
  }

  /**
   * Stops the instance for good: "stopping" at once (routers drop it at the next table), the
   * drain, SIGTERM, SIGKILL; then forgets it.
   */
  private stop(m: Managed, drain: boolean): Promise<void> {
    if (m.removal) return m.removal;
    if (m.restartTimer !== undefined) this.clock.clearTimeout(m.restartTimer);
    m.restartTimer = undefined;
    this.clearTimers(m);
    this.firstProbeDone(m);
    const proc = m.proc;
    const plan = machine.stopPlan(m, proc, {
      drain,
      hasGate: this.gate !== null,
      drainMs: m.launch.drainMs,
    });
    const gate = plan.gate ? this.gate : null;
    const drainMs = plan.drainMs;
    m.removal = (async () => {
      if (proc && !proc.exited) {
        this.setState(m, "stopping", plan.message);
        this.logger.info({ instance: m.id, pid: proc.pid, drainMs }, "stopping instance");
        if (gate) {
          // The instance goes out of the next route table as "stopping"; the gate resolves
          // once every live router has that table in force. Only then can no new request
          // reach it, and only then does the drain (for requests in flight) start.
          const released = gate({ service: m.service, id: m.id, version: m.version, url: m.url });
          await Promise.race([released.catch(() => undefined), proc.exitedPromise, this.closing]);
          if (!proc.exited && drainMs > 0) m.message = `draining for ${drainMs / 1000}s`;
          this.logger.info({ instance: m.id }, "instance released by every router");
        }
        if (drainMs > 0) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            new Promise<void>((r) => {
              timer = setTimeout(r, drainMs);
            }),
            proc.exitedPromise,
          ]);
          clearTimeout(timer);
          m.message = "stopping (SIGTERM sent)";
        }
        await this.terminate(m, proc);
      }
      this.forget(m);
    })();
    return m.removal;
  }

  private stopInBackground(m: Managed): void {
    const p = this.stop(m, true).catch((err) =>
      this.logger.error({ instance: m.id, err: String(err) }, "stop failed"),
    );
    this.backgroundStops.add(p);
    p.finally(() => this.backgroundStops.delete(p));
  }

  private async stopService(service: string, drain: boolean): Promise<void> {
    const current = this.services.get(service);
    if (!current) return;
    await Promise.all([...current.values()].map((m) => this.stop(m, drain)));
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

  private newManaged(
    service: string,
    version: string,
    index: number,
    port: number,
    launch: LaunchConfig,
    logFile: string | undefined,
    adopted: boolean,
  ): Managed {
    return {
      id: `${service}/${version}/${index}`,
      service,
      version,
      index,
      port,
      url: `http://127.0.0.1:${port}`,
      logFile,
      launch,
      adopted,
      state: "starting",
      message: "starting",
      proc: undefined,
      timers: new Set(),
      probesInFlight: new Set(),
      restarts: 0,
      lastExit: undefined,
      crashesSinceReady: 0,
      backoffStep: 0,
      restartTimer: undefined,
      onFirstProbe: undefined,
      removal: undefined,
    };
  }

  private newProc(
    pid: number,
    startTicks: string | undefined,
    child: ChildProcess | undefined,
    startedAtEpoch: number,
  ): Proc {
    let resolveExited!: () => void;
    return {
      pid,
      startTicks,
      startedAt: this.clock.now(),
      startedAtEpoch,
      child,
      exited: false,
      exitedPromise: new Promise<void>((r) => {
        resolveExited = r;
      }),
      resolveExited: () => resolveExited(),
      killReason: undefined,
      failNow: false,
      livenessFailures: 0,
      wasReady: false,
      readinessFailures: 0,
      startupTimer: undefined,
      termination: undefined,
      watch: undefined,
    };
  }

  private track(m: Managed): void {
    let current = this.services.get(m.service);
    if (!current) {
      current = new Map();
      this.services.set(m.service, current);
    }
    current.set(m.id, m);
  }

  /** Writes the records of every running process; a failure is logged (adoption is best effort). */
  private persist(): void {
    if (!this.file) return;
    const records: InstanceRecord[] = [];
    for (const current of this.services.values()) {
      for (const m of current.values()) {
        const p = m.proc;
        if (!p || p.exited) continue;
        records.push({
          service: m.service,
          version: m.version,
          index: m.index,
          port: m.port,
          pid: p.pid,
          ...(p.startTicks !== undefined ? { startTicks: p.startTicks } : {}),
          startedAt: p.startedAtEpoch,
          ...(m.logFile !== undefined ? { logFile: m.logFile } : {}),
          restarts: m.restarts,
          launch: m.launch,
        });
      }
    }
    try {
      this.file.write(records);
    } catch (err) {
      this.logger.error({ err: String(err), file: this.file.file }, "cannot record instances");
    }
  }

  private rotate(m: Managed): void {
    if (!m.logFile) return;
    try {
      if (rotateIfNeeded(m.logFile, m.launch.logs.maxBytes, m.launch.logs.maxFiles))
        this.logger.info({ instance: m.id, file: m.logFile }, "log rotated");
    } catch (err) {
      this.logger.warn({ instance: m.id, err: String(err) }, "log rotation failed");
    }
  }

  private startLogRotation(): void {
    if (this.logTimer || !this.dataDir) return;
    this.logTimer = setInterval(() => {
      for (const current of this.services.values())
        for (const m of current.values()) if (m.proc && !m.proc.exited) this.rotate(m);
    }, this.logCheckIntervalMs);
    this.logTimer.unref();
  }

  private setState(m: Managed, state: State, message: string | undefined): void {
    const changed = m.state !== state;
    m.state = state;
    m.message = message;
    if (changed) this.announce(m);
  }

  /** The instance's state changed: logged, and the listeners are told. */
  private announce(m: Managed): void {
    this.logger.info({ instance: m.id, state: m.state, message: m.message }, `instance ${m.state}`);
    this.emit();
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

  /** Unref'd: the child process is what keeps Node alive; a probe timer never should on its own. */
  private addTimer(m: Managed, ms: number, fn: () => void | Promise<void>): NodeJS.Timeout {
    const t = setTimeout(() => {
      m.timers.delete(t);
      Promise.resolve()
        .then(fn)
        .catch((err) => this.logger.error({ instance: m.id, err: String(err) }, "timer failed"));
    }, ms);
    t.unref();
    m.timers.add(t);
    return t;
  }

  private clearTimers(m: Managed): void {
    for (const t of m.timers) clearTimeout(t);
    m.timers.clear();
    for (const h of m.probesInFlight) h.cancel();
    m.probesInFlight.clear();
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

  /**
   * Last line of defence against orphans: on any exit of Node that runs "exit" listeners
   * (process.exit, an uncaught exception, the event loop running dry), SIGKILL every group
   * still alive. It must be synchronous; there is no time for a graceful stop there.
   * Note: a signal that kills Node without a handler (SIGINT, SIGTERM) runs no "exit"
   * listener; the CLI handles those and calls `shutdown()`.
   */
  private installExitHook(): void {
    if (this.exitHook) return;
    this.exitHook = () => {
      for (const current of this.services.values()) {
        for (const m of current.values())
          if (m.proc && !m.proc.exited) killGroup(m.proc.pid, "SIGKILL");
      }
    };
    process.on("exit", this.exitHook);
  }
}

export { READINESS_FAILURE_THRESHOLD } from "./instance-machine.js";

/** Replaces `${version}`, `${port}` and `${instance}`; other `${...}` text is left as written. */
export function template(s: string, vars: Record<string, string>): string {
  return s.replace(/\$\{(version|port|instance)\}/g, (whole, name: string) => vars[name] ?? whole);
}

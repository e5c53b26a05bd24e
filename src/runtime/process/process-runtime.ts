/**
 * The process runtime: Turnout starts each instance of a version as a local child process on
 * a port it picks, probes it for readiness, and stops it gracefully (SIGTERM, then SIGKILL
 * after the grace period) when the version is no longer wanted.
 *
 * Every instance is spawned as the leader of its own process group, and every signal goes to
 * the whole group, so a command that is a shell script or a launcher which starts the real
 * server as its child is stopped completely. No orphans: `shutdown()` stops everything
 * gracefully, and a synchronous `process.on("exit")` hook SIGKILLs any group still alive when
 * Turnout exits for another reason. (If Turnout itself is SIGKILLed no hook runs; adopting or
 * reaping such leftovers on the next start arrives with a later issue.)
 *
 * POSIX only for now: process groups and negative pids do not exist on Windows.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, closeSync, mkdirSync, openSync, statSync, writeSync } from "node:fs";
import path from "node:path";
import type { ProcessRuntimeSpec, RuntimeSpec } from "../../core/model.js";
import { TurnoutError } from "../../errors.js";
import type { Instance, Runtime, VersionTarget } from "../runtime.js";
import { defaultPortAllocator, type PortAllocator } from "./ports.js";
import { type ProbeHandle, probeHttp } from "./probe.js";

/** The subset of pino's API the runtime uses; a pino logger fits as is. */
export interface RuntimeLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silentLogger: RuntimeLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface ProcessRuntimeOptions {
  logger?: RuntimeLogger;
  /** Instance output goes to `<dataDir>/logs/<service>/<version>-<i>.log`; discarded without it. */
  dataDir?: string;
  /** Defaults to one allocator shared by the whole Node process. */
  ports?: PortAllocator;
}

/** What `instances()` returns: an Instance plus what a person debugging it wants to see. */
export interface ProcessInstance extends Instance {
  /** Index within the version (`${instance}` in templates). */
  index: number;
  port: number;
  /** Pid of the group leader while it runs. */
  pid?: number;
  logFile?: string;
}

type State = Instance["state"];

/** Everything the runtime tracks about one instance. */
interface Managed {
  readonly id: string;
  readonly service: string;
  readonly version: string;
  readonly index: number;
  readonly port: number;
  readonly url: string;
  readonly logFile: string | undefined;
  readonly probe: ProcessRuntimeSpec["readiness"];
  readonly startupTimeoutMs: number;
  readonly graceMs: number;
  state: State;
  message: string | undefined;
  child: ChildProcess | undefined;
  pid: number | undefined;
  /** The group leader has exited, or never started. */
  exited: boolean;
  readonly exitedPromise: Promise<void>;
  resolveExited: () => void;
  /** Probe and startup-deadline timers; cleared whenever the instance leaves "starting". */
  readonly timers: Set<NodeJS.Timeout>;
  probeInFlight: ProbeHandle | undefined;
  /** Set once SIGTERM has been sent; resolves when the leader has exited. */
  termination: Promise<void> | undefined;
  /** Set once the runtime has decided to drop the instance (not only kill its process). */
  removal: Promise<void> | undefined;
}

/** Runs versions as local processes. See the module comment for the lifecycle. */
export class ProcessRuntime implements Runtime {
  private readonly logger: RuntimeLogger;
  private readonly dataDir: string | undefined;
  private readonly ports: PortAllocator;
  /** service -> instance id -> instance. */
  private readonly services = new Map<string, Map<string, Managed>>();
  private readonly listeners = new Set<() => void>();
  /** Per-service chain: ensure/remove of one service never interleave (indices, ports). */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Stops started by `ensure` that nobody awaits; `shutdown` waits for them. */
  private readonly backgroundStops = new Set<Promise<void>>();
  private exitHook: (() => void) | undefined;
  private closed = false;

  constructor(opts: ProcessRuntimeOptions = {}) {
    this.logger = opts.logger ?? silentLogger;
    this.dataDir = opts.dataDir;
    this.ports = opts.ports ?? defaultPortAllocator;
  }

  /**
   * Starts missing instances and begins stopping unwanted ones. It returns once new processes
   * are spawned and stops are under way (their instances show "stopping" until the process has
   * exited); it does not wait for readiness nor for graceful termination, so a controller tick
   * never blocks for a grace period.
   *
   * A failed instance (exited, or never ready) is kept as "failed" and counts towards the
   * replicas; it is not restarted (restart with backoff arrives later). Running instances keep
   * the command and env they were started with: a changed spec applies to new instances only.
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
      const all = [...(this.services.get(service)?.values() ?? [])];

      // 1. Versions no longer wanted go, all their instances.
      for (const m of all) {
        if (!m.removal && !wanted.has(m.version)) this.stopInBackground(m);
      }
      // 2. Each wanted version scales to its replicas: extra ones go, highest index first, so that
      //    the survivors keep the ids 0..n-1; missing ones start at the lowest free index. Indices
      //    of instances still stopping stay taken, so no two listed instances share an id.
      const starts: Promise<void>[] = [];
      for (const [version, replicas] of wanted) {
        const ofVersion = all.filter((m) => m.version === version);
        const live = ofVersion.filter((m) => !m.removal).sort((a, b) => b.index - a.index);
        for (const m of live.slice(0, Math.max(0, live.length - replicas)))
          this.stopInBackground(m);
        const used = new Set(ofVersion.map((m) => m.index));
        for (let missing = replicas - live.length, i = 0; missing > 0; i++) {
          if (used.has(i)) continue;
          used.add(i);
          missing--;
          starts.push(this.start(service, version, i, p));
        }
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
        index: m.index,
        port: m.port,
        ...(m.pid !== undefined && !m.exited ? { pid: m.pid } : {}),
        ...(m.logFile !== undefined ? { logFile: m.logFile } : {}),
      }));
  }

  /** Stops every instance of the service and waits until all of their processes have exited. */
  remove(service: string): Promise<void> {
    return this.serial(service, () => this.stopService(service));
  }

  /** Stops everything gracefully and waits; afterwards no process, timer or exit hook is left. */
  async shutdown(): Promise<void> {
    this.closed = true;
    // Services with an ensure still in flight may not be in `services` yet (their instances are
    // added after a port is allocated); queuing behind that ensure catches what it starts.
    const names = new Set([...this.services.keys(), ...this.queues.keys()]);
    await Promise.all([...names].map((s) => this.serial(s, () => this.stopService(s))));
    await Promise.all([...this.backgroundStops]);
    if (this.exitHook) {
      process.off("exit", this.exitHook);
      this.exitHook = undefined;
    }
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  // -------------------------------------------------------------------------------------
  // Lifecycle of one instance
  // -------------------------------------------------------------------------------------

  private async start(
    service: string,
    version: string,
    index: number,
    p: ProcessRuntimeSpec,
  ): Promise<void> {
    const port = await this.ports.allocate();
    const override =
      p.versions && Object.hasOwn(p.versions, version) ? p.versions[version] : undefined;
    const vars: Record<string, string> = { version, port: String(port), instance: String(index) };
    const argv = (override?.command ?? p.command).map((a) => template(a, vars));
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [k, v] of Object.entries({ ...p.env, ...override?.env })) env[k] = template(v, vars);
    // PORT last: the port is the runtime's to choose, or the router would send traffic elsewhere.
    env.PORT = String(port);
    const cwd = path.resolve(process.cwd(), p.cwd ?? ".");
    const logFile = this.dataDir
      ? path.join(
          path.resolve(this.dataDir),
          "logs",
          safeName(service),
          `${safeName(version)}-${index}.log`,
        )
      : undefined;

    let resolveExited!: () => void;
    const m: Managed = {
      id: `${service}/${version}/${index}`,
      service,
      version,
      index,
      port,
      url: `http://127.0.0.1:${port}`,
      logFile,
      probe: p.readiness,
      startupTimeoutMs: p.startupTimeoutSeconds * 1000,
      graceMs: p.terminationGracePeriodSeconds * 1000,
      state: "starting",
      message: "starting",
      child: undefined,
      pid: undefined,
      exited: false,
      exitedPromise: new Promise<void>((r) => {
        resolveExited = r;
      }),
      resolveExited: () => resolveExited(),
      timers: new Set(),
      probeInFlight: undefined,
      termination: undefined,
      removal: undefined,
    };
    // Looked up again after the await: the service's map may have been dropped meanwhile
    // (its last instance forgotten), and an untracked child would be an orphan.
    let current = this.services.get(service);
    if (!current) {
      current = new Map();
      this.services.set(service, current);
    }
    current.set(m.id, m);
    const log = { service, version, instance: m.id, port };

    // Checked here because spawn reports a missing cwd as "spawn <command> ENOENT", which
    // blames the command.
    const problem =
      argv.length === 0 || argv[0] === ""
        ? "empty command"
        : !statSync(cwd, { throwIfNoEntry: false })?.isDirectory()
          ? `could not start: cwd ${cwd} is not a directory`
          : undefined;
    if (problem) {
      this.markExited(m);
      this.setState(m, "failed", problem);
      return;
    }

    let fd: number | undefined;
    try {
      if (logFile) {
        mkdirSync(path.dirname(logFile), { recursive: true });
        fd = openSync(logFile, "a");
        writeSync(
          fd,
          `--- turnout: ${new Date().toISOString()} starting ${m.id} on port ${port}: ${JSON.stringify(argv)}\n`,
        );
      }
      // Own process group (detached) so that signals reach grandchildren too; output goes
      // straight to the log file descriptor, so nothing is buffered in Turnout.
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd,
        env,
        detached: true,
        stdio: ["ignore", fd ?? "ignore", fd ?? "ignore"],
      });
      m.child = child;
      m.pid = child.pid;
      // `on`, not `once`: an "error" event without a listener would crash Turnout.
      child.on("error", (err) => this.onSpawnError(m, err));
      child.once("exit", (code, signal) => this.onExit(m, code, signal));
      // The child stays ref'd, like a server: a program that runs instances lives until it
      // stops them. (Unref'd, a script awaiting readiness would end with nothing to wait on.)
    } catch (err) {
      this.onSpawnError(m, err as Error);
      return;
    } finally {
      // The child holds its own copy of the descriptor.
      if (fd !== undefined) closeSync(fd);
    }
    if (m.pid === undefined) return; // spawn failed; the "error" event reports why
    this.installExitHook();
    this.logger.info({ ...log, pid: m.pid, argv, cwd }, "instance started");

    this.addTimer(m, m.startupTimeoutMs, () => this.onStartupTimeout(m));
    this.scheduleProbe(m, m.probe.initialDelaySeconds * 1000);
  }

  private scheduleProbe(m: Managed, delayMs: number): void {
    this.addTimer(m, delayMs, async () => {
      if (m.state !== "starting") return;
      const url = `${m.url}${m.probe.path.startsWith("/") ? "" : "/"}${m.probe.path}`;
      const handle = probeHttp(url, m.probe.timeoutSeconds * 1000);
      m.probeInFlight = handle;
      const r = await handle.result;
      m.probeInFlight = undefined;
      if (m.state !== "starting") return;
      if (r.ok) {
        this.clearTimers(m);
        this.setState(m, "ready", undefined);
        return;
      }
      // Recorded without an onChange: still not ready, nothing for the controller to act on.
      m.message = `readiness probe: ${r.detail}`;
      this.scheduleProbe(m, m.probe.periodSeconds * 1000);
    });
  }

  private onStartupTimeout(m: Managed): void {
    if (m.state !== "starting") return;
    const last = m.message && m.message !== "starting" ? m.message : "no probe answered yet";
    this.setState(m, "failed", `not ready within ${m.startupTimeoutMs / 1000}s (${last})`);
    // A process that never got ready is of no use; end it but keep the failed instance listed
    // so the controller sees why, until ensure drops the version.
    this.terminate(m).catch(() => {});
  }

  private onSpawnError(m: Managed, err: Error): void {
    if (m.exited) return;
    // Only a failed spawn has no pid; any later "error" is not about the process's life.
    if (m.pid !== undefined) {
      this.logger.warn({ instance: m.id, err: err.message }, "child process error");
      return;
    }
    this.markExited(m);
    this.logger.error({ instance: m.id, err: err.message }, "instance could not start");
    this.setState(m, "failed", `could not start: ${err.message}`);
  }

  private onExit(m: Managed, code: number | null, signal: NodeJS.Signals | null): void {
    const how = code !== null ? `exited with code ${code}` : `killed by ${signal}`;
    // The leader is gone; anything left in its group (a child that ignored SIGTERM, or one
    // the leader did not wait for) is an orphan now, so it goes at once. Waiting out the grace
    // period for such leftovers instead would need to tell live members from zombies, which a
    // container whose init never reaps (Docker without --init) keeps forever. A launcher that
    // should let its child drain must wait for it (npm does; so does `exec` in a shell script).
    if (m.pid !== undefined) killGroup(m.pid, "SIGKILL");
    this.markExited(m);
    // Synchronous, so the line is there by the time stop() resolves; it is one short write.
    if (m.logFile) {
      try {
        appendFileSync(m.logFile, `--- turnout: ${new Date().toISOString()} ${m.id} ${how}\n`);
      } catch {
        // The log is a convenience; a full disk must not break stopping.
      }
    }
    const expected = m.termination !== undefined;
    this.logger[expected ? "info" : "warn"](
      { instance: m.id, pid: m.pid, code, signal },
      `instance ${how}`,
    );
    if (!expected && m.state !== "failed") {
      this.setState(m, "failed", `process ${how}${m.logFile ? ` (log: ${m.logFile})` : ""}`);
    }
  }

  private markExited(m: Managed): void {
    if (m.exited) return;
    m.exited = true;
    this.clearTimers(m);
    m.resolveExited();
  }

  /** SIGTERM to the group, SIGKILL after the grace period; resolves when the leader has exited. */
  private terminate(m: Managed): Promise<void> {
    if (m.termination) return m.termination;
    if (m.exited || m.pid === undefined) {
      m.termination = Promise.resolve();
      return m.termination;
    }
    const pid = m.pid;
    this.clearTimers(m);
    killGroup(pid, "SIGTERM");
    // Ref'd, unlike the probe timers: it is bounded, and a stop must finish.
    const kill = setTimeout(() => {
      this.logger.warn(
        { instance: m.id, pid, graceSeconds: m.graceMs / 1000 },
        "instance ignored SIGTERM; SIGKILL",
      );
      killGroup(pid, "SIGKILL");
    }, m.graceMs);
    m.termination = m.exitedPromise.then(() => clearTimeout(kill));
    return m.termination;
  }

  /** Marks the instance "stopping" (the router drops it), terminates it, then forgets it. */
  private stop(m: Managed): Promise<void> {
    if (m.removal) return m.removal;
    this.clearTimers(m);
    if (!m.exited) this.setState(m, "stopping", "stopping");
    this.logger.info({ instance: m.id, pid: m.pid }, "stopping instance");
    m.removal = this.terminate(m).then(() => this.forget(m));
    return m.removal;
  }

  private stopInBackground(m: Managed): void {
    const p = this.stop(m).catch((err) =>
      this.logger.error({ instance: m.id, err: String(err) }, "stop failed"),
    );
    this.backgroundStops.add(p);
    p.finally(() => this.backgroundStops.delete(p));
  }

  private async stopService(service: string): Promise<void> {
    const current = this.services.get(service);
    if (!current) return;
    await Promise.all([...current.values()].map((m) => this.stop(m)));
  }

  private forget(m: Managed): void {
    const current = this.services.get(m.service);
    if (!current?.delete(m.id)) return;
    if (current.size === 0) this.services.delete(m.service);
    this.ports.release(m.port);
    this.emit();
  }

  // -------------------------------------------------------------------------------------
  // Helpers
  // -------------------------------------------------------------------------------------

  private setState(m: Managed, state: State, message: string | undefined): void {
    const changed = m.state !== state;
    m.state = state;
    m.message = message;
    if (!changed) return;
    this.logger.info({ instance: m.id, state, message }, `instance ${state}`);
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
  private addTimer(m: Managed, ms: number, fn: () => void | Promise<void>): void {
    const t = setTimeout(() => {
      m.timers.delete(t);
      Promise.resolve()
        .then(fn)
        .catch((err) => this.logger.error({ instance: m.id, err: String(err) }, "timer failed"));
    }, ms);
    t.unref();
    m.timers.add(t);
  }

  private clearTimers(m: Managed): void {
    for (const t of m.timers) clearTimeout(t);
    m.timers.clear();
    m.probeInFlight?.cancel();
    m.probeInFlight = undefined;
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
          if (!m.exited && m.pid !== undefined) killGroup(m.pid, "SIGKILL");
      }
    };
    process.on("exit", this.exitHook);
  }
}

/** Replaces `${version}`, `${port}` and `${instance}`; other `${...}` text is left as written. */
export function template(s: string, vars: Record<string, string>): string {
  return s.replace(/\$\{(version|port|instance)\}/g, (whole, name: string) => vars[name] ?? whole);
}

/** A name safe as one path segment: service and version names must never walk out of dataDir. */
function safeName(s: string): string {
  const cleaned = s.replace(/[^A-Za-z0-9._-]/g, "_");
  return cleaned === "." || cleaned === ".." || cleaned === "" ? "_" : cleaned;
}

/** Signals the whole process group led by `pid`; a group that is already gone is fine. */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

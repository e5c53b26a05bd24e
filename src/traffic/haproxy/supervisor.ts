/**
 * Runs one HAProxy for Turnout: checks the binary, starts it in master-worker mode (`-W`),
 * reloads it hitlessly, restarts it when it dies, and stops it with Turnout.
 *
 * - **The binary**: `haproxy.binary` or `haproxy` on PATH, at least 2.6 and built with Lua
 *   (`haproxy -vv`); otherwise TURNOUT_ERR_HAPROXY_NOT_FOUND / _TOO_OLD before anything starts.
 * - **Start**: the config is checked first (`haproxy -c`: an error names HAProxy's alert lines
 *   and nothing runs), then the master starts in the foreground; it is ready when its runtime
 *   API answers. A listener that cannot bind makes HAProxy exit: TURNOUT_ERR_HAPROXY_PORT_IN_USE.
 * - **Reload** (structural changes only, see config.ts): check the new config, SIGUSR2 to the
 *   master, which starts a new worker; the listening sockets pass from the old worker to the new
 *   one over the runtime API socket (`expose-fd listeners`), so no connection is refused, and the
 *   old worker finishes its requests (bounded by `hard-stop-after`). Done when the runtime API
 *   answers with the new worker's pid. A new config that fails to load leaves the old worker
 *   serving and the old config file in place; the error says why.
 * - **Restart**: when HAProxy exits without being asked to, it starts again with the config in
 *   force, after 0.5 s, doubling up to 30 s while it keeps dying within 10 s of starting.
 * - **No orphans**: the master runs under a small `sh` that holds a pipe from Turnout on its
 *   stdin and kills HAProxy when the pipe closes, which is when Turnout's process ends, however
 *   it ends (even SIGKILL, which runs no exit handler). A normal exit also kills it directly.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { TurnoutError } from "../../errors.js";
import { RuntimeApi } from "./runtime-api.js";

export type SupervisorLogger = Pick<Logger, "debug" | "info" | "warn" | "error">;

export const MIN_HAPROXY_VERSION = [2, 6] as const;

/** A checked HAProxy binary. */
export interface HaproxyBinary {
  path: string;
  /** e.g. "2.6.12-1+deb12u3" */
  version: string;
  lua: boolean;
}

const checked = new Map<string, HaproxyBinary>();

/**
 * Checks an HAProxy binary (once per path): it runs, it is >= 2.6, it has Lua.
 *
 * @example const bin = checkHaproxy(); // "haproxy" from PATH
 */
export function checkHaproxy(binary = "haproxy"): HaproxyBinary {
  const known = checked.get(binary);
  if (known !== undefined) return known;
  const r = spawnSync(binary, ["-vv"], { encoding: "utf8", timeout: 10_000 });
  if (r.error !== undefined || r.status !== 0) {
    const why =
      (r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT"
        ? "not found"
        : (r.error?.message ?? `exited with ${r.status}: ${r.stderr.trim().slice(0, 200)}`);
    throw new TurnoutError(
      "TURNOUT_ERR_HAPROXY_NOT_FOUND",
      `HAProxy binary ${JSON.stringify(binary)}: ${why}; install HAProxy >= ${MIN_HAPROXY_VERSION.join(".")} (Debian/Ubuntu: apt-get install haproxy) or set spec.traffic.haproxy.binary`,
      { binary },
    );
  }
  const text = `${r.stdout}\n${r.stderr}`;
  const m = /HA-?Proxy version (\d+)\.(\d+)(\S*)/.exec(text);
  const version = m ? `${m[1]}.${m[2]}${m[3]}` : "unknown";
  const lua = /Built with Lua version/.test(text);
  const [major, minor] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  const old =
    major < MIN_HAPROXY_VERSION[0] ||
    (major === MIN_HAPROXY_VERSION[0] && minor < MIN_HAPROXY_VERSION[1]);
  if (old || !lua) {
    throw new TurnoutError(
      "TURNOUT_ERR_HAPROXY_TOO_OLD",
      `HAProxy binary ${JSON.stringify(binary)} is version ${version}${lua ? "" : " without Lua"}; Turnout needs ${MIN_HAPROXY_VERSION.join(".")} or later, built with Lua`,
      { binary, version },
    );
  }
  const bin = { path: binary, version, lua };
  checked.set(binary, bin);
  return bin;
}

/** Kills HAProxy when Turnout's end closes its stdin; forwards nothing else. */
const WRAPPER = [
  "exec 3<&0",
  '"$@" </dev/null >/dev/null &',
  "hp=$!",
  'echo "pid $hp"',
  '( while read -r _; do :; done; kill -TERM "$hp" 2>/dev/null ) <&3 &',
  "wp=$!",
  "exec 3<&-",
  'wait "$hp"',
  "rc=$?",
  'kill "$wp" 2>/dev/null',
  'exit "$rc"',
].join("\n");

/** Alert lines of HAProxy's output, for error messages. */
export function alertLines(stderr: string): string {
  const lines = stderr
    .split("\n")
    .filter((l) => /\[ALERT\]/.test(l))
    .map((l) => l.replace(/^\[ALERT\]\s*\(\d+\)\s*:\s*/, "").trim());
  return lines.length > 0 ? lines.join("; ") : stderr.trim().split("\n").slice(-3).join("; ");
}

/** The address a failed bind names, e.g. "127.0.0.1:8080", when the failure is one. */
export function bindFailure(stderr: string): string | null {
  const m = /cannot bind socket[^[]*\[([^\]]+)\]/.exec(stderr);
  return m ? m[1]! : /Address already in use/.test(stderr) ? "its listener" : null;
}

export interface SupervisorOptions {
  binary: HaproxyBinary;
  /** Holds haproxy.cfg and the pid file. */
  dir: string;
  /** Holds admin.sock and master.sock. */
  socketDir: string;
  logger: SupervisorLogger;
  /** What the process is for, in log lines (the service name). */
  name: string;
  /** Called after every (re)start, once the runtime API answers: re-apply live state. */
  onStart?: () => Promise<void> | void;
  /** Restart back-off (default 500 ms doubling to 30 s). */
  restartInitialMs?: number;
  restartMaxMs?: number;
  /** How long a start or reload may take (default 15 s). */
  startTimeoutMs?: number;
}

/** Every live supervisor of this process, stopped by the exit handler. */
const live = new Set<HaproxySupervisor>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const s of live) s.killNow();
  });
}

export interface SupervisorStatus {
  running: boolean;
  masterPid: number | null;
  workerPid: number | null;
  restarts: number;
  reloads: number;
  lastError: string | null;
}

/** One HAProxy process (master and workers) and its config file. See the module comment. */
export class HaproxySupervisor {
  readonly api: RuntimeApi;
  /** The master's CLI: `@!<pid> <command>` reaches any worker, old ones included. */
  readonly master: RuntimeApi;
  readonly configPath: string;
  readonly #o: SupervisorOptions;
  #child: ChildProcess | null = null;
  #masterPid: number | null = null;
  #workerPid: number | null = null;
  #stderr = "";
  #stopping = false;
  #restarts = 0;
  #reloads = 0;
  #lastError: string | null = null;
  #restartTimer: NodeJS.Timeout | null = null;
  #backoffMs: number;
  #startedAt = 0;
  #exited: Promise<void> = Promise.resolve();

  constructor(opts: SupervisorOptions) {
    this.#o = opts;
    this.configPath = join(opts.dir, "haproxy.cfg");
    this.api = new RuntimeApi(join(opts.socketDir, "admin.sock"));
    this.master = new RuntimeApi(join(opts.socketDir, "master.sock"));
    this.#backoffMs = opts.restartInitialMs ?? 500;
  }

  status(): SupervisorStatus {
    return {
      running: this.#child !== null && this.#workerPid !== null,
      masterPid: this.#masterPid,
      workerPid: this.#workerPid,
      restarts: this.#restarts,
      reloads: this.#reloads,
      lastError: this.#lastError,
    };
  }

  /** Checks `cfg` with `haproxy -c`; throws TURNOUT_ERR_HAPROXY_START_FAILED with the alerts. */
  check(cfgPath: string): void {
    const r = spawnSync(this.#o.binary.path, ["-c", "-f", cfgPath], {
      encoding: "utf8",
      timeout: 30_000,
    });
    if (r.status !== 0) {
      throw new TurnoutError(
        "TURNOUT_ERR_HAPROXY_START_FAILED",
        `HAProxy for ${this.#o.name} refused its configuration: ${alertLines(`${r.stderr}\n${r.stdout}`)}`,
        { config: cfgPath },
      );
    }
  }

  /** Writes the config and starts HAProxy; resolves when its runtime API answers. */
  async start(cfg: string): Promise<void> {
    const next = `${this.configPath}.next`;
    writeFileSync(next, cfg);
    this.check(next);
    renameSync(next, this.configPath);
    this.#stopping = false;
    await this.#spawn();
  }

  async #spawn(): Promise<void> {
    installExitHook();
    live.add(this);
    this.#stderr = "";
    this.#masterPid = null;
    this.#workerPid = null;
    const args = [
      this.#o.binary.path,
      "-W",
      "-S",
      `${join(this.#o.socketDir, "master.sock")},mode,600`,
      "-f",
      this.configPath,
      "-p",
      join(this.#o.dir, "haproxy.pid"),
    ];
    const child = spawn("/bin/sh", ["-c", WRAPPER, "turnout-haproxy", ...args], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.#child = child;
    this.#startedAt = Date.now();
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (d: string) => {
      const m = /pid (\d+)/.exec(d);
      if (m) this.#masterPid = Number(m[1]);
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (d: string) => {
      // Keep the tail: enough for the alerts of the last start or reload.
      this.#stderr = (this.#stderr + d).slice(-64 * 1024);
    });
    // The pipe must not keep Turnout alive, nor error when Turnout ends first.
    child.stdin?.on("error", () => {});
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    child.unref();
    for (const s of [child.stdout, child.stderr])
      (s as unknown as { unref?: () => void })?.unref?.();
    this.#exited = new Promise<void>((resolve) =>
      child.once("exit", (code, signal) => {
        resolve();
        this.#onExit(child, code, signal);
      }),
    );
    try {
      await this.#waitWorker(null);
    } catch (err) {
      this.killNow();
      await this.#exited;
      throw err;
    }
    this.#backoffMs = this.#o.restartInitialMs ?? 500;
    await this.#o.onStart?.();
  }

  /** Waits until the runtime API answers with a worker pid other than `oldPid`. */
  async #waitWorker(oldPid: number | null): Promise<void> {
    const deadline = Date.now() + (this.#o.startTimeoutMs ?? 15_000);
    const child = this.#child;
    for (;;) {
      if (child === null || child.exitCode !== null || child.signalCode !== null) {
        throw this.#startError("exited while starting");
      }
      if (
        oldPid !== null &&
        /Loading failure|Failed to load the new configuration|reload failed/i.test(this.#stderr)
      ) {
        throw this.#startError("could not load the new configuration; the old one keeps serving");
      }
      try {
        const pid = Number((await this.api.info()).Pid);
        if (Number.isInteger(pid) && pid > 0 && pid !== oldPid) {
          this.#workerPid = pid;
          return;
        }
      } catch {
        // Not answering yet.
      }
      if (Date.now() > deadline)
        throw this.#startError("did not answer on its runtime API in time");
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  #startError(what: string): TurnoutError {
    const bound = bindFailure(this.#stderr);
    if (bound !== null) {
      return new TurnoutError(
        "TURNOUT_ERR_HAPROXY_PORT_IN_USE",
        `HAProxy for ${this.#o.name} cannot listen on ${bound}: the address is already in use`,
        { address: bound },
      );
    }
    return new TurnoutError(
      "TURNOUT_ERR_HAPROXY_START_FAILED",
      `HAProxy for ${this.#o.name} ${what}: ${alertLines(this.#stderr) || "no message"}`,
    );
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#child !== child) return;
    this.#child = null;
    this.#masterPid = null;
    this.#workerPid = null;
    live.delete(this);
    if (this.#stopping) return;
    this.#lastError = `exited (${signal ?? code}): ${alertLines(this.#stderr)}`;
    this.#o.logger.warn(
      { service: this.#o.name, code, signal, stderr: this.#stderr.slice(-2000) },
      "haproxy: exited unexpectedly; restarting",
    );
    if (Date.now() - this.#startedAt > 10_000) this.#backoffMs = this.#o.restartInitialMs ?? 500;
    const wait = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#o.restartMaxMs ?? 30_000);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      if (this.#stopping) return;
      this.#restarts++;
      this.#spawn().catch((err) => {
        this.#lastError = (err as Error).message;
        this.#o.logger.error({ err, service: this.#o.name }, "haproxy: restart failed");
      });
    }, wait);
    this.#restartTimer.unref();
  }

  /**
   * Replaces the config and reloads without dropping a connection. On failure the previous
   * config file is restored and the old worker keeps serving.
   */
  async reload(cfg: string): Promise<void> {
    if (this.#child === null) return this.start(cfg);
    const next = `${this.configPath}.next`;
    writeFileSync(next, cfg);
    this.check(next);
    const backup = `${this.configPath}.prev`;
    copyFileSync(this.configPath, backup);
    renameSync(next, this.configPath);
    const oldPid = this.#workerPid;
    this.#stderr = "";
    try {
      if (this.#masterPid === null) throw this.#startError("has no master process");
      process.kill(this.#masterPid, "SIGUSR2");
      await this.#waitWorker(oldPid);
      this.#reloads++;
    } catch (err) {
      if (existsSync(backup)) renameSync(backup, this.configPath);
      this.#lastError = (err as Error).message;
      throw err;
    }
    await this.#o.onStart?.();
  }

  /** The config file in force. */
  config(): string | null {
    return existsSync(this.configPath) ? readFileSync(this.configPath, "utf8") : null;
  }

  /** Stops HAProxy (SIGTERM to the master: workers stop at once) and waits for it to exit. */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#restartTimer !== null) clearTimeout(this.#restartTimer);
    this.#restartTimer = null;
    this.killNow();
    const done = this.#exited;
    const timer = setTimeout(() => {
      if (this.#masterPid !== null) {
        try {
          process.kill(this.#masterPid, "SIGKILL");
        } catch {}
      }
    }, 5000);
    await done;
    clearTimeout(timer);
    live.delete(this);
  }

  /** Synchronous kill (exit handler): SIGTERM to the master, and the wrapper's pipe closed. */
  killNow(): void {
    this.#stopping = true;
    const pid = this.#masterPid;
    if (pid !== null) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {}
    }
    this.#child?.stdin?.destroy();
  }
}

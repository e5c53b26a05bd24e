/**
 * Command: runs an argv (no shell) and reads the value from how it ends.
 *
 * - Exit 0 and the last non-empty line of stdout is a number: that number.
 * - Exit 0 otherwise: 1 (a check that passed). Non-zero exit: 0 (a check that failed), with the
 *   exit code and the tails of stderr and stdout in `raw`, so `threshold: {min: 1}` judges a
 *   check script. A number printed before a non-zero exit does not count: the exit says the
 *   command did not get to a trustworthy value.
 * - A last line of NaN or an infinity is an error, not "no number" (it would otherwise pass).
 * - Killed by a signal it did not get from us, or not startable (e.g. not found): an error.
 * - Timeout or abort: SIGTERM to the command's process group, SIGKILL after a grace; then an
 *   error. The promise settles only once the command and its pipes are gone.
 *
 * The command runs in its own process group so that signals reach anything it started, and
 * whatever of the group outlives the command itself is SIGKILLed (a metric command must not
 * leave daemons behind). Environment: the base env (Turnout's, by default) plus ANALYSIS_METRIC,
 * ANALYSIS_SERVICE, ANALYSIS_CANDIDATE, ANALYSIS_BASELINE (when there is one),
 * ANALYSIS_FROM_MS, ANALYSIS_TO_MS, ANALYSIS_NOW_MS and ANALYSIS_ARG_<NAME> for every argument
 * (NAME upper-cased, characters other than A-Z and 0-9 turned into "_").
 * Output is kept up to `maxOutputBytes` per stream (the last bytes: the value is at the end).
 */
import { spawn } from "node:child_process";
import {
  type CommandSourceSpec,
  invalid,
  type Measurement,
  type MeasureRequest,
  type MetricProvider,
  providerKind,
} from "../provider.js";
import { failed, formatSeconds, measured, parseNumberText, tail } from "../support.js";
import { resolveSource, templateVars } from "../template.js";

export interface CommandProviderOptions {
  /** Base environment; `process.env` by default. */
  env?: NodeJS.ProcessEnv;
  /** Working directory; the process's by default. */
  cwd?: string;
  /** Time between SIGTERM and SIGKILL. Default 2000. */
  killGraceMs?: number;
  /** Bytes of each of stdout and stderr kept (the last ones). Default 64 KiB. */
  maxOutputBytes?: number;
  /** When the source gives none. Default 10. */
  defaultTimeoutSeconds?: number;
}

/** Characters of each stream's tail that go into `raw`. */
const RAW_TAIL = 1000;

export class CommandProvider implements MetricProvider {
  readonly kind = "command" as const;
  private readonly killGraceMs: number;
  private readonly maxOutputBytes: number;
  private readonly defaultTimeoutSeconds: number;

  constructor(private readonly opts: CommandProviderOptions = {}) {
    this.killGraceMs = opts.killGraceMs ?? 2000;
    this.maxOutputBytes = opts.maxOutputBytes ?? 64 * 1024;
    this.defaultTimeoutSeconds = opts.defaultTimeoutSeconds ?? 10;
  }

  async measure(req: MeasureRequest, signal: AbortSignal): Promise<Measurement> {
    // 1. Check and render the source; a wrong source throws.
    if (providerKind(req.source) !== "command") {
      throw invalid("source", `the command provider cannot measure ${Object.keys(req.source)}`);
    }
    const spec = resolveSource(
      req.source as { command: CommandSourceSpec },
      templateVars(req),
    ).command;
    if (!Array.isArray(spec.command) || spec.command.length === 0 || spec.command[0] === "") {
      throw invalid("source.command.command", "must be a non-empty argv list");
    }
    // spawn would throw a TypeError for these; say which element instead.
    const nul = spec.command.findIndex((a) => typeof a !== "string" || a.includes("\0"));
    if (nul >= 0) {
      throw invalid(`source.command.command[${nul}]`, "must be a string without NUL characters");
    }
    const timeoutSeconds = spec.timeoutSeconds ?? this.defaultTimeoutSeconds;
    if (!(timeoutSeconds > 0)) {
      throw invalid("source.command.timeoutSeconds", `must be > 0, got ${timeoutSeconds}`);
    }
    const env = { ...(this.opts.env ?? process.env), ...analysisEnv(req) };
    const [file, ...args] = spec.command as [string, ...string[]];
    if (signal.aborted) return failed("aborted", `${file}: aborted before it started`);

    // 2. Run it; settle once it and its pipes are gone.
    const run = await new Promise<RunResult>((resolve) => {
      const out = new Tail(this.maxOutputBytes);
      const err = new Tail(this.maxOutputBytes);
      let ended: "timeout" | "aborted" | undefined;
      let spawnError: Error | undefined;
      let graceTimer: NodeJS.Timeout | undefined;
      const child = spawn(file, args, {
        cwd: this.opts.cwd,
        env,
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
        shell: false,
        windowsHide: true,
      });
      const pid = child.pid;
      const terminate = (why: "timeout" | "aborted") => {
        if (ended !== undefined) return;
        ended = why;
        if (pid === undefined) return;
        killGroup(pid, "SIGTERM");
        graceTimer = setTimeout(() => killGroup(pid, "SIGKILL"), this.killGraceMs);
      };
      const timer = setTimeout(() => terminate("timeout"), timeoutSeconds * 1000);
      const onAbort = () => terminate("aborted");
      signal.addEventListener("abort", onAbort, { once: true });
      child.stdout.on("data", (c: Buffer) => out.push(c));
      child.stderr.on("data", (c: Buffer) => err.push(c));
      child.on("error", (e) => {
        spawnError ??= e;
      });
      // The command is done: anything left in its group is a straggler.
      child.on("exit", () => {
        if (pid !== undefined) killGroup(pid, "SIGKILL");
      });
      child.on("close", (code, sig) => {
        clearTimeout(timer);
        if (graceTimer) clearTimeout(graceTimer);
        signal.removeEventListener("abort", onAbort);
        resolve({
          code,
          signal: sig,
          ended,
          spawnError,
          stdout: out.text(),
          stderr: err.text(),
        });
      });
    });

    // 3. Read the value from how it ended.
    const raw = {
      command: file,
      exitCode: run.code,
      ...(run.signal ? { signal: run.signal } : {}),
      stdout: tail(run.stdout, RAW_TAIL),
      stderr: tail(run.stderr, RAW_TAIL),
    };
    if (run.spawnError) {
      const code = (run.spawnError as NodeJS.ErrnoException).code;
      const why =
        code === "ENOENT"
          ? "not found (or its cwd does not exist)"
          : code === "EACCES"
            ? "not executable"
            : run.spawnError.message;
      return failed("failed", `${file}: ${why}`, { command: file, error: run.spawnError.message });
    }
    if (run.ended === "aborted") return failed("aborted", `${file}: aborted`, raw);
    if (run.ended === "timeout") {
      return failed(
        "timeout",
        `${file}: did not finish within ${formatSeconds(timeoutSeconds)}`,
        raw,
      );
    }
    if (run.signal) return failed("failed", `${file}: killed by ${run.signal}`, raw);
    if (run.code !== 0) return measured({ value: 0, raw });
    const last = lastLine(run.stdout);
    const n = last === undefined ? null : parseNumberText(last);
    if (n !== null && "nonFinite" in n) {
      return failed("failed", `${file}: printed ${n.nonFinite}, not a finite number`, raw);
    }
    return measured({ value: n === null ? 1 : n.value, raw });
  }
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  ended: "timeout" | "aborted" | undefined;
  spawnError: Error | undefined;
  stdout: string;
  stderr: string;
}

/** The ANALYSIS_* variables for a request; two arguments that map to one name are an error. */
export function analysisEnv(req: MeasureRequest): Record<string, string> {
  const env: Record<string, string> = {
    ANALYSIS_METRIC: req.metric,
    ANALYSIS_SERVICE: req.service,
    ANALYSIS_CANDIDATE: req.candidate,
    ANALYSIS_FROM_MS: String(req.fromMs),
    ANALYSIS_TO_MS: String(req.toMs),
    ANALYSIS_NOW_MS: String(req.now),
  };
  if (req.baseline !== undefined) env.ANALYSIS_BASELINE = req.baseline;
  const from = new Map<string, string>();
  for (const [name, value] of Object.entries(req.args)) {
    const key = `ANALYSIS_ARG_${name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
    const other = from.get(key);
    if (other !== undefined) {
      throw invalid(
        "args",
        `arguments ${JSON.stringify(other)} and ${JSON.stringify(name)} both become ${key}; rename one`,
      );
    }
    if (value.includes("\0")) {
      throw invalid(
        `args.${name}`,
        "must not contain NUL characters (it goes into the environment)",
      );
    }
    from.set(key, name);
    env[key] = value;
  }
  return env;
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function lastLine(text: string): string | undefined {
  const lines = text.split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]!.trim() !== "") return lines[i];
  }
  return undefined;
}

/** Keeps the last `max` bytes written to it. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(c: Buffer): void {
    this.chunks.push(c);
    this.size += c.length;
    // Compact only when well over, so a chatty command costs amortised O(1) per chunk.
    if (this.size > 2 * this.max) {
      const all = Buffer.concat(this.chunks);
      const kept = all.subarray(all.length - this.max);
      this.chunks = [kept];
      this.size = kept.length;
    }
  }
  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.max)).toString("utf8");
  }
}

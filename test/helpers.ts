/** Shared helpers for end-to-end tests: real processes, real sockets, port 0. */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";

export const ROOT = new URL("..", import.meta.url).pathname;
/** The `turnout` CLI from source, through tsx. */
export const CLI_SOURCE = [process.execPath, "--import", "tsx", join(ROOT, "src/cli/main.ts")];

/**
 * The `turnout` CLI that `cli` and `startUp` run: the build (dist/cli/main.js), as users run
 * it, when it is newer than every source file (CI and `npm install` build before the tests
 * run); else the sources through tsx, so a change not yet built is what gets tested. The build
 * starts in about a third of the CPU time (0.6 s against 1.6 s a command on the 2-core CI
 * machine), and the suite runs a few hundred commands.
 */
export const CLI: readonly string[] = (() => {
  const built = statSync(join(ROOT, "dist/cli/main.js"), { throwIfNoEntry: false });
  if (!built) return CLI_SOURCE;
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((d) =>
        d.isDirectory() ? newest(join(dir, d.name)) : statSync(join(dir, d.name)).mtimeMs,
      ),
    );
  const sources = Math.max(newest(join(ROOT, "src")), newest(join(ROOT, "web")));
  return built.mtimeMs > sources ? [process.execPath, join(ROOT, "dist/cli/main.js")] : CLI_SOURCE;
})();

export function tempDir(prefix = "turnout-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A backend that answers every request with its name, so tests can count who answered. */
export async function startBackend(
  name: string,
): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(name);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface Up {
  proc: ChildProcess;
  url: string;
  token: string;
  dataDir: string;
  stdout: () => string;
  stderr: () => string;
  /** The JSON log records in its stderr so far. */
  logs(): LogRecord[];
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `turnout up --port 0` in a child process (with `args` after it: `--store`, `--roles`...)
 * and waits for its "listening" line, or for a process without the API role its "(no API)" line
 * (then `url` is "").
 */
export async function startUp(
  dataDir: string,
  env: Record<string, string> = {},
  args: string[] = [],
  command: readonly string[] = CLI,
): Promise<Up> {
  const argv = [...command.slice(1), "up", "--port", "0", "--data-dir", dataDir, ...args];
  const proc = spawn(command[0]!, argv, {
    cwd: ROOT,
    env: { ...process.env, TURNOUT_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  proc.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
      else if (/\(no API\)/.test(out)) resolve("");
    });
    void exited.then((code) => reject(new Error(`turnout up exited with ${code}: ${err}`)));
  });
  const tokenFile = join(dataDir, "token");
  const token = existsSync(tokenFile) ? readFileSync(tokenFile, "utf8").trim() : "";
  return {
    proc,
    url,
    token,
    dataDir,
    stdout: () => out,
    stderr: () => err,
    logs: () => logRecords(err),
    async stop(signal: NodeJS.Signals = "SIGINT") {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the `turnout` CLI (from source) and collects its output; `input` is its stdin. */
export function cli(
  args: string[],
  env: Record<string, string> = {},
  command: readonly string[] = CLI,
  input?: string,
): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(command[0]!, [...command.slice(1), ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    // Without input, an empty stdin (EOF at once), as /dev/null would be.
    p.stdin.end(input ?? "");
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Polls a condition until it holds or the deadline passes (then throws with the last state). */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false | null>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; last: ${String(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends `n` requests to a router port over keep-alive connections and counts answers by body. */
export async function sendMany(
  port: number,
  n: number,
  concurrency = 16,
  host = "127.0.0.1",
): Promise<Map<string, number>> {
  const pool = new Pool(`http://${host}:${port}`, { connections: concurrency });
  const counts = new Map<string, number>();
  let sent = 0;
  const worker = async () => {
    while (sent < n) {
      sent++;
      const res = await pool.request({ path: "/", method: "GET" });
      const body = await res.body.text();
      const key = res.statusCode === 200 ? body : `status ${res.statusCode}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await pool.close();
  return counts;
}

/** Calls the API with a token (or none) and returns status and parsed JSON. */
export async function api(
  up: { url: string; token: string },
  method: string,
  path: string,
  body?: unknown,
  opts: { token?: string | null; contentType?: string } = {},
): Promise<{ status: number; json: any }> {
  const headers: Record<string, string> = {};
  const token = opts.token === undefined ? up.token : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let payload: string | undefined;
  if (body !== undefined) {
    headers["content-type"] = opts.contentType ?? "application/json";
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  const res = await fetch(`${up.url}${path}`, {
    method,
    headers,
    ...(payload !== undefined ? { body: payload } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/**
 * A service's status view (`GET .../status`) once `done` holds for it; `what` names the wait in
 * the error when it does not within `timeoutMs`.
 */
export async function serviceStatusWhen(
  up: { url: string; token: string },
  service: string,
  what: string,
  done: (view: any) => boolean,
  timeoutMs = 30_000,
): Promise<any> {
  return waitFor(
    what,
    async () => {
      const v = (await api(up, "GET", `/api/v1/services/${service}/status`)).json;
      return done(v) ? v : null;
    },
    timeoutMs,
  );
}

/** Pids of the processes whose command line contains `marker` (the test's own instances). */
export function pidsWith(marker: string): number[] {
  try {
    const out = execFileSync("pgrep", ["-f", marker], { encoding: "utf8" });
    return out.split("\n").filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/**
 * Keeps every core busy (test/e2e/fixtures/busy.mjs, one process per core) until `stop()`: the machine as CI may be, for guarantees that must not need idle CPU.
 * The processes carry `marker` in their command line (stopped with the test's own: pidsWith).
 */
export function busyCores(marker: string): { count: number; stop(): void } {
  const busy: ChildProcess[] = [];
  for (let i = 0; i < availableParallelism(); i++) {
    busy.push(
      spawn(process.execPath, [join(ROOT, "test/e2e/fixtures/busy.mjs"), marker], {
        stdio: "ignore",
      }),
    );
  }
  return {
    count: busy.length,
    stop: () => {
      for (const b of busy) b.kill("SIGKILL");
    },
  };
}

/**
 * A Service named "shop" on the static runtime: each version's upstream URLs, a canary of
 * `steps` (default 50%, then a pause until promoted).
 */
export function staticService(
  port: number,
  upstreams: Record<string, string[]>,
  version: string,
  steps: unknown[] = [{ setWeight: 50 }, { pause: {} }],
) {
  return {
    apiVersion: "turnout.dev/v1",
    kind: "Service",
    metadata: { name: "shop" },
    spec: {
      listen: { port },
      runtime: {
        static: {
          versions: Object.fromEntries(
            Object.entries(upstreams).map(([v, urls]) => [v, { upstreams: urls }]),
          ),
        },
      },
      version,
      strategy: { canary: { steps } },
    },
  };
}

/** A JSON log record of a `turnout up` process (pino's levels: 30 info, 40 warn, 50 error). */
export interface LogRecord {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** The JSON log records in a process's stderr (other lines are skipped). */
export function logRecords(stderr: string): LogRecord[] {
  return stderr
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogRecord);
}

/** Answers /healthz, and never answers anything else (the connection stays open). */
export async function hangingServer(): Promise<{
  url: string;
  server: Server;
  pending: () => number;
}> {
  let pending = 0;
  const server = createServer((req, res) => {
    if (req.url === "/healthz") {
      res.end("ok");
      return;
    }
    req.resume();
    pending++;
    res.on("close", () => pending--);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address();
  const port = typeof a === "object" && a ? a.port : 0;
  return { url: `http://127.0.0.1:${port}`, server, pending: () => pending };
}

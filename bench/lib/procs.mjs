// Child processes of the benchmark: started pinned to a core, each in its own process group,
// tracked so that every one of them is stopped on exit, on error and on Ctrl-C.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";

const children = new Set();

// Raises the open-files limit (1,000 client connections plus as many upstream ones), pins the
// command to a core, then execs it, so the pid we hold is the command's own. As root it also
// runs the command at the highest priority, so that other work on the machine takes as little
// of the pinned cores as possible; every proxy, the backends and wrk get the same. With
// autogroup scheduling (the default on desktop-style kernels) a process's nice value only
// counts inside its session's group, and each child here is its own session (detached), so
// the group's nice is raised too.
const LAUNCH =
  'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ' +
  'if [ "$(id -u)" = 0 ]; then ' +
  "{ echo -20 > /proc/$$/autogroup; } 2>/dev/null; " +
  'exec nice -n -20 taskset -c "$0" "$@"; fi; ' +
  'exec taskset -c "$0" "$@"';

/**
 * Starts `cmd args` pinned to `core`. The returned handle collects stdout lines and the tail
 * of stderr; `exited` resolves with the exit code (or signal name).
 */
export function startPinned(name, core, cmd, args, opts = {}) {
  const child = spawn("bash", ["-c", LAUNCH, String(core), cmd, ...args], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  const h = {
    name,
    pid: child.pid,
    child,
    stdout: "",
    stderr: "",
    alive: true,
    exitCode: undefined,
    lineListeners: new Set(),
  };
  let partial = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk) => {
    h.stdout += chunk;
    partial += chunk;
    let nl = partial.indexOf("\n");
    while (nl !== -1) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      for (const l of h.lineListeners) l(line);
      nl = partial.indexOf("\n");
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    h.stderr = (h.stderr + chunk).slice(-8000);
  });
  h.exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      h.alive = false;
      h.exitCode = code ?? signal;
      children.delete(h);
      resolve(h.exitCode);
    });
    child.on("error", (err) => {
      h.alive = false;
      h.exitCode = err.message;
      children.delete(h);
      resolve(h.exitCode);
    });
  });
  children.add(h);
  return h;
}

/** Runs a pinned command to its end; resolves with its stdout, rejects on a non-zero exit. */
export async function runPinned(name, core, cmd, args) {
  const h = startPinned(name, core, cmd, args);
  const code = await h.exited;
  if (code !== 0) throw new Error(`${name} exited with ${code}: ${h.stderr.trim()}`);
  return h.stdout;
}

/** Waits for a stdout line that parses as JSON and has `ready: true` (our node proxies). */
export function waitForReadyLine(h, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      h.lineListeners.delete(onLine);
      reject(new Error(`${h.name}: not ready after ${timeoutMs} ms; stderr: ${h.stderr.trim()}`));
    }, timeoutMs);
    function onLine(line) {
      try {
        const msg = JSON.parse(line);
        if (msg.ready === true) {
          clearTimeout(timer);
          h.lineListeners.delete(onLine);
          resolve(msg);
        }
      } catch {
        // Not our line (e.g. a warning); keep waiting.
      }
    }
    h.lineListeners.add(onLine);
    h.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${h.name} exited with ${code} before ready: ${h.stderr.trim()}`));
    });
  });
}

/** One GET (a fresh connection unless an agent is given); resolves with {status, headers, body}. */
export function httpGet(port, headers = {}, agent = false) {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/", agent, headers, timeout: 2000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

/** Polls until `port` answers 200 "ok" (through the proxy, from a backend). */
export async function waitForOk(name, port, h, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (h !== undefined && !h.alive) {
      throw new Error(`${name} exited with ${h.exitCode}: ${h.stderr.trim()}`);
    }
    try {
      const r = await httpGet(port);
      if (r.status === 200 && r.body === "ok") return;
      last = `status ${r.status} body ${JSON.stringify(r.body.slice(0, 200))}`;
    } catch (err) {
      last = err.message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${name} on port ${port} not answering 200 "ok": ${last}`);
}

/** Stops one child: SIGTERM to its group, SIGKILL after `graceMs`. */
export async function stop(h, graceMs = 5000) {
  if (!h.alive) return h.exitCode;
  signalGroup(h, "SIGTERM");
  const timer = setTimeout(() => signalGroup(h, "SIGKILL"), graceMs);
  const code = await h.exited;
  clearTimeout(timer);
  // Anything the child left in its group (nginx workers) goes with it.
  signalGroup(h, "SIGKILL");
  return code;
}

function signalGroup(h, sig) {
  try {
    process.kill(-h.pid, sig);
  } catch {
    // Already gone.
  }
}

/** Stops every child still running. */
export async function stopAll() {
  await Promise.all([...children].map((h) => stop(h)));
}

/** Last resort on process exit (synchronous): kill every group we started. */
export function killAllNow() {
  for (const h of children) signalGroup(h, "SIGKILL");
}

/** The pids of `pid` and its direct children (nginx: master and worker). */
export function processTree(pid) {
  const pids = [pid];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Field 4 (ppid) follows the ")" that closes the command name.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/** VmRSS and VmHWM of a pid in MiB, or null if it is gone. */
export function memoryOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
    return { rssMiB: kb("VmRSS") / 1024, hwmMiB: kb("VmHWM") / 1024 };
  } catch {
    return null;
  }
}

/** CPU time (user + system, all threads) of the given pids, in seconds; gone pids count 0. */
export function cpuSecondsOf(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // After ")": state(3) ppid(4) ... utime(14) stime(15); index 0 here is field 3.
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // The process ended.
    }
  }
  // USER_HZ is 100 on every Linux this runs on.
  return ticks / 100;
}

/** Free loopback ports, held open together so that they are distinct. */
export async function freePorts(n) {
  const servers = [];
  for (let i = 0; i < n; i++) {
    const s = createServer();
    await new Promise((resolve, reject) => {
      s.once("error", reject);
      s.listen(0, "127.0.0.1", resolve);
    });
    servers.push(s);
  }
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/**
 * Test helpers for the HAProxy provider: real HAProxy processes, real upstream servers on port
 * 0, temp dirs that clean up. Not used by the product code.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The haproxy binary the tests use (`TURNOUT_TEST_HAPROXY` or `haproxy` on PATH), or null. */
export function testHaproxy(): string | null {
  const bin = process.env.TURNOUT_TEST_HAPROXY ?? "haproxy";
  const r = spawnSync(bin, ["-v"], { encoding: "utf8" });
  return r.status === 0 ? bin : null;
}

/** `{ skip: reason }` for node:test when HAProxy is missing, else `{}`. */
export function needsHaproxy(): { skip?: string } {
  return testHaproxy() === null ? { skip: "haproxy is not installed" } : {};
}

/** A temp dir with a short path (unix socket paths are limited to 107 bytes). */
export function tempDir(prefix = "thx-"): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface Upstream {
  name: string;
  url: string;
  port: number;
  /** Requests answered. */
  count: number;
  /** Status to answer with (default 200). */
  status: number;
  /** Never answer (a version that hangs); requests are still counted in `count`. */
  hang: boolean;
  close(): Promise<void>;
}

/** An HTTP server answering `<name>\n` with `x-served-by: <name>`, on 127.0.0.1 port 0. */
export async function startUpstream(name: string): Promise<Upstream> {
  const u: Upstream = {
    name,
    url: "",
    port: 0,
    count: 0,
    status: 200,
    hang: false,
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    u.count++;
    req.resume();
    req.on("end", () => {
      if (u.hang) return;
      res.statusCode = u.status;
      res.setHeader("x-served-by", name);
      res.end(`${name}\n`);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  u.port = (server.address() as net.AddressInfo).port;
  u.url = `http://127.0.0.1:${u.port}`;
  u.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return u;
}

/** A free TCP port on 127.0.0.1 (closed again; a race is possible but rare in tests). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Polls `check` until it returns a value other than undefined/false, or throws at the deadline. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A raw HTTP/1.1 request with header values as bytes (UTF-8 keys), answered as text. */
export function rawRequest(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string; headers: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    sock.on("data", (d) => chunks.push(d));
    sock.on("error", reject);
    sock.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const at = text.indexOf("\r\n\r\n");
      const head = text.slice(0, at);
      const status = Number(head.split(" ")[1]);
      resolve({ status, headers: head, body: text.slice(at + 4) });
    });
    const lines = [`GET ${path} HTTP/1.1`, "host: test", "connection: close"];
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    sock.end(Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "utf8"));
  });
}

export interface RunningHaproxy {
  proc: ChildProcess;
  stderr(): string;
  stop(): Promise<void>;
}

/** Runs `haproxy -db -f <dir>/haproxy.cfg` with the given text; resolves once `ready` holds. */
export async function runHaproxy(
  dir: string,
  cfg: string,
  ready: () => Promise<boolean>,
): Promise<RunningHaproxy> {
  const bin = testHaproxy();
  if (bin === null) throw new Error("haproxy is not installed");
  const file = join(dir, "haproxy.cfg");
  writeFileSync(file, cfg);
  const proc = spawn(bin, ["-db", "-f", file], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  proc.stderr?.on("data", (d) => {
    err += String(d);
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    await exited;
  };
  try {
    await waitFor("haproxy to start", async () => {
      if (proc.exitCode !== null) throw new Error(`haproxy exited: ${err}`);
      return ready();
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { proc, stderr: () => err, stop };
}

/**
 * The configuration of an HAProxy someone else runs, as attach mode meets it: its runtime API on
 * `socket` at level admin, HTTP with short timeouts, and a frontend on 127.0.0.1:`port` whose
 * own lines (`frontend`) come before the backends' (`backends`).
 */
export function operatorConfig(o: {
  socket: string;
  port: number;
  frontend: readonly string[];
  backends: readonly string[];
}): string {
  return [
    "global",
    `  stats socket ${o.socket} mode 600 level admin`,
    "defaults",
    "  mode http",
    "  timeout connect 2s",
    "  timeout client 10s",
    "  timeout server 10s",
    "frontend fe",
    `  bind 127.0.0.1:${o.port}`,
    ...o.frontend,
    ...o.backends,
    "",
  ].join("\n");
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function accepts(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/**
 * A small network of "hosts" for multi-host tests on one machine, made of Linux network
 * namespaces (`ip netns`) that the test creates itself and removes afterwards.
 *
 * Shape: a hub namespace holds one bridge per network (a switch); every host is a namespace
 * with one veth per network it is on, its other end plugged into that network's bridge. So
 * `cut(host, net)` sets the hub's end of the host's cable down, as pulling a cable out of a
 * switch does: the host's packets on that network go nowhere and nothing reaches it, with no
 * reset or error on either side (connections hang, new ones time out), while its other
 * networks stay up. `reconnect` plugs it back in.
 *
 * - Names are unique per run (`tn<pid>x<random>-<host>`); interface names are per namespace, so
 *   the same ones serve every run. Traffic stays inside the test's namespaces: they have no
 *   route anywhere else, and the machine's own namespace is not on any of the networks.
 * - The test process stays in the machine's namespace and reaches servers inside through
 *   `relay()`: a child in the namespace forwards a unix socket (a file, shared by all
 *   namespaces) to an address there. undici speaks HTTP over it (`socketPath`).
 * - Clean-up, even on failure: `destroy()` kills what `spawn()` started and whatever else runs
 *   in the namespaces, then deletes them (which removes their veths and bridges). A process
 *   `exit` hook does the same for a test that did not get there, and a watchdog child does it
 *   when this process dies without running its hooks (SIGKILL by a runner's timeout): it sees
 *   its stdin close, like test/support/postgres.ts's.
 *
 * `netnsMissing()` says why namespaces cannot be made here (not Linux, no `ip`, not root, no
 * permission, no veth or bridge support); `requireNetns()` turns that into a failure under CI
 * when `ip` is there, so that CI never skips the test silently.
 *
 * @example
 *   const lab = NetLab.create({ ctl: "10.213.1" });
 *   lab.addHost("db", { ctl: 10 });                    // 10.213.1.10 on the ctl network
 *   const p = await lab.spawn("db", ["node", "server.js"], { ready: /listening/ });
 *   lab.cut("db", "ctl");
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inCi } from "./postgres.js";

const CHILD = new URL("./netns-child.mjs", import.meta.url).pathname;

function ipAvailable(): boolean {
  return spawnSync("sh", ["-c", "command -v ip"]).status === 0;
}

/** Runs `ip ARGS` and throws with its stderr when it fails. */
function ip(...args: string[]): string {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0)
    throw new Error(`ip ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Why namespaces cannot be made here, or undefined when they can (tried for real). */
export function netnsMissing(): string | undefined {
  if (process.platform !== "linux") return "network namespaces need Linux";
  if (!ipAvailable()) return "the ip command (iproute2) is not installed";
  if (process.getuid?.() !== 0) return "making network namespaces needs root (CI runs as root)";
  const probe = `tn${process.pid}probe${randomBytes(2).toString("hex")}`;
  const r = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" });
  if (r.status !== 0) return `ip netns add failed: ${r.stderr.trim()}`;
  try {
    ip("-n", probe, "link", "add", "probe-br", "type", "bridge");
    ip("-n", probe, "link", "add", "probe-a", "type", "veth", "peer", "name", "probe-b");
    return undefined;
  } catch (err) {
    return `no veth or bridge in network namespaces: ${(err as Error).message}`;
  } finally {
    spawnSync("ip", ["netns", "del", probe]);
  }
}

/**
 * The skip reason for `describe(..., { skip })`: undefined when namespaces can be made. Under
 * CI, with `ip` installed, a reason throws instead: CI must run the test, never skip it.
 */
export function requireNetns(): string | undefined {
  const missing = netnsMissing();
  if (missing !== undefined && inCi() && ipAvailable())
    throw new Error(`the network namespace tests must run in CI: ${missing}`);
  return missing;
}

export interface Spawned {
  proc: ChildProcess;
  host: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  exited: Promise<number | string>;
}

export class NetLab {
  /** Every namespace of this lab starts with it. */
  readonly prefix: string;
  /** A temporary directory for the relays' sockets. */
  readonly dir: string;
  private readonly networks: Record<string, string>;
  private readonly hosts = new Map<string, Record<string, string>>();
  private readonly children: Spawned[] = [];
  private readonly watchdog: ChildProcess;
  private readonly onExit: () => void;
  private destroyed = false;

  private constructor(networks: Record<string, string>) {
    this.prefix = `tn${process.pid}x${randomBytes(3).toString("hex")}`;
    this.dir = mkdtempSync(join(tmpdir(), `turnout-${this.prefix}-`));
    this.networks = networks;
    this.onExit = () => {
      if (!this.destroyed) spawnSync("sh", ["-c", this.cleanupScript()], { stdio: "ignore" });
    };
    process.on("exit", this.onExit);
    this.watchdog = spawn("sh", ["-c", `cat >/dev/null; ${this.cleanupScript()}`], {
      stdio: ["pipe", "ignore", "ignore"],
    });
    this.watchdog.unref();
    (this.watchdog.stdin as unknown as { unref?: () => void }).unref?.();
  }

  /**
   * Makes the hub: one bridge per network, named by `networks` (name -> the first three octets
   * of its /24, e.g. `{ ctl: "10.213.1" }`).
   */
  static create(networks: Record<string, string>): NetLab {
    const lab = new NetLab(networks);
    try {
      const hub = lab.ns("hub");
      ip("netns", "add", hub);
      ip("-n", hub, "link", "set", "lo", "up");
      for (const net of Object.keys(networks)) {
        ip("-n", hub, "link", "add", `br-${net}`, "type", "bridge");
        ip("-n", hub, "link", "set", `br-${net}`, "up");
      }
      return lab;
    } catch (err) {
      lab.destroySync();
      throw err;
    }
  }

  /** The namespace of `host`. */
  ns(host: string): string {
    return `${this.prefix}-${host}`;
  }

  /** Adds a host, on each network given with its last octet: `{ ctl: 11, data: 11 }`. */
  addHost(host: string, on: Record<string, number>): void {
    const ns = this.ns(host);
    ip("netns", "add", ns);
    ip("-n", ns, "link", "set", "lo", "up");
    const addresses: Record<string, string> = {};
    for (const [net, last] of Object.entries(on)) {
      const prefix = this.networks[net];
      if (prefix === undefined) throw new Error(`no network ${net} in this lab`);
      const port = this.hubPort(host, net);
      ip(
        "-n",
        this.ns("hub"),
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        `eth-${net}`,
        "netns",
        ns,
      );
      ip("-n", this.ns("hub"), "link", "set", port, "master", `br-${net}`);
      ip("-n", this.ns("hub"), "link", "set", port, "up");
      addresses[net] = `${prefix}.${last}`;
      ip("-n", ns, "addr", "add", `${addresses[net]}/24`, "dev", `eth-${net}`);
      ip("-n", ns, "link", "set", `eth-${net}`, "up");
    }
    this.hosts.set(host, addresses);
  }

  /** The address of `host` on `net`. */
  address(host: string, net: string): string {
    const a = this.hosts.get(host)?.[net];
    if (a === undefined) throw new Error(`${host} is not on ${net}`);
    return a;
  }

  /** The hub's end of the host's cable on `net` (an interface name, at most 15 bytes). */
  private hubPort(host: string, net: string): string {
    const name = `${net}-${host}`;
    if (name.length > 15) throw new Error(`interface name ${name} is longer than 15 bytes`);
    return name;
  }

  /** Pulls the host's cable out of `net`'s switch: silence both ways, no error on either side. */
  cut(host: string, net: string): void {
    ip("-n", this.ns("hub"), "link", "set", this.hubPort(host, net), "down");
  }

  /** Plugs it back in. */
  reconnect(host: string, net: string): void {
    ip("-n", this.ns("hub"), "link", "set", this.hubPort(host, net), "up");
  }

  /**
   * Runs `argv` in the host's namespace (`ip netns exec` execs it in place: the child's pid is
   * the program's), collecting its output; with `ready`, resolves once stdout matches it (and
   * fails if the process exits first).
   */
  async spawn(
    host: string,
    argv: string[],
    opts: { env?: Record<string, string>; cwd?: string; ready?: RegExp; timeoutMs?: number } = {},
  ): Promise<Spawned> {
    const proc = spawn("ip", ["netns", "exec", this.ns(host), ...argv], {
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    proc.stdout!.on("data", (d) => (out += d));
    proc.stderr!.on("data", (d) => (err += d));
    const exited = new Promise<number | string>((r) =>
      proc.on("exit", (code, signal) => r(code ?? signal ?? "?")),
    );
    const s: Spawned = { proc, host, stdout: () => out, stderr: () => err, exited };
    this.children.push(s);
    const ready = opts.ready;
    if (ready !== undefined) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${host}: ${argv.join(" ")} not ready: ${out}${err}`)),
          opts.timeoutMs ?? 60_000,
        );
        const check = () => {
          if (ready.test(out)) {
            clearTimeout(timer);
            proc.stdout!.off("data", check);
            resolve();
          }
        };
        proc.stdout!.on("data", check);
        check();
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${host}: ${argv.join(" ")} exited with ${code}: ${out}${err}`));
        });
      });
    }
    return s;
  }

  /**
   * Unix sockets (in `dir`) that reach `targets` (name -> "HOST:PORT") from the host's
   * namespace; returns name -> socket path.
   */
  async relay(host: string, targets: Record<string, string>): Promise<Record<string, string>> {
    const sockets: Record<string, string> = {};
    const args: string[] = [];
    for (const [name, target] of Object.entries(targets)) {
      sockets[name] = join(this.dir, `${host}-${name}.sock`);
      args.push(`${sockets[name]}=${target}`);
    }
    await this.spawn(host, [process.execPath, CHILD, "relay", ...args], { ready: /^ready$/m });
    return sockets;
  }

  /** HTTP servers in the host's namespace, one per name, each answering with its name. */
  async backends(host: string, address: string, ports: Record<string, number>): Promise<void> {
    const args = Object.entries(ports).map(([name, port]) => `${name}=${port}`);
    await this.spawn(host, [process.execPath, CHILD, "backends", address, ...args], {
      ready: /^ready$/m,
    });
  }

  /** Kills what runs in the namespaces and deletes them; calling it again does nothing. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    for (const c of this.children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
    await Promise.all(this.children.map((c) => c.exited));
    this.destroySync();
  }

  private destroySync(): void {
    this.destroyed = true;
    process.off("exit", this.onExit);
    spawnSync("sh", ["-c", this.cleanupScript()], { stdio: "ignore" });
    this.watchdog.stdin?.end();
  }

  /**
   * Everything still running in this lab's namespaces is stopped (TERM, then KILL a second
   * later), then the namespaces go, and the sockets' directory.
   */
  private cleanupScript(): string {
    const list = `ip netns list | awk '{print $1}' | grep '^${this.prefix}-'`;
    const pids = `for ns in $(${list}); do ip netns pids "$ns"; done`;
    return [
      `p=$(${pids}); if [ -n "$p" ]; then kill -TERM $p 2>/dev/null; sleep 1; fi`,
      `p=$(${pids}); if [ -n "$p" ]; then kill -KILL $p 2>/dev/null; fi`,
      `for ns in $(${list}); do ip netns del "$ns"; done`,
      `rm -rf '${this.dir}'`,
    ].join("; ");
  }
}

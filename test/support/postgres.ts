/**
 * A private PostgreSQL cluster for tests: `initdb` into a temporary directory, `pg_ctl start`
 * on a free loopback port with its unix socket in that directory, and everything removed
 * afterwards. Never the machine's own PostgreSQL service, never its data.
 *
 * - Run as root (CI), `initdb` and `pg_ctl` refuse to work, so they run as the `postgres` user
 *   (`runuser -u postgres --`), and the temporary directory is handed to that user.
 * - Authentication: trust for every local connection, except the role `turnout_secret`, which
 *   needs its password (scram-sha-256) so that tests can check wrong credentials.
 * - Durability is switched off (fsync, synchronous_commit, full_page_writes): a test cluster
 *   never outlives its test, and it makes migrations and commits several times faster. A
 *   cluster that a test stops and starts again (`down()`, `up()`) keeps synchronous_commit
 *   (`crashSafe`), so that it loses nothing committed, as a real server would not.
 * - Clean-up: `stop()` when the test is done; a process `exit` hook for a test that failed
 *   before it could; and a watchdog child that stops the cluster when this process dies without
 *   running its hooks (SIGKILL by a test runner's timeout), because it sees its stdin close.
 * - Elsewhere than loopback: `startCluster({ netns, listenAddress, trust })` starts the server
 *   inside a network namespace (`ip netns exec`), listening on that namespace's address, and
 *   trusts connections from the `trust` networks (test/e2e/fleet-netns.test.ts). The unix
 *   socket stays in the temporary directory, so `psql()` and `stop()` work from outside it.
 *
 * Where the binaries are missing, `postgresMissing()` says why: tests skip with that reason
 * locally, but under CI (`CI` set) `requirePostgres()` fails, so that CI never silently skips them.
 *
 * @example
 *   const pg = await sharedCluster();            // one cluster per test file (process)
 *   const url = await pg.createDatabase();        // a fresh, empty database
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Where Debian/Ubuntu put each major version's server binaries, newest first. */
const DEBIAN_BIN_DIRS = ["17", "16", "15", "14", "13"].map((v) => `/usr/lib/postgresql/${v}/bin`);

/** The role that must give a password (the rest of the cluster trusts local connections). */
export const PASSWORD_ROLE = "turnout_secret";
export const PASSWORD = "s3cret-for-tests";

export interface PgCluster {
  /** The address the server listens on (127.0.0.1 unless `listenAddress` was given). */
  host: string;
  port: number;
  /** The superuser of the cluster (no password needed). */
  user: string;
  /** A URL for `database` as the superuser. */
  url(database?: string): string;
  /** Creates a fresh, empty database (unique name unless given) and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Runs SQL through psql as the superuser (for setup that the code under test must not do). */
  psql(sqlText: string, database?: string): string;
  /**
   * Stops the server at once (`pg_ctl stop -m immediate`: no checkpoint, every connection cut,
   * as a crash would), keeping its data, so that tests can see what clients do while PostgreSQL
   * is unreachable. Connections are refused on its port until `up()`.
   */
  down(): void;
  /** Starts a server stopped by `down()` again, on the same port; returns once it accepts connections. */
  up(): void;
  /** Stops the cluster and removes its directory. Calling it again does nothing. */
  stop(): Promise<void>;
}

/** The directory holding initdb and pg_ctl, or undefined. */
function binDir(): string | undefined {
  for (const dir of DEBIAN_BIN_DIRS) if (existsSync(join(dir, "initdb"))) return dir;
  const which = spawnSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" });
  const found = which.status === 0 ? which.stdout.trim() : "";
  if (found !== "") return found.slice(0, found.lastIndexOf("/"));
  return undefined;
}

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresMissing(): string | undefined {
  const bin = binDir();
  if (bin === undefined)
    return "PostgreSQL is not installed (no initdb; install Debian's postgresql package, as .ci/postgres.sh does)";
  if (!existsSync(join(bin, "pg_ctl"))) return `no pg_ctl beside ${bin}/initdb`;
  if (process.getuid?.() === 0 && spawnSync("id", ["-u", "postgres"]).status !== 0)
    return "running as root, and there is no postgres user to run initdb as";
  if (spawnSync("sh", ["-c", "command -v psql"]).status !== 0) return "psql is not installed";
  return undefined;
}

/**
 * The skip reason for `it(..., { skip })`: undefined when PostgreSQL is there. Under CI a
 * missing PostgreSQL throws instead: CI must run these tests, never skip them.
 */
export function requirePostgres(): string | undefined {
  const missing = postgresMissing();
  if (missing !== undefined && inCi())
    throw new Error(`the PostgreSQL tests must run in CI: ${missing}`);
  return missing;
}

/** CI=true, CI=1, CI=yes...: any value but empty, "0" and "false" (set by every CI service). */
export function inCi(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false";
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** argv to run `cmd` as the postgres user when we are root, as ourselves otherwise. */
function asPostgres(cmd: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [cmd, args];
  return ["runuser", ["-u", "postgres", "--", cmd, ...args]];
}

function run(cmd: string, args: string[], what: string): string {
  const [c, a] = asPostgres(cmd, args);
  const r = spawnSync(c, a, { encoding: "utf8", env: { ...process.env, LC_ALL: "C" } });
  if (r.status !== 0) {
    throw new Error(`${what} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

let counter = 0;

export interface ClusterOptions {
  /**
   * Every acknowledged commit is in the WAL before the answer (`synchronous_commit` on; still
   * no fsync, since the machine does not crash): what `down()` needs to act as a real server
   * crash or cut, which loses nothing committed. Without it, commits of the last few hundred
   * ms before a `down()` may be gone after `up()`.
   */
  crashSafe?: boolean;
  /** Start the server inside this network namespace (`ip netns exec NAME`; root only). */
  netns?: string;
  /** The address to listen on (default 127.0.0.1); with `netns`, one of that namespace's. */
  listenAddress?: string;
  /** Networks (CIDR) whose connections are trusted like loopback's, e.g. ["10.213.1.0/24"]. */
  trust?: string[];
}

/** Starts a new private cluster. Prefer `sharedCluster()` in test files. */
export async function startCluster(options: ClusterOptions = {}): Promise<PgCluster> {
  const host = options.listenAddress ?? "127.0.0.1";
  const missing = postgresMissing();
  if (missing !== undefined) throw new Error(missing);
  const bin = binDir() as string;
  const dir = mkdtempSync(join(tmpdir(), "turnout-pg-"));
  const data = join(dir, "data");
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  const user = "postgres";
  let stopped = false;
  let watchdog: ReturnType<typeof spawn> | undefined;

  const removeNow = () => {
    // Synchronous on purpose: this also runs from the process's `exit` hook.
    if (existsSync(join(data, "postmaster.pid"))) {
      const [c, a] = asPostgres(join(bin, "pg_ctl"), ["stop", "-D", data, "-m", "immediate"]);
      spawnSync(c, a, { stdio: "ignore" });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const onExit = () => {
    if (!stopped) removeNow();
  };
  process.on("exit", onExit);

  try {
    run(
      join(bin, "initdb"),
      ["-D", data, "-U", user, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
      "initdb",
    );
    writeFileSync(
      join(data, "pg_hba.conf"),
      [
        "local all all trust",
        `host all ${PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256`,
        "host all all 127.0.0.1/32 trust",
        ...(options.trust ?? []).map((cidr) => `host all all ${cidr} trust`),
        "",
      ].join("\n"),
    );
    /** `pg_ctl start` on `port`, waiting until the server accepts connections. */
    const startServer = (port: number) => {
      const opts = [
        `-p ${port}`,
        `-c listen_addresses=${host}`,
        `-c unix_socket_directories=${dir}`,
        "-c fsync=off",
        `-c synchronous_commit=${options.crashSafe ? "on" : "off"}`,
        "-c full_page_writes=off",
        "-c max_connections=200",
        "-c shared_buffers=16MB",
      ].join(" ");
      const [c, a] = asPostgres(join(bin, "pg_ctl"), [
        "start",
        "-D",
        data,
        "-w",
        "-t",
        "60",
        "-l",
        join(dir, "server.log"),
        "-o",
        opts,
      ]);
      // The postmaster that pg_ctl forks stays in the namespace it was started in.
      return options.netns !== undefined
        ? spawnSync("ip", ["netns", "exec", options.netns, c, ...a], { encoding: "utf8" })
        : spawnSync(c, a, { encoding: "utf8" });
    };
    let port = 0;
    for (let attempt = 0; ; attempt++) {
      port = await freePort();
      const r = startServer(port);
      if (r.status === 0) break;
      // Someone took the port between our probe and the server's bind: try another.
      if (attempt >= 3) throw new Error(`pg_ctl start failed: ${r.stderr}${r.stdout}`);
    }

    // The watchdog: stops and removes the cluster once this process is gone, however it went.
    const stopCmd = asPostgres(join(bin, "pg_ctl"), ["stop", "-D", data, "-m", "immediate"]);
    const script = `cat >/dev/null; ${[stopCmd[0], ...stopCmd[1]].map(shellQuote).join(" ")} >/dev/null 2>&1; rm -rf ${shellQuote(dir)}`;
    watchdog = spawn("sh", ["-c", script], { stdio: ["pipe", "ignore", "ignore"] });
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void }).unref?.();

    const url = (database = "postgres") => `postgres://${user}@${host}:${port}/${database}`;
    const psql = (sqlText: string, database = "postgres") =>
      run(
        "psql",
        [
          "-X",
          "-q",
          "-v",
          "ON_ERROR_STOP=1",
          "-h",
          dir,
          "-p",
          String(port),
          "-U",
          user,
          "-d",
          database,
          "-Atc",
          sqlText,
        ],
        "psql",
      );
    psql(`create role ${PASSWORD_ROLE} login password '${PASSWORD}'`);
    return {
      host,
      port,
      user,
      url,
      psql,
      async createDatabase(name?: string) {
        const db = name ?? `t_${process.pid}_${++counter}`;
        psql(`create database "${db}"`);
        return url(db);
      },
      down() {
        if (stopped) throw new Error("the cluster is removed");
        run(join(bin, "pg_ctl"), ["stop", "-D", data, "-m", "immediate", "-w"], "pg_ctl stop");
      },
      up() {
        if (stopped) throw new Error("the cluster is removed");
        // The same port: clients reconnect to the address they know. A server stopped with
        // -m immediate recovers from its WAL first (a second or so), which -w waits for.
        const r = startServer(port);
        if (r.status !== 0) throw new Error(`pg_ctl start failed: ${r.stderr}${r.stdout}`);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        process.off("exit", onExit);
        removeNow();
        watchdog?.stdin?.end();
      },
    };
  } catch (err) {
    stopped = true;
    process.off("exit", onExit);
    removeNow();
    watchdog?.stdin?.end();
    throw err;
  }
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

let shared: Promise<PgCluster> | undefined;

/**
 * One cluster for the whole test file (node:test runs each file in its own process), started
 * on first use and stopped when the process exits. Tests take a database each.
 */
export function sharedCluster(): Promise<PgCluster> {
  shared ??= startCluster();
  return shared;
}

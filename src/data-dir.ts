/**
 * The data dir's own safety: one `turnout up` per data dir (the lock), and clear errors when
 * the directory cannot be written.
 *
 * Why a lock: a second server on the same data dir adopts the first one's instances, runs a
 * second controller and, on exit, stops instances that the first is still serving. The lock
 * is taken before anything reads or writes the data dir's contents, so a refused second
 * `turnout up` touches nothing.
 *
 * The lock is the file `lock` holding the owner's pid and its start time (field 22 of
 * /proc/PID/stat, as process adoption uses). A lock left by a killed Turnout (kill -9, OOM,
 * power loss) names a pid that is dead, or alive but started at another time (reused by
 * another program), and is taken over. Taking it is atomic: the file is written in full under
 * a temporary name, then hard-linked to `lock`, which fails if it exists, so nobody ever reads
 * a half-written lock. A stale lock is moved aside with rename (atomic; of two starters only
 * one moves it) and checked to be the very lock judged stale, byte for byte (each lock
 * carries a random nonce); if a fresh lock was moved instead, it is linked back.
 *
 * Where /proc is missing (not Linux), start times are unknown and a live pid counts as the
 * owner. The store's writer epoch (fencing) backs this up: even two controllers that got past
 * it could never both commit.
 */
import { randomBytes } from "node:crypto";
import {
  accessSync,
  constants,
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { TurnoutError } from "./errors.js";
import type { Logger } from "./logger.js";
import { isRunning, isSameProcess, processStartTicks } from "./runtime/process/proc.js";

export const LOCK_FILE = "lock";
export const SERVER_FILE = "server.json";

/** What `lock` holds. */
export interface LockRecord {
  pid: number;
  /** /proc start time of `pid`; absent where /proc is not available. */
  startTicks?: string;
  /** Wall-clock ms when the lock was taken, for messages. */
  startedAt: number;
  /** Makes every lock's bytes unique, so a takeover can tell one lock from another. */
  nonce: string;
}

/**
 * What `server.json` holds: where the server that owns the data dir listens, and how to tell
 * it is still that server (pid and start time). `tlsCert` is the certificate file the API
 * serves; the CLI trusts it for this server (a self-signed certificate is its own CA).
 */
export interface ServerRecord {
  url: string;
  pid: number;
  startTicks?: string;
  tlsCert?: string;
}

export interface DataDirLock {
  /** Removes the lock if it is still ours; idempotent. */
  release(): void;
}

type LockLogger = Pick<Logger, "warn">;

/**
 * Creates the data dir if needed and takes its lock, or throws:
 * TURNOUT_ERR_DATA_DIR_LOCKED when a live Turnout holds it (pid, URL and start in the message),
 * TURNOUT_ERR_DATA_DIR_READ_ONLY when the directory cannot be written.
 */
export function lockDataDir(dataDir: string, logger?: LockLogger): DataDirLock {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    // A recursive mkdir on a read-only file system may report ENOENT: ask the nearest
    // existing ancestor why it cannot be written.
    throw readOnlyError(dataDir, err) ?? readOnlyError(dataDir, ancestorError(dataDir)) ?? err;
  }
  if (!statSync(dataDir).isDirectory()) {
    throw new TurnoutError(
      "TURNOUT_ERR_DATA_DIR_READ_ONLY",
      `data dir ${dataDir} is not a directory: choose another --data-dir`,
      { dataDir },
    );
  }
  const lockPath = join(dataDir, LOCK_FILE);
  const record: LockRecord = {
    pid: process.pid,
    ...optional("startTicks", processStartTicks(process.pid)),
    startedAt: Date.now(),
    nonce: randomBytes(8).toString("hex"),
  };
  const mine = `${JSON.stringify(record)}\n`;
  const tmp = `${lockPath}.${process.pid}.${record.nonce}`;
  try {
    writeFileSync(tmp, mine, { mode: 0o600 });
  } catch (err) {
    throw readOnlyError(dataDir, err) ?? err;
  }
  try {
    // A few rounds: each one either takes the lock, meets a live owner, or clears a stale
    // lock (which someone else may then take first, hence another round).
    for (let round = 0; round < 5; round++) {
      try {
        linkSync(tmp, lockPath);
        return ownLock(lockPath, mine);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST")
          throw readOnlyError(dataDir, err) ?? err;
      }
      const seen = readText(lockPath);
      if (seen === undefined) continue; // released meanwhile
      const held = parseLock(seen);
      if (held !== undefined && lockIsLive(held)) throw lockedError(dataDir, held);
      const aside = `${lockPath}.stale.${process.pid}.${record.nonce}`;
      try {
        renameSync(lockPath, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw err;
      }
      const moved = readText(aside);
      if (moved === seen) {
        unlinkQuietly(aside);
        logger?.warn(
          { dataDir, stale: held ?? seen.slice(0, 200) },
          held !== undefined
            ? `data dir lock of pid ${held.pid} is stale (that process is gone: it did not stop cleanly); taking it over`
            : "data dir lock is unreadable (a crash while it was written?); taking it over",
        );
        continue;
      }
      // Another starter took the lock between our read and our rename: give it back.
      try {
        linkSync(aside, lockPath);
      } catch {
        // A third starter is already in: both now race for the store's writer epoch, and the
        // newer controller fences the older one.
      }
      unlinkQuietly(aside);
    }
    throw new TurnoutError(
      "TURNOUT_ERR_DATA_DIR_LOCKED",
      `could not take the lock of data dir ${dataDir}: other Turnouts keep starting on it`,
      { dataDir },
    );
  } finally {
    unlinkQuietly(tmp);
  }
}

/** True while the lock's pid runs and (where /proc tells) is the process that took it. */
export function lockIsLive(l: Pick<LockRecord, "pid" | "startTicks">): boolean {
  if (!Number.isInteger(l.pid) || l.pid <= 0) return false;
  return l.startTicks !== undefined ? isSameProcess(l.pid, l.startTicks) : isRunning(l.pid);
}

/** The server record of a data dir, or undefined when there is none or it cannot be read. */
export function readServerRecord(dataDir: string): ServerRecord | undefined {
  const text = readText(join(dataDir, SERVER_FILE));
  if (text === undefined) return undefined;
  try {
    const r = JSON.parse(text) as Partial<ServerRecord>;
    if (typeof r.url !== "string" || typeof r.pid !== "number") return undefined;
    return {
      url: r.url,
      pid: r.pid,
      ...optional("startTicks", typeof r.startTicks === "string" ? r.startTicks : undefined),
      ...optional("tlsCert", typeof r.tlsCert === "string" ? r.tlsCert : undefined),
    };
  } catch {
    return undefined;
  }
}

/**
 * The error for an fs or SQLite failure that means "this directory cannot be written", or
 * undefined for any other error. EACCES/EPERM (permissions) and EROFS (read-only file system);
 * SQLite's READONLY and CANTOPEN (its "unable to open database file") when the directory or
 * the file in question is not writable.
 */
export function readOnlyError(
  dataDir: string,
  err: unknown,
  file?: string,
): TurnoutError | undefined {
  const e = err as { code?: string; details?: { sqliteCode?: string }; message?: string };
  const code = e?.details?.sqliteCode ?? e?.code;
  if (code === undefined) return undefined;
  let reason: string | undefined;
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") reason = code;
  else if (code.startsWith("SQLITE_READONLY")) reason = code;
  else if (code.startsWith("SQLITE_CANTOPEN")) {
    const denied = writableError(dataDir) ?? (file ? writableError(file) : undefined);
    if (denied !== undefined) reason = `${denied}, ${code}`;
  }
  if (reason === undefined) return undefined;
  const what = file ? `${file} in data dir ${dataDir} is` : `data dir ${dataDir} is`;
  const out = new TurnoutError(
    "TURNOUT_ERR_DATA_DIR_READ_ONLY",
    `${what} read-only (${reason}): choose a writable --data-dir (env TURNOUT_DATA_DIR), or fix its permissions`,
    { dataDir, reason },
  );
  out.cause = err;
  return out;
}

/** Why the nearest existing ancestor of `path` cannot be written (an errno error), if it cannot. */
function ancestorError(path: string): unknown {
  for (let p = dirname(path); ; p = dirname(p)) {
    if (existsSync(p)) {
      const code = writableError(p);
      return code === undefined ? undefined : Object.assign(new Error(code), { code });
    }
    if (dirname(p) === p) return undefined;
  }
}

function writableError(path: string): string | undefined {
  try {
    accessSync(path, constants.W_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? undefined : (code ?? "not writable");
  }
}

function ownLock(lockPath: string, mine: string): DataDirLock {
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      // Only our own lock: after a takeover (we were judged stale) it belongs to another.
      if (readText(lockPath) === mine) unlinkQuietly(lockPath);
    },
  };
}

function lockedError(dataDir: string, held: LockRecord): TurnoutError {
  const server = readServerRecord(dataDir);
  const url = server !== undefined && server.pid === held.pid ? server.url : undefined;
  const since = Number.isFinite(held.startedAt)
    ? `, running since ${new Date(held.startedAt).toISOString()}`
    : "";
  return new TurnoutError(
    "TURNOUT_ERR_DATA_DIR_LOCKED",
    `another Turnout is running on data dir ${dataDir} (pid ${held.pid}, ${url !== undefined ? `API at ${url}` : "still starting, no URL yet"}${since}); nothing was changed. Use that one (the CLI finds it by itself), stop it first, or give this one another --data-dir`,
    { dataDir, pid: held.pid, ...optional("url", url) },
  );
}

function parseLock(text: string): LockRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<LockRecord>;
    if (typeof r.pid !== "number" || typeof r.nonce !== "string") return undefined;
    return {
      pid: r.pid,
      ...optional("startTicks", typeof r.startTicks === "string" ? r.startTicks : undefined),
      startedAt: typeof r.startedAt === "number" ? r.startedAt : Number.NaN,
      nonce: r.nonce,
    };
  } catch {
    return undefined;
  }
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // gone already
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

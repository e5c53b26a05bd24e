/**
 * Instance logs: where they are, how they are kept bounded, and how they are read back
 * (`turnout logs`, `GET /api/v1/services/:name/logs`).
 *
 * An instance writes stdout and stderr straight into `<dataDir>/logs/<service>/<version>-<i>.log`
 * (a descriptor opened O_APPEND and handed to the child), not through a pipe to Turnout: an
 * instance must outlive a SIGKILLed Turnout until it is adopted, and a child writing into a pipe
 * whose reader died gets EPIPE and usually dies. The price is the rotation: Turnout cannot
 * reopen the child's descriptor, so it rotates by copy-and-truncate (as logrotate's
 * `copytruncate`): the file is copied to `.1` (older ones shift to `.2`...), then truncated;
 * O_APPEND makes the child's next write land at the new end. Lines written between the copy and
 * the truncation are lost; that window is one file copy long.
 */
import {
  closeSync,
  copyFileSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
} from "node:fs";
import path from "node:path";

/** A name safe as one path segment: service and version names must never walk out of dataDir. */
export function safeName(s: string): string {
  const cleaned = s.replace(/[^A-Za-z0-9._-]/g, "_");
  return cleaned === "." || cleaned === ".." || cleaned === "" ? "_" : cleaned;
}

export function serviceLogDir(dataDir: string, service: string): string {
  return path.join(path.resolve(dataDir), "logs", safeName(service));
}

export function instanceLogFile(
  dataDir: string,
  service: string,
  version: string,
  index: number,
): string {
  return path.join(serviceLogDir(dataDir, service), `${safeName(version)}-${index}.log`);
}

/**
 * Rotates `file` when it has reached `maxBytes`, keeping `maxFiles` files in all (the current one
 * included; 1 means the current file is simply truncated). Returns whether it rotated.
 */
export function rotateIfNeeded(file: string, maxBytes: number, maxFiles: number): boolean {
  const size = statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  if (size < maxBytes) return false;
  if (maxFiles > 1) {
    rmSync(`${file}.${maxFiles - 1}`, { force: true });
    for (let i = maxFiles - 2; i >= 1; i--) {
      if (statSync(`${file}.${i}`, { throwIfNoEntry: false }))
        renameSync(`${file}.${i}`, `${file}.${i + 1}`);
    }
    copyFileSync(file, `${file}.1`);
  }
  truncateSync(file, 0);
  return true;
}

export interface LogQuery {
  version?: string;
  instance?: number;
  /** Last lines per instance (default 100); 0 for none (a follow that starts at the end). */
  tail?: number;
  /** Byte offset in the current file to read on from (follow); takes precedence over `tail`. */
  from?: number;
}

export interface InstanceLog {
  version: string;
  instance: number;
  file: string;
  /** Size of the current file when read: the `from` of the next follow request. */
  offset: number;
  lines: string[];
}

/** At most this much is read per file and request, so a huge log cannot exhaust memory. */
const MAX_READ_BYTES = 4 * 1024 * 1024;
export const MAX_TAIL_LINES = 10_000;

/**
 * The logs of a service's instances, kept after the instances stopped. Files are matched by name,
 * so an instance of a version that no longer runs is still readable.
 */
export function readServiceLogs(dataDir: string, service: string, q: LogQuery = {}): InstanceLog[] {
  const dir = serviceLogDir(dataDir, service);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: InstanceLog[] = [];
  for (const name of names) {
    const m = /^(.+)-(\d+)\.log$/.exec(name);
    if (!m) continue;
    const version = m[1]!;
    const instance = Number(m[2]);
    if (q.version !== undefined && safeName(q.version) !== version) continue;
    if (q.instance !== undefined && q.instance !== instance) continue;
    const file = path.join(dir, name);
    const size = statSync(file, { throwIfNoEntry: false })?.size ?? 0;
    let lines: string[];
    if (q.from !== undefined) {
      // A file smaller than the offset was rotated meanwhile: read it from its start.
      const start = q.from > size ? 0 : q.from;
      lines = splitComplete(readRange(file, start, Math.min(size, start + MAX_READ_BYTES)));
      // Only whole lines are returned; the offset stops after the last newline.
      const consumed = Buffer.byteLength(lines.map((l) => `${l}\n`).join(""), "utf8");
      out.push({ version, instance, file, offset: start + consumed, lines });
      continue;
    }
    const tail = Math.min(q.tail ?? 100, MAX_TAIL_LINES);
    lines = tail === 0 ? [] : tailLines(file, size, tail);
    if (lines.length < tail) {
      // Not enough in the current file: the rotated ones continue it backwards.
      const older = statSync(`${file}.1`, { throwIfNoEntry: false });
      if (older) lines = [...tailLines(`${file}.1`, older.size, tail - lines.length), ...lines];
    }
    out.push({ version, instance, file, offset: size, lines });
  }
  return out.sort((a, b) =>
    a.version === b.version ? a.instance - b.instance : a.version < b.version ? -1 : 1,
  );
}

function tailLines(file: string, size: number, n: number): string[] {
  const start = Math.max(0, size - MAX_READ_BYTES);
  const text = readRange(file, start, size);
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  // A read that starts mid-file starts mid-line: drop the partial first line.
  if (start > 0) lines.shift();
  return lines.slice(-n);
}

/** The complete lines of `text` (a trailing partial line waits for the next read). */
function splitComplete(text: string): string[] {
  const end = text.lastIndexOf("\n");
  return end < 0 ? [] : text.slice(0, end).split("\n");
}

function readRange(file: string, start: number, end: number): string {
  if (end <= start) return "";
  const buf = Buffer.alloc(end - start);
  const fd = openSync(file, "r");
  try {
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, start + done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/**
 * `turnout up`'s log: pino's JSON lines for machines (a pipe, a file, `--log-format json`), one
 * short human line per record on a terminal (`--log-format human`, the default there), and
 * `--quiet` for warnings and errors only. Either way one record is one line on stderr, so
 * stdout keeps only the few lines `up` prints itself ("listening on ...").
 */
import pino, { type Logger } from "pino";

export type LogFormat = "human" | "json";

export interface UpLogOptions {
  format?: LogFormat | undefined;
  quiet?: boolean | undefined;
  /** Where records go; default stderr. */
  stream?: { write(s: string): unknown; isTTY?: boolean | undefined };
  /** Colours in human lines; default when the stream is a terminal and NO_COLOR is unset. */
  color?: boolean;
}

/** The format when none is given: human on a terminal, JSON otherwise. */
export function defaultLogFormat(stream: { isTTY?: boolean | undefined }): LogFormat {
  return stream.isTTY ? "human" : "json";
}

/** The logger for `turnout up`; TURNOUT_LOG_LEVEL, when set, wins over `--quiet`. */
export function createUpLogger(opts: UpLogOptions = {}): Logger {
  const stream = opts.stream ?? process.stderr;
  const format = opts.format ?? defaultLogFormat(stream);
  const level = process.env.TURNOUT_LOG_LEVEL ?? (opts.quiet ? "warn" : "info");
  if (format === "json") {
    return stream === process.stderr
      ? pino({ level, base: undefined }, pino.destination(2))
      : pino({ level, base: undefined }, { write: (s: string) => void stream.write(s) });
  }
  const color = opts.color ?? (Boolean(stream.isTTY) && !process.env.NO_COLOR);
  return pino(
    { level, base: undefined },
    { write: (line: string) => void stream.write(`${humanLine(line, color)}\n`) },
  );
}

const LEVELS: Record<number, string> = {
  10: "trace",
  20: "debug",
  30: "info",
  40: "warn",
  50: "error",
  60: "fatal",
};
/** Fields the line shows in its own place, or that the message already says (`data`). */
const SHOWN = new Set(["level", "time", "part", "service", "event", "msg", "data", "err"]);

/**
 * One pino JSON record as `12:03:04 warn  controller shop: the message (Event) key=value`.
 * Times are the machine's local time of day (the JSON keeps epoch ms for machines).
 */
export function humanLine(json: string, color = false): string {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.trimEnd();
  }
  const paint = (code: number, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const t = typeof r.time === "number" ? new Date(r.time) : null;
  const time = t
    ? [t.getHours(), t.getMinutes(), t.getSeconds()]
        .map((n) => String(n).padStart(2, "0"))
        .join(":")
    : "--:--:--";
  const levelNum = typeof r.level === "number" ? r.level : 30;
  const levelName = (LEVELS[levelNum] ?? String(levelNum)).padEnd(5);
  const level =
    levelNum >= 50
      ? paint(31, levelName)
      : levelNum >= 40
        ? paint(33, levelName)
        : paint(2, levelName);
  const who = [r.part, r.service].filter((x) => typeof x === "string" && x !== "").join(" ");
  let msg = typeof r.msg === "string" ? r.msg : "";
  const err = r.err as { message?: unknown; type?: unknown } | undefined;
  if (err && typeof err.message === "string") msg = msg ? `${msg}: ${err.message}` : err.message;
  // Nested objects are for machines (the JSON format keeps them); a line keeps the scalars.
  const extra = Object.entries(r)
    .filter(([k, v]) => !SHOWN.has(k) && v !== undefined && (v === null || typeof v !== "object"))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  const event = typeof r.event === "string" ? paint(2, ` (${r.event})`) : "";
  return `${paint(2, time)} ${level} ${who ? `${paint(36, who)}: ` : ""}${msg}${event}${
    extra ? ` ${paint(2, truncate(extra, 300))}` : ""
  }`;
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

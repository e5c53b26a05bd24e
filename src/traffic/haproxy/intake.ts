/**
 * HAProxy's request log, taken in by Turnout: the same measurement rows and latency sketches as
 * the built-in router's (src/router/stats.ts `MeasurementRecorder`), so every judge, the builtin
 * metric source and `/metrics` read HAProxy's traffic unchanged.
 *
 * Transport: each HAProxy logs to a ring buffer that it forwards to this TCP listener
 * (config.ts). The intake reads in large chunks, resting `readPauseMs` between reads so that
 * each read takes many lines, and parses a batch of lines per `data` event: no per-request
 * syscall or event, unlike one UDP datagram per line. Turnout not reading (a pause, a restart)
 * fills the ring, not HAProxy's request path; what the ring overwrites is lost and counted.
 * Lines arrive a little after their request ended, so the recorder's clock runs `storeGraceMs`
 * behind the wall clock: a second is written to the store once its last lines are in, and a
 * line later than that is counted (`delayed`).
 *
 * A line (config.ts LOG_FIELDS): `T2 endMs pid thread seq frontend slot status latencyUs
 * serverMs termination server key grpcStatus arm unit`. The version is the server's name up to
 * its ":" (config.ts `serverVersion`); a request that got no server (`<NOSRV>`: every instance
 * of its version down) is the version of its slot, which the provider tells (`slotVersion`).
 * - The measurement goes to the series (frontend = service or service:preview, version), at
 *   the second of `endMs`: the recorder's clock reads the line's time while a batch is parsed.
 * - `status` is the HTTP status sent; for gRPC (`grpcStatus` a number) a non-zero gRPC status
 *   counts as the HTTP status of the gRPC-HTTP mapping (grpc-gateway's), so UNAVAILABLE is a
 *   5xx and INVALID_ARGUMENT a 4xx, and errors are judged as for HTTP services.
 * - Upstream error: the session ended on the server side (`termination` starting with S or s:
 *   refused, reset, timed out) with a server picked.
 * - Abandoned (the router's `Counts.abandoned`): the client aborted (`termination` C) before the
 *   server's response head came: while queued, connecting or waiting for headers (CQ, CC, CH),
 *   or during data with no response head at all (CD with `serverMs` -1: HAProxy 2.6 logs a
 *   client's reset that way). Recorded as 499 whatever status HAProxy logged (400 or -1).
 *   HAProxy sees a client leave only with `option abortonclose`; without it the request waits
 *   for the server and ends as the server's answer or `timeout server` (504, sH).
 * - Lines lost: every line is numbered (`seq`; config.ts `logFormat`), so the numbers of one
 *   (pid, thread) run 1, 2, 3... Numbers still missing `lossTimeoutMs` after a later one arrived
 *   are counted lost; one arriving later still is counted `late` and taken back from `lost`.
 *   (HAProxy's ring says "N events dropped" only for lines it could not write at all; lines it
 *   overwrote while Turnout was not reading are seen only by their numbers.) Request lines that
 *   do not parse are counted `unparsable`; lines without a version (HAProxy's own 400/408, a
 *   413, no instance at all) `unrouted`. HAProxy's own messages in the ring (a server going
 *   down, "N events dropped") are not request lines and are passed over.
 */
import net from "node:net";
import { ABANDONED_STATUS } from "../../core/measurements.js";
import { MeasurementRecorder, type MeasurementRecorderOptions } from "../../router/stats.js";
import { LOG_FIELDS, LOG_FORMAT_TAG, serverVersion } from "./config.js";

/** gRPC status -> HTTP status (grpc-gateway's runtime.HTTPStatusFromCode). */
export const GRPC_HTTP_STATUS: readonly number[] = [
  200, // 0 OK
  499, // 1 CANCELLED
  500, // 2 UNKNOWN
  400, // 3 INVALID_ARGUMENT
  504, // 4 DEADLINE_EXCEEDED
  404, // 5 NOT_FOUND
  409, // 6 ALREADY_EXISTS
  403, // 7 PERMISSION_DENIED
  429, // 8 RESOURCE_EXHAUSTED
  400, // 9 FAILED_PRECONDITION
  409, // 10 ABORTED
  400, // 11 OUT_OF_RANGE
  501, // 12 UNIMPLEMENTED
  500, // 13 INTERNAL
  503, // 14 UNAVAILABLE
  500, // 15 DATA_LOSS
  401, // 16 UNAUTHENTICATED
];

/** One parsed log line. */
export interface LogLine {
  endMs: number;
  pid: number;
  thread: number;
  /** 0 when the line has no number. */
  seq: number;
  series: string;
  /** null when no version took the request. */
  version: string | null;
  /** The status measured: HTTP, or gRPC's mapped to HTTP. -1 when none was sent. */
  status: number;
  latencyMs: number;
  upstreamError: boolean;
  /** The client left before the server's response head (see the module comment). */
  abandoned: boolean;
  /** The sticky key, or null. */
  key: string | null;
  /** The experiment arm the request exposed, or null (forced, no experiment, arm not ready). */
  arm: string | null;
  /** The experiment unit, or null. */
  unit: string | null;
}

const FIELD_COUNT = LOG_FIELDS.length;

/** The version a slot of a frontend's HAProxy serves now, or null (a provider's layout). */
export type SlotVersion = (frontend: string, slot: string) => string | null;

/**
 * Parses one line; null when it is not a Turnout request line. Pure. Without `decodeKey` the
 * sticky key is left null: decoding its hex costs about a sixth of the intake's time per line,
 * and nothing Turnout measures reads it (exposures read the experiment's unit).
 */
export function parseLogLine(
  line: string,
  decodeKey = true,
  slotVersion: SlotVersion = () => null,
): LogLine | null {
  const f = line.split(" ");
  if (f.length !== FIELD_COUNT || f[0] !== LOG_FORMAT_TAG) return null;
  const endMs = Number(f[1]);
  const pid = Number(f[2]);
  const thread = Number(f[3]);
  const seq = f[4] === "-" ? 0 : Number(f[4]);
  let status = Number(f[7]);
  const latencyUs = Number(f[8]);
  if (
    !Number.isFinite(endMs) ||
    !Number.isInteger(pid) ||
    !Number.isInteger(thread) ||
    !Number.isInteger(seq) ||
    !Number.isInteger(status)
  ) {
    return null;
  }
  const grpc = f[13]!;
  if (grpc !== "-") {
    const g = Number(grpc);
    if (!Number.isInteger(g)) return null;
    if (g !== 0 && status < 400) status = GRPC_HTTP_STATUS[g] ?? 500;
  }
  const termination = f[10]!;
  const server = f[11]!;
  const key = f[12]!;
  const phase = termination[1];
  const abandoned =
    termination[0] === "C" &&
    (phase === "Q" || phase === "C" || phase === "H" || (phase === "D" && f[9] === "-1"));
  if (abandoned) status = ABANDONED_STATUS;
  return {
    endMs,
    pid,
    thread,
    seq,
    series: f[5]!,
    // turnout_none, or the frontend's own name for a request refused before any backend (413,
    // HAProxy's 400/408), is no slot: no version.
    version: serverVersion(server) ?? (server === "<NOSRV>" ? slotVersion(f[5]!, f[6]!) : null),
    status,
    latencyMs: Number.isFinite(latencyUs) && latencyUs >= 0 ? latencyUs / 1000 : 0,
    upstreamError: (termination[0] === "S" || termination[0] === "s") && server !== "<NOSRV>",
    abandoned,
    key: !decodeKey || key === "-" || key === "" ? null : Buffer.from(key, "hex").toString("utf8"),
    arm: f[14] === "-" || f[14] === "" ? null : f[14]!,
    unit: f[15] === "-" || f[15] === "" ? null : Buffer.from(f[15]!, "hex").toString("utf8"),
  };
}

/** The sequence numbers seen of one (pid, thread). */
interface Stream {
  /** The lowest number not received yet. */
  next: number;
  /** Numbers received above `next`. */
  above: Set<number>;
  /** When the gap at `next` was first seen (ms), null when there is none. */
  gapSince: number | null;
  lastSeen: number;
  /** Numbers below `next` counted lost, as [from, to] ranges: one that comes after all is late. */
  lostRanges: [number, number][];
}

export interface IntakeStats {
  /** Request lines measured. */
  lines: number;
  unparsable: number;
  /** Lines never received (see the module comment); an estimate that settles after lossTimeoutMs. */
  lost: number;
  /** Lines counted lost that came after all. */
  late: number;
  /** Lines without a version (HAProxy answered by itself). */
  unrouted: number;
  /**
   * Lines that arrived after their second was complete for the store (older than `storeGraceMs`
   * past it): in the totals and `/metrics`, but possibly missing from the stored seconds that
   * analysis reads.
   */
  delayed: number;
  connections: number;
}

export interface LogIntakeOptions extends MeasurementRecorderOptions {
  /** A gap in a sequence older than this counts as lost (default 65 s). */
  lossTimeoutMs?: number;
  /**
   * After a read, the socket rests this long before the next (default 10 ms; 0 reads as data
   * comes). See `#accept`.
   */
  readPauseMs?: number;
  /**
   * A second goes to the store this long after it ends (default 500 ms): a line is written by
   * HAProxy when its request ends and reaches Turnout a little later (the ring, the socket,
   * `readPauseMs`), so the recorder's clock runs this far behind the wall clock and a second's
   * last lines are in before the flusher writes it.
   */
  storeGraceMs?: number;
}

/** Lost ranges remembered per stream, so that a line arriving late is told from a repeat. */
const MAX_LOST_RANGES = 1000;

/** How every request line starts; anything else in the ring is one of HAProxy's own messages. */
const LINE_START = `${LOG_FORMAT_TAG} `;

/** A read this large means a backlog: read on at once rather than resting. */
const BACKLOG_BYTES = 60 * 1024;

/**
 * A TCP listener for HAProxy's log ring, recording into its own `MeasurementRecorder`.
 *
 * @example
 * const intake = new LogIntake({ routerId: "haproxy@host" });
 * const { port } = await intake.listen();
 * // config.ts: `server intake 127.0.0.1:<port>` in the ring section
 * new MeasurementFlusher({ recorder: intake.recorder, sink: store, logger }).start();
 */
export class LogIntake {
  readonly recorder: MeasurementRecorder;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #streams = new Map<string, Stream>();
  readonly #lossTimeoutMs: number;
  readonly #readPauseMs: number;
  readonly #storeGraceMs: number;
  readonly #now: () => number;
  /** The time of the line being recorded; null outside a batch (the recorder reads the clock). */
  #lineMs: number | null = null;
  #stats: IntakeStats = {
    lines: 0,
    unparsable: 0,
    lost: 0,
    late: 0,
    unrouted: 0,
    delayed: 0,
    connections: 0,
  };
  #sweepTimer: NodeJS.Timeout | null = null;
  /** The version of a slot, for lines of requests that got no server (see the module comment). */
  slotVersion: SlotVersion = () => null;
  /** Called with each batch's lines that exposed an experiment arm (exposures); `key` is null. */
  onLines: ((lines: readonly LogLine[]) => void) | null = null;

  constructor(opts: LogIntakeOptions = {}) {
    this.#lossTimeoutMs = opts.lossTimeoutMs ?? 65_000;
    this.#readPauseMs = opts.readPauseMs ?? 10;
    this.#storeGraceMs = opts.storeGraceMs ?? 500;
    const wall = opts.now ?? Date.now;
    this.#now = wall;
    this.recorder = new MeasurementRecorder({
      ...opts,
      // Inside a batch, the line's time; outside (flushes, windows), the wall clock less the
      // grace, so the flusher writes a second only once its late lines are in.
      now: () => this.#lineMs ?? wall() - this.#storeGraceMs,
    });
    this.#server = net.createServer((sock) => this.#accept(sock));
  }

  /** Listens on host:port (default 127.0.0.1, a free port); returns the address. */
  async listen(host = "127.0.0.1", port = 0): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        resolve();
      });
    });
    this.#sweepTimer = setInterval(() => this.sweep(), 1000);
    this.#sweepTimer.unref();
    const a = this.#server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  stats(): IntakeStats {
    return { ...this.#stats };
  }

  /**
   * HAProxy's forwarder sends a few lines at a time as requests end (about ten at 45,000
   * requests/s), so reading as data comes costs a wake-up, a read and a batch per few lines:
   * half of the intake's CPU went to that. After each read the socket rests `readPauseMs`
   * (unless the read was large: a backlog), the kernel's buffer gathers what arrives meanwhile,
   * and the next read takes it in one batch. Measurements are flushed each second, so 10 ms
   * later changes nothing downstream; HAProxy's ring (4 MiB) holds far more than 10 ms of lines.
   */
  #accept(sock: net.Socket): void {
    this.#sockets.add(sock);
    this.#stats.connections++;
    let rest = "";
    let resting: NodeJS.Timeout | null = null;
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      if (this.#readPauseMs > 0 && chunk.length < BACKLOG_BYTES) {
        sock.pause();
        resting = setTimeout(() => {
          resting = null;
          sock.resume();
        }, this.#readPauseMs);
      }
      const text = rest + chunk;
      const end = text.lastIndexOf("\n");
      if (end < 0) {
        rest = text;
        return;
      }
      rest = text.slice(end + 1);
      this.ingest(text.slice(0, end));
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      if (resting !== null) clearTimeout(resting);
      this.#sockets.delete(sock);
    });
  }

  /** Records a batch of complete lines (newline-separated). Public for tests and benchmarks. */
  ingest(batch: string): void {
    const now = this.#now();
    // Seconds up to this one are complete for the store (the recorder's clock, less the grace).
    const completeSec = Math.floor((now - this.#storeGraceMs) / 1000) - 1;
    const exposed: LogLine[] = [];
    let at = 0;
    try {
      while (at <= batch.length) {
        let nl = batch.indexOf("\n", at);
        if (nl < 0) nl = batch.length;
        const raw = batch.slice(at, nl);
        at = nl + 1;
        if (raw.length === 0) continue;
        const l = parseLogLine(
          raw.charCodeAt(raw.length - 1) === 13 ? raw.slice(0, -1) : raw,
          false,
          this.slotVersion,
        );
        if (l === null) {
          if (raw.startsWith(LINE_START)) this.#stats.unparsable++;
          continue;
        }
        // A number seen already is the same line again (a reload's old worker: see managed.ts).
        if (l.seq > 0 && !this.#sequence(l, now)) continue;
        if (l.version === null) {
          this.#stats.unrouted++;
          continue;
        }
        this.#stats.lines++;
        if (Math.floor(l.endMs / 1000) <= completeSec) this.#stats.delayed++;
        this.#lineMs = l.endMs;
        const c = this.recorder.series(l.series, l.version);
        c.requests++;
        c.record(l.status, l.latencyMs, l.upstreamError, l.abandoned);
        if (l.arm !== null && this.onLines !== null) exposed.push(l);
      }
    } finally {
      this.#lineMs = null;
    }
    if (exposed.length > 0) this.onLines?.(exposed);
  }

  /** Takes a line's number; false when the line came already (it is not counted twice). */
  #sequence(l: LogLine, now: number): boolean {
    const id = `${l.pid}/${l.thread}`;
    let s = this.#streams.get(id);
    if (s === undefined) {
      s = { next: 1, above: new Set(), gapSince: null, lastSeen: now, lostRanges: [] };
      this.#streams.set(id, s);
    }
    s.lastSeen = now;
    const seq = l.seq;
    if (seq === s.next) {
      s.next++;
      while (s.above.delete(s.next)) s.next++;
      s.gapSince = s.above.size > 0 ? now : null;
      return true;
    }
    if (seq > s.next) {
      if (s.above.has(seq)) return false;
      s.above.add(seq);
      s.gapSince ??= now;
      return true;
    }
    // Below `next`: counted lost at a sweep and here after all, or a line seen already.
    const i = s.lostRanges.findIndex(([from, to]) => seq >= from && seq <= to);
    if (i < 0) return false;
    const [from, to] = s.lostRanges[i]!;
    s.lostRanges.splice(
      i,
      1,
      ...(
        [
          [from, seq - 1],
          [seq + 1, to],
        ] as [number, number][]
      ).filter(([a, b]) => a <= b),
    );
    this.#stats.late++;
    if (this.#stats.lost > 0) this.#stats.lost--;
    return true;
  }

  /** Declares gaps older than the loss timeout lost; forgets streams idle for twice as long. */
  sweep(now = this.#now()): void {
    for (const [id, s] of this.#streams) {
      if (s.gapSince !== null && now - s.gapSince >= this.#lossTimeoutMs) {
        let low = Number.POSITIVE_INFINITY;
        for (const n of s.above) if (n < low) low = n;
        this.#stats.lost += low - s.next;
        s.lostRanges.push([s.next, low - 1]);
        // Bounded: the oldest ranges go (a line that old arriving is then taken as a repeat).
        if (s.lostRanges.length > MAX_LOST_RANGES) s.lostRanges.shift();
        s.next = low;
        while (s.above.delete(s.next)) s.next++;
        s.gapSince = s.above.size > 0 ? now : null;
      }
      if (s.gapSince === null && now - s.lastSeen > 2 * this.#lossTimeoutMs)
        this.#streams.delete(id);
    }
  }
}

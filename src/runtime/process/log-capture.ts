/**
 * The runtime's side of instance logs: the file a starting process writes into (opened here,
 * handed to the child as its stdout and stderr, see `logs.ts` for why not a pipe), Turnout's own
 * `--- turnout:` lines in it (each start and each end), and the periodic rotation of the files
 * of running instances. Reading logs back is `logs.ts`'s.
 */
import { appendFileSync, closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import path from "node:path";
import type { Logger } from "../../logger.js";
import type { Managed, Running } from "./instance.js";
import { rotateIfNeeded } from "./logs.js";

/**
 * Opens the instance's log for appending (rotated first if due) and writes the start line;
 * the caller hands the descriptor to the child and closes its own copy. Undefined without a
 * log file. Throws what the file system throws.
 */
export function openInstanceLog(m: Managed, logger: Logger): number | undefined {
  if (!m.logFile) return undefined;
  mkdirSync(path.dirname(m.logFile), { recursive: true });
  rotateInstanceLog(m, logger);
  const fd = openSync(m.logFile, "a");
  const what = m.restarts > 0 ? `restart ${m.restarts} of` : "starting";
  try {
    writeSync(
      fd,
      `--- turnout: ${new Date().toISOString()} ${what} ${m.id} on port ${m.port}: ${JSON.stringify(m.launch.argv)}\n`,
    );
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/** Appends the line that says how the instance's process ended. */
export function noteExitInLog(m: Managed, how: string): void {
  // Synchronous, so the line is there by the time stop() resolves; it is one short write.
  if (m.logFile) {
    try {
      appendFileSync(m.logFile, `--- turnout: ${new Date().toISOString()} ${m.id} ${how}\n`);
    } catch {
      // The log is a convenience; a full disk must not break stopping.
    }
  }
}

function rotateInstanceLog(m: Managed, logger: Logger): void {
  if (!m.logFile) return;
  try {
    if (rotateIfNeeded(m.logFile, m.launch.logs.maxBytes, m.launch.logs.maxFiles))
      logger.info({ instance: m.id, file: m.logFile }, "log rotated");
  } catch (err) {
    logger.warn({ instance: m.id, err: String(err) }, "log rotation failed");
  }
}

/** Checks the log files of running instances for rotation every `everyMs`, once started. */
export class LogRotation {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly everyMs: number,
    private readonly running: () => Iterable<Running>,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      for (const m of this.running()) rotateInstanceLog(m, this.logger);
    }, this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

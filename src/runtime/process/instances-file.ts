/**
 * The process runtime's record of the instances it runs, in `<dataDir>/runtime/instances.json`,
 * so that a Turnout killed with SIGKILL (no exit hook runs) can find its instances on the next
 * start and adopt them or kill them: never an orphan, never a port handed out twice.
 *
 * A record is written as soon as the child is spawned, before its first probe, and removed when
 * the instance is forgotten. The file is replaced atomically (write, fsync, rename), so a crash
 * mid-write leaves the previous version. It holds the templated command and the spec's env
 * (not Turnout's own environment), hence mode 0600 like the token.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import type {
  LivenessProbeSpec,
  ProbeSpec,
  ProcessLogsSpec,
  RestartPolicySpec,
} from "../../core/model.js";

/** How an instance is (re)started; kept with the instance so a restart runs what was started. */
export interface LaunchConfig {
  argv: string[];
  cwd: string;
  /** The spec's env, templated; Turnout's own environment is added at spawn and never stored. */
  env: Record<string, string>;
  readiness: ProbeSpec;
  liveness?: LivenessProbeSpec;
  startupTimeoutMs: number;
  graceMs: number;
  drainMs: number;
  restart: RestartPolicySpec;
  logs: ProcessLogsSpec;
}

export interface InstanceRecord {
  service: string;
  version: string;
  index: number;
  port: number;
  /** Leader of the instance's process group (pgid === pid: spawned detached). */
  pid: number;
  /** /proc start time of the leader; without it the pid cannot be told from a reused one. */
  startTicks?: string;
  /** Epoch ms of the spawn. */
  startedAt: number;
  logFile?: string;
  restarts: number;
  launch: LaunchConfig;
}

interface FileShape {
  version: 1;
  instances: InstanceRecord[];
}

export class InstancesFile {
  readonly file: string;

  constructor(dataDir: string) {
    this.file = path.join(path.resolve(dataDir), "runtime", "instances.json");
  }

  /** The records of the last run; none when the file is missing or unreadable (said in `problem`). */
  read(): { records: InstanceRecord[]; problem?: string } {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { records: [] };
      return { records: [], problem: `cannot read ${this.file}: ${(err as Error).message}` };
    }
    try {
      const parsed = JSON.parse(text) as FileShape;
      if (parsed?.version !== 1 || !Array.isArray(parsed.instances))
        return { records: [], problem: `${this.file}: unknown format` };
      return { records: parsed.instances.filter(isRecord) };
    } catch (err) {
      return { records: [], problem: `${this.file}: ${(err as Error).message}` };
    }
  }

  write(records: InstanceRecord[]): void {
    mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const body: FileShape = { version: 1, instances: records };
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, `${JSON.stringify(body, null, 1)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
  }
}

function isRecord(r: unknown): r is InstanceRecord {
  const x = r as InstanceRecord;
  return (
    typeof x === "object" &&
    x !== null &&
    typeof x.service === "string" &&
    typeof x.version === "string" &&
    Number.isInteger(x.index) &&
    Number.isInteger(x.port) &&
    Number.isInteger(x.pid) &&
    x.pid > 1 &&
    typeof x.launch === "object" &&
    Array.isArray(x.launch?.argv)
  );
}

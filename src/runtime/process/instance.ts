/**
 * What the process runtime holds about each instance slot and each run of its process: the
 * facts the pure decisions of `instance-machine.ts` read and update, plus the handles (child,
 * timers, probes in flight, promises) the runtime's parts act on. Also the hooks those parts
 * call back into, and the view `instances()` returns.
 */
import type { ChildProcess } from "node:child_process";
import type { Logger } from "../../logger.js";
import type { Instance } from "../runtime.js";
import type * as machine from "./instance-machine.js";
import type { LaunchConfig } from "./instances-file.js";
import type { ProbeHandle } from "./probe.js";

/** What `instances()` returns: an Instance plus what a person debugging it wants to see. */
export interface ProcessInstance extends Instance {
  /** Index within the version (`${instance}` in templates). */
  index: number;
  port: number;
  /** Pid of the group leader while it runs. */
  pid?: number;
  logFile?: string;
  /** Taken over from a previous Turnout process that was killed. */
  adopted?: boolean;
}

/** One run of an instance's process: its facts (`RunFacts`) and its handles. */
export interface Proc extends machine.RunFacts {
  readonly pid: number;
  readonly startTicks: string | undefined;
  /** Epoch ms of the spawn, recorded for people. */
  readonly startedAtEpoch: number;
  /** Undefined for an adopted process: no exit event, it is watched by polling. */
  readonly child: ChildProcess | undefined;
  exited: boolean;
  readonly exitedPromise: Promise<void>;
  readonly resolveExited: () => void;
  startupTimer: NodeJS.Timeout | undefined;
  termination: Promise<void> | undefined;
  watch: NodeJS.Timeout | undefined;
}

/** Everything the runtime tracks about one instance slot: its facts and its handles. */
export interface Managed extends machine.InstanceFacts {
  readonly id: string;
  readonly service: string;
  readonly version: string;
  readonly index: number;
  readonly port: number;
  readonly url: string;
  readonly logFile: string | undefined;
  readonly launch: LaunchConfig;
  readonly adopted: boolean;
  proc: Proc | undefined;
  /** Probe and startup-deadline timers of the current process. */
  readonly timers: Set<NodeJS.Timeout>;
  /** Readiness and liveness probes may be in flight together. */
  readonly probesInFlight: Set<ProbeHandle>;
  restartTimer: unknown;
  /** Called once the first probe of an adopted instance has an answer. */
  onFirstProbe: (() => void) | undefined;
  /** Set once the runtime has decided to drop the instance. */
  removal: Promise<void> | undefined;
}

/** An instance whose process runs (spawned or adopted, and not seen to exit). */
export type Running = Managed & { proc: Proc };

export function isLive(m: Managed): m is Running {
  return m.proc !== undefined && !m.proc.exited;
}

/**
 * What the parts of an instance's life (probing, signals) call back into; the runtime
 * implements it, so the parts need not know each other's owner.
 */
export interface InstanceHooks {
  readonly logger: Logger;
  /** The instance's state changed: logged, and the runtime's listeners are told. */
  announce(m: Managed): void;
  /** The process of `proc` is gone: its exit event, or found gone by polling (adopted). */
  exited(m: Managed, proc: Proc, how: string): void;
}

export function newManaged(
  service: string,
  version: string,
  index: number,
  port: number,
  launch: LaunchConfig,
  logFile: string | undefined,
  adopted: boolean,
): Managed {
  return {
    id: `${service}/${version}/${index}`,
    service,
    version,
    index,
    port,
    url: `http://127.0.0.1:${port}`,
    logFile,
    launch,
    adopted,
    state: "starting",
    message: "starting",
    proc: undefined,
    timers: new Set(),
    probesInFlight: new Set(),
    restarts: 0,
    lastExit: undefined,
    crashesSinceReady: 0,
    backoffStep: 0,
    restartTimer: undefined,
    onFirstProbe: undefined,
    removal: undefined,
  };
}

/** `startedAt` is the runtime clock's `now` (back-off), `startedAtEpoch` wall time (records). */
export function newProc(
  pid: number,
  startTicks: string | undefined,
  child: ChildProcess | undefined,
  startedAtEpoch: number,
  startedAt: number,
): Proc {
  let resolveExited!: () => void;
  return {
    pid,
    startTicks,
    startedAt,
    startedAtEpoch,
    child,
    exited: false,
    exitedPromise: new Promise<void>((r) => {
      resolveExited = r;
    }),
    resolveExited: () => resolveExited(),
    killReason: undefined,
    failNow: false,
    livenessFailures: 0,
    wasReady: false,
    readinessFailures: 0,
    startupTimer: undefined,
    termination: undefined,
    watch: undefined,
  };
}

/** The instances of a service as `instances()` shows them: by version, then index. */
export function processInstances(instances: Iterable<Managed>): ProcessInstance[] {
  return [...instances]
    .sort((a, b) => (a.version === b.version ? a.index - b.index : a.version < b.version ? -1 : 1))
    .map((m) => ({
      id: m.id,
      version: m.version,
      url: m.url,
      state: m.state,
      ...(m.message !== undefined ? { message: m.message } : {}),
      restarts: m.restarts,
      ...(m.lastExit !== undefined ? { lastExit: m.lastExit } : {}),
      index: m.index,
      port: m.port,
      ...(m.proc && !m.proc.exited ? { pid: m.proc.pid } : {}),
      ...(m.logFile !== undefined ? { logFile: m.logFile } : {}),
      ...(m.adopted ? { adopted: true } : {}),
    }));
}

/**
 * Adoption after a SIGKILL of the previous Turnout: what is recorded of each running instance
 * (`instances-file.ts` keeps the records), and what becomes of each record on the next start.
 * An instance whose leader still runs with the recorded start time is adopted (the runtime
 * probes it again and `ensure` keeps or stops it like any other); a group whose leader is gone
 * is SIGKILLed; a pid now running another program is left alone; the rest are forgotten.
 */
import type { Logger } from "../../logger.js";
import { type Managed, newManaged, newProc, type Proc, type Running } from "./instance.js";
import type { InstanceRecord } from "./instances-file.js";
import { groupExists, isRunning, isSameProcess, killGroup } from "./proc.js";

/** The records of the instances whose process runs, in the order given. */
export function recordsOf(running: Iterable<Running>): InstanceRecord[] {
  const records: InstanceRecord[] = [];
  for (const m of running) {
    const p = m.proc;
    records.push({
      service: m.service,
      version: m.version,
      index: m.index,
      port: m.port,
      pid: p.pid,
      ...(p.startTicks !== undefined ? { startTicks: p.startTicks } : {}),
      startedAt: p.startedAtEpoch,
      ...(m.logFile !== undefined ? { logFile: m.logFile } : {}),
      restarts: m.restarts,
      launch: m.launch,
    });
  }
  return records;
}

/**
 * Deals with each record of the last run in turn: hands the ones to adopt to `adopt`, kills
 * the groups whose leader is gone, and logs what it does with the others.
 */
export function settleLeftovers(
  records: InstanceRecord[],
  logger: Logger,
  adopt: (r: InstanceRecord) => void,
): void {
  for (const r of records) {
    const log = { service: r.service, version: r.version, pid: r.pid, port: r.port };
    if (r.startTicks !== undefined && isSameProcess(r.pid, r.startTicks)) {
      adopt(r);
      continue;
    }
    if (isRunning(r.pid)) {
      // Another start time: the pid was reused by another program (and so was its group id,
      // which Linux hands out only once the old group is empty). Without a start time (no
      // /proc) it cannot be told. Either way it is not ours to signal.
      logger.warn(log, "recorded pid now runs another program (or cannot be verified); left alone");
      continue;
    }
    // The leader is gone. Linux never hands out a pid that is still some group's id, so a
    // group that still exists is the instance's own leftovers: they go.
    if (groupExists(r.pid)) {
      logger.warn(log, "leader of a recorded instance is gone; killing its group");
      killGroup(r.pid, "SIGKILL");
    } else {
      logger.info(log, "recorded instance no longer runs; forgotten");
    }
  }
}

/** The instance of an adoptable record, with its running process; `now` is the runtime clock's. */
export function adoptedInstance(r: InstanceRecord, now: number): { m: Managed; proc: Proc } {
  const m = newManaged(r.service, r.version, r.index, r.port, r.launch, r.logFile, true);
  m.restarts = r.restarts;
  m.message = "adopted after a restart of Turnout; probing";
  const proc = newProc(r.pid, r.startTicks, undefined, r.startedAt, now);
  m.proc = proc;
  return { m, proc };
}

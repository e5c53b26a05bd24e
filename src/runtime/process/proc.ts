/**
 * What the process runtime needs to know about processes it did not necessarily start itself
 * (instances adopted after Turnout was SIGKILLed): is a pid still the process we started, is a
 * process group still populated. Linux answers through /proc; elsewhere a pid's identity cannot
 * be checked, and the runtime then neither adopts nor kills (see `processStartTicks`).
 */
import { readFileSync } from "node:fs";

/**
 * The start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), which with the
 * pid identifies one process for the life of the machine: a pid reused by another program has
 * another start time. Undefined when the process does not exist or /proc is not there.
 */
export function processStartTicks(pid: number): string | undefined {
  const stat = readStat(pid);
  if (stat === undefined) return undefined;
  // The command name (field 2) is in parentheses and may itself contain spaces or ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so field 22 is fields[19].
  return fields[19];
}

/** True while `pid` runs: it exists and is not a zombie (a zombie runs no code and holds no port). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but is not ours; still running.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  const stat = readStat(pid);
  if (stat === undefined) return true; // no /proc: kill(0) is all we know
  return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
}

/** True while `pid` runs and is the process that started at `startTicks`. */
export function isSameProcess(pid: number, startTicks: string): boolean {
  return isRunning(pid) && processStartTicks(pid) === startTicks;
}

/** True while any process of the group exists (zombies included; they go with their parent). */
export function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Signals the whole process group led by `pid`; a group that is already gone is fine. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

function readStat(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
}

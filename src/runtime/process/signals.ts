/**
 * How an instance's process ends: SIGTERM to its group and SIGKILL after the grace period,
 * the end of its leader seen (an exit event, or polling for a process that is not our child),
 * what is left of its group then, and the exit hook that leaves no orphan when Turnout exits.
 * Every signal goes to the whole process group (the instance was spawned detached, pgid ===
 * pid), so grandchildren go too.
 */
import type { InstanceHooks, Managed, Proc, Running } from "./instance.js";
import { isSameProcess, killGroup } from "./proc.js";

/** SIGTERM to the group, SIGKILL after the grace period; resolves when the leader has exited. */
export function terminate(h: InstanceHooks, m: Managed, proc: Proc): Promise<void> {
  if (proc.termination) return proc.termination;
  if (proc.exited) {
    proc.termination = Promise.resolve();
    return proc.termination;
  }
  const pid = proc.pid;
  killGroup(pid, "SIGTERM");
  // An adopted process has no exit event: look for its end often now.
  if (!proc.child) watch(h, m, proc, 20);
  // Ref'd, unlike the probe timers: it is bounded, and a stop must finish.
  const kill = setTimeout(() => {
    h.logger.warn(
      { instance: m.id, pid, graceSeconds: m.launch.graceMs / 1000 },
      "instance ignored SIGTERM; SIGKILL",
    );
    killGroup(pid, "SIGKILL");
  }, m.launch.graceMs);
  proc.termination = proc.exitedPromise.then(() => clearTimeout(kill));
  return proc.termination;
}

/**
 * An adopted process is not our child: no exit event, so its life is checked by polling.
 * The interval stays ref'd, as a spawned child does: a program that runs instances lives until
 * it stops them (and a script awaiting `adopted` is not left with an empty event loop).
 */
export function watch(h: InstanceHooks, m: Managed, proc: Proc, everyMs: number): void {
  if (proc.watch) clearInterval(proc.watch);
  proc.watch = setInterval(() => {
    if (proc.exited) return;
    if (proc.startTicks !== undefined && isSameProcess(proc.pid, proc.startTicks)) return;
    h.exited(m, proc, "exited (adopted: exit status unknown)");
  }, everyMs);
}

/** The leader has exited: what is left of its group goes, and waiters on the exit are released. */
export function reap(proc: Proc): void {
  // The leader is gone; anything left in its group (a child that ignored SIGTERM, or one
  // the leader did not wait for) is an orphan now, so it goes at once. Waiting out the grace
  // period for such leftovers instead would need to tell live members from zombies, which a
  // container whose init never reaps (Docker without --init) keeps forever. A launcher that
  // should let its child drain must wait for it (npm does; so does `exec` in a shell script).
  killGroup(proc.pid, "SIGKILL");
  proc.exited = true;
  if (proc.watch) clearInterval(proc.watch);
  proc.watch = undefined;
  proc.resolveExited();
}

/**
 * Last line of defence against orphans: on any exit of Node that runs "exit" listeners
 * (process.exit, an uncaught exception, the event loop running dry), SIGKILL every group
 * still alive. It must be synchronous; there is no time for a graceful stop there.
 * Note: a signal that kills Node without a handler (SIGINT, SIGTERM) runs no "exit"
 * listener; the CLI handles those and calls `shutdown()`.
 */
export class ExitHook {
  private hook: (() => void) | undefined;

  /** `running` lists the instances whose process still runs. */
  constructor(private readonly running: () => Iterable<Running>) {}

  install(): void {
    if (this.hook) return;
    this.hook = () => {
      for (const m of this.running()) killGroup(m.proc.pid, "SIGKILL");
    };
    process.on("exit", this.hook);
  }

  remove(): void {
    if (this.hook) {
      process.off("exit", this.hook);
      this.hook = undefined;
    }
  }
}

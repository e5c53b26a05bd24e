/**
 * Starting a run of an instance's process: its own process group (detached) so that signals
 * reach grandchildren too, and its stdout and stderr going straight to the instance's log file
 * descriptor, so nothing is buffered in Turnout and the child can outlive a killed Turnout
 * (see `logs.ts`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, statSync } from "node:fs";
import type { Logger } from "../../logger.js";
import type { Managed } from "./instance.js";
import type { LaunchConfig } from "./instances-file.js";
import { openInstanceLog } from "./log-capture.js";

/**
 * Why the launch cannot start, if it cannot. Checked before spawning because spawn reports a
 * missing cwd as "spawn <command> ENOENT", which blames the command.
 */
export function launchProblem({ argv, cwd }: LaunchConfig): string | undefined {
  return argv.length === 0 || argv[0] === ""
    ? "empty command"
    : !statSync(cwd, { throwIfNoEntry: false })?.isDirectory()
      ? `cwd ${cwd} is not a directory`
      : undefined;
}

/**
 * Spawns the instance's command. Throws when its log cannot be opened or spawn fails at once;
 * when spawn fails later (ENOENT...) the child has no pid, and its "error" event says why.
 */
export function spawnChild(m: Managed, logger: Logger): ChildProcess {
  const { argv, cwd } = m.launch;
  let fd: number | undefined;
  try {
    fd = openInstanceLog(m, logger);
    return spawn(argv[0]!, argv.slice(1), {
      cwd,
      env: { ...process.env, ...m.launch.env },
      detached: true,
      stdio: ["ignore", fd ?? "ignore", fd ?? "ignore"],
    });
  } finally {
    // The child holds its own copy of the descriptor.
    if (fd !== undefined) closeSync(fd);
  }
}

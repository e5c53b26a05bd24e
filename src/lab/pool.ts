/**
 * Runs lab jobs on worker processes (one per core by default), largest jobs first so that the
 * workers end together. The report does not depend on the number of workers: every run is
 * seeded on its own, and `runLab` orders runs by seed before summarising.
 */
import { fork } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import type { LabJob } from "./lab.js";
import type { RunResult } from "./run.js";

export function defaultWorkers(): number {
  return Math.max(1, availableParallelism());
}

/** An `execute` for `runLab` over `workers` child processes. */
export function workerPool(workers: number = defaultWorkers()) {
  return async (jobs: LabJob[], onDone: (job: LabJob, rows: RunResult[]) => void) => {
    const queue = jobs.slice();
    // The worker is this folder's worker.ts (under tsx) or worker.js (built).
    const self = fileURLToPath(import.meta.url);
    const ts = self.endsWith(".ts");
    const script = self.replace(/pool\.(ts|js)$/, ts ? "worker.ts" : "worker.js");
    const execArgv = ts ? ["--import", import.meta.resolve("tsx")] : [];
    const n = Math.max(1, Math.min(workers, jobs.length));
    await Promise.all(
      Array.from(
        { length: n },
        (_, id) =>
          new Promise<void>((resolve, reject) => {
            const child = fork(script, [], {
              execArgv,
              stdio: ["ignore", "inherit", "inherit", "ipc"],
            });
            let current: LabJob | undefined;
            const next = () => {
              current = queue.shift();
              child.send({ job: current ?? null });
              if (!current) resolve();
            };
            child.on("message", (msg: { ready?: boolean; rows?: RunResult[] }) => {
              if (msg.rows && current) onDone(current, msg.rows);
              next();
            });
            child.on("error", reject);
            child.on("exit", (code) => {
              if (current) reject(new Error(`lab worker ${id} exited (${code}) during a job`));
            });
          }),
      ),
    );
  };
}

/**
 * A lab worker: a child process (`pool.ts`) that runs the jobs it is sent, one at a time, and
 * sends back each job's runs. Worker processes rather than threads: a thread's entry file would
 * not get the TypeScript loader under `node --import tsx` on Node 20.
 */
import { type LabJob, runJob } from "./lab.js";

process.on("message", async (msg: { job: LabJob | null }) => {
  if (msg.job === null) {
    process.disconnect();
    return;
  }
  process.send!({ rows: await runJob(msg.job) });
});
process.send!({ ready: true });

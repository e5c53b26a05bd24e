/**
 * What the demo's parts share: the example model server (`examples/model/server.mjs`) as
 * local processes, and polling the API until something holds.
 */
import { join } from "node:path";
import type { ProcessRuntimeSpec, ServiceResource } from "../../core/model.js";
import { packageRoot } from "../../version.js";

/** The example model server on the process runtime: fast probes, quick to start and stop. */
export function modelRuntime(
  replicas: number,
  extra: Partial<ProcessRuntimeSpec> = {},
): ServiceResource["spec"]["runtime"] {
  return {
    process: {
      command: [process.execPath, join(packageRoot(), "examples/model/server.mjs")],
      env: { MODEL_VERSION: "${version}" },
      replicas,
      readiness: {
        path: "/healthz",
        periodSeconds: 0.2,
        timeoutSeconds: 1,
        initialDelaySeconds: 0,
      },
      startupTimeoutSeconds: 30,
      terminationGracePeriodSeconds: 5,
      ...extra,
    } as ProcessRuntimeSpec,
  };
}

/** Polls `check` every 100 ms until it holds (true), the time is up or the demo is cancelled (false). */
export async function until(
  check: () => Promise<boolean>,
  timeoutMs: number,
  cancelled: () => boolean,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !cancelled()) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/**
 * The demo's section numbers, one sequence across every scenario (demo.ts and demo/*.ts each
 * numbered their own from 1, so the output read 1-5, 1-4, 6, 7, 1-3, 8, 9). One demo runs per
 * process; `resetSections` starts it over.
 */
let sectionNumber = 0;

/** The next section's number, as "N." (callers colour it). */
export function nextSection(): string {
  sectionNumber += 1;
  return `${sectionNumber}.`;
}

export function resetSections(): void {
  sectionNumber = 0;
}

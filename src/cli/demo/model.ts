/**
 * The demo's services all run the example model server (`examples/model/server.mjs`) as local
 * processes; this is that process runtime, with what each part of the demo changes.
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

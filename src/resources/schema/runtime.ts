/** A Service's `runtime`: `static` (URLs you give) or `process` (local commands Turnout runs). */
import { z } from "zod";
import {
  DEFAULT_DRAIN_SECONDS,
  DEFAULT_PROCESS_LOGS,
  DEFAULT_RESTART_POLICY,
} from "../../core/model.js";
import {
  capped,
  cappedRecord,
  command,
  exactlyOne,
  httpPath,
  httpUrl,
  limited,
  nonEmpty,
  strict,
  stringMap,
  versionName,
} from "./blocks.js";

const StaticRuntimeSchema = strict({
  versions: cappedRecord(
    "VERSIONS",
    "versions",
    z
      .record(
        versionName,
        strict({
          upstreams: capped(
            "UPSTREAMS",
            "upstreams",
            z
              .array(httpUrl({ allowQuery: false }))
              .min(1, { error: "must list at least one upstream URL, got an empty list" }),
          ).describe("Base URLs of the version's instances, e.g. http://127.0.0.1:9001."),
        }),
      )
      .superRefine((v, ctx) => {
        if (Object.keys(v).length === 0)
          ctx.addIssue({
            code: "custom",
            input: v,
            message:
              'must list at least one version, e.g. v1: { upstreams: ["http://127.0.0.1:9001"] }; got none',
          });
      })
      .meta({ minProperties: 1 }),
  ).describe("Each version by name, with the URLs where it runs."),
});

const DEFAULT_READINESS = {
  path: "/healthz",
  periodSeconds: 1,
  timeoutSeconds: 1,
  initialDelaySeconds: 0,
} as const;

const ProbeSchema = strict({
  path: httpPath()
    .default(DEFAULT_READINESS.path)
    .describe("Path probed with GET; any 2xx or 3xx answer means ready."),
  periodSeconds: limited("PROBE_PERIOD_SECONDS")
    .default(DEFAULT_READINESS.periodSeconds)
    .describe("Seconds between probes."),
  timeoutSeconds: limited("PROBE_TIMEOUT_SECONDS")
    .default(DEFAULT_READINESS.timeoutSeconds)
    .describe("Seconds before a probe counts as failed."),
  initialDelaySeconds: limited("PROBE_DELAY_SECONDS")
    .default(DEFAULT_READINESS.initialDelaySeconds)
    .describe("Seconds after start before the first probe."),
});

const LivenessSchema = strict({
  path: httpPath().default("/healthz").describe("Path probed with GET; 2xx or 3xx is alive."),
  periodSeconds: limited("PROBE_PERIOD_SECONDS").default(10).describe("Seconds between probes."),
  timeoutSeconds: limited("PROBE_TIMEOUT_SECONDS")
    .default(1)
    .describe("Seconds before a probe counts as failed."),
  failureThreshold: limited("PROBE_THRESHOLD")
    .default(3)
    .describe("Consecutive failed probes that restart the instance."),
});

const RP = DEFAULT_RESTART_POLICY;
const RestartPolicySchema = strict({
  initialBackoffSeconds: limited("BACKOFF_SECONDS")
    .default(RP.initialBackoffSeconds)
    .describe("Delay before the first restart; it doubles after each further crash."),
  maxBackoffSeconds: limited("BACKOFF_SECONDS")
    .default(RP.maxBackoffSeconds)
    .describe("Longest delay between restarts."),
  resetAfterSeconds: limited("BACKOFF_SECONDS")
    .default(RP.resetAfterSeconds)
    .describe("A run this long without a crash resets the delay to its first value."),
  failureThreshold: limited("PROBE_THRESHOLD")
    .default(RP.failureThreshold)
    .describe(
      "Consecutive crashes without becoming ready after which the instance is reported failed (it keeps being restarted).",
    ),
});

const ProcessLogsSchema = strict({
  maxBytes: limited("LOG_FILE_BYTES")
    .default(DEFAULT_PROCESS_LOGS.maxBytes)
    .describe("Size in bytes at which an instance's log file is rotated."),
  maxFiles: limited("LOG_FILES")
    .default(DEFAULT_PROCESS_LOGS.maxFiles)
    .describe("Log files kept per instance, the current one included."),
});

const envSchema = stringMap('environment variable names must not be empty or contain "="', {
  entries: "ENV",
  noun: "variables",
  value: "TEXT_LENGTH",
});

const ProcessRuntimeSchema = strict({
  command: command.describe(
    "argv of each instance; ${version}, ${port} and ${instance} are replaced in each element.",
  ),
  cwd: nonEmpty("a directory", "PATH_LENGTH")
    .optional()
    .describe("Working directory of the instances."),
  env: envSchema
    .optional()
    .describe("Environment of every instance, templated like command; PORT is always set."),
  replicas: limited("REPLICAS").default(1).describe("Instances per version."),
  // A function default: each parse gets its own object, so callers may mutate the result.
  readiness: ProbeSchema.default(() => ({ ...DEFAULT_READINESS })).describe(
    "HTTP readiness probe, for the instance's whole life: it takes traffic once the probe passes, and none after 3 failures in a row until it passes again.",
  ),
  startupTimeoutSeconds: limited("STARTUP_TIMEOUT_SECONDS")
    .default(60)
    .describe("Seconds an instance may take to become ready before it counts as failed."),
  terminationGracePeriodSeconds: limited("DELAY_SECONDS")
    .default(10)
    .describe("Seconds between SIGTERM and SIGKILL when an instance stops."),
  versions: cappedRecord(
    "VERSIONS",
    "versions",
    z.record(versionName, strict({ command: command.optional(), env: envSchema.optional() })),
  )
    .optional()
    .describe("Per-version overrides: another command, or env merged over the common env."),
  liveness: LivenessSchema.optional().describe(
    "HTTP liveness probe, from the first time an instance is ready; failing it restarts the instance.",
  ),
  drainSeconds: limited("DELAY_SECONDS")
    .default(DEFAULT_DRAIN_SECONDS)
    .describe(
      "Seconds a stopping instance keeps running after it leaves the route table, before SIGTERM; must exceed the time routers take to swap tables.",
    ),
  restartPolicy: RestartPolicySchema.default(() => ({ ...DEFAULT_RESTART_POLICY })).describe(
    "Restarts after a crash, with exponential back-off (as Kubernetes' CrashLoopBackOff).",
  ),
  logs: ProcessLogsSchema.default(() => ({ ...DEFAULT_PROCESS_LOGS })).describe(
    "Each instance's stdout and stderr go to <dataDir>/logs/<service>/<version>-<instance>.log, rotated by size.",
  ),
});

export const RuntimeSchema = exactlyOne({
  static: StaticRuntimeSchema.describe("Versions run elsewhere, at URLs you give."),
  process: ProcessRuntimeSchema.describe(
    "Turnout starts, probes, drains and stops local processes.",
  ),
}).describe("Where instances run (exactly one).");

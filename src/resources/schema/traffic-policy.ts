/** A Service's `trafficPolicy`: balancing, health checks, outlier ejection, retries, timeouts. */
import { z } from "zod";
import { DEFAULT_TRAFFIC_POLICY } from "../../core/model.js";
import { httpPath, limited, num, strict } from "./blocks.js";
import { describeValue } from "./messages.js";

const TP = DEFAULT_TRAFFIC_POLICY;
const DEFAULT_HEALTH_CHECK = {
  path: "/healthz",
  intervalSeconds: 5,
  timeoutSeconds: 1,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
} as const;

const HealthCheckSchema = strict({
  path: httpPath()
    .default(DEFAULT_HEALTH_CHECK.path)
    .describe("Path checked with GET on every instance; a 2xx or 3xx answer passes."),
  intervalSeconds: limited("PROBE_PERIOD_SECONDS")
    .default(DEFAULT_HEALTH_CHECK.intervalSeconds)
    .describe("Seconds from the end of one check to the start of the next."),
  timeoutSeconds: limited("PROBE_TIMEOUT_SECONDS")
    .default(DEFAULT_HEALTH_CHECK.timeoutSeconds)
    .describe("Seconds before a check counts as failed."),
  healthyThreshold: limited("PROBE_THRESHOLD")
    .default(DEFAULT_HEALTH_CHECK.healthyThreshold)
    .describe("Passing checks in a row that bring an unhealthy instance back."),
  unhealthyThreshold: limited("PROBE_THRESHOLD")
    .default(DEFAULT_HEALTH_CHECK.unhealthyThreshold)
    .describe("Failing checks in a row that take an instance out of the balancing."),
});

const OutlierDetectionSchema = strict({
  consecutiveFailures: limited("CONSECUTIVE_FAILURES")
    .default(TP.outlierDetection.consecutiveFailures)
    .describe("Connect errors or 5xx in a row that eject an instance."),
  ejectionSeconds: limited("EJECTION_SECONDS")
    .default(TP.outlierDetection.ejectionSeconds)
    .describe(
      "How long an ejected instance is skipped; doubles for each ejection that follows soon after (at most 300 s).",
    ),
  maxEjectionPercent: num({ min: 0, max: 100 })
    .default(TP.outlierDetection.maxEjectionPercent)
    .describe(
      "At most this percent of a version's instances are ejected at once (at least one; 0 turns ejection off).",
    ),
});

export const TrafficPolicySchema = strict({
  loadBalancing: z
    .enum(["leastRequest", "roundRobin"], {
      error: (iss) => `must be "leastRequest" or "roundRobin", got ${describeValue(iss.input)}`,
    })
    .default(TP.loadBalancing)
    .describe(
      "How a version's instances share its requests: fewest requests in flight, or in turn.",
    ),
  healthCheck: HealthCheckSchema.optional().describe(
    "Active health checks of every instance; off when absent ({} for the defaults).",
  ),
  outlierDetection: OutlierDetectionSchema.default(() => ({ ...TP.outlierDetection })).describe(
    "Passive ejection of instances that fail requests.",
  ),
  retries: strict({
    attempts: limited("RETRY_ATTEMPTS")
      .default(TP.retries.attempts)
      .describe("Retries of one request (0 turns them off)."),
  })
    .default(() => ({ ...TP.retries }))
    .describe(
      "Idempotent requests without a body are retried on connect errors only, on another instance.",
    ),
  timeouts: strict({
    requestHeadersSeconds: limited("REQUEST_HEADERS_TIMEOUT_SECONDS")
      .default(TP.timeouts.requestHeadersSeconds)
      .describe("Time a client may take to send its request headers (then 408)."),
    idleSeconds: limited("IDLE_TIMEOUT_SECONDS")
      .default(TP.timeouts.idleSeconds)
      .describe("Keep-alive idle time of client connections."),
    upstreamSeconds: limited("UPSTREAM_TIMEOUT_SECONDS")
      .default(TP.timeouts.upstreamSeconds)
      .describe("Time an instance may take to send its response headers (then 504)."),
  })
    .default(() => ({ ...TP.timeouts }))
    .describe("Client and upstream timeouts."),
  maxRequestBodyBytes: limited("REQUEST_BODY_BYTES")
    .default(TP.maxRequestBodyBytes)
    .describe("Largest request body accepted (then 413)."),
}).describe("How the router balances, health-checks, retries and times out; defaults apply.");

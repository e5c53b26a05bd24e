/**
 * Turnout's model: the resources users write and the state the controller keeps.
 * Pure types only. `src/resources` validates user input into these shapes (zod), the store
 * persists them, and the pure core (`src/core`) decides on them.
 */

import type { RunState } from "./analysis/run.js";
import type {
  AbTestStrategySpec,
  ExperimentSpec,
  ExperimentStatus,
  RouteExperiment,
} from "./experiment/types.js";
import type { FlagResource, FlagStepOverride, SegmentResource } from "./flags/types.js";
import type { NotifierResource } from "./notify.js";
import type { MirrorRouteStep, RouteMirror, ShadowStatus, ShadowStep } from "./shadow/types.js";

export type { FlagResource, FlagStepOverride, SegmentResource } from "./flags/types.js";
export type { NotifierResource } from "./notify.js";

export const API_VERSION = "turnout.dev/v1";

export interface Metadata {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A duration as users write it: "30s", "5m", "1h30m", "250ms", or a number of seconds. */
export type DurationInput = string | number;

// ---------------------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------------------

export interface ServiceResource {
  apiVersion: typeof API_VERSION;
  kind: "Service";
  metadata: Metadata;
  spec: ServiceSpec;
}

export interface ServiceSpec {
  /** Where the router listens for this service's users. */
  listen: { port: number; host: string };
  /** Where the sticky key of a request comes from (exactly one of the three). */
  stickiness?: StickinessSpec;
  /** Match rules that pin requests to a version, and the opt-in version override header. */
  routing?: RoutingSpec;
  /** How the router balances, health-checks, retries and times out. Defaults apply. */
  trafficPolicy?: TrafficPolicySpec;
  runtime: RuntimeSpec;
  /** The desired version. Changing it starts a rollout. */
  version: string;
  /** How a rollout proceeds. Without one, a new version replaces the old one at once. */
  strategy?: StrategySpec;
  /**
   * Flags the router evaluates per request (targeting key = the sticky key): the results go
   * upstream in `x-turnout-flags` and label the router's measurements (src/router/flags-edge.ts).
   */
  flags?: string[];
  /**
   * The data plane that carries this Service's traffic (`core/traffic.ts`): absent, the
   * built-in router; `{haproxy: {}}`, an HAProxy that Turnout starts and supervises;
   * `{haproxy: {runtimeApi, backend}}`, one backend of an HAProxy someone else runs.
   */
  traffic?: TrafficSpec;
}

/** `spec.traffic`: exactly one provider key. */
export type TrafficSpec = { builtin: Record<string, never> } | { haproxy: HaproxyTrafficSpec };

export interface HaproxyTrafficSpec {
  /** The haproxy binary (default: `haproxy` on PATH). Managed mode only. */
  binary?: string;
  /** Attach mode: the runtime API socket of an HAProxy someone else runs, e.g. "unix:/run/haproxy.sock". */
  runtimeApi?: string;
  /** Attach mode: the backend Turnout may change (servers and weights only). */
  backend?: string;
  /**
   * Managed mode: what the upstreams speak. "http" (default): HTTP/1.1; "h2c": HTTP/2 in
   * clear text end to end; "grpc": h2c, with `grpc-status` counted in the measurements.
   */
  protocol?: "http" | "h2c" | "grpc";
}

export type StickinessSpec = ({ header: string } | { cookie: string } | { query: string }) & {
  /** Hash salt; defaults to the service name. Changing it moves users between versions. */
  salt?: string;
};

/** One condition on a request value: exactly one of the three. */
export type ValueMatch = { equals: string } | { regex: string } | { exists: boolean };

/**
 * A rule that sends matching requests to one version, before any weighted split. All the
 * conditions given must hold. `to` is "canary", "stable" or a version name; a rule whose
 * target is not running (e.g. "canary" with no rollout) is skipped.
 */
export interface MatchRule {
  header?: { name: string } & ValueMatch;
  cookie?: { name: string } & ValueMatch;
  pathPrefix?: string;
  to: string;
}

export interface RoutingSpec {
  matches?: MatchRule[];
  /** Honour a client's `x-turnout-version: <version>` header (for testers). Off by default. */
  versionOverride?: boolean;
}

export interface TrafficPolicySpec {
  /** How a version's instances share its requests. */
  loadBalancing: "leastRequest" | "roundRobin";
  /** Active health checks of every instance; off when absent. */
  healthCheck?: {
    path: string;
    intervalSeconds: number;
    timeoutSeconds: number;
    healthyThreshold: number;
    unhealthyThreshold: number;
  };
  /** Passive ejection of an instance after consecutive connect errors or 5xx. */
  outlierDetection: {
    consecutiveFailures: number;
    ejectionSeconds: number;
    /** Never eject more than this share of a version's instances. */
    maxEjectionPercent: number;
  };
  /** Idempotent requests are retried on connect errors only, on another instance. */
  retries: { attempts: number };
  timeouts: {
    /** Time a client may take to send the request headers. */
    requestHeadersSeconds: number;
    /** Keep-alive idle time of client connections. */
    idleSeconds: number;
    /** Time an upstream may take to send its response headers. */
    upstreamSeconds: number;
  };
  maxRequestBodyBytes: number;
}

export const DEFAULT_TRAFFIC_POLICY: TrafficPolicySpec = {
  loadBalancing: "leastRequest",
  outlierDetection: { consecutiveFailures: 5, ejectionSeconds: 30, maxEjectionPercent: 50 },
  retries: { attempts: 1 },
  timeouts: { requestHeadersSeconds: 10, idleSeconds: 60, upstreamSeconds: 30 },
  maxRequestBodyBytes: 10 * 1024 * 1024,
};

export type RuntimeSpec = { static: StaticRuntimeSpec } | { process: ProcessRuntimeSpec };

export interface StaticRuntimeSpec {
  /** Upstream base URLs for each version, e.g. `{ v1: { upstreams: ["http://127.0.0.1:9001"] } }`. */
  versions: Record<string, { upstreams: string[] }>;
}

export interface ProbeSpec {
  /** HTTP path probed with GET; any 2xx/3xx is ready. */
  path: string;
  periodSeconds: number;
  timeoutSeconds: number;
  initialDelaySeconds: number;
}

export interface ProcessRuntimeSpec {
  /** argv; `${version}`, `${port}` and `${instance}` are replaced in each element. */
  command: string[];
  cwd?: string;
  /** Environment for every instance; values are templated like `command`. PORT is always set. */
  env?: Record<string, string>;
  replicas: number;
  readiness: ProbeSpec;
  /** How long an instance may take to become ready before it counts as failed. */
  startupTimeoutSeconds: number;
  /** Time between SIGTERM and SIGKILL when an instance is stopped. */
  terminationGracePeriodSeconds: number;
  /** Per-version overrides (extra env, another command). */
  versions?: Record<string, { command?: string[]; env?: Record<string, string> }>;
  /** Restarts an instance that stops answering (after it was ready once); absent: no liveness probe. */
  liveness?: LivenessProbeSpec;
  /** Seconds a stopped instance keeps running, unlisted, before SIGTERM (default 2). */
  drainSeconds?: number;
  /** Back-off of restarts after a crash (defaults in the runtime). */
  restartPolicy?: Partial<RestartPolicySpec>;
  /** Rotation of each instance's log file (defaults in the runtime). */
  logs?: Partial<ProcessLogsSpec>;
}

export interface LivenessProbeSpec {
  path: string;
  periodSeconds: number;
  timeoutSeconds: number;
  /** Consecutive failed probes that restart the instance. */
  failureThreshold: number;
}

export interface RestartPolicySpec {
  /** First delay before a restart; doubles after each crash up to `maxBackoffSeconds`. */
  initialBackoffSeconds: number;
  maxBackoffSeconds: number;
  /** A run this long without a crash resets the back-off to its first delay. */
  resetAfterSeconds: number;
  /** Consecutive crashes without becoming ready after which the instance is reported failed. */
  failureThreshold: number;
}

export interface ProcessLogsSpec {
  /** Size at which an instance's log file is rotated. */
  maxBytes: number;
  /** Files kept per instance, the current one included. */
  maxFiles: number;
}

/** Kubernetes' CrashLoopBackOff shape (10 s there; 1 s here, where a local process restarts fast). */
export const DEFAULT_RESTART_POLICY: RestartPolicySpec = {
  initialBackoffSeconds: 1,
  maxBackoffSeconds: 300,
  resetAfterSeconds: 600,
  failureThreshold: 3,
};
/** As the kubelet's containerLogMaxSize / containerLogMaxFiles. */
export const DEFAULT_PROCESS_LOGS: ProcessLogsSpec = { maxBytes: 10 * 1024 * 1024, maxFiles: 5 };
/** Longer than an out-of-process router's table poll (500 ms by default), so it swaps first. */
export const DEFAULT_DRAIN_SECONDS = 2;

export interface StrategySpec {
  canary?: CanaryStrategySpec;
  blueGreen?: BlueGreenStrategySpec;
  rolling?: RollingStrategySpec;
  /** An A/B test preset: compiles to one `experiment` step (src/core/strategies/abTest.ts). */
  abTest?: AbTestStrategySpec;
  /** A dark launch preset: compiles to one `shadow` step (src/core/strategies/shadow.ts). */
  shadow?: ShadowStep;
}

/**
 * Blue-green (Argo Rollouts' names): green starts beside blue and is reachable only through
 * the preview route while blue serves every user; then all traffic switches at once. Blue
 * stays warm for `scaleDownDelaySeconds`, so a rollback in that time is an instant switch back.
 */
export interface BlueGreenStrategySpec {
  /** How green is reached before the switch: a port of its own and/or matching requests. */
  preview?: { port?: number; match?: Omit<MatchRule, "to"> };
  /** Instances of green before the switch (default: the full replica count). */
  previewReplicas?: number;
  /** Must pass before the switch; a failure aborts. */
  prePromotionAnalysis?: AnalysisRefSpec;
  /** Switch by itself this long after green is ready (and passed); absent: wait for `promote`. */
  autoPromotionSeconds?: number;
  /** Runs after the switch; a failure switches back to blue at once. */
  postPromotionAnalysis?: AnalysisRefSpec;
  /** Blue keeps running this long after the switch (default 30). */
  scaleDownDelaySeconds?: number;
  /** After an abort, green keeps running this long (default 30). */
  abortScaleDownDelaySeconds?: number;
  /** Green must be ready within this (default 600). */
  progressDeadlineSeconds?: number;
  /**
   * Blue-green with feature flags: steps run after the switch (and postPromotionAnalysis),
   * e.g. setFlag 1% -> analysis -> setFlag 10% ... A failed analysis turns the flags off and
   * switches back to blue (still warm), both at once.
   */
  flagSteps?: ({ setFlag: SetFlagStep } | { analysis: AnalysisRefSpec } | { pause: PauseStep })[];
}

/** A replica count, or a percent of it ("25%"), as Kubernetes' intOrString. */
export type IntOrPercent = number | `${number}%`;

/**
 * Rolling update with Kubernetes' semantics and defaults: at most `maxSurge` instances above
 * the replica count, at most `maxUnavailable` below it; traffic follows ready instances.
 */
export interface RollingStrategySpec {
  /** Default "25%", rounded up. */
  maxSurge?: IntOrPercent;
  /** Default "25%", rounded down. */
  maxUnavailable?: IntOrPercent;
  /** A new instance counts as available after it has been ready this long (default 0). */
  minReadySeconds?: number;
  /** Without progress for this long, the update is aborted and the old version restored (default 600). */
  progressDeadlineSeconds?: number;
  /** Run between batches: each batch waits for its verdict before the next one starts. */
  analysis?: AnalysisRefSpec;
}

/** The `rollingUpdate` step: replaces the old version's instances batch by batch. */
export interface RollingUpdateStep {
  maxSurge: IntOrPercent;
  maxUnavailable: IntOrPercent;
  minReadySeconds: number;
  progressDeadlineSeconds: number;
  analysis?: AnalysisRefSpec;
}

/** Progress of a `rollingUpdate` step (in the status, so a restarted controller resumes it). */
export interface RollingState {
  /** Instances the new and the old version should run now. */
  newReplicas: number;
  oldReplicas: number;
  /** New instances counted available (ready for minReadySeconds). */
  available: number;
  /** New instances seen ready, and since when that many have been (minReadySeconds). */
  seenReady: number;
  readySince: number | null;
  /** Last time an instance became available or an old one was removed (progressDeadline). */
  lastProgressAt: number;
  /** The `newReplicas` whose batch passed its analysis (null: none yet). */
  gatedAt: number | null;
}

export interface CanaryStrategySpec {
  steps: CanaryStep[];
  /** Analysis that runs in the background from `startingStep` on until the rollout ends. */
  analysis?: BackgroundAnalysisSpec;
  /** After an abort or a failed analysis, the candidate keeps running this long (for debugging). */
  abortScaleDownDelaySeconds?: number;
  /**
   * A version that was stable among the last `revisions` stable versions comes back without
   * steps (a rollback is not a new release). Absent: every change goes through the steps.
   */
  rollbackWindow?: { revisions: number };
  /** A candidate not ready this long after the rollout began is aborted (default 600). */
  progressDeadlineSeconds?: number;
}

/** AnalysisTemplates to run, with the arguments they take. */
export interface AnalysisRefSpec {
  templates: string[];
  args?: { name: string; value: string }[];
}

export interface BackgroundAnalysisSpec extends AnalysisRefSpec {
  /** Index of the step from which the background analysis runs (0 = from the start). */
  startingStep: number;
}

/** Matching requests go to the canary (`match`), or the header route is removed (no `match`). */
export interface HeaderRouteStep {
  match?: Omit<MatchRule, "to">;
}

/**
 * One step of a rollout: exactly one key per step. Strategies compile to a list of these, and
 * a user may write the list directly (`strategy.canary.steps`). Each kind's semantics live in
 * `src/core/steps/<key>.ts`.
 */
export type RolloutStep =
  | { setWeight: number }
  | { pause: PauseStep }
  | { analysis: AnalysisRefSpec }
  | { experiment: ExperimentSpec }
  | { setHeaderRoute: HeaderRouteStep }
  | { switch: SwitchStep }
  | { rollingUpdate: RollingUpdateStep }
  | { setFlag: SetFlagStep }
  | { shadow: ShadowStep }
  | { setMirrorRoute: MirrorRouteStep };

/** `setFlag`: change a Flag during a rollout (see src/core/steps/setFlag.ts). */
export interface SetFlagStep {
  flag: string;
  /** Percent of contexts on the flag's rollout variant, 0..100 (0.0001 steps). */
  percentage?: number;
  /** Serve this variant to everyone. */
  variant?: string;
  /** Turn the flag on or off. */
  enabled?: boolean;
}

/**
 * The steps a canary strategy lists: every kind but `switch` and `rollingUpdate`, which the
 * blueGreen and rolling strategies compile to.
 */
export type CanaryStep = Exclude<RolloutStep, { switch: unknown } | { rollingUpdate: unknown }>;

/** `switch: {}`: the candidate scales to its full size, then takes 100% at once (blue-green). */
export type SwitchStep = Record<string, never>;

/** A pause for a duration, or (no duration) until someone promotes. */
export interface PauseStep {
  duration?: DurationInput;
}

// ---------------------------------------------------------------------------------------
// AnalysisTemplate (validated and stored now; run by the analysis engine when it lands)
// ---------------------------------------------------------------------------------------

export interface AnalysisTemplateResource {
  apiVersion: typeof API_VERSION;
  kind: "AnalysisTemplate";
  metadata: Metadata;
  spec: AnalysisTemplateSpec;
}

export interface AnalysisTemplateSpec {
  args?: { name: string; value?: string }[];
  metrics: AnalysisMetricSpec[];
}

/**
 * A builtin metric compared between two variants of a flag evaluated at the edge, within the
 * candidate version (series labelled `flag.<flag>=<variant>`): the feature on against off.
 */
export interface BuiltinFlagSource {
  metric: "error_rate" | "latency" | "request_rate";
  flag: string;
  /** Default "on". */
  candidate?: string;
  /** Default "off". */
  baseline?: string;
}

export type MetricSourceSpec =
  | { builtin: "error_rate" | "latency" | "request_rate" | BuiltinFlagSource }
  | {
      prometheus: {
        address: string;
        query: string;
        rangeQuery?: { step: DurationInput };
        reduce?: "first" | "sum" | "max" | "min" | "avg";
        timeoutSeconds: number;
      };
    }
  | {
      web: {
        url: string;
        method: "GET" | "POST";
        headers?: Record<string, string>;
        body?: string;
        jsonPath?: string;
        timeoutSeconds: number;
      };
    }
  | { command: { command: string[]; timeoutSeconds: number } };

export type JudgeSpec =
  | { threshold: { min?: number; max?: number } }
  | {
      relative: {
        /** "ratio": candidate/baseline; "difference": candidate - baseline. */
        mode: "ratio" | "difference";
        maxIncrease?: number;
        maxDecrease?: number;
      };
    }
  | {
      sequential: {
        maxIncrease: number;
        /** Excess over maxIncrease the test is tuned to catch fastest (mixing scale); optional. */
        detect?: number;
        alpha: number;
      };
    }
  | { mannWhitney: { maxRelativeIncrease: number; alpha: number } };

export interface AnalysisMetricSpec {
  name: string;
  source: MetricSourceSpec;
  judge: JudgeSpec;
  interval?: DurationInput;
  count?: number;
  minSamples?: number;
  failureLimit?: number;
  inconclusiveLimit?: number;
  consecutiveErrorLimit?: number;
  dryRun?: boolean;
  /**
   * Requests sent to the candidate with none answered for this long fail the measurement
   * (`src/core/analysis/no-response.ts`); default the service's
   * `trafficPolicy.timeouts.upstreamSeconds`. Builtin sources only: they know what was sent.
   */
  noResponseTimeout?: DurationInput;
}

export type Resource =
  | ServiceResource
  | AnalysisTemplateResource
  | FlagResource
  | SegmentResource
  | NotifierResource;
export type ResourceKind = Resource["kind"];
export const RESOURCE_KINDS: readonly ResourceKind[] = [
  "Service",
  "AnalysisTemplate",
  "Flag",
  "Segment",
  "Notifier",
];

// ---------------------------------------------------------------------------------------
// Rollout status (written only by the controller)
// ---------------------------------------------------------------------------------------

/**
 * - Healthy: one version serves everything and no rollout has run since the service appeared
 *   (or the desired version is back to the stable one).
 * - Progressing: a rollout is moving by itself (waiting for readiness, a timed pause, a step).
 * - Paused: a rollout waits for a person (an indefinite pause step, or `turnout pause`).
 * - Degraded: the rollout was aborted or failed; all traffic is on the stable version; the
 *   message says who and why. Stays so until the desired version changes or `retry`. Also
 *   while the data plane does not serve the service's route table (`dataPlane`), whatever the
 *   rollout's own phase (kept in `dataPlane.underlying` and back once it serves).
 * - Completed: the last rollout finished; its version is now stable and takes 100%.
 */
export type Phase = "Healthy" | "Progressing" | "Paused" | "Degraded" | "Completed";

/** `ServiceStatus.dataPlane`: the service's data plane does not serve its route table. */
export interface DataPlaneCondition {
  serving: false;
  /** Which router and why, in its words ("cannot listen on 0.0.0.0:8080: address already in use"). */
  reason: string;
  /** Since when (clock ms). */
  since: number;
  /** The phase and message underneath, which the service returns to once its table is served. */
  underlying: { phase: Phase; message: string };
}

export interface ServiceStatus {
  phase: Phase;
  /** One line: why the service is in this phase. */
  message: string;
  /** The generation of the Service resource this status reflects. */
  observedGeneration: number;
  /** The version that serves users when no rollout runs. */
  stableVersion: string | null;
  /** The version being rolled out (null when none). */
  canaryVersion: string | null;
  /** Index of the current step of the rollout (steps.length once all are done). */
  stepIndex: number | null;
  /** When the current step began (clock ms); timed pauses count from here. */
  stepStartedAt: number | null;
  /** Percent of traffic on the canary version, 0..100, fractional allowed. */
  canaryWeight: number;
  /** Set by `turnout pause` (or an inconclusive analysis, waiting for a person); cleared by `resume`. */
  pausedByUser: boolean;
  /**
   * When `pausedByUser` was set (clock ms). `resume` moves `stepStartedAt` on by the time
   * held, so that a timed pause does not count time paused by a person. Absent in statuses
   * written before it existed: those resume with the whole step ahead, as they used to.
   */
  pausedAt?: number | null;
  /** The version that was aborted; a rollout to it does not restart by itself. */
  abortedVersion: string | null;
  /** When the current rollout began (clock ms); null when none runs. */
  rolloutStartedAt: number | null;
  /** Monotonic rollout counter: 0 before the first rollout. */
  rolloutNumber: number;
  /** Earlier stable versions, most recent first (at most 10); `undo` goes to the first. */
  previousStableVersions: string[];
  /** When the phase last changed (clock ms). */
  lastTransitionAt: number;
  /** Requests matching this go to the canary (set by a setHeaderRoute step; cleared at the end). */
  headerRoute?: Omit<MatchRule, "to"> | null;
  /** The A/B experiment an `experiment` step runs (cleared when it ends). */
  experiment?: ExperimentStatus | null;
  /** The mirror a `shadow` or `setMirrorRoute` step put in force (cleared when it ends). */
  shadow?: ShadowStatus | null;
  /** An aborted candidate keeps running until then (clock ms), then is stopped. */
  abortScaleDownAt?: number | null;
  /** Instances per version when a step says other than the spec's replicas (rolling, preview). */
  replicas?: Record<string, number> | null;
  /** The candidate's own preview listener (blue-green), until the switch. */
  preview?: { port: number } | null;
  /** The version that was stable before the last rollout keeps running until then (clock ms). */
  previousScaleDownAt?: number | null;
  /** Progress of a rolling update. */
  rolling?: RollingState | null;
  /** Since when the rollout has waited for the candidate's instances (progress deadline). */
  candidateWaitSince?: number | null;
  /**
   * A timed pause whose time is up and that waits for the background analysis to have evidence
   * on the candidate (`holdForData` in `src/core/rollout/analysis.ts`): which step, of which
   * rollout, since when (clock ms). Null or absent otherwise.
   */
  heldForData?: { step: number; rollout: number; since: number } | null;
  /**
   * What this service's rollouts did to flags (setFlag steps, and the kill after a rollback),
   * by flag key. Kept after the rollout ends: a completed rollout leaves its flags where its
   * last step put them; a rolled-back one leaves them off. Read by the flag snapshot.
   */
  flags?: Record<string, FlagStepOverride>;
  /**
   * Set while a live router reports that it cannot put the service's route table in force (a
   * listener that cannot bind its port, a table its data plane refused): the phase is Degraded,
   * the message begins "not serving:", and a rollout holds where it is (none starts, no step
   * runs, promote is refused; a timed pause does not count the time). Null or absent while the
   * data plane serves.
   */
  dataPlane?: DataPlaneCondition | null;
  /** Analysis runs of the rollout in progress: an inline step's, and the background one. */
  analysis?: {
    step?: { stepIndex: number; rollout: number; run: RunState } | null;
    background?: RunState | null;
  };
}

// ---------------------------------------------------------------------------------------
// Commands (written by the API, consumed by the controller) and events (append-only history)
// ---------------------------------------------------------------------------------------

export type CommandType = "promote" | "abort" | "pause" | "resume" | "retry";

export interface CommandDraft {
  service: string;
  type: CommandType;
  /** e.g. `{ full: true }` for promote. */
  args: Record<string, unknown>;
  /** Who asked (e.g. "cli", "api", a user name). */
  actor: string;
  reason?: string;
}

export interface Command extends CommandDraft {
  id: number;
  createdAt: number;
}

export type CommandOutcome = "applied" | "rejected";

export interface CommandResult {
  id: number;
  outcome: CommandOutcome;
  message: string;
}

export interface EventDraft {
  service: string;
  /** e.g. RolloutStarted, WeightChanged, StepCompleted, Paused, Aborted, RolloutCompleted. */
  type: string;
  /** "controller" or who asked. */
  actor: string;
  /** One line: what happened and why. */
  message: string;
  /** The numbers behind it (weights, versions, step index, durations...). */
  data: Record<string, unknown>;
  /** Clock ms. */
  time: number;
}

export interface TurnoutEvent extends EventDraft {
  id: number;
}

// ---------------------------------------------------------------------------------------
// Route tables (written by the controller, read by routers)
// ---------------------------------------------------------------------------------------

export interface RouteBackend {
  version: string;
  /** Percent of traffic, 0..100 (fractional). The backends of a table sum to 100. */
  weight: number;
  /** Base URLs of the version's ready instances, e.g. "http://127.0.0.1:41234". */
  endpoints: string[];
}

/** A match rule with its target resolved to a version name. */
export type RouteMatch = Omit<MatchRule, "to"> & { version: string };

export interface RouteTable {
  service: string;
  /** Increases with every change of this service's table. */
  revision: number;
  listen: { host: string; port: number };
  /** Sticky assignment; the salt is resolved (the service name when the spec gives none). */
  stickiness?: StickinessSpec & { salt: string };
  /** Version of the sticky hashing scheme, kept so it can change later without moving users. */
  hashVersion: number;
  /** Canary first, then stable: sticky buckets fill in this order, so users stay as weights grow. */
  backends: RouteBackend[];
  /** Evaluated in order before the split; the first that matches picks the version. */
  matches?: RouteMatch[];
  /**
   * The service may route by match rules at some point (`spec.routing.matches`, a
   * setHeaderRoute step, a blue-green preview match) though `matches` may be empty now: a data
   * plane that must prepare for rules (HAProxy's Lua hook, a cost on every request) does so
   * from the start, so that rules come and go live. Set on tables of a `spec.traffic` provider
   * only; the built-in router needs no preparing.
   */
  mayMatch?: true;
  /** A second listener that sends everything to one version (blue-green's preview). */
  preview?: { listen: { host: string; port: number }; version: string };
  versionOverride?: boolean;
  /** The traffic policy with defaults filled in. */
  policy?: TrafficPolicySpec;
  /** Flags the router evaluates per request (`spec.flags`; see src/router/flags-edge.ts). */
  flags?: string[];
  /** Clock ms when the controller wrote it. */
  updatedAt: number;
  /** An A/B experiment: the router assigns units to arms and logs exposures. */
  experiment?: RouteExperiment;
  /** Copies of a share of requests go to a shadow version and are compared (src/router/mirror.ts). */
  mirror?: RouteMirror;
  /** `spec.traffic`: which data plane puts this table in force; absent, the built-in router. */
  traffic?: TrafficSpec;
}

/**
 * Every bound on what a resource may hold: the smallest and largest value of each duration,
 * count, size, list and string that the schemas accept (`./schema/` builds its checks from
 * this table and nothing else), each with the reason it is there.
 *
 * The bounds are chosen so that no real configuration meets them and the largest document they
 * admit still validates in milliseconds; below a minimum a timer spins or protection is off,
 * above a maximum a value is a typo or an attack (`99999999999999999d`, 150,000 steps). The
 * reference (docs/resources.md, "Limits") is rendered from this table by `npm run schema`, and
 * a test fails when it drifts.
 */

/** What a limit counts; durations are in milliseconds here and written "1s", "30d" in docs. */
export type LimitUnit =
  | "seconds"
  | "duration"
  | "integer"
  | "number"
  | "items"
  | "entries"
  | "characters"
  | "bytes";

export interface Limit {
  /** Inclusive; absent where the field's own rule (a type, "> 0") is the lower bound. */
  readonly min?: number;
  /** Inclusive. */
  readonly max: number;
  readonly unit: LimitUnit;
  /** The fields it applies to, as written in the reference. */
  readonly fields: string;
  /** Why the bound is where it is, one line. */
  readonly why: string;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

export const LIMITS = {
  // ---- Documents ---------------------------------------------------------------------------
  DOCUMENT_BYTES: {
    max: MIB,
    unit: "bytes",
    fields: "one resource, measured as compact JSON",
    why: "Kubernetes' object limit is about as large; checked before anything else, so a huge document costs one measurement",
  },
  DOCUMENTS_PER_FILE: {
    max: 1000,
    unit: "items",
    fields: "documents in one YAML file or JSON array",
    why: "a thousand resources is a fleet; more is a generator gone wrong",
  },

  // ---- Metadata ----------------------------------------------------------------------------
  LABELS: {
    max: 64,
    unit: "entries",
    fields: "metadata.labels",
    why: "labels are for selection, a few per resource",
  },
  ANNOTATIONS: {
    max: 64,
    unit: "entries",
    fields: "metadata.annotations",
    why: "notes for people and tools, a few per resource",
  },
  LABEL_KEY: {
    max: 317,
    unit: "characters",
    fields:
      "label and annotation keys: [prefix/]name, prefix a DNS subdomain of at most 253, name at most 63",
    why: "Kubernetes' label key syntax, so keys carry over to Kubernetes and never hold control characters",
  },
  LABEL_VALUE: {
    max: 63,
    unit: "characters",
    fields: "metadata.labels values (Kubernetes label value syntax)",
    why: "Kubernetes' label value rule",
  },
  ANNOTATION_VALUE: {
    max: 64 * KIB,
    unit: "characters",
    fields: "metadata.annotations values",
    why: "a long note; the document limit bounds them together",
  },

  // ---- Strings -----------------------------------------------------------------------------
  NAME_LENGTH: {
    max: 253,
    unit: "characters",
    fields:
      "names written freely: header, cookie and query parameter names, salts, argument, variant, rule and context attribute names, bucketBy, env and web header names, duration strings",
    why: "the longest DNS name; no header or attribute name comes close",
  },
  VALUE_LENGTH: {
    max: 8 * KIB,
    unit: "characters",
    fields:
      "short values: match equals, argument values, flag condition values and list items, segment keys, web header values",
    why: "a request header's whole budget (the router refuses headers over 16 KiB)",
  },
  PATH_LENGTH: {
    max: 2048,
    unit: "characters",
    fields: "URLs, HTTP paths, pathPrefix, cwd, JSON paths, listen.host",
    why: "the URL length every browser and proxy supports",
  },
  TEXT_LENGTH: {
    max: 64 * KIB,
    unit: "characters",
    fields:
      "long text: command arguments, env values, PromQL queries, web bodies, descriptions, string flag variants",
    why: "longer than any real argument or query; the document limit bounds them together",
  },
  VARIANT_VALUE_BYTES: {
    max: 64 * KIB,
    unit: "bytes",
    fields: "Flag object variants, as compact JSON",
    why: "a variant is sent to every client that evaluates the flag",
  },

  // ---- Lists and maps ----------------------------------------------------------------------
  STEPS: {
    max: 1000,
    unit: "items",
    fields: "canary.steps, blueGreen.flagSteps",
    why: "real rollouts have tens of steps; a thousand still validates and compiles at once",
  },
  ARMS: {
    min: 2,
    max: 10,
    unit: "items",
    fields: "abTest.arms, experiment.arms",
    why: "every arm divides the traffic that decides the test",
  },
  EXPERIMENT_METRICS: {
    max: 50,
    unit: "items",
    fields: "abTest.metrics, experiment.metrics",
    why: "each metric is one more comparison to correct for",
  },
  TEMPLATE_METRICS: {
    max: 50,
    unit: "items",
    fields: "AnalysisTemplate spec.metrics",
    why: "each metric is queried on its own interval",
  },
  TEMPLATES: {
    max: 20,
    unit: "items",
    fields: "analysis templates (steps, background, pre/post-promotion, rolling)",
    why: "templates are combined into one run",
  },
  ARGS: {
    max: 100,
    unit: "items",
    fields: "analysis args, AnalysisTemplate spec.args",
    why: "arguments fill templates; a hundred is far beyond use",
  },
  MATCHES: {
    max: 100,
    unit: "items",
    fields: "routing.matches",
    why: "tried in order on every request, before the split",
  },
  VERSIONS: {
    max: 100,
    unit: "entries",
    fields: "runtime.static.versions, runtime.process.versions",
    why: "versions a service can run at once; older ones are history",
  },
  UPSTREAMS: {
    max: 1000,
    unit: "items",
    fields: "runtime.static.versions.<v>.upstreams",
    why: "instances of one version behind one router",
  },
  COMMAND_ARGS: {
    max: 1000,
    unit: "items",
    fields: "process command (also per version), command metric sources",
    why: "argv of a process; far beyond real commands",
  },
  ENV: {
    max: 1000,
    unit: "entries",
    fields: "runtime.process.env and per-version env",
    why: "environment of a process",
  },
  SERVICE_FLAGS: {
    max: 50,
    unit: "items",
    fields: "spec.flags",
    why: "evaluated on every request at the edge",
  },
  HEADER_LISTS: {
    max: 64,
    unit: "items",
    fields: "shadow stripHeaders, compare.headers, web source headers (entries)",
    why: "a response has few headers worth comparing",
  },
  METHODS: {
    max: 7,
    unit: "items",
    fields: "shadow methods",
    why: "there are seven methods to copy",
  },
  NOTIFIER_SERVICES: {
    max: 256,
    unit: "items",
    fields: "Notifier spec.services",
    why: "a selector names a team's services or a few globs, not a fleet one by one",
  },
  NOTIFIER_HEADERS: {
    max: 32,
    unit: "entries",
    fields: "Notifier spec.webhook.headers",
    why: "an API key or a routing header or two; each is sent with every notification",
  },
  SECRET_LENGTH: {
    min: 16,
    max: 4096,
    unit: "characters",
    fields: "Notifier spec.webhook.secret",
    why: "a shorter HMAC key can be guessed; a longer one is a pasted file, which secretRef.file is for",
  },
  IGNORE_PATHS: {
    max: 256,
    unit: "items",
    fields: "shadow compare.ignore",
    why: "each path is tested against every field of every compared answer",
  },
  FLAG_VARIANTS: {
    max: 100,
    unit: "entries",
    fields: "Flag variants, rules[].split",
    why: "variants of one flag; a split over more is an experiment platform's job",
  },
  FLAG_RULES: {
    max: 200,
    unit: "items",
    fields: "Flag rules",
    why: "tried in order on every evaluation",
  },
  CONDITIONS: {
    max: 50,
    unit: "items",
    fields: "Flag rules[].conditions, Segment conditions",
    why: "all must hold; fifty is beyond any targeting rule",
  },
  RULE_SEGMENTS: {
    max: 50,
    unit: "items",
    fields: "Flag rules[].segments",
    why: "all must hold; fifty is beyond any targeting rule",
  },
  CONDITION_VALUES: {
    max: 10_000,
    unit: "items",
    fields: "values of in/notIn conditions",
    why: "lists of ids; longer lists belong in a Segment or a data store",
  },
  SEGMENT_KEYS: {
    max: 10_000,
    unit: "items",
    fields: "Segment included, excluded",
    why: "lists of targetingKeys; the document limit bounds them together",
  },

  // ---- Durations written as strings or seconds ---------------------------------------------
  PAUSE: {
    min: 0,
    max: 30 * DAY,
    unit: "duration",
    fields: "pause.duration, shadow gate.duration",
    why: "a month is longer than any rollout step; beyond it a value is a typo",
  },
  EXPERIMENT_DURATION: {
    min: 1 * SECOND,
    max: 90 * DAY,
    unit: "duration",
    fields: "abTest.maxDuration, experiment.maxDuration",
    why: "A/B tests run for weeks, rarely a quarter",
  },
  ANALYSIS_INTERVAL: {
    min: 1 * SECOND,
    max: 1 * DAY,
    unit: "duration",
    fields: "AnalysisTemplate metrics[].interval",
    why: "each measurement queries its source; faster than once a second is a load test",
  },
  NO_RESPONSE_TIMEOUT: {
    min: 1 * SECOND,
    max: 1 * HOUR,
    unit: "duration",
    fields: "AnalysisTemplate metrics[].noResponseTimeout",
    why: "as trafficPolicy.timeouts.upstreamSeconds: an hour without an answer is a hung version; under a second, a slow first request fails",
  },
  QUERY_STEP: {
    min: 1 * SECOND,
    max: 1 * DAY,
    unit: "duration",
    fields: "prometheus rangeQuery.step",
    why: "Prometheus answers at most 11,000 points a series; below a second is noise",
  },

  // ---- Seconds -----------------------------------------------------------------------------
  PROBE_PERIOD_SECONDS: {
    min: 0.05,
    max: 3600,
    unit: "seconds",
    fields: "healthCheck.intervalSeconds, readiness.periodSeconds, liveness.periodSeconds",
    why: "below 50 ms a probe loop is a busy timer; past an hour a dead instance goes unnoticed",
  },
  PROBE_TIMEOUT_SECONDS: {
    min: 0.01,
    max: 300,
    unit: "seconds",
    fields: "healthCheck.timeoutSeconds, readiness.timeoutSeconds, liveness.timeoutSeconds",
    why: "a probe that takes five minutes is no probe",
  },
  PROBE_DELAY_SECONDS: {
    min: 0,
    max: 3600,
    unit: "seconds",
    fields: "readiness.initialDelaySeconds",
    why: "startupTimeoutSeconds covers slow starts",
  },
  STARTUP_TIMEOUT_SECONDS: {
    min: 0.1,
    max: 86_400,
    unit: "seconds",
    fields: "runtime.process.startupTimeoutSeconds",
    why: "large models take minutes to load, never a day",
  },
  REQUEST_HEADERS_TIMEOUT_SECONDS: {
    min: 1,
    max: 300,
    unit: "seconds",
    fields: "trafficPolicy.timeouts.requestHeadersSeconds",
    why: "slowloris protection: longer lets slow clients hold connections, shorter cuts off slow networks",
  },
  IDLE_TIMEOUT_SECONDS: {
    min: 0.1,
    max: 3600,
    unit: "seconds",
    fields: "trafficPolicy.timeouts.idleSeconds",
    why: "below 100 ms keep-alive is pointless and connections churn",
  },
  UPSTREAM_TIMEOUT_SECONDS: {
    min: 0.1,
    max: 3600,
    unit: "seconds",
    fields: "trafficPolicy.timeouts.upstreamSeconds",
    why: "slow inference takes minutes; an hour without headers is a hung instance",
  },
  EJECTION_SECONDS: {
    min: 0.1,
    max: 3600,
    unit: "seconds",
    fields: "trafficPolicy.outlierDetection.ejectionSeconds",
    why: "the ejection doubles up to 300 s anyway",
  },
  MIRROR_TIMEOUT_SECONDS: {
    min: 0.01,
    max: 300,
    unit: "seconds",
    fields: "shadow limits.timeoutSeconds",
    why: "a copy holds a slot until then",
  },
  SOURCE_TIMEOUT_SECONDS: {
    min: 0.1,
    max: 3600,
    unit: "seconds",
    fields: "prometheus, web and command metric sources' timeoutSeconds",
    why: "one measurement; an hour is a stuck source",
  },
  BACKOFF_SECONDS: {
    min: 0.1,
    max: 86_400,
    unit: "seconds",
    fields: "restartPolicy.initialBackoffSeconds, maxBackoffSeconds, resetAfterSeconds",
    why: "below 100 ms a crashing process restarts in a tight loop",
  },
  DELAY_SECONDS: {
    min: 0,
    max: 86_400,
    unit: "seconds",
    fields:
      "drainSeconds, terminationGracePeriodSeconds, minReadySeconds, scaleDownDelaySeconds, abortScaleDownDelaySeconds",
    why: "an instance kept for a day is forgotten, not drained",
  },
  PROGRESS_DEADLINE_SECONDS: {
    min: 1,
    max: 86_400,
    unit: "seconds",
    fields: "progressDeadlineSeconds (canary, blueGreen, rolling, rollingUpdate)",
    why: "a day without progress is a failed rollout",
  },
  AUTO_PROMOTION_SECONDS: {
    min: 0,
    max: 2_592_000,
    unit: "seconds",
    fields: "blueGreen.autoPromotionSeconds",
    why: "the same month as pause.duration",
  },

  // ---- Counts ------------------------------------------------------------------------------
  REPLICAS: {
    min: 1,
    max: 100,
    unit: "integer",
    fields: "runtime.process.replicas, blueGreen.previewReplicas",
    why: "processes on one machine",
  },
  SURGE: {
    min: 0,
    max: 100,
    unit: "integer",
    fields: "maxSurge, maxUnavailable as whole numbers (percents are 0%..100%)",
    why: "never more than the replicas",
  },
  PROBE_THRESHOLD: {
    min: 1,
    max: 100,
    unit: "integer",
    fields:
      "healthCheck.healthyThreshold, unhealthyThreshold, liveness.failureThreshold, restartPolicy.failureThreshold",
    why: "checks in a row; a hundred is minutes of probes",
  },
  CONSECUTIVE_FAILURES: {
    min: 1,
    max: 1000,
    unit: "integer",
    fields: "outlierDetection.consecutiveFailures",
    why: "more failures in a row than this and ejection never happens",
  },
  MEASUREMENTS: {
    min: 1,
    max: 10_000,
    unit: "integer",
    fields: "AnalysisTemplate metrics[].count",
    why: "measurements of one run: days at a one-minute interval",
  },
  MEASUREMENT_LIMIT: {
    min: 0,
    max: 10_000,
    unit: "integer",
    fields: "failureLimit, inconclusiveLimit, consecutiveErrorLimit",
    why: "never more than the measurements",
  },
  SAMPLES: {
    max: 1_000_000_000,
    unit: "integer",
    fields: "minSamples (metrics, experiments, shadow gate), sequentialTuning",
    why: "a billion units is more than any experiment sees",
  },
  STARTING_STEP: {
    min: 0,
    max: 999,
    unit: "integer",
    fields: "canary.analysis.startingStep",
    why: "an index into at most STEPS steps",
  },

  RETRY_ATTEMPTS: {
    min: 0,
    max: 10,
    unit: "integer",
    fields: "trafficPolicy.retries.attempts",
    why: "each retry is another instance's work for one request",
  },
  ROLLBACK_REVISIONS: {
    min: 1,
    max: 10,
    unit: "integer",
    fields: "canary.rollbackWindow.revisions",
    why: "recent stable versions worth skipping the steps for",
  },
  LOG_FILES: {
    min: 1,
    max: 100,
    unit: "integer",
    fields: "runtime.process.logs.maxFiles",
    why: "rotated files kept per instance",
  },
  MIRROR_CONCURRENCY: {
    min: 1,
    max: 10_000,
    unit: "integer",
    fields: "shadow limits.maxConcurrency",
    why: "copies in flight hold sockets and memory on the router",
  },
  MIRROR_QUEUE: {
    min: 0,
    max: 1_000_000,
    unit: "integer",
    fields: "shadow limits.maxQueue",
    why: "queued copies hold their bodies in memory",
  },
  DRIFT_BINS: {
    min: 2,
    max: 100,
    unit: "integer",
    fields: "shadow compare.drift.bins",
    why: "PSI with more bins than samples per bin is noise",
  },

  // ---- Sizes -------------------------------------------------------------------------------
  REQUEST_BODY_BYTES: {
    min: 0,
    max: GIB,
    unit: "bytes",
    fields: "trafficPolicy.maxRequestBodyBytes",
    why: "uploads larger than a gibibyte belong on object storage",
  },
  LOG_FILE_BYTES: {
    min: KIB,
    max: GIB,
    unit: "bytes",
    fields: "runtime.process.logs.maxBytes",
    why: "rotated files of a gibibyte are still readable",
  },
  MIRROR_BODY_BYTES: {
    min: 0,
    max: 64 * MIB,
    unit: "bytes",
    fields: "shadow limits.maxBodyBytes",
    why: "each queued copy holds its body in memory",
  },
  MIRROR_COMPARE_BYTES: {
    min: 0,
    max: 16 * MIB,
    unit: "bytes",
    fields: "shadow limits.maxCompareBytes",
    why: "each pair is parsed and diffed on the router",
  },

  // ---- Plain numbers -----------------------------------------------------------------------
  MEASURED_VALUE: {
    min: -1e15,
    max: 1e15,
    unit: "number",
    fields: "threshold min/max, relative maxIncrease/maxDecrease, compare.tolerance.absolute",
    why: "beyond it a double no longer holds whole numbers exactly",
  },
  RELATIVE_CHANGE: {
    min: 0,
    max: 1000,
    unit: "number",
    fields: "mannWhitney.maxRelativeIncrease, gate.maxLatencyIncrease, compare.tolerance.relative",
    why: "a thousandfold change is no gate",
  },
  RATE_CHANGE: {
    min: 0,
    max: 1,
    unit: "number",
    fields: "sequential.maxIncrease",
    why: "a difference of two rates",
  },
  DRIFT_PSI: {
    min: 0,
    max: 100,
    unit: "number",
    fields: "gate.maxDriftPsi",
    why: "PSI over 0.25 is already a large shift",
  },
} as const satisfies Record<string, Limit>;

export type LimitName = keyof typeof LIMITS;

/** A duration bound as people write it: "50ms", "1s", "30d". */
export function durationText(ms: number): string {
  if (ms === 0) return "0";
  for (const [unit, size] of [
    ["d", DAY],
    ["h", HOUR],
    ["m", MINUTE],
    ["s", SECOND],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function sizeText(bytes: number): string {
  if (bytes >= GIB && bytes % GIB === 0) return `${bytes / GIB} GiB`;
  if (bytes >= MIB && bytes % MIB === 0) return `${bytes / MIB} MiB`;
  if (bytes >= KIB && bytes % KIB === 0) return `${bytes / KIB} KiB`;
  return `${bytes}`;
}

function valueText(limit: Limit, v: number | undefined): string {
  if (v === undefined) return "";
  if (limit.unit === "duration") return durationText(v);
  if (limit.unit === "bytes" && v > 0) return `${v.toLocaleString("en-US")} (${sizeText(v)})`;
  return Math.abs(v) >= 1e6 && Number.isInteger(Math.log10(Math.abs(v)))
    ? `${v < 0 ? "-" : ""}1e${Math.log10(Math.abs(v))}`
    : v.toLocaleString("en-US", { maximumFractionDigits: 6 });
}

export const LIMITS_BEGIN =
  "<!-- limits:begin (generated from src/resources/limits.ts by `npm run schema`) -->";
export const LIMITS_END = "<!-- limits:end -->";

/** The reference's table of limits (docs/resources.md), between the markers, aligned. */
export function renderLimitsTable(): string {
  const header = ["Limit", "Applies to", "Unit", "Min", "Max", "Why"];
  const rows = Object.entries(LIMITS).map(([name, l]: [string, Limit]) => [
    `\`${name}\``,
    l.fields.replaceAll("|", "\\|"),
    l.unit,
    valueText(l, l.min),
    valueText(l, l.max),
    l.why.replaceAll("|", "\\|"),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [
    LIMITS_BEGIN,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    LIMITS_END,
  ].join("\n");
}
